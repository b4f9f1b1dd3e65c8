//! A `kuma_cp` source: kuma-cp's REST API, polled.
//!
//! ```yaml
//! sources:
//!   - kuma_cp:
//!       url: http://kuma-control-plane.kuma-system:5681
//!       meshes: [default]     # default: every mesh GET /meshes lists
//!       interval: 5s          # between polls; failures back off to a minute
//!       timeout: 5s           # for each request; default the interval, at most 10 s
//!       ttl: 30
//! ```
//!
//! - [`api`]: the API's documents, read into names (protocol only);
//! - [`http`]: one GET, with a deadline and `If-None-Match`;
//! - this module: the poller, a task per source that keeps the last good
//!   names (in memory and in the state folder, so that an agent started
//!   while kuma-cp is away serves them too) and wakes the agent when they
//!   change.

pub mod api;
pub mod http;

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use hyper::{Uri, body::Bytes};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use self::{
    api::{Mesh, Page, SERVICE_KINDS, Service},
    http::{Fetched, get},
};
use super::SourceName;

/// The longest wait between polls while kuma-cp fails.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Pages followed in one list at most: a `next` that never ends is a bug
/// in whatever answers, not a reason to poll forever.
const MAX_PAGES: usize = 10_000;

/// A `kuma_cp` source, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KumaCp {
    pub url: Uri,
    /// `None`: every mesh `GET /meshes` lists.
    pub meshes: Option<Vec<String>>,
    pub interval: Duration,
    pub timeout: Duration,
}

/// What the poller has: the names of its last good poll, and how the last
/// poll went.
#[derive(Debug, Default, Clone)]
pub struct Polled {
    /// `None` until a poll succeeds (or a saved one is loaded).
    pub names: Option<Vec<SourceName>>,
    /// The last poll's failure, if it failed.
    pub error: Option<String>,
    /// When a poll last succeeded, whether or not it changed anything.
    pub last_success: Option<SystemTime>,
    /// Polls that failed since the poller started.
    pub failures: u64,
}

/// The task polling one kuma-cp; stopped when dropped.
pub struct Poller {
    polled: Arc<Mutex<Polled>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Poller {
    /// Starts polling `source` on the current tokio runtime; its names
    /// start as the ones saved in `saved` by an earlier poller, if any.
    /// `changed` is notified whenever the names or the health change.
    pub fn start(source: KumaCp, saved: PathBuf, changed: Arc<Notify>) -> Self {
        let polled = Arc::new(Mutex::new(Polled {
            names: load(&saved, &source),
            ..Polled::default()
        }));
        let task = tokio::spawn(run(source, saved, polled.clone(), changed));
        Self { polled, task }
    }

    /// What the poller has now.
    pub fn polled(&self) -> Polled {
        self.polled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

async fn run(source: KumaCp, saved: PathBuf, polled: Arc<Mutex<Polled>>, changed: Arc<Notify>) {
    let mut cache = Cache::default();
    let mut failures_in_a_row: u32 = 0;
    loop {
        let result = poll(&source, &mut cache).await;
        let (wake, to_save) = {
            let mut polled = polled.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(Poll { names, warnings }) => {
                    failures_in_a_row = 0;
                    let new = polled.names.as_ref() != Some(&names);
                    // Logged when they change, not at every poll.
                    if new {
                        for warning in warnings {
                            tracing::warn!(url = %source.url, "{warning}");
                        }
                    }
                    let recovered = polled.error.take().is_some();
                    // The first success wakes the agent too: until then
                    // the source is not up.
                    let first = polled.last_success.is_none();
                    polled.last_success = Some(SystemTime::now());
                    let to_save = new.then(|| names.clone());
                    polled.names = Some(names);
                    (new || recovered || first, to_save)
                }
                Err(error) => {
                    failures_in_a_row = failures_in_a_row.saturating_add(1);
                    polled.failures += 1;
                    let first = polled.error.is_none();
                    polled.error = Some(error);
                    (first, None)
                }
            }
        };
        // Written off the lock and off the runtime's threads: two fsyncs.
        if let Some(names) = to_save {
            let (saved, id) = (saved.clone(), source.id());
            let _ = tokio::task::spawn_blocking(move || save(&saved, &id, &names)).await;
        }
        if wake {
            changed.notify_one();
        }
        tokio::time::sleep(backoff(source.interval, failures_in_a_row)).await;
    }
}

/// The wait before the next poll: the interval, doubled for each failure
/// in a row up to a minute (or the interval, if that is longer).
fn backoff(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1 << failures.min(6));
    doubled.min(MAX_BACKOFF.max(interval))
}

/// Each page's last body and its ETag, so that a 304 is the body again;
/// only the pages of the last poll are kept.
#[derive(Default)]
struct Cache(HashMap<String, (String, Bytes)>);

/// What one good poll gave: the names, and warnings about services whose
/// VIPs are not addresses.
struct Poll {
    names: Vec<SourceName>,
    warnings: Vec<String>,
}

/// One poll: every mesh's services, every page; the first failure fails
/// the poll (a partial table would drop names that still exist).
async fn poll(source: &KumaCp, cache: &mut Cache) -> Result<Poll, String> {
    let mut read = Cache::default();
    let meshes = match &source.meshes {
        Some(meshes) => {
            for mesh in meshes {
                // A mesh that does not exist is a mistake in the file, not
                // an empty mesh.
                if let Fetched::NotFound = get(
                    &at(&source.url, &format!("/meshes/{mesh}"))?,
                    None,
                    source.timeout,
                )
                .await
                .map_err(|e| e.to_string())?
                {
                    return Err(format!("{}: no mesh {mesh:?}", source.url));
                }
            }
            meshes.clone()
        }
        None => list::<Mesh>(source, "/meshes", cache, &mut read)
            .await?
            .ok_or_else(|| {
                format!(
                    "{}: GET /meshes is not found: not kuma-cp's API?",
                    source.url
                )
            })?
            .into_iter()
            .map(|mesh| mesh.name)
            .collect(),
    };
    let mut poll = Poll {
        names: Vec::new(),
        warnings: Vec::new(),
    };
    for mesh in &meshes {
        for kind in SERVICE_KINDS {
            let path = format!("/meshes/{mesh}/{kind}");
            // Not found: a kuma-cp without this kind of resource.
            let services = list::<Service>(source, &path, cache, &mut read).await?;
            for service in services.unwrap_or_default() {
                let (found, bad) = api::names_of(&service);
                poll.warnings
                    .extend(bad.into_iter().map(|w| format!("mesh {mesh}: {w}")));
                poll.names.extend(found);
            }
        }
    }
    *cache = read;
    Ok(poll)
}

/// Every item of the list at `path`, page by page; `None` if kuma-cp has
/// no such list (a 404 for its first page). Each page's body goes into
/// `read`, for the next poll's 304s.
async fn list<T: serde::de::DeserializeOwned>(
    source: &KumaCp,
    path: &str,
    cache: &Cache,
    read: &mut Cache,
) -> Result<Option<Vec<T>>, String> {
    let mut items = Vec::new();
    let mut total = None;
    let mut next = Some(path.to_string());
    let mut seen = std::collections::HashSet::new();
    for page_number in 0..MAX_PAGES {
        let Some(path_and_query) = next.take() else {
            // Items that moved between pages (a service removed while the
            // list was read) would leave one out: read again next poll.
            if let Some(total) = total
                && total != items.len()
            {
                return Err(format!(
                    "{path}: {} items read of {total}: the list changed while it was read",
                    items.len()
                ));
            }
            return Ok(Some(items));
        };
        if !seen.insert(path_and_query.clone()) {
            return Err(format!("{path}: next leads back to {path_and_query}"));
        }
        let uri = at(&source.url, &path_and_query)?;
        let key = uri.to_string();
        let etag = cache.0.get(&key).map(|(etag, _)| etag.as_str());
        let body = match get(&uri, etag, source.timeout)
            .await
            .map_err(|e| e.to_string())?
        {
            Fetched::NotFound if page_number == 0 => return Ok(None),
            Fetched::NotFound => return Err(format!("{key}: not found, a page into the list")),
            Fetched::NotModified => match cache.0.get(&key) {
                Some(kept) => {
                    read.0.insert(key.clone(), kept.clone());
                    kept.1.clone()
                }
                None => return Err(format!("{key}: 304 for a page never read")),
            },
            Fetched::Body { etag, body } => {
                if let Some(etag) = etag {
                    read.0.insert(key.clone(), (etag, body.clone()));
                }
                body
            }
        };
        let page: Page<T> = api::page(&body).map_err(|e| format!("{key}: {e}"))?;
        total = total.or(page.total);
        items.extend(page.items);
        // Only the path of `next` is followed, on the configured server:
        // kuma-cp writes it absolute, from the Host it was asked by.
        next = match page.next {
            None => None,
            Some(next) => Some(
                next.parse::<Uri>()
                    .ok()
                    .and_then(|u| u.path_and_query().map(|p| p.to_string()))
                    .ok_or_else(|| format!("{key}: next {next:?} is not a URL"))?,
            ),
        };
    }
    Err(format!("{path}: more than {MAX_PAGES} pages"))
}

/// `path_and_query` on the server of `base`, under its path (a kuma-cp
/// behind a prefix, `http://host/kuma`, works).
fn at(base: &Uri, path_and_query: &str) -> Result<Uri, String> {
    let prefix = base.path().trim_end_matches('/');
    let path = if !prefix.is_empty() && path_and_query.starts_with(prefix) {
        path_and_query.to_string()
    } else {
        format!("{prefix}{path_and_query}")
    };
    let authority = base.authority().map_or("", |a| a.as_str());
    format!(
        "{}://{authority}{path}",
        base.scheme_str().unwrap_or("http")
    )
    .parse()
    .map_err(|e| format!("{path}: {e}"))
}

/// The last good names, as saved.
#[derive(Serialize, Deserialize)]
struct Saved {
    /// [`KumaCp::id`] of the poller that saved them.
    url: String,
    names: Vec<SourceName>,
}

impl KumaCp {
    /// What the saved names are of: the URL and the meshes asked.
    pub fn id(&self) -> String {
        match &self.meshes {
            None => self.url.to_string(),
            Some(meshes) => format!("{} meshes={}", self.url, meshes.join(",")),
        }
    }
}

/// Where a poller of `source` keeps its last good names in `state_dir`.
pub fn saved_path(state_dir: &Path, source: &KumaCp) -> PathBuf {
    // FNV-1a: a stable file name per source, whatever characters it has.
    let hash = source.id().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    state_dir.join(format!("kuma-cp-{hash:016x}.json"))
}

fn load(path: &Path, source: &KumaCp) -> Option<Vec<SourceName>> {
    let text = std::fs::read(path).ok()?;
    let url = &source.url;
    match serde_json::from_slice::<Saved>(&text) {
        Ok(saved) if saved.url == source.id() => {
            tracing::info!(%url, names = saved.names.len(), "serving the names kuma-cp last gave until it answers");
            Some(saved.names)
        }
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "ignoring a corrupt saved list of kuma-cp's names");
            None
        }
    }
}

fn save(path: &Path, source_id: &str, names: &[SourceName]) {
    let saved = Saved {
        url: source_id.to_string(),
        names: names.to_vec(),
    };
    let result = serde_json::to_vec(&saved)
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::atomic_file::write(path, &bytes));
    if let Err(error) = result {
        tracing::error!(path = %path.display(), %error, "cannot save kuma-cp's names; a restart while it is away would serve none");
    }
}

#[cfg(test)]
mod tests;

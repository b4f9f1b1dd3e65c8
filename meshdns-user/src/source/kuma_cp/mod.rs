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
    pub last_success: Option<SystemTime>,
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
            names: load(&saved, &source.url),
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
    let mut failures: u32 = 0;
    loop {
        let result = poll(&source, &mut cache).await;
        let wake = {
            let mut polled = polled.lock().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok(names) => {
                    failures = 0;
                    let new = polled.names.as_ref() != Some(&names);
                    if new {
                        save(&saved, &source.url, &names);
                    }
                    let recovered = polled.error.take().is_some();
                    polled.names = Some(names);
                    polled.last_success = Some(SystemTime::now());
                    new || recovered
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let first = polled.error.is_none();
                    polled.error = Some(error);
                    first
                }
            }
        };
        if wake {
            changed.notify_one();
        }
        tokio::time::sleep(backoff(source.interval, failures)).await;
    }
}

/// The wait before the next poll: the interval, doubled for each failure
/// in a row up to a minute (or the interval, if that is longer).
fn backoff(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1 << failures.min(6));
    doubled.min(MAX_BACKOFF.max(interval))
}

/// Each page's last body and its ETag, so that a 304 is the body again.
#[derive(Default)]
struct Cache(HashMap<String, (String, Bytes)>);

/// One poll: every mesh's services, every page; the first failure fails
/// the poll (a partial table would drop names that still exist).
async fn poll(source: &KumaCp, cache: &mut Cache) -> Result<Vec<SourceName>, String> {
    let meshes = match &source.meshes {
        Some(meshes) => meshes.clone(),
        None => list::<Mesh>(source, "/meshes", cache)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|mesh| mesh.name)
            .collect(),
    };
    let mut names = Vec::new();
    for mesh in &meshes {
        for kind in SERVICE_KINDS {
            let path = format!("/meshes/{mesh}/{kind}");
            // Not found: a kuma-cp without this kind of resource.
            for service in list::<Service>(source, &path, cache)
                .await?
                .unwrap_or_default()
            {
                let (found, bad) = api::names_of(&service);
                for warning in bad {
                    tracing::warn!(url = %source.url, mesh, "{warning}");
                }
                names.extend(found);
            }
        }
    }
    Ok(names)
}

/// Every item of the list at `path`, page by page; `None` if kuma-cp has
/// no such list.
async fn list<T: serde::de::DeserializeOwned>(
    source: &KumaCp,
    path: &str,
    cache: &mut Cache,
) -> Result<Option<Vec<T>>, String> {
    let mut items = Vec::new();
    let mut next = Some(path.to_string());
    for _ in 0..MAX_PAGES {
        let Some(path_and_query) = next.take() else {
            return Ok(Some(items));
        };
        let uri = at(&source.url, &path_and_query)?;
        let key = uri.to_string();
        let etag = cache.0.get(&key).map(|(etag, _)| etag.as_str());
        let body = match get(&uri, etag, source.timeout)
            .await
            .map_err(|e| e.to_string())?
        {
            Fetched::NotFound => return Ok(None),
            Fetched::NotModified => match cache.0.get(&key) {
                Some((_, body)) => body.clone(),
                None => return Err(format!("{key}: 304 for a page never read")),
            },
            Fetched::Body { etag, body } => {
                match etag {
                    Some(etag) => {
                        cache.0.insert(key.clone(), (etag, body.clone()));
                    }
                    None => {
                        cache.0.remove(&key);
                    }
                }
                body
            }
        };
        let page: Page<T> = api::page(&body).map_err(|e| format!("{key}: {e}"))?;
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
    url: String,
    names: Vec<SourceName>,
}

/// Where a poller of `url` keeps its last good names in `state_dir`.
pub fn saved_path(state_dir: &Path, url: &Uri) -> PathBuf {
    // FNV-1a: a stable file name per URL, whatever characters it has.
    let hash = url
        .to_string()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    state_dir.join(format!("kuma-cp-{hash:016x}.json"))
}

fn load(path: &Path, url: &Uri) -> Option<Vec<SourceName>> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice::<Saved>(&text) {
        Ok(saved) if saved.url == url.to_string() => {
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

fn save(path: &Path, url: &Uri, names: &[SourceName]) {
    let saved = Saved {
        url: url.to_string(),
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

//! Where names come from besides the services file's `services:`: the
//! sources it lists under `sources:`.
//!
//! ```yaml
//! sources:
//!   - kuma_vips: /run/meshdns/kuma-vips   # a folder of VIP lists, or one file
//!   - kuma_vips: {path: /etc/meshdns/extra.json, ttl: 60}
//!   - kuma_cp: {url: "http://kuma-control-plane.kuma-system:5681"}
//! ```
//!
//! - this module: a source, checked, and its state: reading one into
//!   names, keeping each file's last good names when it breaks;
//! - `config`: the sources as the file writes them, and their checks;
//! - `files`: a source's files, as a ConfigMap volume lays them out;
//! - [`kuma_vips`]: Kuma's VIP list format (protocol only);
//! - [`kuma_cp`]: kuma-cp's API, polled by a task of its own;
//! - [`provenance`]: which source each name came from, for `dump`,
//!   `lookup` and `status`.
//!
//! A source's failure never takes names away: a file that cannot be read
//! or parsed, or a kuma-cp that does not answer, keeps serving what it last
//! gave, and says so in the log and in `/metrics` (`meshdns_source_up`).

mod config;
mod files;
pub mod kuma_cp;
pub mod kuma_vips;
pub mod provenance;

pub use config::{KumaCpConfig, KumaVipsConfig, KumaVipsFull, SourceConfig};
#[cfg(any(test, feature = "test-helpers"))]
pub mod testing;

use std::{collections::BTreeMap, net::IpAddr, path::PathBuf, sync::Arc, time::SystemTime};

use serde::Deserialize;
use tokio::sync::Notify;

use crate::table::Merged;

/// TTL of the names a Kuma source gives unless it says otherwise: what
/// Kuma's data plane answers with (`dns_generator.go`).
pub const KUMA_TTL: u32 = 30;

/// A source, checked: what the registry reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    KumaVips {
        path: PathBuf,
        ttl: u32,
        /// Where its service entries answer (`<service>.<domain>`).
        domain: String,
    },
    KumaCp {
        cp: kuma_cp::KumaCp,
        ttl: u32,
    },
}

impl Source {
    /// How logs and metrics name it: `kuma_vips:/run/meshdns/kuma-vips`,
    /// `kuma_cp:http://kuma-control-plane.kuma-system:5681/`.
    pub fn id(&self) -> String {
        match self {
            Source::KumaVips { path, .. } => format!("kuma_vips:{}", path.display()),
            Source::KumaCp { cp, .. } => format!("kuma_cp:{}", cp.id()),
        }
    }

    pub fn ttl(&self) -> u32 {
        match self {
            Source::KumaVips { ttl, .. } | Source::KumaCp { ttl, .. } => *ttl,
        }
    }

    /// What to watch for changes: the folder, or the file's folder (a
    /// file replaced by a rename is a change of its folder); nothing for a
    /// source that is polled.
    pub fn watch_path(&self) -> Option<PathBuf> {
        match self {
            Source::KumaVips { path, .. } if path.is_dir() => Some(path.clone()),
            Source::KumaVips { path, .. } => Some(match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            }),
            Source::KumaCp { .. } => None,
        }
    }
}

/// What reading a source may need from the agent: where to keep what
/// outlives it, and whom to wake when a polled source changes.
#[derive(Clone)]
pub struct ReadContext {
    pub state_dir: PathBuf,
    pub changed: Arc<Notify>,
}

/// One name a source gives.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, Deserialize)]
pub struct SourceName {
    /// Fully qualified, without a trailing dot, as written.
    pub name: String,
    /// What it answers, in order (at most `MAX_ADDRS` of each family are
    /// answered).
    pub addresses: Vec<IpAddr>,
}

/// Why a file of a source gave nothing this time.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    KumaVips {
        path: PathBuf,
        source: kuma_vips::KumaVipsError,
    },
}

/// What a source gave at its last read, and how that read went.
#[derive(Default)]
pub struct SourceState {
    /// By file (or URL): the names its last good read gave. A file that
    /// fails keeps its entry; a file that is gone loses it.
    files: BTreeMap<String, Vec<SourceName>>,
    /// The errors of the last read, one per file that failed.
    pub errors: Vec<String>,
    /// When a read last succeeded for every file.
    pub last_success: Option<SystemTime>,
    /// A polled source's task.
    poller: Option<kuma_cp::Poller>,
}

impl SourceState {
    /// The names to serve: every file's last good names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &SourceName> {
        self.files.values().flatten()
    }

    /// Whether the last read succeeded for every file (a polled source:
    /// whether its last poll did, once it has polled).
    pub fn up(&self) -> bool {
        self.errors.is_empty() && self.last_success.is_some()
    }

    /// Reads the source again. Each file that reads and parses replaces
    /// its names; each that fails keeps its last good ones, and its error
    /// is kept for the log and `/metrics`. Warnings about entries that give
    /// no name are logged here. A polled source starts its poller at its
    /// first read, and is read from what the poller has.
    pub fn read(&mut self, source: &Source, context: &ReadContext) {
        self.errors.clear();
        let (path, domain) = match source {
            Source::KumaVips { path, domain, .. } => (path, domain),
            Source::KumaCp { cp, .. } => return self.read_polled(cp, context),
        };
        let files = match files::vip_files(path) {
            Ok(files) => files,
            Err(source) => {
                // The folder itself is gone or unreadable: keep everything.
                self.errors.push(
                    SourceError::Read {
                        path: path.clone(),
                        source,
                    }
                    .to_string(),
                );
                return;
            }
        };
        let keys: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        self.files.retain(|file, _| keys.contains(file));
        for (file, key) in files.iter().zip(keys) {
            match files::read_vip_file(file, domain) {
                Ok(names) => {
                    self.files.insert(key, names);
                }
                Err(error) => self.errors.push(error.to_string()),
            }
        }
        if self.errors.is_empty() {
            self.last_success = Some(SystemTime::now());
        }
    }

    /// A polled source's health now, without reading its names: its
    /// poller's, which changes between reloads.
    pub fn polled(&self) -> Option<kuma_cp::Polled> {
        self.poller.as_ref().map(kuma_cp::Poller::polled)
    }

    fn read_polled(&mut self, cp: &kuma_cp::KumaCp, context: &ReadContext) {
        if self.poller.is_none() {
            if tokio::runtime::Handle::try_current().is_err() {
                self.errors
                    .push("kuma_cp is polled by the agent; there is no runtime here".into());
                return;
            }
            let saved = kuma_cp::saved_path(&context.state_dir, cp);
            self.poller = Some(kuma_cp::Poller::start(
                cp.clone(),
                saved,
                context.changed.clone(),
            ));
        }
        let Some(poller) = &self.poller else { return };
        let polled = poller.polled();
        self.errors.extend(polled.error);
        if let Some(names) = polled.names {
            self.files = BTreeMap::from([(cp.url.to_string(), names)]);
        }
        self.last_success = polled.last_success;
    }
}

/// How a source is doing, for `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// [`Source::id`].
    pub id: String,
    /// The last read succeeded for every file.
    pub up: bool,
    pub last_success: Option<SystemTime>,
    /// Reads with a failure since the agent started.
    pub failures: u64,
    /// What its names came to in the table last built.
    pub merged: Merged,
}

impl SourceStatus {
    pub fn new(id: String) -> Self {
        Self {
            id,
            up: false,
            last_success: None,
            failures: 0,
            merged: Merged::default(),
        }
    }

    /// Takes in how the read that left `state` went: a failed read of
    /// files counts one failure; a polled source counts its failed polls.
    pub fn record(&mut self, state: &SourceState) {
        self.up = state.up();
        self.last_success = state.last_success;
        match state.polled() {
            Some(polled) => self.failures = polled.failures,
            None if !self.up => self.failures += 1,
            None => {}
        }
    }

    /// Takes in a polled source's health between reloads.
    pub fn refresh(&mut self, state: &SourceState) {
        if let Some(polled) = state.polled() {
            self.up = polled.error.is_none() && polled.last_success.is_some();
            self.last_success = polled.last_success;
            self.failures = polled.failures;
        }
    }
}

#[cfg(test)]
mod tests;

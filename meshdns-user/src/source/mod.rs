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
//! - this module: the sources as the file lists them, and reading one
//!   into names, keeping each file's last good names when it breaks;
//! - [`kuma_vips`]: Kuma's VIP list format (protocol only);
//! - [`kuma_cp`]: kuma-cp's API, polled by a task of its own;
//! - [`provenance`]: which source each name came from, for `dump`,
//!   `lookup` and `status`.
//!
//! A source's failure never takes names away: a file that cannot be read
//! or parsed, or a kuma-cp that does not answer, keeps serving what it last
//! gave, and says so in the log and in `/metrics` (`meshdns_source_up`).

pub mod kuma_cp;
pub mod kuma_vips;
pub mod provenance;
#[cfg(any(test, feature = "test-helpers"))]
pub mod testing;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use serde::Deserialize;
use tokio::sync::Notify;

use crate::{config::MAX_TTL, table::Merged};

/// TTL of the names a Kuma source gives unless it says otherwise: what
/// Kuma's data plane answers with (`dns_generator.go`).
pub const KUMA_TTL: u32 = 30;

/// A source as the services file writes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SourceConfig {
    /// Kuma's VIP lists, each mesh's `kuma-<mesh>-dns-vips` ConfigMap's
    /// `config`: one file, or a folder of them (a ConfigMap volume, or a
    /// projected volume of several).
    KumaVips(KumaVipsConfig),
    /// kuma-cp's REST API: MeshService, MeshExternalService and
    /// MeshMultiZoneService hostnames with their VIPs.
    KumaCp(KumaCpConfig),
}

/// `kuma_cp: {url: URL, meshes: [...], interval: 5s, timeout: 5s, ttl: 30}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KumaCpConfig {
    pub url: String,
    #[serde(default)]
    pub meshes: Option<Vec<String>>,
    #[serde(default = "default_interval")]
    pub interval: crate::config::Duration,
    #[serde(default)]
    pub timeout: Option<crate::config::Duration>,
    #[serde(default = "kuma_ttl")]
    pub ttl: u32,
}

fn default_interval() -> crate::config::Duration {
    crate::config::Duration::Seconds(5)
}

/// The longest request timeout taken by default.
const MAX_DEFAULT_TIMEOUT: u64 = 10;

/// `kuma_vips: PATH`, or `kuma_vips: {path: PATH, ttl: SECONDS}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KumaVipsConfig {
    Path(PathBuf),
    Full(KumaVipsFull),
}

/// The long form of `kuma_vips`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KumaVipsFull {
    pub path: PathBuf,
    #[serde(default = "kuma_ttl")]
    pub ttl: u32,
}

fn kuma_ttl() -> u32 {
    KUMA_TTL
}

/// A source, checked: what the registry reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    KumaVips { path: PathBuf, ttl: u32 },
    KumaCp { cp: kuma_cp::KumaCp, ttl: u32 },
}

impl SourceConfig {
    /// Checks what the schema cannot: a TTL a resolver accepts, a URL, a
    /// duration.
    pub fn check(&self) -> Result<Source, String> {
        let config = match self {
            SourceConfig::KumaVips(config) => config,
            SourceConfig::KumaCp(config) => return config.check(),
        };
        let (path, ttl) = match config {
            KumaVipsConfig::Path(path) => (path.clone(), KUMA_TTL),
            KumaVipsConfig::Full(full) => (full.path.clone(), full.ttl),
        };
        if ttl > MAX_TTL {
            return Err(format!("ttl {ttl} is more than {MAX_TTL}"));
        }
        if path.as_os_str().is_empty() {
            return Err("kuma_vips needs a path".into());
        }
        Ok(Source::KumaVips { path, ttl })
    }
}

impl KumaCpConfig {
    fn check(&self) -> Result<Source, String> {
        let url: hyper::Uri = self
            .url
            .parse()
            .map_err(|e| format!("kuma_cp url {:?}: {e}", self.url))?;
        if url.authority().is_some_and(|a| a.as_str().contains('@')) {
            return Err(format!(
                "kuma_cp url {:?}: no user or password in the URL (it would be sent as the Host)",
                self.url
            ));
        }
        if url.scheme_str() != Some("http") || url.host().is_none() {
            return Err(format!(
                "kuma_cp url {:?}: http://HOST[:PORT] (kuma-cp's API on 5681) is what is supported",
                self.url
            ));
        }
        if let Some(meshes) = &self.meshes
            && let Some(bad) = meshes.iter().find(|m| {
                m.is_empty()
                    || !m
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            })
        {
            return Err(format!("kuma_cp mesh {bad:?} is not a mesh name"));
        }
        let interval = self.interval.seconds()?;
        if interval == 0 {
            return Err("kuma_cp interval must be at least 1s".into());
        }
        let timeout = match &self.timeout {
            Some(timeout) => timeout.seconds()?,
            None => interval.min(MAX_DEFAULT_TIMEOUT),
        };
        if timeout == 0 {
            return Err("kuma_cp timeout must be at least 1s".into());
        }
        if self.ttl > MAX_TTL {
            return Err(format!("ttl {} is more than {MAX_TTL}", self.ttl));
        }
        Ok(Source::KumaCp {
            cp: kuma_cp::KumaCp {
                url,
                meshes: self.meshes.clone(),
                interval: std::time::Duration::from_secs(interval),
                timeout: std::time::Duration::from_secs(timeout),
            },
            ttl: self.ttl,
        })
    }
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
        let path = match source {
            Source::KumaVips { path, .. } => path,
            Source::KumaCp { cp, .. } => return self.read_polled(cp, context),
        };
        let files = match vip_files(path) {
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
            match read_vip_file(file) {
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

/// The VIP lists of a source: the file itself, or the files of the folder
/// in name order, without what a ConfigMap volume keeps beside them (its
/// `..data` symlink and timestamped folders start with dots).
fn vip_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Following symlinks: a ConfigMap volume's files are links into
        // `..data`. A link left dangling while the kubelet swaps versions
        // is a key on its way out, not an error.
        let file = entry.path();
        match std::fs::metadata(&file) {
            Ok(metadata) if metadata.is_file() => files.push(file),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    files.sort();
    Ok(files)
}

fn read_vip_file(path: &Path) -> Result<Vec<SourceName>, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let list = kuma_vips::parse(&text).map_err(|source| SourceError::KumaVips {
        path: path.to_path_buf(),
        source,
    })?;
    for skipped in &list.skipped {
        tracing::warn!(path = %path.display(), entry = skipped.entry, "VIP list entry skipped: {}", skipped.reason);
    }
    Ok(list
        .names
        .into_iter()
        .map(|name| SourceName {
            name: name.name,
            addresses: vec![name.address],
        })
        .collect())
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

//! Where names come from besides the services file's `services:`: the
//! sources it lists under `sources:`.
//!
//! ```yaml
//! sources:
//!   - kuma_vips: /run/meshdns/kuma-vips   # a folder of VIP lists, or one file
//!   - kuma_vips: {path: /etc/meshdns/extra.json, ttl: 60}
//! ```
//!
//! - this module: the sources as the file lists them, and reading one
//!   into names, keeping each file's last good names when it breaks;
//! - [`kuma_vips`]: Kuma's VIP list format (protocol only).
//!
//! A source's failure never takes names away: a file that cannot be read
//! or parsed keeps serving what it last gave, and says so in the log and in
//! `/metrics` (`meshdns_source_up`).

pub mod kuma_vips;
#[cfg(any(test, feature = "test-helpers"))]
pub mod testing;

use std::{
    collections::BTreeMap,
    net::IpAddr,
    path::{Path, PathBuf},
    time::SystemTime,
};

use serde::Deserialize;

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
}

/// `kuma_vips: PATH`, or `kuma_vips: {path: PATH, ttl: SECONDS}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum KumaVipsConfig {
    Path(PathBuf),
    #[serde(rename_all = "snake_case")]
    Full {
        path: PathBuf,
        #[serde(default = "kuma_ttl")]
        ttl: u32,
    },
}

fn kuma_ttl() -> u32 {
    KUMA_TTL
}

/// A source, checked: what the registry reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    KumaVips { path: PathBuf, ttl: u32 },
}

impl SourceConfig {
    /// Checks what the schema cannot: a TTL a resolver accepts.
    pub fn check(&self) -> Result<Source, String> {
        let SourceConfig::KumaVips(config) = self;
        let (path, ttl) = match config {
            KumaVipsConfig::Path(path) => (path.clone(), KUMA_TTL),
            KumaVipsConfig::Full { path, ttl } => (path.clone(), *ttl),
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

impl Source {
    /// How logs and metrics name it: `kuma_vips:/run/meshdns/kuma-vips`.
    pub fn id(&self) -> String {
        match self {
            Source::KumaVips { path, .. } => format!("kuma_vips:{}", path.display()),
        }
    }

    pub fn ttl(&self) -> u32 {
        match self {
            Source::KumaVips { ttl, .. } => *ttl,
        }
    }

    /// What to watch for changes: the folder, or the file's folder (a
    /// file replaced by a rename is a change of its folder).
    pub fn watch_path(&self) -> PathBuf {
        match self {
            Source::KumaVips { path, .. } if path.is_dir() => path.clone(),
            Source::KumaVips { path, .. } => match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            },
        }
    }
}

/// One name a source gives.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceName {
    /// Fully qualified, without a trailing dot, as written.
    pub name: String,
    pub address: IpAddr,
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
#[derive(Debug, Default, Clone)]
pub struct SourceState {
    /// By file: the names its last good read gave. A file that fails keeps
    /// its entry; a file that is gone loses it.
    files: BTreeMap<PathBuf, Vec<SourceName>>,
    /// The errors of the last read, one per file that failed.
    pub errors: Vec<String>,
    /// When a read last succeeded for every file.
    pub last_success: Option<SystemTime>,
}

impl SourceState {
    /// The names to serve: every file's last good names, in file order.
    pub fn names(&self) -> impl Iterator<Item = &SourceName> {
        self.files.values().flatten()
    }

    /// Whether the last read succeeded for every file.
    pub fn up(&self) -> bool {
        self.errors.is_empty()
    }

    /// Reads the source again. Each file that reads and parses replaces
    /// its names; each that fails keeps its last good ones, and its error
    /// is kept for the log and `/metrics`. Warnings about entries that give
    /// no name are logged here.
    pub fn read(&mut self, source: &Source) {
        let Source::KumaVips { path, .. } = source;
        self.errors.clear();
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
        self.files.retain(|file, _| files.contains(file));
        for file in files {
            match read_vip_file(&file) {
                Ok(names) => {
                    self.files.insert(file, names);
                }
                Err(error) => self.errors.push(error.to_string()),
            }
        }
        if self.errors.is_empty() {
            self.last_success = Some(SystemTime::now());
        }
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
        // `..data`.
        let file = entry.path();
        if std::fs::metadata(&file)?.is_file() {
            files.push(file);
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
            address: name.address,
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

    /// Takes in how the read that left `state` went.
    pub fn record(&mut self, state: &SourceState) {
        self.up = state.up();
        self.last_success = state.last_success;
        if !self.up {
            self.failures += 1;
        }
    }
}

#[cfg(test)]
mod tests;

//! Which source each name of the table came from, and how the sources
//! were doing, as of the agent's last reload: written to its state folder
//! (`sources.json`) so that `meshdns dump`, `lookup` and `status` can say
//! it. The kernel's maps know only names and records.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    time::{SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};

use super::SourceStatus;
use crate::{dns_name, table::Table};

/// The file in the state folder.
pub const PROVENANCE_FILE: &str = "sources.json";

/// What `sources.json` holds.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// When the agent wrote it, Unix seconds.
    pub written: u64,
    pub sources: Vec<SourceSummary>,
    /// The names that came from a source (dotted, with the trailing dot),
    /// with its id; every other name is the services file's.
    pub names: BTreeMap<String, String>,
}

/// One source, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSummary {
    pub id: String,
    /// Its last read succeeded.
    pub up: bool,
    /// Names of it the table answers.
    pub names: usize,
    /// Names of it left out (conflicts, outside the zone, invalid).
    pub left_out: usize,
    /// When it was last read whole, Unix seconds; 0: never.
    pub last_success: u64,
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Provenance {
    /// The sources of `table`'s names, and the sources' state.
    pub fn of(table: &Table, status: &[SourceStatus]) -> Self {
        let names = table
            .iter()
            .filter_map(|(key, entry)| {
                let source = table.source_id(entry)?;
                Some((dns_name::to_text(key.as_wire()), source.to_string()))
            })
            .collect();
        Self {
            written: unix(SystemTime::now()),
            sources: Self::summaries(status),
            names,
        }
    }

    /// The sources' state, as `status` shows it.
    pub fn summaries(status: &[SourceStatus]) -> Vec<SourceSummary> {
        status
            .iter()
            .map(|s| SourceSummary {
                id: s.id.clone(),
                up: s.up,
                names: s.merged.names,
                left_out: s.merged.conflicts + s.merged.outside_zone + s.merged.invalid,
                last_success: s.last_success.map_or(0, unix),
            })
            .collect()
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(PROVENANCE_FILE)
    }

    /// Writes it atomically; a failure is logged (it serves nothing).
    pub fn save(&self, state_dir: &Path) {
        let path = Self::path(state_dir);
        let result = serde_json::to_vec(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::atomic_file::write(&path, &bytes));
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "cannot write which source each name came from; dump and lookup will not say");
        }
    }

    /// The last one written, if any and readable.
    pub fn load(state_dir: &Path) -> Option<Self> {
        let bytes = std::fs::read(Self::path(state_dir)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// The source of `name` (dotted, any case, trailing dot optional), if
    /// a source gave it.
    pub fn source_of(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        let name = if name.ends_with('.') {
            name
        } else {
            format!("{name}.")
        };
        self.names.get(&name).map(String::as_str)
    }
}

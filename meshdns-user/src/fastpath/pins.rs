//! The one place that knows the pin layout in bpffs.

use std::{fs, path::PathBuf};

use meshdns_common::{
    COUNTERS_MAP, LAYOUT_FINGERPRINT, LAYOUT_VERSION, NAMES_FULL_MAP, NAMES48_MAP, NAMES112_MAP,
    NAMES256_MAP, RATE_BUCKETS_MAP, SCOPE_MAP, SEARCH_MAP, SEARCH_PROGRAM_MAP, ZONE_MAP,
};

use super::{FastPathError, Result};

/// The maps the program and agent share, pinned so they outlive the agent
/// (the rate limit's buckets too: a restarted agent does not forgive a
/// flood).
pub(crate) const SHARED_MAPS: [&str; 10] = [
    NAMES48_MAP,
    NAMES112_MAP,
    NAMES256_MAP,
    NAMES_FULL_MAP,
    ZONE_MAP,
    SEARCH_MAP,
    SEARCH_PROGRAM_MAP,
    SCOPE_MAP,
    RATE_BUCKETS_MAP,
    COUNTERS_MAP,
];

/// Where a fast path's objects live in bpffs, so that the program keeps
/// serving while no agent runs and the next agent takes it over:
///
/// - `<dir>/maps-v<layout>-<fingerprint>/{NAMES48,NAMES112,NAMES256,NAMES_FULL,ZONE,SEARCH,SEARCH_PROGRAM,SCOPE,RATE_BUCKETS,COUNTERS}`:
///   the maps, in a folder named by their layout, so an agent never reads
///   maps of another layout; `NAMES48`, its siblings, `ZONE`, `SEARCH` and `SCOPE` are arrays
///   of maps, and `NAMES48_0` (and so on) the map in slot 0 of each (see
///   [`super::slot`]);
/// - `<dir>/links/<iface>`: the XDP link of each interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    pub dir: PathBuf,
}

impl Pins {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder of this build's maps.
    pub fn maps_dir(&self) -> PathBuf {
        self.dir
            .join(format!("maps-v{LAYOUT_VERSION}-{LAYOUT_FINGERPRINT:08x}"))
    }

    /// The pinned map `name` (one of the program's shared maps:
    /// `NAMES_MAPS`, `ZONE_MAP`, `COUNTERS_MAP`).
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps_dir().join(name)
    }

    /// Where the names map in each class's slot is pinned, in `NameClass`
    /// order.
    pub fn slot_maps(&self) -> [PathBuf; 3] {
        [NAMES48_MAP, NAMES112_MAP, NAMES256_MAP].map(|name| self.slot_map(name))
    }

    /// Where the map in the slot of the array of maps `name` is pinned (see
    /// [`super::slot`]; bpffs refuses names with a dot).
    pub fn slot_map(&self, name: &str) -> PathBuf {
        self.map(&format!("{name}_0"))
    }

    /// The pinned link of `iface`.
    pub fn link(&self, iface: &str) -> PathBuf {
        self.dir.join("links").join(iface)
    }

    /// The interfaces that have a pinned link, in name order.
    pub fn linked_interfaces(&self) -> Vec<String> {
        let mut ifaces: Vec<String> = fs::read_dir(self.dir.join("links"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        ifaces.sort();
        ifaces
    }

    /// Map folders of other layouts, left by older or newer agents.
    pub fn stale_maps_dirs(&self) -> Vec<PathBuf> {
        let current = self.maps_dir();
        fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path != &current
                    && path
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with("maps-"))
            })
            .collect()
    }

    pub(crate) fn create(&self) -> Result<()> {
        for dir in [self.maps_dir(), self.dir.join("links")] {
            fs::create_dir_all(&dir).map_err(|source| FastPathError::Io { path: dir, source })?;
        }
        Ok(())
    }

    /// Removes pinned maps of other layouts. Call it once the program is
    /// attached: the old program, and with it its maps, is gone by then.
    pub fn remove_stale_maps(&self) {
        for dir in self.stale_maps_dirs() {
            match fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(path = %dir.display(), "removed maps of another layout"),
                Err(error) => {
                    tracing::warn!(path = %dir.display(), %error, "cannot remove maps of another layout")
                }
            }
        }
    }
}

/// Removes everything the fast path pinned for `iface` under `pins`: its
/// link (which detaches the program) and, once no interface's link is left,
/// the maps of every layout and the folders. Returns whether a link was
/// there.
pub fn remove_pins(pins: &Pins, iface: &str) -> Result<bool> {
    let detached = super::link::detach_link(&pins.link(iface))?;
    let links = pins.dir.join("links");
    let others = fs::read_dir(&links).map(|d| d.count()).unwrap_or(0);
    if others == 0 && pins.dir.exists() {
        fs::remove_dir_all(&pins.dir).map_err(|source| FastPathError::Io {
            path: pins.dir.clone(),
            source,
        })?;
    }
    Ok(detached)
}

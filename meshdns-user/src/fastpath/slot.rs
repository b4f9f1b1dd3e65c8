//! A map the agent replaces whole, held in slot 0 of a one-slot array of
//! maps: the program finds it through the array, and a new map takes its
//! place in one update, which needs only CAP_BPF (loading the program again
//! with a new map would need CAP_NET_ADMIN, given up once attached). The
//! kernel frees the old map once no program run can see it (RCU), so a run
//! sees the old map or the new one whole.
//!
//! The map in the slot is pinned beside its array (`<ARRAY>_0`), because
//! asking the kernel for a map by the id a slot holds needs CAP_SYS_ADMIN.
//! The pin follows the slot: a new map goes into the slot first, then is
//! pinned beside the old pin and renamed over it (a rename is atomic). A
//! pinned map whose id is not the slot's (an agent stopped in between) is
//! not trusted.

use std::{
    os::fd::AsFd as _,
    path::{Path, PathBuf},
};

use aya::maps::{Array, ArrayOfMaps, Map, MapData, MapError};

use super::{FastPathError, Result, map_error};

/// The slot of each array of maps that holds its map.
pub const SLOT: u32 = 0;

/// Whether the maps are the agent's to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The agent's fast path: new maps go into their slots once filled.
    Serving,
    /// `status`, `dump`, `lookup`: a slot is never changed, nor a pin.
    Reading,
}

/// One array of maps and where its slot's map is pinned.
pub struct Slot {
    array: ArrayOfMaps<MapData, MapData>,
    /// The same array, read as what the kernel says the slot holds: the id
    /// of the map in it (a second handle: aya reads a slot only as the map
    /// itself, which needs CAP_SYS_ADMIN).
    ids: Array<MapData, u32>,
    /// The array's name, for errors.
    name: &'static str,
    /// Where the slot's map is pinned; `None`: nowhere (a test's maps).
    pin: Option<PathBuf>,
}

impl Slot {
    /// The array `map`, named `name`, whose slot's map is pinned at `pin`.
    pub fn open(map: Map, name: &'static str, pin: Option<PathBuf>) -> Result<Self> {
        let error = || map_error(name);
        let data = match map {
            Map::ArrayOfMaps(data) => data,
            other => {
                return Err(match ArrayOfMaps::<MapData, MapData>::try_from(other) {
                    Err(wrong_type) => error()(wrong_type),
                    Ok(_) => unreachable!("only an array of maps converts to one"),
                });
            }
        };
        let fd = data
            .fd()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| FastPathError::Io {
                path: PathBuf::from(name),
                source,
            })?;
        let ids =
            Array::try_from(Map::Array(MapData::from_fd(fd).map_err(error())?)).map_err(error())?;
        let array = ArrayOfMaps::try_from(Map::ArrayOfMaps(data)).map_err(error())?;
        Ok(Self {
            array,
            ids,
            name,
            pin,
        })
    }

    /// The map in the slot, if it can be known: the pinned one if the slot
    /// holds it, or the one pinned beside it that an agent stopped before
    /// renaming (a serving agent renames it, and removes a pin it does not
    /// trust, so that the map it held can go); a reader asks for the slot's
    /// map by its id instead (which needs CAP_SYS_ADMIN). `None`: the slot
    /// is empty, or its map cannot be had.
    pub fn current(&self, role: Role) -> Result<Option<MapData>> {
        let error = || map_error(self.name);
        let in_slot = match self.ids.get(&SLOT, 0) {
            Ok(id) => id,
            Err(MapError::KeyNotFound) => return Ok(None),
            Err(other) => return Err(error()(other)),
        };
        let trusted = |path: &Path| -> Result<Option<MapData>> {
            let Ok(map) = MapData::from_pin(path) else {
                return Ok(None);
            };
            Ok((map.info().map_err(error())?.id() == in_slot).then_some(map))
        };
        if let Some(path) = &self.pin {
            if let Some(map) = trusted(path)? {
                return Ok(Some(map));
            }
            let beside = beside(path);
            if let Some(map) = trusted(&beside)? {
                if role == Role::Serving {
                    std::fs::rename(&beside, path).map_err(|source| FastPathError::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
                return Ok(Some(map));
            }
            if path.exists() {
                tracing::warn!(
                    path = %path.display(),
                    "the pinned map is not the one the program uses (an agent stopped while replacing it)"
                );
                if role == Role::Serving {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        Ok(match role {
            Role::Reading => MapData::from_id(in_slot).ok(),
            Role::Serving => None,
        })
    }

    /// Puts `map` in the slot, in one update, and then pins it. Once the
    /// slot holds it, it serves: a pin that fails costs only the next
    /// agent a refill (it will not trust the old pin), so it is a warning,
    /// not an error.
    pub fn put(&mut self, map: &MapData) -> Result<()> {
        self.array.set(SLOT, map, 0).map_err(map_error(self.name))?;
        if let Some(path) = &self.pin
            && let Err(error) = pin_in_place(map, path)
        {
            tracing::warn!(%error, map = self.name, "the map serves but is not pinned; the next agent will fill a new one");
        }
        Ok(())
    }
}

/// Pins `map` at `path`, replacing what is pinned there in one step.
fn pin_in_place(map: &MapData, path: &Path) -> Result<()> {
    let beside = beside(path);
    // Left by an agent stopped between pinning and renaming.
    let _ = std::fs::remove_file(&beside);
    map.pin(&beside).map_err(|source| FastPathError::Pin {
        path: beside.clone(),
        source,
    })?;
    std::fs::rename(&beside, path).map_err(|source| FastPathError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Where a map is pinned before it is renamed over `path`.
fn beside(path: &Path) -> PathBuf {
    let mut beside = path.as_os_str().to_owned();
    // Not `.new`: bpffs refuses names with a dot.
    beside.push("_new");
    PathBuf::from(beside)
}

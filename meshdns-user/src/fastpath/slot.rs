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
        // A swap can run between reading the slot and opening the pins (a
        // reader beside the agent): then the slot's id has changed, and one
        // more look finds the new map.
        for _ in 0..3 {
            let Some(in_slot) = self.in_slot()? else {
                return Ok(None);
            };
            if let Some(map) = self.pinned(in_slot, role)? {
                return Ok(Some(map));
            }
            if self.in_slot()? == Some(in_slot) {
                return Ok(match role {
                    Role::Reading => MapData::from_id(in_slot).ok(),
                    Role::Serving => {
                        self.distrust_pin(role);
                        None
                    }
                });
            }
        }
        Ok(None)
    }

    /// The id of the map in the slot, if any.
    fn in_slot(&self) -> Result<Option<u32>> {
        match self.ids.get(&SLOT, 0) {
            Ok(id) => Ok(Some(id)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(other) => Err(map_error(self.name)(other)),
        }
    }

    /// The pinned map whose id is `in_slot`: at the pin, or beside it (an
    /// agent stopped before renaming it over the pin; a serving agent
    /// renames it now).
    fn pinned(&self, in_slot: u32, role: Role) -> Result<Option<MapData>> {
        let Some(path) = &self.pin else {
            return Ok(None);
        };
        let trusted = |path: &Path| -> Result<Option<MapData>> {
            let Ok(map) = MapData::from_pin(path) else {
                return Ok(None);
            };
            Ok((map.info().map_err(map_error(self.name))?.id() == in_slot).then_some(map))
        };
        if let Some(map) = trusted(path)? {
            return Ok(Some(map));
        }
        let beside = beside(path);
        let Some(map) = trusted(&beside)? else {
            return Ok(None);
        };
        if role == Role::Serving {
            std::fs::rename(&beside, path).map_err(|source| FastPathError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(Some(map))
    }

    /// Removes a pin whose map is not the slot's, so that the map it held
    /// can go (a serving agent only).
    fn distrust_pin(&self, role: Role) {
        if let Some(path) = &self.pin
            && path.exists()
        {
            tracing::warn!(
                path = %path.display(),
                "the pinned map is not the one the program uses (an agent stopped while replacing it, or a pin failed)"
            );
            if role == Role::Serving {
                let _ = std::fs::remove_file(path);
            }
        }
    }

    /// Puts `map` in the slot, in one update: pinned beside the old pin
    /// first, renamed over it once in the slot, so that a reader finds the
    /// slot's map at one of the two. Once the slot holds it, it serves: a
    /// pin that fails costs only a refill by the next agent (the old pin is
    /// removed, not trusted), so it is a warning, not an error.
    ///
    /// The map the slot held (found at its pin: the agent's slots are all
    /// pinned) is kept open a moment longer: kernels before
    /// 6.8 free a map put out of a slot without waiting for the program
    /// runs that may still read it (fixed by "bpf: Defer the free of inner
    /// map when necessary"); a run takes microseconds.
    pub fn put(&mut self, map: &MapData) -> Result<()> {
        let old = self
            .in_slot()?
            .and_then(|id| self.pinned(id, Role::Reading).ok().flatten());
        let pinned = self.pin.as_ref().map(|path| pin_beside(map, path));
        self.array.set(SLOT, map, 0).map_err(map_error(self.name))?;
        if let (Some(path), Some(pinned)) = (&self.pin, pinned) {
            let renamed = pinned.and_then(|beside| {
                std::fs::rename(&beside, path).map_err(|source| FastPathError::Io {
                    path: path.clone(),
                    source,
                })
            });
            if let Err(error) = renamed {
                tracing::warn!(%error, map = self.name, "the map serves but is not pinned; the next agent will write it anew");
                let _ = std::fs::remove_file(path);
            }
        }
        if old.is_some() {
            std::thread::sleep(OLD_MAP_GRACE);
        }
        Ok(())
    }
}

/// How long the map a slot held stays open after it is put out (see
/// [`Slot::put`]): far longer than a program run.
const OLD_MAP_GRACE: std::time::Duration = std::time::Duration::from_millis(50);

/// Pins `map` beside `path` (see [`beside`]), replacing what an agent
/// stopped between pinning and renaming left there; returns where.
fn pin_beside(map: &MapData, path: &Path) -> Result<PathBuf> {
    let beside = beside(path);
    let _ = std::fs::remove_file(&beside);
    map.pin(&beside).map_err(|source| FastPathError::Pin {
        path: beside.clone(),
        source,
    })?;
    Ok(beside)
}

/// Where a map is pinned before it is renamed over `path`.
fn beside(path: &Path) -> PathBuf {
    let mut beside = path.as_os_str().to_owned();
    // Not `.new`: bpffs refuses names with a dot.
    beside.push("_new");
    PathBuf::from(beside)
}

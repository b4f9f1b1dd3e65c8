//! How big each class's names map is: made for the table, grown into a
//! bigger copy when the table outgrows it, and put in its slot once filled.

use aya::{
    Pod,
    maps::{HashMap, IterableMap as _, Map, MapData},
};
use meshdns_common::{CompactRecord, MAX_NAMES, NAMES_MAP_FLAGS, NameClass};

use super::{CLASSES, NameMaps, map_of};
use crate::fastpath::{
    FastPathError, Result, map_error,
    slot::{Role, Slot},
};

/// The fewest names a class's map is made for: its buckets cost 16 bytes a
/// name of capacity, so 16 KiB.
pub const MIN_CAPACITY: u32 = 1 << 10;

impl NameMaps {
    /// How many names each class's map can hold, in [`NameClass`] order.
    pub fn capacity(&self) -> Result<[u32; 3]> {
        let [short, medium, long, _] = self.maps();
        Ok([
            max_entries(short, NameClass::Short)?,
            max_entries(medium, NameClass::Medium)?,
            max_entries(long, NameClass::Long)?,
        ])
    }

    /// Makes room for `counts` names of each class: a class whose map is
    /// too small gets a new one, [`capacity_for`] its count, holding what
    /// the old one held, to be put in its slot by [`NameMaps::install`].
    /// Until then the program answers from the old one. Maps never shrink
    /// while they serve.
    pub fn make_room(&mut self, counts: [usize; 3]) -> Result<()> {
        let capacity = self.capacity()?;
        for (i, class) in CLASSES.into_iter().enumerate() {
            if counts[i] > MAX_NAMES[i] as usize {
                return Err(FastPathError::TooManyNames {
                    map: map_of(class),
                    names: counts[i],
                    max: MAX_NAMES[i],
                });
            }
            if counts[i] <= capacity[i] as usize {
                continue;
            }
            let wanted = capacity_for(class, counts[i]);
            match class {
                NameClass::Short => self.short = grown(&self.short, class, wanted)?,
                NameClass::Medium => self.medium = grown(&self.medium, class, wanted)?,
                NameClass::Long => self.long = grown(&self.long, class, wanted)?,
            }
            self.pending[i] = true;
            tracing::info!(
                map = map_of(class),
                names = counts[i],
                from = capacity[i],
                to = wanted,
                "names map grown"
            );
        }
        Ok(())
    }

    /// Puts each class's new map (see `pending`) in its slot (which pins
    /// it), then removes the full records only the old maps pointed at.
    /// Does nothing for a reader.
    pub fn install(&mut self) -> Result<()> {
        if self.role == Role::Reading {
            return Ok(());
        }
        for (i, class) in CLASSES.into_iter().enumerate() {
            if !self.pending[i] {
                continue;
            }
            let map = match class {
                NameClass::Short => self.short.map(),
                NameClass::Medium => self.medium.map(),
                NameClass::Long => self.long.map(),
            };
            self.slots[i].put(map)?;
            self.pending[i] = false;
        }
        for id in std::mem::take(&mut self.unpointed) {
            self.remove_full(id)?;
        }
        Ok(())
    }
}

/// `class`'s map: the one in its slot if it can be had (see
/// [`Slot::current`]), else a new one of [`MIN_CAPACITY`], with whether it
/// is new (not in the slot). A reader that cannot have the slot's map reads
/// no names.
pub(super) fn class_map<K: Pod>(
    slots: &[Slot; 3],
    class: NameClass,
    role: Role,
) -> Result<(HashMap<MapData, K, CompactRecord>, bool)> {
    let error = || map_error(map_of(class));
    if let Some(map) = slots[class as usize].current(role)? {
        return Ok((
            HashMap::try_from(Map::HashMap(map)).map_err(error())?,
            false,
        ));
    }
    let map = HashMap::create(MIN_CAPACITY, NAMES_MAP_FLAGS).map_err(error())?;
    Ok((map, true))
}

/// How many names `map` can hold.
fn max_entries(map: &MapData, class: NameClass) -> Result<u32> {
    map.info()
        .map(|info| info.max_entries())
        .map_err(map_error(map_of(class)))
}

/// A copy of `map`, `class`'s names map, made for `capacity` names.
fn grown<K: Pod>(
    map: &HashMap<MapData, K, CompactRecord>,
    class: NameClass,
    capacity: u32,
) -> Result<HashMap<MapData, K, CompactRecord>> {
    let error = || map_error(map_of(class));
    let mut grown = HashMap::create(capacity, NAMES_MAP_FLAGS).map_err(error())?;
    for entry in map.iter() {
        let (key, record) = entry.map_err(error())?;
        grown.insert(key, record, 0).map_err(error())?;
    }
    Ok(grown)
}

/// The capacity a class's map is made with for `count` names: room to
/// double before it must grow again, at least [`MIN_CAPACITY`], at most
/// the class's bound (`MAX_NAMES`), in powers of two (the kernel rounds a
/// hash map's buckets up to one).
pub fn capacity_for(class: NameClass, count: usize) -> u32 {
    let wanted = u32::try_from(count.saturating_mul(2)).unwrap_or(u32::MAX);
    wanted
        .checked_next_power_of_two()
        .unwrap_or(u32::MAX)
        .clamp(MIN_CAPACITY, MAX_NAMES[class as usize])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_class_map_has_room_to_double_in_powers_of_two_within_its_bound() {
        for (class, count, capacity) in [
            (NameClass::Short, 0, MIN_CAPACITY),
            (NameClass::Short, 512, 1024),
            (NameClass::Short, 513, 2048),
            (NameClass::Short, 10_000, 32_768),
            (NameClass::Short, 524_288, 1 << 20),
            // At the bound: as many as it holds, no more.
            (NameClass::Short, 1_000_000, MAX_NAMES[0]),
            (NameClass::Medium, 1_000_000, MAX_NAMES[1]),
            (NameClass::Long, usize::MAX, MAX_NAMES[2]),
        ] {
            assert_eq!(capacity_for(class, count), capacity, "{class:?} {count}");
        }
    }
}

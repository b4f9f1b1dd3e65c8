//! The names maps: one per length class (`NameClass`: `NAMES48`,
//! `NAMES112`, `NAMES256`), holding each name's [`CompactRecord`], and
//! `NAMES_FULL` for the records that do not fit one (more than one address
//! of a family) under an id the compact record names, kept by the agent as
//! one table from the full-width [`NameKey`] to its [`ServiceRecord`].
//! Which map a name lives in, the narrower key it has there, how its record
//! is split, which ids are in use, and how big each class's map is are
//! decided here and nowhere else in userspace.
//!
//! The program finds each class's map in the slot of the class's array of
//! maps (see [`super::slot`]). Each map is sized by the table
//! ([`capacity_for`]); one the table outgrows is replaced by a bigger copy
//! ([`NameMaps::make_room`]). A map goes into its slot only once it holds
//! the table ([`NameMaps::install`], at the end of a sync), so the program
//! never answers from a half-filled one.

use std::path::PathBuf;

use aya::{
    Pod,
    maps::{HashMap, IterableMap as _, Map, MapData, MapError},
};
use meshdns_common::{
    CompactRecord, MAX_NAMES, NAMES_FULL_MAP, NAMES_MAP_FLAGS, NAMES48_MAP, NAMES112_MAP,
    NAMES256_MAP, NameClass, NameKey, NameKey48, NameKey112, ServiceRecord,
};

use super::{
    FastPathError, Result, map_error,
    slot::{Role, Slot},
};

/// The fewest names a class's map is made for: its buckets cost 16 bytes a
/// name of capacity, so 16 KiB.
pub const MIN_CAPACITY: u32 = 1 << 10;

/// The four maps, as one table.
pub struct NameMaps {
    /// Each class's array of maps, in [`NameClass`] order.
    slots: [Slot; 3],
    short: HashMap<MapData, NameKey48, CompactRecord>,
    medium: HashMap<MapData, NameKey112, CompactRecord>,
    long: HashMap<MapData, NameKey, CompactRecord>,
    /// The classes whose map is not the one in their slot yet (new, grown,
    /// or filled in place of one not trusted); [`NameMaps::install`] puts
    /// them there.
    pending: [bool; 3],
    /// Full records no name of the pending maps points at, removed only
    /// once those maps are in their slots: until then the maps that serve
    /// may still point at them.
    unpointed: Vec<u32>,
    role: Role,
    full: HashMap<MapData, u32, ServiceRecord>,
    /// The full ids in use, read from the maps before the first change
    /// (`None` until then: reading them is not free at a million names).
    ids: Option<FullIds>,
}

/// Which name has which full id, and the next one to give.
struct FullIds {
    of: std::collections::HashMap<NameKey, u32>,
    /// Above every id in the maps, so none is reused (see `CompactRecord`).
    next: u32,
}

/// The classes, in [`NameClass`] order.
const CLASSES: [NameClass; 3] = [NameClass::Short, NameClass::Medium, NameClass::Long];

impl NameMaps {
    /// The maps, from wherever they came (a loaded object, or pins): the
    /// classes' arrays of maps in [`NameClass`] order, then `NAMES_FULL`;
    /// `pins`, where the maps in the slots are pinned, in the same order.
    pub fn new(maps: [Map; 4], pins: Option<[PathBuf; 3]>, role: Role) -> Result<Self> {
        let [short, medium, long, full] = maps;
        let [short_pin, medium_pin, long_pin] = match pins {
            Some(pins) => pins.map(Some),
            None => [None, None, None],
        };
        let slots = [
            Slot::open(short, NAMES48_MAP, short_pin)?,
            Slot::open(medium, NAMES112_MAP, medium_pin)?,
            Slot::open(long, NAMES256_MAP, long_pin)?,
        ];
        let (short, short_new) = class_map(&slots, NameClass::Short, role)?;
        let (medium, medium_new) = class_map(&slots, NameClass::Medium, role)?;
        let (long, long_new) = class_map(&slots, NameClass::Long, role)?;
        Ok(Self {
            slots,
            short,
            medium,
            long,
            pending: [short_new, medium_new, long_new],
            unpointed: Vec::new(),
            role,
            full: HashMap::try_from(full).map_err(map_error(NAMES_FULL_MAP))?,
            ids: None,
        })
    }

    /// The maps' kernel objects, as in [`NameMaps::new`] (to ask the
    /// kernel what they cost, say): the classes' names maps, not their
    /// arrays.
    pub fn maps(&self) -> [&MapData; 4] {
        [
            self.short.map(),
            self.medium.map(),
            self.long.map(),
            self.full.map(),
        ]
    }

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
fn class_map<K: Pod>(
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

impl NameMaps {
    /// The record of `key`, if the kernel's table has it.
    pub fn get(&self, key: &NameKey) -> Result<Option<ServiceRecord>> {
        let found = match key.class() {
            NameClass::Short => self.short.get(&key.short(), 0),
            NameClass::Medium => self.medium.get(&key.medium(), 0),
            NameClass::Long => self.long.get(key, 0),
        };
        match not_found_is_none(found).map_err(map_error(map_of(key.class())))? {
            Some(compact) => self.expand(&compact),
            None => Ok(None),
        }
    }

    /// The whole record of a name whose compact one is `compact`. A name
    /// pointing at a full record that is not there (which the agent's order
    /// of updates never leaves) is as if not there itself, as the program
    /// sees it: it passes the name, and the next sync writes it again.
    fn expand(&self, compact: &CompactRecord) -> Result<Option<ServiceRecord>> {
        if let Some(record) = compact.record() {
            return Ok(Some(record));
        }
        not_found_is_none(self.full.get(&compact.full, 0)).map_err(map_error(NAMES_FULL_MAP))
    }

    /// Every name and its record, class by class.
    pub fn records(&self) -> Result<Vec<(NameKey, ServiceRecord)>> {
        self.expand_all(self.compact_records()?)
    }

    /// The whole records of `compact`'s names (see [`NameMaps::expand`]).
    fn expand_all(
        &self,
        compact: Vec<(NameKey, CompactRecord)>,
    ) -> Result<Vec<(NameKey, ServiceRecord)>> {
        let mut records = Vec::with_capacity(compact.len());
        for (key, record) in compact {
            if let Some(record) = self.expand(&record)? {
                records.push((key, record));
            }
        }
        Ok(records)
    }

    /// Every name and what its class's map holds for it.
    fn compact_records(&self) -> Result<Vec<(NameKey, CompactRecord)>> {
        let mut compact = Vec::new();
        for entry in self.short.iter() {
            let (key, record) = entry.map_err(map_error(NAMES48_MAP))?;
            compact.push((NameKey::from(&key), record));
        }
        for entry in self.medium.iter() {
            let (key, record) = entry.map_err(map_error(NAMES112_MAP))?;
            compact.push((NameKey::from(&key), record));
        }
        for entry in self.long.iter() {
            compact.push(entry.map_err(map_error(NAMES256_MAP))?);
        }
        Ok(compact)
    }

    /// How many names the maps hold: their keys only, not their records.
    pub fn count(&self) -> Result<usize> {
        let mut count = 0;
        for key in self.short.keys() {
            key.map_err(map_error(NAMES48_MAP))?;
            count += 1;
        }
        for key in self.medium.keys() {
            key.map_err(map_error(NAMES112_MAP))?;
            count += 1;
        }
        for key in self.long.keys() {
            key.map_err(map_error(NAMES256_MAP))?;
            count += 1;
        }
        Ok(count)
    }

    /// How many names have their record in `NAMES_FULL` (more than one
    /// address of a family).
    pub fn full_records(&self) -> Result<usize> {
        let mut count = 0;
        for key in self.full.keys() {
            key.map_err(map_error(NAMES_FULL_MAP))?;
            count += 1;
        }
        Ok(count)
    }
}

impl NameMaps {
    /// Adds `key`, a name the maps do not have. A full record goes into
    /// `NAMES_FULL` under a new id before the name points at it.
    pub fn add(&mut self, key: &NameKey, record: ServiceRecord) -> Result<()> {
        if !CompactRecord::needs_full(&record) {
            return self.insert_compact(key, CompactRecord::of(&record));
        }
        let ids = self.ids()?;
        let id = ids.next;
        ids.next = id.checked_add(1).ok_or(FastPathError::FullIdsExhausted)?;
        self.full
            .insert(id, record, 0)
            .map_err(map_error(NAMES_FULL_MAP))?;
        self.insert_compact(key, CompactRecord::full(id))?;
        self.ids()?.of.insert(*key, id);
        Ok(())
    }

    /// Replaces `key`'s record with `record`. The program sees the old
    /// record or the new one, never a mix: a new full record goes in under
    /// a new id, the name is pointed at it in one update, and the old full
    /// record, if any, goes last.
    pub fn replace(&mut self, key: &NameKey, record: ServiceRecord) -> Result<()> {
        let old = self.ids()?.of.remove(key);
        self.add(key, record)?;
        match old {
            Some(id) => self.unpoint_full(id),
            None => Ok(()),
        }
    }

    /// Removes `key`: from its class's map first, so the program never
    /// finds a name pointing at a full record that is gone.
    pub fn remove(&mut self, key: &NameKey) -> Result<()> {
        match key.class() {
            NameClass::Short => self.short.remove(&key.short()),
            NameClass::Medium => self.medium.remove(&key.medium()),
            NameClass::Long => self.long.remove(key),
        }
        .map_err(map_error(map_of(key.class())))?;
        match self.ids()?.of.remove(key) {
            Some(id) => self.unpoint_full(id),
            None => Ok(()),
        }
    }

    fn insert_compact(&mut self, key: &NameKey, compact: CompactRecord) -> Result<()> {
        match key.class() {
            NameClass::Short => self.short.insert(key.short(), compact, 0),
            NameClass::Medium => self.medium.insert(key.medium(), compact, 0),
            NameClass::Long => self.long.insert(key, compact, 0),
        }
        .map_err(map_error(map_of(key.class())))
    }

    /// Removes the full record `id` once no map that serves can point at
    /// it: now, or after [`NameMaps::install`] while a class's new map is
    /// pending (the old one, in the slot, may still point at it). One
    /// already gone is no error.
    fn unpoint_full(&mut self, id: u32) -> Result<()> {
        if self.pending.contains(&true) {
            self.unpointed.push(id);
            return Ok(());
        }
        self.remove_full(id)
    }

    /// Removes the full record `id`; one already gone is no error.
    fn remove_full(&mut self, id: u32) -> Result<()> {
        match self.full.remove(&id) {
            Err(MapError::SyscallError(error))
                if error.io_error.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            result => result.map_err(map_error(NAMES_FULL_MAP)),
        }
    }

    /// Every name and its record, as [`NameMaps::records`], and from the
    /// same reading which full ids are in use: what the first sync of an
    /// agent reads, so that later changes need not read the maps again.
    pub fn read_all(&mut self) -> Result<Vec<(NameKey, ServiceRecord)>> {
        let compact = self.compact_records()?;
        self.learn_ids(&compact)?;
        self.expand_all(compact)
    }

    /// The full ids in use, read from the maps the first time if
    /// [`NameMaps::read_all`] did not.
    fn ids(&mut self) -> Result<&mut FullIds> {
        if self.ids.is_none() {
            let compact = self.compact_records()?;
            self.learn_ids(&compact)?;
        }
        Ok(self.ids.as_mut().expect("just learnt"))
    }

    /// Which names point at which full records. A full record no name
    /// points at (an agent stopped between adding one and pointing a name
    /// at it, or between unpointing and removing it) is removed; its id is
    /// not given out again.
    fn learn_ids(&mut self, compact: &[(NameKey, CompactRecord)]) -> Result<()> {
        let of: std::collections::HashMap<NameKey, u32> = compact
            .iter()
            .filter(|(_, record)| record.full != 0)
            .map(|(key, record)| (*key, record.full))
            .collect();
        let mut stored = Vec::new();
        for key in self.full.keys() {
            stored.push(key.map_err(map_error(NAMES_FULL_MAP))?);
        }
        let next = stored
            .iter()
            .chain(of.values())
            .max()
            .map_or(1, |id| id.saturating_add(1));
        let pointed: std::collections::HashSet<u32> = of.values().copied().collect();
        for orphan in stored.into_iter().filter(|id| !pointed.contains(id)) {
            self.unpoint_full(orphan)?;
        }
        self.ids = Some(FullIds { of, next });
        Ok(())
    }
}

/// A lookup's result, with "not there" as `None`.
fn not_found_is_none<V>(
    found: std::result::Result<V, MapError>,
) -> std::result::Result<Option<V>, MapError> {
    match found {
        Ok(value) => Ok(Some(value)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(error) => Err(error),
    }
}

/// The name of the map of `class`.
fn map_of(class: NameClass) -> &'static str {
    match class {
        NameClass::Short => NAMES48_MAP,
        NameClass::Medium => NAMES112_MAP,
        NameClass::Long => NAMES256_MAP,
    }
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

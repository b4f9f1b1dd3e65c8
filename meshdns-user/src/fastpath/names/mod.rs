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
//! never answers from a half-filled one. How big each map is, and its
//! growth and installing, are [`sizing`]'s; this module holds the names and
//! their records.

mod sizing;

use std::path::PathBuf;

use aya::maps::{HashMap, IterableMap as _, Map, MapData, MapError};
use meshdns_common::{
    CompactRecord, NAMES_FULL_MAP, NAMES48_MAP, NAMES112_MAP, NAMES256_MAP, NameClass, NameKey,
    NameKey48, NameKey112, ServiceRecord,
};

use super::{
    FastPathError, Result, map_error,
    slot::{Role, Slot},
};
use sizing::class_map;
pub use sizing::{MIN_CAPACITY, capacity_for};

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
        Ok(key_count(&self.short, NAMES48_MAP)?
            + key_count(&self.medium, NAMES112_MAP)?
            + key_count(&self.long, NAMES256_MAP)?)
    }

    /// How many names have their record in `NAMES_FULL` (more than one
    /// address of a family).
    pub fn full_records(&self) -> Result<usize> {
        key_count(&self.full, NAMES_FULL_MAP)
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

/// How many keys `map` (named `name`) holds, read one by one.
fn key_count<K: aya::Pod, V: aya::Pod>(
    map: &HashMap<MapData, K, V>,
    name: &'static str,
) -> Result<usize> {
    let mut count = 0;
    for key in map.keys() {
        key.map_err(map_error(name))?;
        count += 1;
    }
    Ok(count)
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

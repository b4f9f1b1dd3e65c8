//! The names maps: one per length class (`NameClass`: `NAMES48`,
//! `NAMES112`, `NAMES256`), kept by the agent as one table keyed by the
//! full-width [`NameKey`]. Which map a name lives in, and the narrower key
//! it has there, are decided here and nowhere else in userspace.

use std::borrow::{Borrow, BorrowMut};

use aya::maps::{HashMap, IterableMap as _, Map, MapData, MapError};
use meshdns_common::{
    NAMES48_MAP, NAMES112_MAP, NAMES256_MAP, NameClass, NameKey, NameKey48, NameKey112,
    ServiceRecord,
};

use super::{FastPathError, Result, map_error};

/// The three maps, as one table.
pub struct NameMaps<T> {
    short: HashMap<T, NameKey48, ServiceRecord>,
    medium: HashMap<T, NameKey112, ServiceRecord>,
    long: HashMap<T, NameKey, ServiceRecord>,
}

impl NameMaps<MapData> {
    /// The maps, from wherever they came (a loaded object, or pins),
    /// in [`NameClass`] order.
    pub fn new(maps: [Map; 3]) -> Result<Self> {
        let [short, medium, long] = maps;
        Ok(Self {
            short: HashMap::try_from(short).map_err(map_error(NAMES48_MAP))?,
            medium: HashMap::try_from(medium).map_err(map_error(NAMES112_MAP))?,
            long: HashMap::try_from(long).map_err(map_error(NAMES256_MAP))?,
        })
    }

    /// The maps' kernel objects, in [`NameClass`] order (to ask the kernel
    /// what they cost, say).
    pub fn maps(&self) -> [&MapData; 3] {
        [self.short.map(), self.medium.map(), self.long.map()]
    }
}

impl<T: Borrow<MapData>> NameMaps<T> {
    /// The record of `key`, if the kernel's table has it.
    pub fn get(&self, key: &NameKey) -> Result<Option<ServiceRecord>> {
        let found = match key.class() {
            NameClass::Short => self.short.get(&key.short(), 0),
            NameClass::Medium => self.medium.get(&key.medium(), 0),
            NameClass::Long => self.long.get(key, 0),
        };
        match found {
            Ok(record) => Ok(Some(record)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(FastPathError::Map {
                map: map_of(key.class()),
                source,
            }),
        }
    }

    /// Every name and its record, class by class.
    pub fn records(&self) -> Result<Vec<(NameKey, ServiceRecord)>> {
        let mut records = Vec::new();
        for entry in self.short.iter() {
            let (key, record) = entry.map_err(map_error(NAMES48_MAP))?;
            records.push((NameKey::from(&key), record));
        }
        for entry in self.medium.iter() {
            let (key, record) = entry.map_err(map_error(NAMES112_MAP))?;
            records.push((NameKey::from(&key), record));
        }
        for entry in self.long.iter() {
            records.push(entry.map_err(map_error(NAMES256_MAP))?);
        }
        Ok(records)
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
}

impl<T: BorrowMut<MapData>> NameMaps<T> {
    /// Adds `key` or replaces its record, in one update.
    pub fn insert(&mut self, key: &NameKey, record: ServiceRecord) -> Result<()> {
        match key.class() {
            NameClass::Short => self.short.insert(key.short(), record, 0),
            NameClass::Medium => self.medium.insert(key.medium(), record, 0),
            NameClass::Long => self.long.insert(key, record, 0),
        }
        .map_err(map_error(map_of(key.class())))
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &NameKey) -> Result<()> {
        match key.class() {
            NameClass::Short => self.short.remove(&key.short()),
            NameClass::Medium => self.medium.remove(&key.medium()),
            NameClass::Long => self.long.remove(key),
        }
        .map_err(map_error(map_of(key.class())))
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

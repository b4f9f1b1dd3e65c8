//! Keeping the kernel's table in step with the services: only the names
//! that changed are touched, each in a single update (in the map of its
//! length class, see [`super::names`]).

use std::sync::Arc;

use aya::maps::{Array, IterableMap as _, Map, MapData};
use meshdns_common::{
    MAX_SEARCH_PATTERNS, MAX_ZONES, NameKey, SEARCH_MAP, SearchPattern, ServiceRecord, ZONE_MAP,
    ZoneConfig,
};

use super::{
    FastPath, Result, map_error,
    slot::{Role, Slot},
};
use crate::table::{self, Change, Table};

/// What [`FastPath::sync`] changed in the kernel's table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl FastPath {
    /// Makes the kernel's table equal to `table`, touching only names that
    /// differ: a name whose record did not change is never removed and
    /// re-added, and a changed one is replaced in a single update.
    ///
    /// The first sync compares with what the map holds (a previous agent's
    /// table, say); later ones with the table of the last sync, in memory,
    /// so that a one-name change to a million names costs one update, not
    /// a million reads.
    pub fn sync(&mut self, table: impl Into<Arc<Table>>) -> Result<SyncReport> {
        let table = table.into();
        let previous = self.in_kernel.take();
        // Zones (an apex, or whether it is authoritative) and their names
        // cannot change in one step. Meanwhile the program passes every
        // query to the resolver, which has the new table already, rather
        // than answer from the new zones' rules with the old names (a name
        // about to be added would be NXDOMAIN). A failed sync leaves it so.
        let zones = table.zone_entries();
        let zone_changes = self.zones()? != Some(zones);
        // The search patterns name zones by their index: none while the
        // zones change, the new ones once the zones are set.
        let patterns = table.search_patterns();
        let search_changes = zone_changes || self.search_patterns() != Some(patterns);
        if search_changes {
            self.set_search(&[SearchPattern::NONE; MAX_SEARCH_PATTERNS])?;
        }
        if zone_changes {
            self.set_zones(&[ZoneConfig::NONE; MAX_ZONES])?;
        }

        let names = &mut self.names;
        // Each class's map first made big enough for the new table: a new
        // map holding the old one's names, swapped in whole.
        let counts = table.class_counts();
        names.make_room(counts)?;
        // Without the last table synced, what the maps hold is read: a
        // previous agent's table, or what a failed sync left.
        let read: Option<std::collections::HashMap<NameKey, ServiceRecord>> = match previous {
            Some(_) => None,
            None => Some(names.read_all()?.into_iter().collect()),
        };
        let (changes, held): (Box<dyn Iterator<Item = Change<'_>>>, _) = match (&previous, &read) {
            (Some(previous), _) => (Box::new(previous.changes(&table)), previous.class_counts()),
            (None, read) => {
                let read = read.as_ref().expect("read when there is no previous table");
                let removed = gone(read, &table).map(Change::Removed);
                let rest = table.iter().map(|(key, entry)| match read.get(&key) {
                    Some(record) if *record == entry.record => Change::Unchanged,
                    Some(_) => Change::Updated(key, entry),
                    None => Change::Added(key, entry),
                });
                let held = table::class_counts(read.keys().map(NameKey::as_wire));
                (Box::new(removed.chain(rest)), held)
            }
        };
        let mut report = SyncReport::default();
        // A map with room for the new table may have none for the old one
        // and the new names together: then the names going go first, in a
        // walk of their own (at a million names, 70 ms more).
        let capacity = names.capacity()?;
        let roomy = (0..3).all(|i| held[i] + counts[i] <= capacity[i] as usize);
        if !roomy {
            let removed: Box<dyn Iterator<Item = NameKey>> = match (&previous, &read) {
                (Some(previous), _) => Box::new(previous.removed_in(&table)),
                (None, read) => Box::new(read.iter().flat_map(|read| gone(read, &table))),
            };
            for key in removed {
                names.remove(&key)?;
                report.removed += 1;
            }
        }
        for change in changes {
            match change {
                Change::Unchanged => report.unchanged += 1,
                // Done above if the maps had no room for both.
                Change::Removed(_) if !roomy => {}
                Change::Removed(key) => {
                    names.remove(&key)?;
                    report.removed += 1;
                }
                Change::Added(key, entry) => {
                    names.add(&key, entry.record)?;
                    report.added += 1;
                }
                Change::Updated(key, entry) => {
                    names.replace(&key, entry.record)?;
                    report.updated += 1;
                }
            }
        }
        // New maps into their slots, filled, before the zone says to use them.
        names.install()?;
        if zone_changes {
            self.set_zones(&zones)?;
        }
        if search_changes {
            self.set_search(&patterns)?;
        }
        self.in_kernel = Some(table);
        Ok(report)
    }

    /// The zones the program uses now, if they can be known (zones the
    /// agent cannot read are as none, and are written again).
    fn zones(&self) -> Result<Option<[ZoneConfig; MAX_ZONES]>> {
        Ok(self.zone_map.as_ref().and_then(zone_entries))
    }

    /// Replaces the zones the program uses, in one update: a new array
    /// holding them (see `ZoneConfig`) goes into the zone's slot.
    pub fn set_zones(&mut self, zones: &[ZoneConfig; MAX_ZONES]) -> Result<()> {
        self.zone_map = Some(replace_array(&mut self.zone, ZONE_MAP, zones)?);
        Ok(())
    }
}

impl FastPath {
    /// The search patterns the program uses now, if they can be known.
    fn search_patterns(&self) -> Option<[SearchPattern; MAX_SEARCH_PATTERNS]> {
        self.search_map.as_ref().and_then(search_entries)
    }

    /// Replaces the search patterns the program uses, in one update, as
    /// [`FastPath::set_zones`] replaces the zones.
    pub fn set_search(&mut self, patterns: &[SearchPattern; MAX_SEARCH_PATTERNS]) -> Result<()> {
        self.search_map = Some(replace_array(&mut self.search, SEARCH_MAP, patterns)?);
        Ok(())
    }
}

/// A new array holding `entries`, put into `slot` whole (an update in place
/// could be read half-written); the array, to be read back.
pub(crate) fn replace_array<T: aya::Pod, const N: usize>(
    slot: &mut Slot,
    name: &'static str,
    entries: &[T; N],
) -> Result<Array<MapData, T>> {
    let mut map: Array<MapData, T> = Array::create(N as u32, 0).map_err(map_error(name))?;
    for (index, entry) in (0..).zip(entries) {
        map.set(index, entry, 0).map_err(map_error(name))?;
    }
    slot.put(map.map())?;
    Ok(map)
}

/// Every entry of an array in a slot, if each can be read.
fn array_entries<T: aya::Pod, const N: usize>(map: &Array<MapData, T>) -> Option<[T; N]> {
    let entries: Vec<T> = (0..N as u32)
        .map(|index| map.get(&index, 0).ok())
        .collect::<Option<_>>()?;
    entries.try_into().ok()
}

/// The array in `slot`, if it can be had (see [`Slot::current`]).
pub(crate) fn slot_array<T: aya::Pod>(
    slot: &Slot,
    role: Role,
    name: &'static str,
) -> Result<Option<Array<MapData, T>>> {
    slot.current(role)?
        .map(|map| Array::try_from(Map::Array(map)).map_err(map_error(name)))
        .transpose()
}

/// Every entry of a search array, if each can be read.
pub fn search_entries(
    map: &Array<MapData, SearchPattern>,
) -> Option<[SearchPattern; MAX_SEARCH_PATTERNS]> {
    array_entries(map)
}

/// The search array in the search slot, if it can be had.
pub fn search_array(search: &Slot, role: Role) -> Result<Option<Array<MapData, SearchPattern>>> {
    slot_array(search, role, SEARCH_MAP)
}

/// Every entry of a zones array, if each can be read.
pub fn zone_entries(map: &Array<MapData, ZoneConfig>) -> Option<[ZoneConfig; MAX_ZONES]> {
    array_entries(map)
}

/// The names `read` (what the maps held) has and `table` does not.
fn gone<'a>(
    read: &'a std::collections::HashMap<NameKey, ServiceRecord>,
    table: &'a Table,
) -> impl Iterator<Item = NameKey> + 'a {
    read.keys().filter(|key| table.get(key).is_none()).copied()
}

/// The zones array in the zone's slot, if it can be had (see
/// [`Slot::current`]).
pub fn zone_array(zone: &Slot, role: Role) -> Result<Option<Array<MapData, ZoneConfig>>> {
    slot_array(zone, role, ZONE_MAP)
}

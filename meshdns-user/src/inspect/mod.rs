//! What the fast path is doing, read from its pinned objects in bpffs, so
//! it works the same whether an agent runs or not: `meshdns status`
//! ([`status`]), `meshdns dump` ([`dump`]) and `meshdns lookup`
//! ([`lookup`]).
//!
//! Each result is a plain value that prints for people ([`std::fmt::Display`])
//! and serializes for tools (`--json`).

mod frame;
pub mod lookup;
mod process;
mod status;
mod zone_view;

use std::{
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use aya::maps::{Array, Map, MapData, MapError, PerCpuArray};
use meshdns_common::{
    COUNTERS_MAP, MAX_SEARCH_PATTERNS, MAX_ZONES, NAMES_MAPS, NameKey, SCOPE_MAP, SEARCH_MAP,
    ScopeTable, SearchPattern, ServiceRecord, ZONE_MAP, ZoneConfig,
};
use serde::Serialize;

use crate::{
    config::search::Search,
    dns_name,
    fastpath::{self, Counters, FastPathError, NameMaps, Pins, Role, Slot},
    source::provenance::Provenance,
    table::Table,
};

pub use lookup::lookup;
pub use status::{Interface, Status, status};
pub use zone_view::ZoneView;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(
        "nothing is pinned in {0}: no agent has run with this --pin-dir, or `meshdns detach` removed it"
    )]
    NotPinned(PathBuf),
    #[error(
        "{dir} holds the maps of another meshdns build ({found}), not of this one ({expected}): run the `meshdns` of the agent that pinned them"
    )]
    OtherBuild {
        dir: PathBuf,
        found: String,
        expected: String,
    },
    #[error("{path}: {source}")]
    Map {
        path: PathBuf,
        #[source]
        source: MapError,
    },
    #[error("the zone map in {0} is empty: the agent that pinned it never loaded a table")]
    NoZone(PathBuf),
    #[error(transparent)]
    FastPath(#[from] FastPathError),
    #[error("{0}")]
    Query(String),
}

type Result<T, E = InspectError> = std::result::Result<T, E>;

/// The fast path's maps, opened from their pins.
pub struct Pinned {
    pins: Pins,
    names: NameMaps,
    /// The one-entry array in the zone's slot; `None`: none, or it cannot
    /// be had (see `Slot::current`).
    zone: Option<Array<MapData, ZoneConfig>>,
    /// The array in the search slot, likewise.
    search: Option<Array<MapData, SearchPattern>>,
    /// The array in the scope's slot, likewise.
    scope: Option<Array<MapData, ScopeTable>>,
    counters: PerCpuArray<MapData, u64>,
}

impl Pinned {
    /// Opens the maps this build's agent pins under `pins`.
    pub fn open(pins: &Pins) -> Result<Self> {
        let dir = pins.maps_dir();
        if !dir.exists() {
            let others = pins.stale_maps_dirs();
            return Err(match others.first() {
                Some(other) => InspectError::OtherBuild {
                    dir: pins.dir.clone(),
                    found: file_name(other),
                    expected: file_name(&dir),
                },
                None => InspectError::NotPinned(pins.dir.clone()),
            });
        }
        let open = |name: &str| {
            let path = pins.map(name);
            MapData::from_pin(&path).map_err(|source| InspectError::Map { path, source })
        };
        // A one-slot array of maps, with the map in its slot.
        let slot = |name: &'static str| -> Result<Slot> {
            let map = Map::ArrayOfMaps(open(name)?);
            Ok(Slot::open(map, name, Some(pins.slot_map(name)))?)
        };
        let error = |name: &str| {
            let path = pins.map(name);
            move |source| InspectError::Map { path, source }
        };
        Ok(Self {
            pins: pins.clone(),
            names: {
                let [short, medium, long, full] = NAMES_MAPS;
                NameMaps::new(
                    [
                        Map::ArrayOfMaps(open(short)?),
                        Map::ArrayOfMaps(open(medium)?),
                        Map::ArrayOfMaps(open(long)?),
                        Map::HashMap(open(full)?),
                    ],
                    Some(pins.slot_maps()),
                    Role::Reading,
                )?
            },
            zone: fastpath::sync::zone_array(&slot(ZONE_MAP)?, Role::Reading)?,
            search: fastpath::sync::search_array(&slot(SEARCH_MAP)?, Role::Reading)?,
            scope: fastpath::sync::slot_array(&slot(SCOPE_MAP)?, Role::Reading, SCOPE_MAP)?,
            counters: PerCpuArray::try_from(Map::PerCpuArray(open(COUNTERS_MAP)?))
                .map_err(error(COUNTERS_MAP))?,
        })
    }

    /// The zones array as the program reads it (`ZoneConfig::NONE` after
    /// the last zone).
    pub fn zones(&self) -> Result<[ZoneConfig; MAX_ZONES]> {
        self.zone
            .as_ref()
            .and_then(fastpath::sync::zone_entries)
            .ok_or_else(|| InspectError::NoZone(self.pins.maps_dir()))
    }

    /// Every name in the kernel's table, with its record.
    pub fn records(&self) -> Result<Vec<(NameKey, ServiceRecord)>> {
        Ok(self.names.records()?)
    }

    /// How many names the kernel's table holds: their keys only, not their
    /// records.
    pub fn name_count(&self) -> Result<usize> {
        Ok(self.names.count()?)
    }

    /// As much of the kernel's table as the resolver's rules consult for a
    /// query for `key`: the zones and search expansions, that name if it is
    /// there, and the mesh name it expands to, if any. Reading every name
    /// would take seconds at a million.
    pub fn table_for(&self, key: &NameKey) -> Result<Table> {
        let zones = self.zones()?;
        let search = Search::from_patterns(
            &self
                .search
                .as_ref()
                .and_then(fastpath::sync::search_entries)
                .unwrap_or([SearchPattern::NONE; MAX_SEARCH_PATTERNS]),
        );
        let record = self.names.get(key)?.map(|record| (*key, record));
        let zones_only = Table::from_kernel(&zones, search.clone(), None);
        let mesh_name = match zones_only.expand(key.as_wire()) {
            Some(expansion) => {
                let key = expansion.key;
                self.names.get(&key)?.map(|record| (key, record))
            }
            None => None,
        };
        Ok(Table::from_kernel(
            &zones,
            search,
            record.into_iter().chain(mesh_name),
        ))
    }

    /// Whom and for which destinations the program answers; `None`: no
    /// table in the slot (every query passed).
    pub fn scope(&self) -> Result<Option<fastpath::ScopeRanges>> {
        Ok(fastpath::scope::scope_of(self.scope.as_ref())?)
    }

    pub fn counters(&self) -> Result<Counters> {
        Counters::read(&self.counters).map_err(|source| InspectError::Map {
            path: self.pins.map(COUNTERS_MAP),
            source,
        })
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `meshdns dump`: every name in the kernel's table.
#[derive(Debug, Serialize)]
pub struct Dump {
    pub zones: Vec<ZoneView>,
    pub names: Vec<Name>,
}

#[derive(Debug, Serialize)]
pub struct Name {
    pub name: String,
    pub ttl: u32,
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    /// The source it came from, if not the services file (and the agent's
    /// state folder says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

pub fn dump(pins: &Pins, provenance: Option<&Provenance>) -> Result<Dump> {
    let pinned = Pinned::open(pins)?;
    let zones = ZoneView::all(&pinned.zones()?);
    let mut names: Vec<Name> = pinned
        .records()?
        .into_iter()
        .map(|(key, record)| {
            let name = dns_name::to_text(key.as_wire());
            Name {
                source: provenance
                    .and_then(|p| p.source_of(&name))
                    .map(str::to_string),
                name,
                ttl: record.ttl,
                a: record.v4().iter().map(|a| Ipv4Addr::from(*a)).collect(),
                aaaa: record.v6().iter().map(|a| Ipv6Addr::from(*a)).collect(),
            }
        })
        .collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Dump { zones, names })
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.names.iter().map(|n| n.name.len()).max().unwrap_or(4);
        writeln!(f, "{:<width$}  {:>6}  ADDRESSES", "NAME", "TTL")?;
        for name in &self.names {
            let addresses: Vec<String> = name
                .a
                .iter()
                .map(ToString::to_string)
                .chain(name.aaaa.iter().map(ToString::to_string))
                .collect();
            let addresses = if addresses.is_empty() {
                "(exists, no addresses)".to_string()
            } else {
                addresses.join(" ")
            };
            let source = name
                .source
                .as_deref()
                .map_or(String::new(), |s| format!("  (from {s})"));
            writeln!(
                f,
                "{:<width$}  {:>6}  {addresses}{source}",
                name.name, name.ttl
            )?;
        }
        write!(
            f,
            "{} names in zones {}",
            self.names.len(),
            ZoneView::list(&self.zones)
        )
    }
}

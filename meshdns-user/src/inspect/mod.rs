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
mod zone_view;

use std::{
    collections::BTreeMap,
    fmt,
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
};

use aya::maps::{Array, Map, MapData, MapError, PerCpuArray};
use meshdns_common::{
    COUNTERS_MAP, Counter, MAX_ZONES, NAMES_MAPS, NameKey, ServiceRecord, ZONE_MAP, ZoneConfig,
};
use serde::Serialize;

use crate::{
    agent::interfaces::PatternStatus,
    dns_name,
    fastpath::{self, Counters, FastPathError, NameMaps, Pins, Role, Slot},
    netif::{self, XdpAttachMode},
    source::provenance::{Provenance, SourceSummary},
    table::Table,
};

pub use lookup::lookup;
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
            zone: fastpath::sync::zone_array(
                &Slot::open(
                    Map::ArrayOfMaps(open(ZONE_MAP)?),
                    ZONE_MAP,
                    Some(pins.slot_map(ZONE_MAP)),
                )?,
                Role::Reading,
            )?,
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
    /// query for `key`: the zone, and that name if it is there. Reading
    /// every name would take seconds at a million.
    pub fn table_for(&self, key: &NameKey) -> Result<Table> {
        let record = self.names.get(key)?.map(|record| (*key, record));
        Ok(Table::from_kernel(&self.zones()?, record))
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

/// Counters by name, for `--json`.
fn counters_by_name(counters: &Counters) -> BTreeMap<&'static str, u64> {
    Counter::ALL
        .iter()
        .map(|c| (c.name(), counters.get(*c)))
        .collect()
}

/// `meshdns status`: where the fast path is attached and how, whether an
/// agent runs it, and what it has done.
#[derive(Debug, Serialize)]
pub struct Status {
    pub pin_dir: PathBuf,
    pub maps_dir: PathBuf,
    pub interfaces: Vec<Interface>,
    /// The agent process that runs the attached program, if one does.
    pub agent: Option<process::Agent>,
    pub zones: Vec<ZoneView>,
    pub names: usize,
    pub counters: BTreeMap<&'static str, u64>,
    pub answered: u64,
    pub passed: u64,
    /// The services file's sources, as of the agent's last reload (from
    /// its state folder; empty if it lists none, or the folder is not
    /// there).
    pub sources: Vec<SourceSummary>,
    /// The interfaces of each `--iface` value, by what became of them, as
    /// the agent last wrote them to its state folder.
    pub interfaces_by_pattern: Vec<PatternStatus>,
}

/// One interface with a pinned link.
#[derive(Debug, Serialize)]
pub struct Interface {
    pub name: String,
    pub link_path: PathBuf,
    pub link_id: Option<u32>,
    /// The program the link runs.
    pub program_id: Option<u32>,
    /// How the kernel says a program is attached to the interface.
    pub mode: Option<XdpAttachMode>,
    /// True when the interface runs the link's program: the fast path serves.
    pub serving: bool,
    /// What is wrong, if it does not serve.
    pub problem: Option<String>,
}

pub fn status(
    pins: &Pins,
    provenance: Option<Provenance>,
    interfaces_by_pattern: Vec<PatternStatus>,
) -> Result<Status> {
    let pinned = Pinned::open(pins)?;
    let zones = ZoneView::all(&pinned.zones()?);
    let names = pinned.name_count()?;
    let counters = pinned.counters()?;
    let interfaces: Vec<Interface> = pins
        .linked_interfaces()
        .into_iter()
        .map(|name| interface(pins, name))
        .collect();
    let programs: Vec<u32> = interfaces.iter().filter_map(|i| i.program_id).collect();
    Ok(Status {
        pin_dir: pins.dir.clone(),
        maps_dir: pins.maps_dir(),
        interfaces,
        agent: process::running_program(&programs),
        zones,
        names,
        counters: counters_by_name(&counters),
        answered: counters.answered(),
        passed: counters.passed(),
        sources: provenance.map(|p| p.sources).unwrap_or_default(),
        interfaces_by_pattern,
    })
}

fn interface(pins: &Pins, name: String) -> Interface {
    let link_path = pins.link(&name);
    let mut interface = Interface {
        name,
        link_path,
        link_id: None,
        program_id: None,
        mode: None,
        serving: false,
        problem: None,
    };
    let link = match fastpath::pinned_link_info(&interface.link_path) {
        Ok(link) => link,
        Err(error) => {
            interface.problem = Some(format!("cannot read the pinned link: {error}"));
            return interface;
        }
    };
    interface.link_id = Some(link.link_id);
    interface.program_id = Some(link.program_id);
    if link.ifindex != 0 && netif::name(link.ifindex).as_deref() != Some(interface.name.as_str()) {
        interface.problem = Some(format!(
            "the link is attached to interface index {} in another network namespace, or under another name",
            link.ifindex
        ));
        return interface;
    }
    match fastpath::check_serving(&link) {
        Ok(mode) => {
            interface.mode = Some(mode);
            interface.serving = true;
        }
        Err(problem) => interface.problem = Some(problem.to_string()),
    }
    interface
}

/// Most interfaces `status` lists one by one.
const MAX_LISTED: usize = 16;

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pins:       {}", self.maps_dir.display())?;
        if self.interfaces.is_empty() {
            writeln!(f, "interfaces: none attached")?;
        }
        for p in &self.interfaces_by_pattern {
            writeln!(
                f,
                "--iface {}: {} attached, {} skipped, {} failed",
                p.pattern, p.attached, p.skipped, p.failed
            )?;
        }
        // A node's pods' veths are hundreds: counted, and only those that
        // do not serve listed (`--json` has them all).
        let serving = self
            .interfaces
            .iter()
            .filter(|i| i.problem.is_none())
            .count();
        let many = self.interfaces.len() > MAX_LISTED;
        if many {
            writeln!(
                f,
                "interfaces: {} pinned, {serving} serving{}",
                self.interfaces.len(),
                if serving < self.interfaces.len() {
                    "; those that do not:"
                } else {
                    ""
                }
            )?;
        }
        for i in self
            .interfaces
            .iter()
            .filter(|i| !many || i.problem.is_some())
        {
            write!(f, "interface:  {}", i.name)?;
            if let Some(mode) = i.mode {
                write!(f, ", XDP {mode:?} mode")?;
            }
            if let (Some(link), Some(program)) = (i.link_id, i.program_id) {
                write!(f, ", link {link}, program {program}")?;
            }
            match &i.problem {
                None => writeln!(f, ": serving")?,
                Some(problem) => writeln!(f, ": NOT serving: {problem}")?,
            }
        }
        match &self.agent {
            Some(agent) => writeln!(
                f,
                "agent:      running, pid {} ({})",
                agent.pid, agent.command
            )?,
            None => writeln!(
                f,
                "agent:      not running; the attached program serves the last table it was given"
            )?,
        }
        writeln!(
            f,
            "table:      {} names in zones {}",
            self.names,
            ZoneView::list(&self.zones)
        )?;
        writeln!(
            f,
            "packets:    {} answered, {} passed",
            self.answered, self.passed
        )?;
        for (name, value) in self.counters.iter().filter(|(_, v)| **v != 0) {
            writeln!(f, "  {name:<24} {value}")?;
        }
        for source in &self.sources {
            writeln!(
                f,
                "source:     {}: {}, {} names, {} left out",
                source.id,
                if source.up {
                    "up"
                } else {
                    "DOWN (serving its last good names)"
                },
                source.names,
                source.left_out
            )?;
        }
        Ok(())
    }
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

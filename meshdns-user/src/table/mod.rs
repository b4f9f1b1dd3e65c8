//! The fast path's table: every name the zone answers for, with its record,
//! built from a validated services file and the names its sources give
//! (`merge`).

mod merge;
mod search;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    sync::Arc,
};

use meshdns_common::{
    EXACT_NAMES_ENTRY, MAX_ADDRS, MAX_ZONES, NameClass, NameKey, ServiceRecord, ZONE_EXACT_NAMES,
    ZoneConfig,
};

use crate::{
    config::{ConfigErrorKind, Services, located, search::Search},
    dns_name,
    vip::{AllocError, Request, State},
};

pub use merge::{Merged, SourceNames};
pub use search::Expansion;

/// One name of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The service it belongs to, as the config names it (shared by the
    /// service's names); `None` for the apex and the empty non-terminals of
    /// a zone, which exist but have no addresses.
    pub service: Option<Arc<str>>,
    /// Where it came from: 0 the services file, `i` the `i`th of the
    /// table's sources ([`Table::source_id`]).
    pub source: u16,
    pub record: ServiceRecord,
}

impl Entry {
    /// Whether it has an address of either family: a service's name, not
    /// the apex or an empty non-terminal.
    pub fn has_addresses(&self) -> bool {
        self.record.v4_count != 0 || self.record.v6_count != 0
    }
}

/// Every name the zones answer for, keyed as the XDP program looks them up,
/// and the zones themselves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// The longest apex first, as the program walks them (a name is in the
    /// first that holds it).
    zones: Vec<ZoneConfig>,
    /// By the name in wire format, lowercased, as long as it is (not as a
    /// 256-byte `NameKey`: at a million names that is a quarter of a GB).
    /// Wire names are self-delimiting, so this orders them as `NameKey`s do.
    entries: BTreeMap<Box<[u8]>, Entry>,
    /// How many of `entries` are of each length class (`NameClass`, in
    /// order): counted once, asked at every sync.
    class_counts: [usize; 3],
    /// The ids of the sources its names came from, in the order of
    /// `sources:` (an entry's `source` less one).
    sources: Vec<Arc<str>>,
    /// Whether some names are in no zone (a source's hosts, answered as
    /// written): the program looks names outside the zones up only then.
    exact_names: bool,
    /// The search-list expansions of its names (see [`Table::expand`]).
    search: Search,
}

impl Table {
    /// Parses and checks a services file's text and builds its table as a
    /// fresh node would (no VIP history); an error comes with the 1-based
    /// line at fault where it can be told. For tests and tools: the agent
    /// reads the file through the [`Registry`](crate::registry::Registry).
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, ConfigErrorKind)> {
        let services = Services::parse(text)?;
        Self::build(services, &mut State::default(), 0)
            .map_err(|error| located(text, ConfigErrorKind::Vip(error)))
    }

    /// The table of `services`, with VIPs for the services without them
    /// allocated from `state` as of `now` (Unix seconds); `state` changes
    /// only on success. The services' names move into the table.
    pub fn build(services: Services, state: &mut State, now: u64) -> Result<Self, AllocError> {
        Self::build_with_sources(services, &[], state, now).map(|(table, _)| table)
    }

    /// [`Table::build`], with the names of `sources` added where the
    /// services file and the sources before them left room (see `merge`);
    /// also returns what each source's names came to.
    pub fn build_with_sources(
        services: Services,
        sources: &[SourceNames<'_>],
        state: &mut State,
        now: u64,
    ) -> Result<(Self, Vec<Merged>), AllocError> {
        let requests: Vec<Request<'_>> = services
            .services
            .iter()
            .map(|s| Request {
                name: &s.name,
                vips: &s.vips,
            })
            .collect();
        let mut next = state.clone();
        let vips = next.allocate(&requests, &services.pools, now)?;
        *state = next;

        let mut entries = Vec::with_capacity(services.services.iter().map(|s| s.names.len()).sum());
        for service in services.services {
            let addresses = match service.vips.is_empty() {
                true => &vips[&service.name],
                false => &service.vips,
            };
            let record = record_of(addresses, services.ttl);
            let name: Arc<str> = Arc::from(service.name);
            for wire in service.names {
                let entry = Entry {
                    service: Some(name.clone()),
                    source: 0,
                    record,
                };
                entries.push((wire, entry));
            }
        }
        // Collected first, the map is built in one pass with full nodes
        // (std's `FromIterator` sorts, then bulk-builds); a million inserts
        // in file order, each at a random place, took several times as long
        // and left the nodes partly empty. The names are unique: the
        // services were checked.
        let mut entries = BTreeMap::from_iter(entries);
        let zones = longest_first(services.zones);
        // The sources' names after the file's, which win.
        let merged = merge::merge(&mut entries, &zones, sources);
        // In every zone, authoritative or not: a name below one that did
        // not exist could not exist either (RFC 8020).
        add_empty_names(&mut entries, &zones, services.ttl);
        let table = Self {
            exact_names: entries.keys().any(|key| zone_of(&zones, key).is_none()),
            search: services.search,
            zones,
            class_counts: class_counts(entries.keys().map(|k| &**k)),
            entries,
            sources: sources.iter().map(|s| Arc::from(s.id)).collect(),
        };
        Ok((table, merged))
    }

    /// The table as the kernel holds it: the zone and every name's record,
    /// read back from the pinned maps by `meshdns lookup` and `dump`, which
    /// need no services file. The kernel knows no service names.
    pub fn from_kernel(
        zones: &[ZoneConfig; MAX_ZONES],
        search: Search,
        records: impl IntoIterator<Item = (NameKey, ServiceRecord)>,
    ) -> Self {
        let entries: BTreeMap<Box<[u8]>, Entry> = records
            .into_iter()
            .map(|(key, record)| {
                (
                    Box::from(key.as_wire()),
                    Entry {
                        service: None,
                        source: 0,
                        record,
                    },
                )
            })
            .collect();
        Self {
            zones: longest_first(zones.iter().filter(|z| z.apex_len > 0).copied().collect()),
            class_counts: class_counts(entries.keys().map(|k| &**k)),
            entries,
            sources: Vec::new(),
            exact_names: zones[0].flags & ZONE_EXACT_NAMES != 0,
            search,
        }
    }

    /// The id of the source an entry came from; `None` for the services
    /// file (and for a table read back from the kernel, which knows no
    /// sources).
    pub fn source_id(&self, entry: &Entry) -> Option<&str> {
        let index = usize::from(entry.source).checked_sub(1)?;
        self.sources.get(index).map(|id| &**id)
    }

    /// The zones as the XDP program sees them, the longest apex first.
    pub fn zones(&self) -> &[ZoneConfig] {
        &self.zones
    }

    /// The zones as the program's array holds them: the longest apex
    /// first, `ZoneConfig::NONE` after the last; with names outside the
    /// zones, the first says so and the last entry stands for them (see
    /// `ZONE_EXACT_NAMES`).
    pub fn zone_entries(&self) -> [ZoneConfig; MAX_ZONES] {
        let mut entries = [ZoneConfig::NONE; MAX_ZONES];
        for (entry, zone) in entries.iter_mut().zip(&self.zones) {
            *entry = *zone;
        }
        if self.exact_names {
            entries[0].flags |= ZONE_EXACT_NAMES;
            entries[EXACT_NAMES_ENTRY as usize] = ZoneConfig::NONE;
        }
        entries
    }

    /// Whether `wire` is ours to answer: in a zone, one of the names
    /// outside them, or a search expansion of a name of the table.
    pub fn answers_for(&self, wire: &[u8]) -> bool {
        self.zone_of(wire).is_some()
            || (self.exact_names && self.entries.contains_key(wire))
            || self.expanded(wire).is_some()
    }

    /// The zone `wire` (a name in wire format, lowercased) is in, if any:
    /// the one with the longest apex that it is or is below.
    pub fn zone_of(&self, wire: &[u8]) -> Option<&ZoneConfig> {
        zone_of(&self.zones, wire)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &NameKey) -> Option<&Entry> {
        self.entries.get(key.as_wire())
    }

    /// How many names of each length class (`NameClass`, in order) the
    /// table holds: what the kernel's maps must have room for.
    pub fn class_counts(&self) -> [usize; 3] {
        self.class_counts
    }

    /// Every name, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (NameKey, &Entry)> {
        self.entries
            .iter()
            .map(|(wire, entry)| (key_of(wire), entry))
    }

    /// What changes from `self` to `next`, name by name: one walk over
    /// both, which are in key order, without a lookup.
    pub fn changes<'a>(&'a self, next: &'a Table) -> impl Iterator<Item = Change<'a>> {
        let mut old = self.entries.iter().peekable();
        let mut new = next.entries.iter().peekable();
        std::iter::from_fn(move || {
            let change = match (old.peek(), new.peek()) {
                (None, None) => return None,
                (Some(_), None) => Change::Removed(key_of(old.next()?.0)),
                (None, Some(_)) => {
                    let (key, entry) = new.next()?;
                    Change::Added(key_of(key), entry)
                }
                (Some((old_key, _)), Some((new_key, _))) => match old_key.cmp(new_key) {
                    std::cmp::Ordering::Less => Change::Removed(key_of(old.next()?.0)),
                    std::cmp::Ordering::Greater => {
                        let (key, entry) = new.next()?;
                        Change::Added(key_of(key), entry)
                    }
                    std::cmp::Ordering::Equal => {
                        let (_, before) = old.next()?;
                        let (key, entry) = new.next()?;
                        if before.record == entry.record {
                            Change::Unchanged
                        } else {
                            Change::Updated(key_of(key), entry)
                        }
                    }
                },
            };
            Some(change)
        })
    }

    /// The names of `self` that `next` does not have, in key order: one
    /// walk over both tables' names alone, cheaper than [`Table::changes`]
    /// (which compares records too), for a sync that removes names first.
    pub fn removed_in<'a>(&'a self, next: &'a Table) -> impl Iterator<Item = NameKey> + 'a {
        let mut new = next.entries.keys().peekable();
        self.entries.keys().filter_map(move |old| {
            while new.next_if(|new| *new < old).is_some() {}
            match new.peek() {
                Some(new) if *new == old => None,
                _ => Some(key_of(old)),
            }
        })
    }
}

/// One name's change from a table to the next ([`Table::changes`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Change<'a> {
    Added(NameKey, &'a Entry),
    /// The name stays, with another record.
    Updated(NameKey, &'a Entry),
    Removed(NameKey),
    Unchanged,
}

/// How many of `names` (wire format) are of each length class
/// (`NameClass`, in order).
pub fn class_counts<'a>(names: impl Iterator<Item = &'a [u8]>) -> [usize; 3] {
    let mut counts = [0; 3];
    for wire in names {
        counts[NameClass::of(wire.len()) as usize] += 1;
    }
    counts
}

/// The key the program looks `wire` (a table's name) up by.
fn key_of(wire: &[u8]) -> NameKey {
    NameKey::from_wire(wire).expect("a table holds well-formed names")
}

/// `zones` in the order the program walks them: the longest apex first,
/// so that the first to hold a name is the innermost.
fn longest_first(mut zones: Vec<ZoneConfig>) -> Vec<ZoneConfig> {
    zones.sort_by(|a, b| b.apex_len.cmp(&a.apex_len).then(a.apex.cmp(&b.apex)));
    zones
}

/// The first of `zones` (the longest apex first) that `wire` is the apex
/// of or below, at a label boundary.
pub(crate) fn zone_of<'a>(zones: &'a [ZoneConfig], wire: &[u8]) -> Option<&'a ZoneConfig> {
    zones
        .iter()
        .find(|zone| dns_name::is_at_or_below(wire, zone.apex_wire()))
}

/// Adds every zone's apex and every empty non-terminal of its names (a
/// name with no records of its own but names below it, such as
/// `svc.1010.mesh` for `echo-server.echo-example.svc.1010.mesh`) as names
/// without addresses: they exist, so a zone answers them NODATA, never
/// NXDOMAIN or the upstreams' (RFC 8020), whether or not it is
/// authoritative for the names it does not hold. Each is in the zone that
/// holds it: a zone inside another (`a.b.mesh` in `mesh`) makes `b.mesh`
/// one of the outer zone's.
fn add_empty_names(entries: &mut BTreeMap<Box<[u8]>, Entry>, zones: &[ZoneConfig], ttl: u32) {
    let mut empty = BTreeSet::new();
    let names = entries.keys().map(|key| parent(key));
    let apexes = zones.iter().map(|zone| Some(zone.apex_wire()));
    for start in names.chain(apexes) {
        // Up the name, while in a zone. A name seen before had its own
        // way up walked then: many names share each parent.
        let mut wire = start;
        while let Some(name) = wire
            && zone_of(zones, name).is_some()
            && empty.insert(name)
        {
            wire = parent(name);
        }
    }
    let empty: Vec<Box<[u8]>> = empty
        .into_iter()
        .filter(|wire| !entries.contains_key(*wire))
        .map(Box::from)
        .collect();
    for wire in empty {
        entries.insert(
            wire,
            Entry {
                service: None,
                source: 0,
                record: ServiceRecord {
                    ttl,
                    ..ServiceRecord::EMPTY
                },
            },
        );
    }
}

/// `wire` without its first label; `None` for the root.
fn parent(wire: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*wire.first()?);
    (len != 0).then(|| &wire[1 + len..])
}

/// The record for a service's VIPs (checked: at most `MAX_ADDRS` of each
/// family), in order.
pub(crate) fn record_of(vips: &[IpAddr], ttl: u32) -> ServiceRecord {
    let mut record = ServiceRecord {
        ttl,
        ..ServiceRecord::EMPTY
    };
    for vip in vips {
        match vip {
            IpAddr::V4(v4) if usize::from(record.v4_count) < MAX_ADDRS => {
                record.v4[usize::from(record.v4_count)] = v4.octets();
                record.v4_count += 1;
            }
            IpAddr::V6(v6) if usize::from(record.v6_count) < MAX_ADDRS => {
                record.v6[usize::from(record.v6_count)] = v6.octets();
                record.v6_count += 1;
            }
            _ => {}
        }
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns_name;

    fn key(name: &str) -> NameKey {
        NameKey::from_wire(&dns_name::to_wire(name, "mesh").unwrap()).unwrap()
    }

    #[test]
    fn builds_records_for_both_families_in_config_order() {
        let table = Table::parse(
            "ttl: 30\nservices:\n  - name: redis\n    vips: [240.0.0.100, \"fd00:fd00::100\", 240.0.0.101]\n",
        )
        .unwrap();
        let entry = table.get(&key("redis")).unwrap();
        assert_eq!(entry.service.as_deref(), Some("redis"));
        assert_eq!(entry.record.ttl, 30);
        assert_eq!(entry.record.v4(), [[240, 0, 0, 100], [240, 0, 0, 101]]);
        assert_eq!(entry.record.v6().len(), 1);
    }

    #[test]
    fn changes_between_tables_name_by_name() {
        let before = Table::parse(
            "services:\n  - name: a\n    vips: [240.0.0.1]\n  - name: b\n    vips: [240.0.0.2]\n  - name: c\n    vips: [240.0.0.3]\n",
        )
        .unwrap();
        let after = Table::parse(
            "services:\n  - name: b\n    vips: [240.0.0.22]\n  - name: c\n    vips: [240.0.0.3]\n  - name: d\n    vips: [240.0.0.4]\n",
        )
        .unwrap();
        let (b, d) = (key("b"), key("d"));
        let mut changes: Vec<String> = before
            .changes(&after)
            .map(|change| match change {
                Change::Added(k, _) => format!("added {}", k == d),
                Change::Updated(k, e) => format!("updated {} {:?}", k == b, e.record.v4()),
                Change::Removed(k) => format!("removed {}", dns_name::to_text(k.as_wire())),
                Change::Unchanged => "unchanged".to_string(),
            })
            .collect();
        changes.sort();
        assert_eq!(
            changes,
            [
                "added true",
                "removed a.mesh.",
                // c, and the apex, which every zone has (RFC 8020).
                "unchanged",
                "unchanged",
                "updated true [[240, 0, 0, 22]]"
            ]
        );
        // Nothing changes from a table to itself; everything is added to an
        // empty one.
        assert!(after.changes(&after).all(|c| c == Change::Unchanged));
        // (but the apex, which both have).
        let empty = Table::parse("services: []\n").unwrap();
        assert_eq!(empty.changes(&after).count(), after.len());
        let added = empty
            .changes(&after)
            .filter(|c| matches!(c, Change::Added(..)))
            .count();
        assert_eq!(added, after.len() - 1);
    }

    #[test]
    fn kuma_names_are_in_the_table_twice() {
        let table = Table::parse(
            "services:\n  - name: echo-server_echo-example_svc_1010\n    vips: [240.0.0.1]\n",
        )
        .unwrap();
        let names = table.iter().filter(|(_, entry)| entry.has_addresses());
        assert_eq!(names.count(), 2);
        assert!(
            table
                .get(&key("echo-server_echo-example_svc_1010"))
                .is_some()
        );
        assert!(
            table
                .get(&key("ECHO-SERVER.echo-example.svc.1010"))
                .is_some()
        );
    }

    #[test]
    fn rfc8020_2_every_zone_has_its_apex_and_empty_non_terminals() {
        let text = "authoritative: true\nservices:\n  - name: a.b.c\n    vips: [240.0.0.1]\n";
        let table = Table::parse(text).unwrap();
        let names: Vec<String> = table
            .iter()
            .map(|(k, _)| dns_name::to_text(k.as_wire()))
            .collect();
        assert_eq!(names.len(), 4, "{names:?}");
        for empty in ["b.c", "c"] {
            let entry = table.get(&key(empty)).unwrap();
            assert_eq!(
                (
                    entry.service.as_ref(),
                    entry.record.v4_count,
                    entry.record.v6_count
                ),
                (None, 0, 0)
            );
        }
        let apex = NameKey::from_wire(b"\x04mesh\x00").unwrap();
        assert!(table.get(&apex).is_some());
        assert!(table.zones()[0].is_authoritative());

        // Not authoritative: the same names exist (what it does not hold
        // is the upstreams', but not these).
        let table = Table::parse(&text.replace("true", "false")).unwrap();
        assert_eq!(table.len(), 4);
        assert!(table.get(&apex).is_some() && table.get(&key("b.c")).is_some());
    }

    /// A zone inside another with a label between them (`a.b.mesh` in
    /// `mesh`): `b.mesh` has a name below it, so it exists, in `mesh`.
    #[test]
    fn rfc8020_2_the_names_between_a_zone_and_the_one_inside_it_exist() {
        let table = Table::parse(
            "zones:\n  - name: mesh\n  - name: a.b.mesh\nservices:\n  - name: x\n    zone: a.b.mesh\n    vips: [240.0.0.1]\n",
        )
        .unwrap();
        let mut names: Vec<String> = table
            .iter()
            .map(|(k, _)| dns_name::to_text(k.as_wire()))
            .collect();
        names.sort();
        assert_eq!(names, ["a.b.mesh.", "b.mesh.", "mesh.", "x.a.b.mesh."]);
        let between = dns_name::from_text("b.mesh").unwrap();
        assert_eq!(
            table.zone_of(&between).map(ZoneConfig::apex_wire),
            Some(&b"\x04mesh\x00"[..])
        );
    }

    #[test]
    fn services_without_vips_get_one_of_each_family() {
        let table =
            Table::parse("services:\n  - name: auto\n  - name: v4only\n    vips: [240.0.0.9]\n")
                .unwrap();
        let auto = table.get(&key("auto")).unwrap().record;
        assert_eq!((auto.v4_count, auto.v6_count), (1, 1));
        let v4only = table.get(&key("v4only")).unwrap().record;
        assert_eq!((v4only.v4_count, v4only.v6_count), (1, 0));
        let table = Table::parse("vip6_cidr: none\nservices:\n  - name: auto\n").unwrap();
        let auto = table.get(&key("auto")).unwrap().record;
        assert_eq!((auto.v4_count, auto.v6_count), (1, 0));
    }

    #[test]
    fn a_vip_claimed_by_two_services_is_an_error_naming_both() {
        let (line, kind) = Table::parse(
            "services:\n  - name: one\n    vips: [240.0.0.1]\n  - name: two\n    vips: [240.0.0.1]\n",
        )
        .unwrap_err();
        assert_eq!(line, Some(4));
        let message = kind.to_string();
        assert!(
            message.contains("\"one\"") && message.contains("\"two\""),
            "{message}"
        );
    }
}

//! The fast path's table: every name the zone answers for, with its record,
//! built from a validated services file.

use std::{
    collections::{BTreeMap, HashSet},
    net::IpAddr,
    path::Path,
};

use meshdns_common::{
    MAX_ADDRS, MAX_SOA_NAMES_LEN, NameKey, ServiceRecord, ZONE_AUTHORITATIVE, ZoneConfig,
};

use crate::{
    config::{Config, ConfigError, ConfigErrorKind, MAX_TTL, line_of},
    dns_name,
    vip::{Cidr, Request, State},
};

/// One name of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as text, lowercased, with a trailing dot.
    pub name: String,
    /// The service it belongs to, as the config names it; `None` for the
    /// apex and the empty non-terminals of an authoritative zone, which
    /// exist but have no addresses.
    pub service: Option<String>,
    pub record: ServiceRecord,
}

/// Every name the zone answers for, keyed as the XDP program looks them up,
/// the zone itself, and the resolver's settings from the same file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    zone: ZoneConfig,
    entries: BTreeMap<NameKey, Entry>,
    settings: ResolverSettings,
}

/// What the services file says about the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSettings {
    /// Clients to answer; `None`: the default (loopback and the interface's subnets).
    pub allow_from: Option<Vec<Cidr>>,
    /// Seconds past their TTL that cached answers may be served stale.
    pub stale_max: u64,
}

impl Table {
    /// Reads, parses and validates the services file at `path`, allocating
    /// VIPs from `state` as of `now` (Unix seconds). `state` changes only if
    /// the whole file is good.
    pub fn load(path: &Path, state: &mut State, now: u64) -> Result<Self, ConfigError> {
        let error = |line, kind| ConfigError {
            path: path.to_path_buf(),
            line,
            kind,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(None, e.into()))?;
        Self::parse_with(&text, state, now).map_err(|(line, kind)| error(line, kind))
    }

    /// Parses and validates a services file's text, allocating VIPs as a
    /// fresh node would; an error comes with the 1-based line at fault
    /// where it can be told.
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, ConfigErrorKind)> {
        Self::parse_with(text, &mut State::default(), 0)
    }

    /// Parses and validates a services file's text, allocating VIPs from
    /// `state` as of `now` (Unix seconds); `state` changes only on success.
    pub fn parse_with(
        text: &str,
        state: &mut State,
        now: u64,
    ) -> Result<Self, (Option<usize>, ConfigErrorKind)> {
        let config = Config::parse(text)?;
        let mut next = state.clone();
        let table = Self::from_config(&config, &mut next, now)
            .map_err(|kind| (line_of(text, &kind), kind))?;
        *state = next;
        Ok(table)
    }

    /// Builds the table, checking every name and address and allocating
    /// VIPs for services without them from `state`.
    pub fn from_config(
        config: &Config,
        state: &mut State,
        now: u64,
    ) -> Result<Self, ConfigErrorKind> {
        let zone = config.zone();
        let apex = dns_name::from_text(zone).map_err(|error| ConfigErrorKind::Zone {
            zone: config.zone.clone(),
            error,
        })?;
        if config.ttl > MAX_TTL {
            return Err(ConfigErrorKind::Ttl(config.ttl));
        }
        let zone_config = zone_config(config, &apex)?;
        let pools = config.pools()?;
        // Read here so that a bad value is a bad file, with its line.
        let settings = ResolverSettings {
            allow_from: config.allow_from()?,
            stale_max: config.stale_max()?,
        };
        for service in &config.services {
            check_vips(&service.name, &service.vips)?;
        }
        let requests: Vec<Request<'_>> = config
            .services
            .iter()
            .map(|s| Request {
                name: &s.name,
                vips: &s.vips,
            })
            .collect();
        let vips = state.allocate(&requests, &pools, now)?;

        let mut entries = BTreeMap::new();
        for service in &config.services {
            let record = record_of(&vips[&service.name], config.ttl);
            for name in service.dns_names() {
                let wire =
                    dns_name::to_wire(&name, zone).map_err(|error| ConfigErrorKind::Name {
                        name: service.name.clone(),
                        error,
                    })?;
                let key = NameKey::from_wire(&wire).expect("to_wire makes well-formed names");
                let entry = Entry {
                    name: dns_name::to_text(&wire),
                    service: Some(service.name.clone()),
                    record,
                };
                if let Some(first) = entries.insert(key, entry) {
                    return Err(ConfigErrorKind::DuplicateName {
                        first: first.service.unwrap_or_default(),
                        second: service.name.clone(),
                        dns_name: first.name,
                    });
                }
            }
        }
        if config.authoritative {
            add_empty_names(&mut entries, &apex, config.ttl);
        }
        Ok(Self {
            zone: zone_config,
            entries,
            settings,
        })
    }

    /// The table as the kernel holds it: the zone and every name's record,
    /// read back from the pinned maps by `meshdns lookup` and `dump`, which
    /// need no services file. The kernel knows no service names, and
    /// nothing of the resolver's settings (`allow_from` is left unset,
    /// `stale_max` at 0).
    pub fn from_kernel(
        zone: ZoneConfig,
        records: impl IntoIterator<Item = (NameKey, ServiceRecord)>,
    ) -> Self {
        let entries = records
            .into_iter()
            .map(|(key, record)| {
                let entry = Entry {
                    name: dns_name::to_text(key.as_wire()),
                    service: None,
                    record,
                };
                (key, entry)
            })
            .collect();
        Self {
            zone,
            entries,
            settings: ResolverSettings {
                allow_from: None,
                stale_max: 0,
            },
        }
    }

    /// The resolver's settings from the same file.
    pub fn settings(&self) -> &ResolverSettings {
        &self.settings
    }

    /// The zone as the XDP program sees it.
    pub fn zone(&self) -> &ZoneConfig {
        &self.zone
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &NameKey) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every name, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&NameKey, &Entry)> {
        self.entries.iter()
    }

    /// What changes from `self` to `next`, name by name: one walk over
    /// both, which are in key order, without a lookup.
    pub fn changes<'a>(&'a self, next: &'a Table) -> impl Iterator<Item = Change<'a>> {
        let mut old = self.entries.iter().peekable();
        let mut new = next.entries.iter().peekable();
        std::iter::from_fn(move || {
            let change = match (old.peek(), new.peek()) {
                (None, None) => return None,
                (Some(_), None) => Change::Removed(old.next()?.0),
                (None, Some(_)) => {
                    let (key, entry) = new.next()?;
                    Change::Added(key, entry)
                }
                (Some((old_key, _)), Some((new_key, _))) => match old_key.cmp(new_key) {
                    std::cmp::Ordering::Less => Change::Removed(old.next()?.0),
                    std::cmp::Ordering::Greater => {
                        let (key, entry) = new.next()?;
                        Change::Added(key, entry)
                    }
                    std::cmp::Ordering::Equal => {
                        let (_, before) = old.next()?;
                        let (key, entry) = new.next()?;
                        if before.record == entry.record {
                            Change::Unchanged
                        } else {
                            Change::Updated(key, entry)
                        }
                    }
                },
            };
            Some(change)
        })
    }
}

/// One name's change from a table to the next ([`Table::changes`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Change<'a> {
    Added(&'a NameKey, &'a Entry),
    /// The name stays, with another record.
    Updated(&'a NameKey, &'a Entry),
    Removed(&'a NameKey),
    Unchanged,
}

/// Adds the apex and every empty non-terminal (a name with no records of
/// its own but names below it, such as `svc.1010.mesh` for
/// `echo-server.echo-example.svc.1010.mesh`) as names without addresses:
/// they exist, so an authoritative zone must answer them NODATA, not
/// NXDOMAIN (RFC 8020).
fn add_empty_names(entries: &mut BTreeMap<NameKey, Entry>, apex: &[u8], ttl: u32) {
    let mut empty = vec![apex.to_vec()];
    for key in entries.keys() {
        let mut wire = key.as_wire();
        // Strip the first label while what is left is below the apex.
        while wire.len() > apex.len() {
            wire = &wire[1 + wire[0] as usize..];
            empty.push(wire.to_vec());
        }
    }
    for wire in empty {
        let key = NameKey::from_wire(&wire).expect("a suffix of a well-formed name");
        entries.entry(key).or_insert_with(|| Entry {
            name: dns_name::to_text(&wire),
            service: None,
            record: ServiceRecord {
                ttl,
                ..ServiceRecord::EMPTY
            },
        });
    }
}

/// The zone's apex, flags and SOA record, from the config.
fn zone_config(config: &Config, apex: &[u8]) -> Result<ZoneConfig, ConfigErrorKind> {
    let soa = &config.soa;
    let zone = config.zone();
    let name = |field: &'static str, value: &Option<String>, default: String| {
        let value = value.clone().unwrap_or(default);
        dns_name::from_text(&value).map_err(|error| ConfigErrorKind::SoaName {
            field,
            value,
            error,
        })
    };
    let mname = name("mname", &soa.mname, format!("ns.{zone}."))?;
    let rname = name("rname", &soa.rname, format!("hostmaster.{zone}."))?;
    if mname.len() + rname.len() > MAX_SOA_NAMES_LEN {
        return Err(ConfigErrorKind::SoaNamesTooLong {
            len: mname.len() + rname.len(),
        });
    }

    let mut rdata = Vec::new();
    rdata.extend(&mname);
    rdata.extend(&rname);
    for field in [soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum] {
        rdata.extend(field.to_be_bytes());
    }
    let mut rr = Vec::new();
    rr.extend(6u16.to_be_bytes()); // TYPE SOA
    rr.extend(1u16.to_be_bytes()); // CLASS IN
    // A negative answer's SOA has the MINIMUM as its TTL (RFC 2308 §3).
    rr.extend(soa.minimum.to_be_bytes());
    rr.extend((rdata.len() as u16).to_be_bytes());
    rr.extend(rdata);

    let mut zone_config = ZoneConfig {
        apex: NameKey::from_wire(apex)
            .expect("from_text makes well-formed names")
            .wire,
        apex_len: apex.len() as u16,
        soa_rr_len: rr.len() as u16,
        flags: if config.authoritative {
            ZONE_AUTHORITATIVE
        } else {
            0
        },
        soa_rr: [0; meshdns_common::MAX_SOA_RR_LEN],
    };
    zone_config.soa_rr[..rr.len()].copy_from_slice(&rr);
    Ok(zone_config)
}

/// Checks a service's explicit VIPs: no address twice, at most
/// `MAX_ADDRS` of each family.
fn check_vips(name: &str, vips: &[IpAddr]) -> Result<(), ConfigErrorKind> {
    let mut seen = HashSet::new();
    for vip in vips {
        if !seen.insert(vip) {
            return Err(ConfigErrorKind::DuplicateVip {
                name: name.to_string(),
                vip: *vip,
            });
        }
    }
    for (family, count) in [
        (4, vips.iter().filter(|v| v.is_ipv4()).count()),
        (6, vips.iter().filter(|v| v.is_ipv6()).count()),
    ] {
        if count > MAX_ADDRS {
            return Err(ConfigErrorKind::TooManyVips {
                name: name.to_string(),
                family,
                count,
            });
        }
    }
    Ok(())
}

/// The record for a service's VIPs (checked by `check_vips`), in order.
fn record_of(vips: &[IpAddr], ttl: u32) -> ServiceRecord {
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
        assert_eq!(entry.name, "redis.mesh.");
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
                Change::Added(k, _) => format!("added {}", k == &d),
                Change::Updated(k, e) => format!("updated {} {:?}", k == &b, e.record.v4()),
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
                "unchanged",
                "updated true [[240, 0, 0, 22]]"
            ]
        );
        // Nothing changes from a table to itself; everything is added to an
        // empty one.
        assert!(after.changes(&after).all(|c| c == Change::Unchanged));
        let empty = Table::parse("services: []\n").unwrap();
        assert_eq!(empty.changes(&after).count(), after.len());
        assert!(
            empty
                .changes(&after)
                .all(|c| matches!(c, Change::Added(..)))
        );
    }

    #[test]
    fn kuma_names_are_in_the_table_twice() {
        let table = Table::parse(
            "services:\n  - name: echo-server_echo-example_svc_1010\n    vips: [240.0.0.1]\n",
        )
        .unwrap();
        assert_eq!(table.len(), 2);
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
    fn semantic_errors_name_the_service_and_its_line() {
        let (_, kind) =
            Table::parse("services:\n  - name: a\n    vips: [240.0.0.1, 240.0.0.1]\n").unwrap_err();
        assert!(matches!(kind, ConfigErrorKind::DuplicateVip { .. }));

        let nine: Vec<String> = (1..=9).map(|i| format!("240.0.0.{i}")).collect();
        let (_, kind) = Table::parse(&format!(
            "services:\n  - name: a\n    vips: [{}]\n",
            nine.join(", ")
        ))
        .unwrap_err();
        assert!(matches!(
            kind,
            ConfigErrorKind::TooManyVips {
                family: 4,
                count: 9,
                ..
            }
        ));

        let (line, kind) =
            Table::parse("services:\n  - name: a b\n    vips: [240.0.0.1]\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(matches!(kind, ConfigErrorKind::Name { .. }), "{kind}");
    }

    #[test]
    fn a_name_claimed_twice_is_an_error_naming_both_services() {
        let (line, kind) = Table::parse(
            "services:\n  - name: a.b\n    vips: [240.0.0.1]\n  - name: a_b\n    vips: [240.0.0.2]\n",
        )
        .unwrap_err();
        assert_eq!(line, Some(4));
        let message = kind.to_string();
        assert!(
            message.contains("\"a.b\"") && message.contains("\"a_b\""),
            "{message}"
        );
    }

    #[test]
    fn rfc8020_authoritative_zone_has_its_apex_and_empty_non_terminals() {
        let text = "authoritative: true\nservices:\n  - name: a.b.c\n    vips: [240.0.0.1]\n";
        let table = Table::parse(text).unwrap();
        let names: Vec<&str> = table.iter().map(|(_, e)| e.name.as_str()).collect();
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
        assert!(table.zone().is_authoritative());

        // Not authoritative: only the services' own names.
        let table = Table::parse(&text.replace("true", "false")).unwrap();
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn rfc1035_3_3_13_soa_record_with_defaults() {
        let table = Table::parse("zone: Mesh.\n").unwrap();
        let zone = table.zone();
        assert_eq!(&zone.apex[..zone.apex_len as usize], b"\x04mesh\x00");
        let rr = &zone.soa_rr[..zone.soa_rr_len as usize];
        let mut want = vec![0, 6, 0, 1, 0, 0, 0, 30];
        let rdata = [&b"\x02ns\x04mesh\x00"[..], b"\x0ahostmaster\x04mesh\x00"].concat();
        want.extend(((rdata.len() + 20) as u16).to_be_bytes());
        want.extend(rdata);
        for field in [1u32, 3600, 600, 86400, 30] {
            want.extend(field.to_be_bytes());
        }
        assert_eq!(rr, want);
    }

    #[test]
    fn soa_names_are_checked() {
        let (line, kind) = Table::parse("soa:\n  mname: \"bad name.\"\n").unwrap_err();
        assert!(
            matches!(kind, ConfigErrorKind::SoaName { field: "mname", .. }),
            "{kind}"
        );
        assert_eq!(line, Some(2));
        let long = format!(
            "soa: {{ mname: {0}.{0}., rname: {0}.x. }}\n",
            "a".repeat(60)
        );
        assert!(matches!(
            Table::parse(&long).unwrap_err().1,
            ConfigErrorKind::SoaNamesTooLong { .. }
        ));
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

    #[test]
    fn zone_and_ttl_are_checked() {
        assert!(matches!(
            Table::parse("zone: a..b\n").unwrap_err().1,
            ConfigErrorKind::Zone { .. }
        ));
        assert!(matches!(
            Table::parse("ttl: 4294967295\n").unwrap_err().1,
            ConfigErrorKind::Ttl(_)
        ));
    }
}

//! The fast path's table: every name the zone answers for, with its record,
//! built from a validated services file.

use std::{
    collections::{BTreeMap, HashSet},
    net::IpAddr,
    path::Path,
};

use meshdns_common::{MAX_ADDRS, NameKey, ServiceRecord};

use crate::{
    config::{Config, ConfigError, ConfigErrorKind, MAX_TTL, line_of},
    dns_name,
};

/// One name of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name as text, lowercased, with a trailing dot.
    pub name: String,
    /// The service it belongs to, as the config names it.
    pub service: String,
    pub record: ServiceRecord,
}

/// Every name the zone answers for, keyed as the XDP program looks them up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Table {
    entries: BTreeMap<NameKey, Entry>,
}

impl Table {
    /// Reads, parses and validates the services file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let error = |line, kind| ConfigError {
            path: path.to_path_buf(),
            line,
            kind,
        };
        let text = std::fs::read_to_string(path).map_err(|e| error(None, e.into()))?;
        Self::parse(&text).map_err(|(line, kind)| error(line, kind))
    }

    /// Parses and validates a services file's text; an error comes with the
    /// 1-based line at fault where it can be told.
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, ConfigErrorKind)> {
        let config = Config::parse(text)?;
        Self::from_config(&config).map_err(|kind| (line_of(text, &kind), kind))
    }

    /// Builds the table, checking every name and address.
    pub fn from_config(config: &Config) -> Result<Self, ConfigErrorKind> {
        let zone = config.zone();
        dns_name::check_zone(zone).map_err(|error| ConfigErrorKind::Zone {
            zone: config.zone.clone(),
            error,
        })?;
        if config.ttl > MAX_TTL {
            return Err(ConfigErrorKind::Ttl(config.ttl));
        }

        let mut entries = BTreeMap::new();
        for service in &config.services {
            let record = record_of(&service.name, &service.vips, config.ttl)?;
            for name in service.dns_names() {
                let wire =
                    dns_name::to_wire(&name, zone).map_err(|error| ConfigErrorKind::Name {
                        name: service.name.clone(),
                        error,
                    })?;
                let key = NameKey::from_wire(&wire).expect("to_wire makes well-formed names");
                let entry = Entry {
                    name: dns_name::to_text(&wire),
                    service: service.name.clone(),
                    record,
                };
                if let Some(first) = entries.insert(key, entry) {
                    return Err(ConfigErrorKind::DuplicateName {
                        first: first.service,
                        second: service.name.clone(),
                        dns_name: first.name,
                    });
                }
            }
        }
        Ok(Self { entries })
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
}

/// The record for a service's VIPs, in the order the config lists them.
fn record_of(name: &str, vips: &[IpAddr], ttl: u32) -> Result<ServiceRecord, ConfigErrorKind> {
    if vips.is_empty() {
        return Err(ConfigErrorKind::NoVips {
            name: name.to_string(),
        });
    }
    let mut seen = HashSet::new();
    let mut record = ServiceRecord {
        ttl,
        ..ServiceRecord::EMPTY
    };
    for vip in vips {
        if !seen.insert(vip) {
            return Err(ConfigErrorKind::DuplicateVip {
                name: name.to_string(),
                vip: *vip,
            });
        }
        let (family, count) = match vip {
            IpAddr::V4(_) => (4, usize::from(record.v4_count)),
            IpAddr::V6(_) => (6, usize::from(record.v6_count)),
        };
        if count == MAX_ADDRS {
            return Err(ConfigErrorKind::TooManyVips {
                name: name.to_string(),
                family,
                count: vips.iter().filter(|v| v.is_ipv4() == (family == 4)).count(),
            });
        }
        match vip {
            IpAddr::V4(v4) => {
                record.v4[count] = v4.octets();
                record.v4_count += 1;
            }
            IpAddr::V6(v6) => {
                record.v6[count] = v6.octets();
                record.v6_count += 1;
            }
        }
    }
    Ok(record)
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
        let (line, kind) = Table::parse(
            "services:\n  - name: a\n    vips: [240.0.0.1]\n  - name: b\n    vips: []\n",
        )
        .unwrap_err();
        assert_eq!(line, Some(4));
        assert!(matches!(kind, ConfigErrorKind::NoVips { .. }));

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

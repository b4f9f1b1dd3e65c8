//! `forward:` in the services file: where the names outside the mesh go,
//! by zone, as NodeLocal DNSCache sends `cluster.local` to the cluster DNS
//! and the rest to the node's resolvers.

use std::{fmt, net::SocketAddr};

use serde::{Deserialize, Deserializer, de};

use super::ConfigErrorKind;

/// One `forward:` entry, as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// The zone (`cluster.local`, `in-addr.arpa`; `.` for every other name).
    pub zone: String,
    pub upstreams: UpstreamsConfig,
    /// Ask over TCP from the first attempt (NodeLocal DNSCache does for
    /// `cluster.local`).
    #[serde(default)]
    pub force_tcp: bool,
    /// Bounds on the TTLs of this zone's answers as cached and sent.
    #[serde(default)]
    pub max_ttl: Option<u32>,
    #[serde(default)]
    pub min_ttl: Option<u32>,
    /// Bound on how long this zone's NXDOMAIN and NODATA are cached.
    #[serde(default)]
    pub negative_ttl: Option<u32>,
}

/// `upstreams:` a list of addresses (port 53 unless given), or the word
/// `resolv.conf`: the nameservers of the node's /etc/resolv.conf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamsConfig {
    ResolvConf,
    List(Vec<String>),
}

impl<'de> Deserialize<'de> for UpstreamsConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = UpstreamsConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a list of upstream addresses, or resolv.conf")
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
                match value {
                    "resolv.conf" => Ok(UpstreamsConfig::ResolvConf),
                    other => Err(E::invalid_value(de::Unexpected::Str(other), &self)),
                }
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(addr) = seq.next_element::<String>()? {
                    list.push(addr);
                }
                Ok(UpstreamsConfig::List(list))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Where one zone's names go, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardZone {
    /// Lowercase, without the trailing dot; empty for the root.
    pub zone: String,
    pub upstreams: Upstreams,
    pub force_tcp: bool,
    pub ttl: TtlBounds,
}

/// A zone's upstreams, as the file names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstreams {
    /// The node's /etc/resolv.conf nameservers, less meshdns itself.
    ResolvConf,
    Addrs(Vec<SocketAddr>),
}

/// Bounds on the TTLs of a zone's answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlBounds {
    pub min: u32,
    pub max: Option<u32>,
    /// Of NXDOMAIN and NODATA (the SOA's TTL, RFC 2308 §5).
    pub negative_max: Option<u32>,
}

impl TtlBounds {
    /// `ttl` within the bounds.
    pub fn positive(&self, ttl: u32) -> u32 {
        ttl.max(self.min).min(self.max.unwrap_or(u32::MAX))
    }

    /// A negative answer's SOA TTL within the bounds.
    pub fn negative(&self, ttl: u32) -> u32 {
        ttl.min(self.negative_max.unwrap_or(u32::MAX))
    }
}

impl ForwardZone {
    /// As `meshdns lookup` and the metrics show it: `cluster.local`, `.`.
    pub fn shown(&self) -> &str {
        if self.zone.is_empty() {
            "."
        } else {
            &self.zone
        }
    }
}

/// The file's `forward:` list, checked: each zone once, each with
/// upstreams that are addresses, bounds that make sense.
pub fn check(entries: &[ForwardConfig]) -> Result<Vec<ForwardZone>, ConfigErrorKind> {
    let mut zones: Vec<ForwardZone> = Vec::new();
    for entry in entries {
        let zone = zone_name(&entry.zone)?;
        if zones.iter().any(|z| z.zone == zone) {
            return Err(ConfigErrorKind::ForwardZoneTwice(entry.zone.clone()));
        }
        let upstreams = match &entry.upstreams {
            UpstreamsConfig::ResolvConf => Upstreams::ResolvConf,
            UpstreamsConfig::List(list) if list.is_empty() => {
                return Err(ConfigErrorKind::ForwardNoUpstreams(entry.zone.clone()));
            }
            UpstreamsConfig::List(list) => Upstreams::Addrs(
                list.iter()
                    .map(|value| {
                        upstream_addr(value).ok_or_else(|| ConfigErrorKind::ForwardUpstream {
                            zone: entry.zone.clone(),
                            value: value.clone(),
                        })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let ttl = TtlBounds {
            min: entry.min_ttl.unwrap_or(0),
            max: entry.max_ttl,
            negative_max: entry.negative_ttl,
        };
        if ttl.max.is_some_and(|max| max < ttl.min) {
            return Err(ConfigErrorKind::ForwardTtl(entry.zone.clone()));
        }
        zones.push(ForwardZone {
            zone,
            upstreams,
            force_tcp: entry.force_tcp,
            ttl,
        });
    }
    Ok(zones)
}

/// Refuses a zone whose upstreams include an address meshdns listens on
/// (`own`): it would forward its own questions to itself.
pub fn refuse_own(zones: &[ForwardZone], own: &[SocketAddr]) -> Result<(), ConfigErrorKind> {
    for zone in zones {
        if let Upstreams::Addrs(addrs) = &zone.upstreams
            && let Some(upstream) = addrs.iter().find(|addr| own.contains(addr))
        {
            return Err(ConfigErrorKind::ForwardToItself {
                zone: zone.shown().to_string(),
                upstream: *upstream,
            });
        }
    }
    Ok(())
}

/// A zone as the file writes it, lowercased, without its trailing dot;
/// `.` is the root (empty). Checked as every name of the file is.
fn zone_name(text: &str) -> Result<String, ConfigErrorKind> {
    let zone = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
    if !zone.is_empty() {
        crate::dns_name::from_text(&zone).map_err(|error| ConfigErrorKind::ForwardZone {
            zone: text.to_string(),
            why: error.to_string(),
        })?;
    }
    Ok(zone)
}

/// `198.19.0.10`, `198.19.0.10:53`, `[2001:db8::1]:53` or `2001:db8::1`.
fn upstream_addr(value: &str) -> Option<SocketAddr> {
    value.parse::<SocketAddr>().ok().or_else(|| {
        value
            .parse::<std::net::IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(yaml: &str) -> Vec<ForwardConfig> {
        #[derive(Deserialize)]
        struct File {
            forward: Vec<ForwardConfig>,
        }
        serde_saphyr::from_str::<File>(yaml).unwrap().forward
    }

    #[test]
    fn zones_with_their_upstreams_and_bounds() {
        let zones = check(&entries(
            "forward:\n  - zone: Cluster.Local.\n    upstreams: [198.19.0.10, \"[2001:db8::53]:5353\"]\n    force_tcp: true\n    max_ttl: 30\n    negative_ttl: 5\n  - zone: .\n    upstreams: resolv.conf\n",
        ))
        .unwrap();
        assert_eq!(zones[0].zone, "cluster.local");
        assert_eq!(
            zones[0].upstreams,
            Upstreams::Addrs(vec![
                "198.19.0.10:53".parse().unwrap(),
                "[2001:db8::53]:5353".parse().unwrap()
            ])
        );
        assert!(zones[0].force_tcp);
        assert_eq!(zones[0].ttl.positive(300), 30);
        assert_eq!(zones[0].ttl.positive(10), 10);
        assert_eq!(zones[0].ttl.negative(3600), 5);
        assert_eq!(
            (zones[1].shown(), &zones[1].upstreams),
            (".", &Upstreams::ResolvConf)
        );
        assert_eq!(zones[1].ttl.positive(7), 7);
    }

    #[test]
    fn a_zone_twice_no_upstreams_or_a_bad_one_are_rejected() {
        let error = |yaml: &str| check(&entries(yaml)).unwrap_err();
        assert!(matches!(
            error("forward:\n  - {zone: a.example, upstreams: [192.0.2.1]}\n  - {zone: A.example., upstreams: [192.0.2.2]}\n"),
            ConfigErrorKind::ForwardZoneTwice(zone) if zone == "A.example."
        ));
        assert!(matches!(
            error("forward:\n  - {zone: a.example, upstreams: []}\n"),
            ConfigErrorKind::ForwardNoUpstreams(zone) if zone == "a.example"
        ));
        assert!(matches!(
            error("forward:\n  - {zone: a.example, upstreams: [nameserver.example]}\n"),
            ConfigErrorKind::ForwardUpstream { .. }
        ));
        assert!(matches!(
            error("forward:\n  - {zone: \"a..example\", upstreams: [192.0.2.1]}\n"),
            ConfigErrorKind::ForwardZone { .. }
        ));
        assert!(matches!(
            error("forward:\n  - {zone: a.example, upstreams: [192.0.2.1], min_ttl: 60, max_ttl: 30}\n"),
            ConfigErrorKind::ForwardTtl(zone) if zone == "a.example"
        ));
        // An upstream that is meshdns itself.
        let zones = check(&entries(
            "forward:\n  - {zone: a.example, upstreams: [\"127.0.0.1:53\"]}\n",
        ))
        .unwrap();
        assert!(matches!(
            refuse_own(&zones, &["127.0.0.1:53".parse().unwrap()]),
            Err(ConfigErrorKind::ForwardToItself { .. })
        ));
        assert!(refuse_own(&zones, &["127.0.0.1:5353".parse().unwrap()]).is_ok());
        // Not a list, nor resolv.conf: what the parser says.
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct File {
            forward: Vec<ForwardConfig>,
        }
        let parse = serde_saphyr::from_str::<File>("forward:\n  - {zone: a, upstreams: nowhere}\n");
        let message = parse.unwrap_err().to_string();
        assert!(
            message.contains("a list of upstream addresses, or resolv.conf"),
            "{message}"
        );
    }
}

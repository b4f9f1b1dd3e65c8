//! What the schema cannot check: names, addresses, the zone and its SOA
//! (its record built in `zone.rs`), durations and prefixes. [`Config::validate`] turns a parsed file into
//! [`Services`], a value with nothing left to check: the table and the
//! resolver only read it.

use std::net::IpAddr;

use foldhash::{HashMap, HashMapExt as _};

use meshdns_common::{MAX_ADDRS, ZoneConfig};

use super::{Config, ConfigErrorKind, DEFAULT_STALE_MAX, MAX_ZONES, located, zone};
use crate::{
    cidr::{Cidr, CidrError},
    dns_name,
    source::Source,
    vip::Pools,
};

/// Largest TTL a resolver must accept (RFC 2181 §8).
pub const MAX_TTL: u32 = (1 << 31) - 1;

/// A services file, checked whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Services {
    /// The zones as the XDP program sees them (apex, flags, SOA record), in
    /// the file's order: services without a `zone` are in the first.
    pub zones: Vec<ZoneConfig>,
    /// TTL of the answers, in seconds.
    pub ttl: u32,
    /// Where services without `vips` get theirs.
    pub pools: Pools,
    /// In file order.
    pub services: Vec<CheckedService>,
    /// In file order, which is their order of precedence.
    pub sources: Vec<Source>,
    pub resolver: ResolverSettings,
    /// The search-list expansions answered from the table.
    pub search: super::search::Search,
}

/// One service of the file, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedService {
    /// As the file names it.
    pub name: String,
    /// Its explicit VIPs, in file order: at most `MAX_ADDRS` of each
    /// family, none twice.
    pub vips: Vec<IpAddr>,
    /// The names it answers for in the zone (see [`Service::dns_names`]),
    /// in wire format, lowercased, as the program looks them up; no other
    /// service claims them.
    ///
    /// [`Service::dns_names`]: super::Service::dns_names
    pub names: Vec<Box<[u8]>>,
}

/// What the services file says about the resolver, and whom and for
/// which addresses the fast path answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolverSettings {
    /// Clients to answer; `None`: the default (loopback, the interfaces'
    /// subnets and the pods).
    pub allow_from: Option<Vec<Cidr>>,
    /// The pods' addresses, for the default `allow_from`; `None`: from the
    /// node's routes to the interfaces.
    pub pod_cidrs: Option<Vec<Cidr>>,
    /// The destination addresses the fast path answers for (the resolver
    /// answers whatever reaches its sockets).
    pub fast_path_destinations: super::destinations::Destinations,
    /// Answers a second per client prefix over UDP, fast path and
    /// resolver each; `None`: no limit.
    pub rate_limit: Option<super::rate_limit::RateLimitSettings>,
    /// Where names outside the mesh go, by zone, as the file lists them.
    pub forward: Vec<super::forward::ForwardZone>,
    /// Seconds past their TTL that cached answers may be served stale.
    pub stale_max: u64,
}

impl Default for ResolverSettings {
    /// What a file that says nothing about the resolver means.
    fn default() -> Self {
        Self {
            allow_from: None,
            pod_cidrs: None,
            fast_path_destinations: Default::default(),
            rate_limit: None,
            forward: Vec::new(),
            stale_max: DEFAULT_STALE_MAX,
        }
    }
}

impl Services {
    /// Parses and checks a services file's text; an error comes with the
    /// 1-based line at fault where it can be told.
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, ConfigErrorKind)> {
        Config::parse(text)?
            .validate()
            .map_err(|kind| located(text, kind))
    }
}

impl Config {
    /// Checks everything the schema cannot. Consumes the parsed file: the
    /// services' names and VIPs move into the result rather than being
    /// copied (a million of them is most of the start's work).
    pub fn validate(mut self) -> Result<Services, ConfigErrorKind> {
        let parsed = std::mem::take(&mut self.services);
        if self.ttl > MAX_TTL {
            return Err(ConfigErrorKind::Ttl(self.ttl));
        }
        let zones = self.zones()?;
        let apexes: Vec<&[u8]> = zones.iter().map(ZoneConfig::apex_wire).collect();
        let search = super::search::check(&self.search, &apexes)?;
        let zone = self.zone();
        let pools = self.pools()?;
        let resolver = ResolverSettings {
            allow_from: cidrs("allow_from", self.allow_from.as_deref())?,
            pod_cidrs: cidrs("pod_cidrs", self.pod_cidrs.as_deref())?,
            fast_path_destinations: super::destinations::check(
                self.fast_path_destinations.as_ref(),
            )?,
            rate_limit: super::rate_limit::check(self.rate_limit.as_ref())?,
            forward: super::forward::check(&self.forward)?,
            stale_max: self.stale_max()?,
        };
        let mut services = Vec::with_capacity(parsed.len());
        let zone_names: Vec<&str> = self.zone_settings().iter().map(|z| z.0).collect();
        for service in parsed {
            check_vips(&service.name, &service.vips)?;
            let zone = match &service.zone {
                None => zone,
                Some(wanted) => {
                    let wanted = wanted.strip_suffix('.').unwrap_or(wanted);
                    *zone_names
                        .iter()
                        .find(|z| z.eq_ignore_ascii_case(wanted))
                        .ok_or_else(|| ConfigErrorKind::UnknownZone {
                            service: service.name.clone(),
                            zone: wanted.to_string(),
                        })?
                }
            };
            let mut names = Vec::with_capacity(2);
            for name in service.dns_names() {
                // Lowercased by the encoding, as the program looks names up.
                let wire =
                    dns_name::to_wire(&name, zone).map_err(|error| ConfigErrorKind::Name {
                        name: service.name.clone(),
                        error,
                    })?;
                names.push(wire.into_boxed_slice());
            }
            services.push(CheckedService {
                name: service.name,
                vips: service.vips,
                names,
            });
        }
        check_unique_names(&services)?;
        let sources = self
            .sources
            .iter()
            .map(|source| source.check().map_err(ConfigErrorKind::Source))
            .collect::<Result<Vec<_>, _>>()?;
        // Two sources alike would fight over one saved file and one series.
        for (i, source) in sources.iter().enumerate() {
            if sources[..i].iter().any(|s| s.id() == source.id()) {
                return Err(ConfigErrorKind::Source(format!(
                    "{} is listed twice",
                    source.id()
                )));
            }
        }
        Ok(Services {
            zones,
            ttl: self.ttl,
            pools,
            services,
            sources,
            resolver,
            search,
        })
    }

    /// Each zone as the program sees it, in the file's order: at most
    /// `MAX_ZONES`, none twice, `zone` and `zones` not both. A zone may lie
    /// inside another: its names are its own (the longer apex wins).
    fn zones(&self) -> Result<Vec<ZoneConfig>, ConfigErrorKind> {
        if self.zone.is_some() && self.zones.is_some() {
            return Err(ConfigErrorKind::ZoneAndZones);
        }
        let settings = self.zone_settings();
        if settings.is_empty() || settings.len() > MAX_ZONES {
            return Err(ConfigErrorKind::ZoneCount(settings.len()));
        }
        let mut zones: Vec<ZoneConfig> = Vec::with_capacity(settings.len());
        for (name, authoritative, soa) in settings {
            let apex = dns_name::from_text(name).map_err(|error| ConfigErrorKind::Zone {
                zone: name.to_string(),
                error,
            })?;
            if zones.iter().any(|z| z.apex_wire() == apex.as_slice()) {
                return Err(ConfigErrorKind::DuplicateZone(name.to_string()));
            }
            zones.push(zone::zone_config(name, &apex, authoritative, soa)?);
        }
        Ok(zones)
    }

    /// How long stale answers may be served, in seconds.
    fn stale_max(&self) -> Result<u64, ConfigErrorKind> {
        self.stale_max
            .seconds()
            .map_err(|error| ConfigErrorKind::BadDuration {
                field: "stale_max",
                error,
            })
    }

    /// The VIP pools, checked.
    fn pools(&self) -> Result<Pools, ConfigErrorKind> {
        let cidr = parse_cidr;
        let v4 = cidr("vip_cidr", &self.vip_cidr)?;
        let v6 = match self.vip6_cidr.as_str() {
            "none" => None,
            value => Some(cidr("vip6_cidr", value)?),
        };
        if !v4.is_ipv4() {
            return Err(ConfigErrorKind::Cidr {
                field: "vip_cidr",
                value: self.vip_cidr.clone(),
                error: CidrError(self.vip_cidr.clone()),
            });
        }
        if v6.is_some_and(|v6| v6.is_ipv4()) {
            return Err(ConfigErrorKind::Cidr {
                field: "vip6_cidr",
                value: self.vip6_cidr.clone(),
                error: CidrError(self.vip6_cidr.clone()),
            });
        }
        let reuse_after =
            self.vip_reuse_after
                .seconds()
                .map_err(|error| ConfigErrorKind::BadDuration {
                    field: "vip_reuse_after",
                    error,
                })?;
        if reuse_after < 2 * u64::from(self.ttl) {
            return Err(ConfigErrorKind::ReuseTooSoon {
                reuse_after,
                ttl: self.ttl,
            });
        }
        Ok(Pools {
            v4,
            v6,
            reuse_after,
        })
    }
}

/// Checks that no two services claim one name, naming the service that
/// claimed it first and the first one, in file order, that claims it again.
/// Keyed by the names the services already hold, so nothing is copied
/// (and hashed with foldhash: the file's names need no defence against
/// flooding).
fn check_unique_names(services: &[CheckedService]) -> Result<(), ConfigErrorKind> {
    let mut claimed: HashMap<&[u8], usize> =
        HashMap::with_capacity(services.iter().map(|s| s.names.len()).sum());
    for (index, service) in services.iter().enumerate() {
        for wire in &service.names {
            if let Some(first) = claimed.insert(wire, index) {
                return Err(ConfigErrorKind::DuplicateName {
                    first: services[first].name.clone(),
                    second: service.name.clone(),
                    dns_name: dns_name::to_text(wire),
                });
            }
        }
    }
    Ok(())
}

/// Checks a service's explicit VIPs: no address twice, at most
/// `MAX_ADDRS` of each family. (A service has a handful: comparing each
/// pair costs less than a set, which every service would allocate.)
fn check_vips(name: &str, vips: &[IpAddr]) -> Result<(), ConfigErrorKind> {
    for (i, vip) in vips.iter().enumerate() {
        if vips[..i].contains(vip) {
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

/// A list of CIDRs, if the file sets `field`, checked.
fn cidrs(
    field: &'static str,
    list: Option<&[String]>,
) -> Result<Option<Vec<Cidr>>, ConfigErrorKind> {
    list.map(|list| list.iter().map(|value| parse_cidr(field, value)).collect())
        .transpose()
}

/// One CIDR of the file's `field`.
fn parse_cidr(field: &'static str, value: &str) -> Result<Cidr, ConfigErrorKind> {
    value
        .parse::<Cidr>()
        .map_err(|error| ConfigErrorKind::Cidr {
            field,
            value: value.to_string(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::error::line_of;

    fn parse(text: &str) -> Result<Services, (Option<usize>, ConfigErrorKind)> {
        Services::parse(text)
    }

    #[test]
    fn vip_settings_parse_and_are_checked() {
        let config = Config::parse("vip_reuse_after: 10m\nvip6_cidr: none\n").unwrap();
        let pools = config.pools().unwrap();
        assert_eq!((pools.reuse_after, pools.v6), (600, None));
        assert_eq!(
            Config::parse("vip_reuse_after: 90\n")
                .unwrap()
                .vip_reuse_after
                .seconds(),
            Ok(90)
        );
        let text = "ttl: 5\nvip_reuse_after: 10 minutes\n";
        let kind = Config::parse(text).unwrap().pools().unwrap_err();
        assert!(matches!(kind, ConfigErrorKind::BadDuration { .. }));
        assert_eq!(line_of(text, &kind), Some(2));
        let config = Config::parse("ttl: 600\nvip_reuse_after: 10m\n").unwrap();
        assert!(matches!(
            config.pools(),
            Err(ConfigErrorKind::ReuseTooSoon { .. })
        ));
        let config = Config::parse("vip_cidr: fd00::/8\n").unwrap();
        assert!(matches!(
            config.pools(),
            Err(ConfigErrorKind::Cidr {
                field: "vip_cidr",
                ..
            })
        ));
    }

    #[test]
    fn semantic_errors_name_the_service_and_its_line() {
        let (_, kind) =
            parse("services:\n  - name: a\n    vips: [240.0.0.1, 240.0.0.1]\n").unwrap_err();
        assert!(matches!(kind, ConfigErrorKind::DuplicateVip { .. }));

        let nine: Vec<String> = (1..=9).map(|i| format!("240.0.0.{i}")).collect();
        let (_, kind) = parse(&format!(
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

        let (line, kind) = parse("services:\n  - name: a b\n    vips: [240.0.0.1]\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(matches!(kind, ConfigErrorKind::Name { .. }), "{kind}");
    }

    #[test]
    fn a_name_claimed_twice_is_an_error_naming_both_services() {
        let (line, kind) = parse(
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
            parse("zone: a..b\n").unwrap_err().1,
            ConfigErrorKind::Zone { .. }
        ));
        assert!(matches!(
            parse("ttl: 4294967295\n").unwrap_err().1,
            ConfigErrorKind::Ttl(_)
        ));
    }

    #[test]
    fn several_zones_are_checked_with_their_lines() {
        let services = parse(
            "authoritative: true\nzones:\n  - name: mesh\n  - name: mesh.local\n    authoritative: false\nservices:\n  - name: a\n    vips: [240.0.0.1]\n  - name: b\n    zone: mesh.local.\n    vips: [240.0.0.2]\n",
        )
        .unwrap();
        let apexes: Vec<&[u8]> = services.zones.iter().map(|z| z.apex_wire()).collect();
        assert_eq!(apexes, [&b"\x04mesh\x00"[..], b"\x04mesh\x05local\x00"]);
        // The file's authoritative is the default, a zone's own wins.
        assert!(services.zones[0].is_authoritative() && !services.zones[1].is_authoritative());
        assert_eq!(
            &*services.services[1].names[0],
            b"\x01b\x04mesh\x05local\x00"
        );

        // A file, the line it is rejected at, and whether the error is the right one.
        type Case = (&'static str, Option<usize>, fn(&ConfigErrorKind) -> bool);
        let cases: [Case; 4] = [
            ("zone: mesh\nzones:\n  - name: x\n", Some(2), |k| {
                matches!(k, ConfigErrorKind::ZoneAndZones)
            }),
            ("zones:\n  - name: a\n  - name: A.\n", Some(3), |k| {
                matches!(k, ConfigErrorKind::DuplicateZone(_))
            }),
            ("zones: []\n", Some(1), |k| {
                matches!(k, ConfigErrorKind::ZoneCount(0))
            }),
            (
                "zones:\n  - name: mesh\nservices:\n  - name: svc\n    zone: other\n",
                Some(4),
                |k| matches!(k, ConfigErrorKind::UnknownZone { .. }),
            ),
        ];
        for (text, line, kind) in cases {
            let (got_line, got) = parse(text).unwrap_err();
            assert!(kind(&got), "{text}: {got}");
            assert_eq!(got_line, line, "{text}: {got}");
        }
        let nine: String = (0..9).map(|i| format!("  - name: z{i}\n")).collect();
        assert!(matches!(
            parse(&format!("zones:\n{nine}")).unwrap_err().1,
            ConfigErrorKind::ZoneCount(9)
        ));
    }
}

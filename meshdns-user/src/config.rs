//! The services file: which names the zone holds and what they answer.
//!
//! ```yaml
//! zone: mesh                 # default "mesh"
//! ttl: 60                    # seconds, default 60
//! services:
//!   - name: redis
//!     vips: [240.0.0.100, "fd00:fd00::100"]
//! ```
//!
//! A file is either accepted whole or rejected with the line at fault; the
//! caller keeps serving the table it had.

use std::{fmt, net::IpAddr, path::PathBuf};

use meshdns_common::{MAX_ADDRS, MAX_SOA_NAMES_LEN};
use serde::Deserialize;

use crate::{
    dns_name::NameError,
    vip::{Cidr, CidrError, Pools},
};

/// Largest TTL a resolver must accept (RFC 2181 §8).
pub const MAX_TTL: u32 = (1 << 31) - 1;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The zone the services live in, without a trailing dot.
    #[serde(default = "default_zone")]
    pub zone: String,
    /// TTL of the answers, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Unknown names in the zone get NXDOMAIN (true) or go to the host's
    /// resolver (false, the default, as Kuma does).
    #[serde(default)]
    pub authoritative: bool,
    /// The zone's SOA, sent with NODATA and NXDOMAIN answers.
    #[serde(default)]
    pub soa: Soa,
    /// Where services without `vips` get their IPv4 VIP.
    #[serde(default = "default_vip_cidr")]
    pub vip_cidr: String,
    /// Where they get their IPv6 VIP; `none` for no IPv6 VIPs.
    #[serde(default = "default_vip6_cidr")]
    pub vip6_cidr: String,
    /// How long a freed VIP waits before another service may have it:
    /// seconds, or a number with `s`, `m` or `h`. At least twice the TTL.
    #[serde(default = "default_vip_reuse_after")]
    pub vip_reuse_after: Duration,
    /// Clients the resolver answers (CIDRs); others get REFUSED. Default:
    /// loopback and the subnets of the attached interface.
    #[serde(default)]
    pub allow_from: Option<Vec<String>>,
    /// How long past their TTL cached answers may be served while every
    /// upstream fails (RFC 8767); default 1 day.
    #[serde(default = "default_stale_max")]
    pub stale_max: Duration,
    #[serde(default)]
    pub services: Vec<Service>,
}

/// The zone's SOA record (RFC 1035 §3.3.13); every field has a default.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Soa {
    /// Primary name server; default `ns.<zone>.`.
    pub mname: Option<String>,
    /// Mailbox of the person responsible; default `hostmaster.<zone>.`.
    pub rname: Option<String>,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// TTL of negative answers, in seconds (RFC 2308 §4).
    pub minimum: u32,
}

impl Default for Soa {
    fn default() -> Self {
        Self {
            mname: None,
            rname: None,
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 86400,
            minimum: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub vips: Vec<IpAddr>,
}

fn default_zone() -> String {
    "mesh".to_string()
}

fn default_ttl() -> u32 {
    60
}

fn default_vip_cidr() -> String {
    "240.0.0.0/4".to_string()
}

fn default_vip6_cidr() -> String {
    "fd00:fd00::/64".to_string()
}

fn default_vip_reuse_after() -> Duration {
    Duration::Seconds(600)
}

fn default_stale_max() -> Duration {
    Duration::Seconds(86_400)
}

/// A length of time in whole seconds, written `90`, `90s`, `10m`, `1h` or `1d`;
/// read as written and checked with the rest of the file, so an error
/// names its line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

impl Duration {
    pub fn seconds(&self) -> Result<u64, String> {
        let text = match self {
            Duration::Seconds(seconds) => return Ok(*seconds),
            Duration::Text(text) => text,
        };
        let (number, unit) = text.split_at(
            text.find(|c: char| !c.is_ascii_digit())
                .unwrap_or(text.len()),
        );
        let scale = match unit {
            "" | "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => 0,
        };
        match number.parse::<u64>() {
            Ok(n) if scale > 0 => Ok(n * scale),
            _ => Err(format!(
                "{text:?} is not a duration such as 600, 90s, 10m or 1h"
            )),
        }
    }
}

/// Why a services file was rejected, and where.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub path: PathBuf,
    /// 1-based line of the fault, when it can be told.
    pub line: Option<usize>,
    pub kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.path.display(), self.kind),
            None => write!(f, "{}: {}", self.path.display(), self.kind),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("cannot read: {0}")]
    Read(#[from] std::io::Error),
    #[error("{0}")]
    Yaml(String),
    #[error("zone {zone:?}: {error}")]
    Zone { zone: String, error: NameError },
    #[error("ttl {0} is above the maximum of {MAX_TTL} (RFC 2181 §8)")]
    Ttl(u32),
    #[error("soa {field} {value:?}: {error}")]
    SoaName {
        field: &'static str,
        value: String,
        error: NameError,
    },
    #[error("soa mname and rname take {len} bytes together; the most is {MAX_SOA_NAMES_LEN}")]
    SoaNamesTooLong { len: usize },
    #[error("service {name:?}: {error}")]
    Name { name: String, error: NameError },
    #[error("{field} {value:?}: {error}")]
    Cidr {
        field: &'static str,
        value: String,
        error: crate::vip::CidrError,
    },
    #[error("vip_reuse_after is {reuse_after}s; it must be at least twice the ttl ({ttl}s)")]
    ReuseTooSoon { reuse_after: u64, ttl: u32 },
    #[error("{field}: {error}")]
    BadDuration { field: &'static str, error: String },
    #[error("{0}")]
    Vip(#[from] crate::vip::AllocError),
    #[error("service {name:?} has {count} IPv{family} vips; the most is {MAX_ADDRS}")]
    TooManyVips {
        name: String,
        family: u8,
        count: usize,
    },
    #[error("service {name:?} lists vip {vip} twice")]
    DuplicateVip { name: String, vip: IpAddr },
    #[error("services {first:?} and {second:?} both answer for {dns_name}")]
    DuplicateName {
        first: String,
        second: String,
        dns_name: String,
    },
}

impl Config {
    /// Parses a services file's text against the schema. Names and
    /// addresses are checked when a [`Table`](crate::table::Table) is built
    /// from it; [`Table::load`](crate::table::Table::load) does both.
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, ConfigErrorKind)> {
        // An empty file is an empty zone, not an error.
        let text = if text.trim().is_empty() { "{}" } else { text };
        serde_yaml::from_str(text).map_err(|e| {
            let line = e.location().map(|l| l.line());
            (line, ConfigErrorKind::Yaml(e.to_string()))
        })
    }

    /// The zone without a trailing dot.
    pub fn zone(&self) -> &str {
        self.zone.strip_suffix('.').unwrap_or(&self.zone)
    }

    /// The resolver's client allow list, if the file sets one, checked.
    pub fn allow_from(&self) -> Result<Option<Vec<Cidr>>, ConfigErrorKind> {
        let Some(list) = &self.allow_from else {
            return Ok(None);
        };
        list.iter()
            .map(|value| {
                value
                    .parse::<Cidr>()
                    .map_err(|error| ConfigErrorKind::Cidr {
                        field: "allow_from",
                        value: value.clone(),
                        error,
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// How long stale answers may be served, in seconds.
    pub fn stale_max(&self) -> Result<u64, ConfigErrorKind> {
        self.stale_max
            .seconds()
            .map_err(|error| ConfigErrorKind::BadDuration {
                field: "stale_max",
                error,
            })
    }

    /// The VIP pools, checked.
    pub fn pools(&self) -> Result<Pools, ConfigErrorKind> {
        let cidr = |field: &'static str, value: &str| {
            value
                .parse::<Cidr>()
                .map_err(|error| ConfigErrorKind::Cidr {
                    field,
                    value: value.to_string(),
                    error,
                })
        };
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

impl Service {
    /// The names this service answers for, relative to the zone: its name as
    /// written and, if it has underscores, the RFC 1035 form with dots
    /// (`echo-server_echo-example_svc_1010` and
    /// `echo-server.echo-example.svc.1010`), as Kuma does.
    pub fn dns_names(&self) -> Vec<String> {
        let mut names = vec![self.name.clone()];
        if self.name.contains('_') {
            names.push(self.name.replace('_', "."));
        }
        names
    }
}

/// The line a semantic error most likely refers to: the first line that
/// mentions the service (or zone, or ttl) it names. serde_yaml gives no
/// positions after parsing, and pointing at the right entry beats none.
pub(crate) fn line_of(text: &str, kind: &ConfigErrorKind) -> Option<usize> {
    let needle: String = match kind {
        ConfigErrorKind::Zone { zone, .. } => format!("zone: {zone}"),
        ConfigErrorKind::Ttl(ttl) => format!("ttl: {ttl}"),
        ConfigErrorKind::SoaName { value, .. } => value.clone(),
        ConfigErrorKind::SoaNamesTooLong { .. } => "soa".to_string(),
        ConfigErrorKind::Name { name, .. }
        | ConfigErrorKind::TooManyVips { name, .. }
        | ConfigErrorKind::DuplicateVip { name, .. } => name.clone(),
        ConfigErrorKind::Cidr { field, .. } => format!("{field}:"),
        ConfigErrorKind::ReuseTooSoon { .. } => "vip_reuse_after".to_string(),
        ConfigErrorKind::BadDuration { field, .. } => format!("{field}:"),
        ConfigErrorKind::Vip(crate::vip::AllocError::Collision { second, .. }) => second.clone(),
        ConfigErrorKind::Vip(crate::vip::AllocError::PoolExhausted { service, .. }) => {
            service.clone()
        }
        ConfigErrorKind::DuplicateName { second, .. } => second.clone(),
        ConfigErrorKind::Read(_) | ConfigErrorKind::Yaml(_) => return None,
    };
    text.lines()
        .position(|line| line.contains(needle.as_str()))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_schema_with_defaults() {
        let config = Config::parse(
            "services:\n  - name: redis\n    vips: [240.0.0.100, \"fd00:fd00::100\"]\n",
        )
        .unwrap();
        assert_eq!(config.zone(), "mesh");
        assert_eq!(config.ttl, 60);
        assert_eq!(config.services[0].vips.len(), 2);
    }

    #[test]
    fn empty_file_is_an_empty_zone() {
        let config = Config::parse("\n").unwrap();
        assert!(config.services.is_empty());
    }

    #[test]
    fn syntax_error_names_its_line() {
        let (line, kind) = Config::parse("zone: mesh\nservices:\n  - name: [\n").unwrap_err();
        assert_eq!(line, Some(3), "{kind}");
    }

    #[test]
    fn unknown_field_is_rejected_with_its_line() {
        let (line, kind) = Config::parse("zone: mesh\nttll: 5\n").unwrap_err();
        assert_eq!(line, Some(2));
        assert!(kind.to_string().contains("ttll"), "{kind}");
    }

    #[test]
    fn bad_vip_is_rejected_with_its_line() {
        let (line, _) = Config::parse(
            "services:\n  - name: a\n    vips: [240.0.0.1]\n  - name: b\n    vips: [240.0.0.300]\n",
        )
        .unwrap_err();
        assert_eq!(line, Some(5));
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
    fn kuma_names_answer_as_written_and_dotted() {
        let service = Service {
            name: "echo-server_echo-example_svc_1010".into(),
            vips: vec![],
        };
        assert_eq!(
            service.dns_names(),
            [
                "echo-server_echo-example_svc_1010",
                "echo-server.echo-example.svc.1010"
            ]
        );
    }
}

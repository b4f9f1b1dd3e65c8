//! Why a services file was rejected, and where: `file:line: reason`.

use std::{fmt, net::IpAddr, path::PathBuf};

use meshdns_common::{MAX_ADDRS, MAX_SOA_NAMES_LEN, MAX_ZONES};

use super::MAX_TTL;
use crate::{cidr::CidrError, dns_name::NameError, vip::AllocError};

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
    #[error("zone and zones: one or the other (zone is the one-zone shorthand)")]
    ZoneAndZones,
    #[error("zones lists {0}; from 1 to {MAX_ZONES} are served")]
    ZoneCount(usize),
    #[error("zone {0:?} is listed twice")]
    DuplicateZone(String),
    #[error("service {service:?}: zone {zone:?} is not one of zones")]
    UnknownZone { service: String, zone: String },
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
        error: CidrError,
    },
    #[error("{field} {value:?}: neither local, any, an address nor a CIDR such as 10.96.0.0/12")]
    Destination { field: &'static str, value: String },
    #[error("vip_reuse_after is {reuse_after}s; it must be at least twice the ttl ({ttl}s)")]
    ReuseTooSoon { reuse_after: u64, ttl: u32 },
    #[error("{field}: {error}")]
    BadDuration { field: &'static str, error: String },
    #[error("{0}")]
    Vip(#[from] AllocError),
    #[error("service {name:?} has {count} IPv{family} vips; the most is {MAX_ADDRS}")]
    TooManyVips {
        name: String,
        family: u8,
        count: usize,
    },
    #[error("service {name:?} lists vip {vip} twice")]
    DuplicateVip { name: String, vip: IpAddr },
    #[error("sources: {0}")]
    Source(String),
    #[error("forward: zone {0:?} is listed twice")]
    ForwardZoneTwice(String),
    #[error("forward: zone {0:?} has no upstreams")]
    ForwardNoUpstreams(String),
    #[error("forward: zone {zone:?}: upstream {value:?} is not an address (ADDR or ADDR:PORT)")]
    ForwardUpstream { zone: String, value: String },
    #[error("forward: zone {zone:?}: {why}")]
    ForwardZone { zone: String, why: String },
    #[error("forward: zone {0:?}: min_ttl is above max_ttl")]
    ForwardTtl(String),
    #[error("forward: zone {zone:?}: upstream {upstream} is meshdns itself (it listens there)")]
    ForwardToItself {
        zone: String,
        upstream: std::net::SocketAddr,
    },
    #[error("rate_limit: {field}: {why}")]
    RateLimit { field: &'static str, why: String },
    #[error("search: suffix {suffix:?}: {why}")]
    SearchSuffix { suffix: String, why: String },
    #[error("search: answer is not off, but there are no suffixes")]
    SearchNoSuffixes,
    #[error("services {first:?} and {second:?} both answer for {dns_name}")]
    DuplicateName {
        first: String,
        second: String,
        dns_name: String,
    },
}

/// `kind`, found in the services file `text`, with the line it most likely
/// refers to.
pub(crate) fn located(text: &str, kind: ConfigErrorKind) -> (Option<usize>, ConfigErrorKind) {
    (line_of(text, &kind), kind)
}

/// The line a semantic error most likely refers to: the first line that
/// mentions the service it names, or holds the setting (`zone`, `ttl`, ...)
/// as a YAML key (`ttl: 5`) or a JSON one (`"ttl": 5`). The parser gives no
/// positions after parsing, and pointing at the right entry beats none.
pub(crate) fn line_of(text: &str, kind: &ConfigErrorKind) -> Option<usize> {
    let key = |key: &str| Needle::Key(key.to_string());
    let needle = match kind {
        ConfigErrorKind::Zone { zone, .. } | ConfigErrorKind::DuplicateZone(zone) => {
            if text.contains("zones:") {
                Needle::Text(zone.clone())
            } else {
                key("zone")
            }
        }
        ConfigErrorKind::ZoneAndZones | ConfigErrorKind::ZoneCount(_) => key("zones"),
        ConfigErrorKind::UnknownZone { service, .. } => Needle::Text(service.clone()),
        ConfigErrorKind::Ttl(_) => key("ttl"),
        ConfigErrorKind::SoaName { value, .. } => Needle::Text(value.clone()),
        ConfigErrorKind::SoaNamesTooLong { .. } => key("soa"),
        ConfigErrorKind::Name { name, .. }
        | ConfigErrorKind::TooManyVips { name, .. }
        | ConfigErrorKind::DuplicateVip { name, .. } => Needle::Text(name.clone()),
        ConfigErrorKind::Cidr { field, .. } | ConfigErrorKind::Destination { field, .. } => {
            key(field)
        }
        ConfigErrorKind::ReuseTooSoon { .. } => key("vip_reuse_after"),
        ConfigErrorKind::BadDuration { field, .. } | ConfigErrorKind::RateLimit { field, .. } => {
            key(field)
        }
        ConfigErrorKind::Vip(AllocError::Collision { second, .. }) => Needle::Text(second.clone()),
        ConfigErrorKind::Vip(AllocError::PoolExhausted { service, .. }) => {
            Needle::Text(service.clone())
        }
        ConfigErrorKind::DuplicateName { second, .. } => Needle::Text(second.clone()),
        ConfigErrorKind::Source(_) => key("sources"),
        ConfigErrorKind::ForwardZoneTwice(zone)
        | ConfigErrorKind::ForwardNoUpstreams(zone)
        | ConfigErrorKind::ForwardTtl(zone)
        | ConfigErrorKind::ForwardUpstream { zone, .. }
        | ConfigErrorKind::ForwardZone { zone, .. }
        | ConfigErrorKind::ForwardToItself { zone, .. } => Needle::Forward(zone.clone()),
        ConfigErrorKind::SearchSuffix { suffix, .. } => Needle::Text(suffix.clone()),
        ConfigErrorKind::SearchNoSuffixes => key("search"),
        ConfigErrorKind::Read(_) | ConfigErrorKind::Yaml(_) => return None,
    };
    text.lines()
        .position(|line| needle.is_in(line))
        .map(|i| i + 1)
}

/// What [`line_of`] looks for.
enum Needle {
    /// A setting's name, as a key.
    Key(String),
    /// A `forward:` entry's zone: a line that says `zone:` and names it.
    Forward(String),
    /// A value, anywhere in the line.
    Text(String),
}

impl Needle {
    fn is_in(&self, line: &str) -> bool {
        match self {
            Needle::Key(key) => {
                line.trim_start().starts_with(&format!("{key}:"))
                    || line.contains(&format!("\"{key}\""))
            }
            Needle::Text(text) => line.contains(text.as_str()),
            Needle::Forward(zone) => line.contains("zone") && line.contains(zone.as_str()),
        }
    }
}

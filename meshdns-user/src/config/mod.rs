//! The services file: which names the zone holds and what they answer.
//!
//! ```yaml
//! zone: mesh                 # default "mesh"
//! ttl: 60                    # seconds, default 60
//! services:
//!   - name: redis
//!     vips: [240.0.0.100, "fd00:fd00::100"]
//! sources:                   # more names, from the mesh's control plane
//!   - kuma_vips: /run/meshdns/kuma-vips
//! ```
//!
//! A file is either accepted whole or rejected with the line at fault; the
//! caller keeps serving the table it had.

pub mod destinations;
mod error;
pub mod forward;
pub mod rate_limit;
pub mod search;
mod validate;
mod zone;

use std::net::IpAddr;

use serde::Deserialize;

use crate::source::SourceConfig;

pub(crate) use error::located;
pub use error::{ConfigError, ConfigErrorKind};
pub use meshdns_common::MAX_ZONES;
pub use validate::{CheckedService, MAX_TTL, ResolverSettings, Services};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The zone the services live in, without a trailing dot; default
    /// `mesh`. The one-zone shorthand of `zones`.
    #[serde(default)]
    pub zone: Option<String>,
    /// Several zones (at most `MAX_ZONES`): each its own apex, SOA and
    /// `authoritative`; services are in the first unless they say.
    #[serde(default)]
    pub zones: Option<Vec<ZoneSettings>>,
    /// TTL of the answers, in seconds.
    #[serde(default = "default_ttl")]
    pub ttl: u32,
    /// Unknown names in the zone get NXDOMAIN (true) or go to the host's
    /// resolver (false, the default, as Kuma does). With `zones`, what a
    /// zone that does not say has.
    #[serde(default)]
    pub authoritative: bool,
    /// The zone's SOA, sent with NODATA and NXDOMAIN answers. With
    /// `zones`, what a zone that does not say has.
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
    /// The destination addresses the fast path answers for: `local` (the
    /// default: where the resolver listens and the interfaces' own
    /// addresses), `any`, or a list of addresses and CIDRs (and `local`).
    #[serde(default)]
    pub fast_path_destinations: Option<destinations::DestinationsConfig>,
    /// How many answers a second each client prefix gets over UDP (see
    /// [`rate_limit`]); default none.
    #[serde(default)]
    pub rate_limit: Option<rate_limit::RateLimitConfig>,
    /// The pods' addresses (CIDRs), which the default `allow_from` adds.
    /// Default: the destinations of the node's routes out of the
    /// interfaces `--iface` matches (a routed CNI has one per pod).
    #[serde(default)]
    pub pod_cidrs: Option<Vec<String>>,
    /// Where names outside the mesh go, by zone (longest match); default:
    /// every name to `--upstream`, or the node's resolv.conf.
    #[serde(default)]
    pub forward: Vec<forward::ForwardConfig>,
    /// The search-list expansions of mesh names answered here (`<mesh
    /// name>.<suffix>`); default none.
    #[serde(default)]
    pub search: search::SearchConfig,
    /// How long past their TTL cached answers may be served while every
    /// upstream fails (RFC 8767); default 1 day.
    #[serde(default = "default_stale_max")]
    pub stale_max: Duration,
    /// Where names come from besides `services` (see [`crate::source`]);
    /// the file's own names win over theirs.
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
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

/// One zone of `zones:`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneSettings {
    /// The apex, without a trailing dot.
    pub name: String,
    /// Default: the file's `authoritative`.
    #[serde(default)]
    pub authoritative: Option<bool>,
    /// Default: the file's `soa` (its names then default to this zone's).
    #[serde(default)]
    pub soa: Option<Soa>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: String,
    #[serde(default)]
    pub vips: Vec<IpAddr>,
    /// The zone its names are in, of `zones`; default the first.
    #[serde(default)]
    pub zone: Option<String>,
}

/// The zone of a file that names none.
const DEFAULT_ZONE: &str = "mesh";

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

/// How long stale answers may be served when the file does not say: a day.
const DEFAULT_STALE_MAX: u64 = 86_400;

fn default_stale_max() -> Duration {
    Duration::Seconds(DEFAULT_STALE_MAX)
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

impl Config {
    /// Parses a services file's text against the schema; [`Config::validate`]
    /// checks what the schema cannot, and [`Services::parse`] does both.
    pub fn parse(text: &str) -> Result<Self, (Option<usize>, ConfigErrorKind)> {
        // An empty file is an empty zone, not an error.
        let text = if text.trim().is_empty() { "{}" } else { text };
        // A file that is a JSON document (a program's, typically, with a
        // million names) is read by a JSON parser, about ten times faster
        // than the YAML one; JSON is YAML 1.2, so the result is the same.
        // Anything else is YAML's to read and to report on, JSON that does
        // not parse included: `{zone: mesh}` is YAML's flow style.
        if text.trim_start().starts_with('{')
            && let Ok(config) = serde_json::from_str(text)
        {
            return Ok(config);
        }
        // One line, for the log: `file:line: reason`, not a drawn snippet.
        let mut options = serde_saphyr::Options::default();
        options.with_snippet = false;
        // The parser's default budget (250,000 nodes, a million events)
        // stops a file of about 80,000 services. What a plain file holds
        // grows with its length, and aliases, the way a small file could
        // expand into a huge one, keep their own default limits.
        if let Some(budget) = options.budget.as_mut() {
            budget.max_nodes = budget.max_nodes.max(text.len());
            budget.max_events = budget.max_events.max(2 * text.len());
            budget.max_total_scalar_bytes = budget.max_total_scalar_bytes.max(text.len());
        }
        serde_saphyr::from_str_with_options(text, options).map_err(|e| {
            let line = e.location().and_then(|l| usize::try_from(l.line()).ok());
            (line, ConfigErrorKind::Yaml(e.to_string()))
        })
    }

    /// The first zone (where services are unless they say), without a
    /// trailing dot.
    pub fn zone(&self) -> &str {
        let zone = match (&self.zone, &self.zones) {
            (Some(zone), _) => zone.as_str(),
            (None, Some(zones)) if !zones.is_empty() => zones[0].name.as_str(),
            _ => DEFAULT_ZONE,
        };
        zone.strip_suffix('.').unwrap_or(zone)
    }

    /// Every zone with its settings, in the file's order: `zones`, or the
    /// one `zone` with the file's own `authoritative` and `soa`.
    pub fn zone_settings(&self) -> Vec<(&str, bool, &Soa)> {
        fn trim(name: &str) -> &str {
            name.strip_suffix('.').unwrap_or(name)
        }
        match &self.zones {
            Some(zones) => zones
                .iter()
                .map(|z| {
                    (
                        trim(&z.name),
                        z.authoritative.unwrap_or(self.authoritative),
                        z.soa.as_ref().unwrap_or(&self.soa),
                    )
                })
                .collect(),
            None => vec![(self.zone(), self.authoritative, &self.soa)],
        }
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
    fn a_json_file_reads_as_its_yaml_twin() {
        let yaml = "zone: mesh\nttl: 30\nvip_reuse_after: 10m\nservices:\n  - name: redis\n    vips: [240.0.0.100, \"fd00:fd00::100\"]\n  - name: auto\n";
        let json = r#" {"zone": "mesh", "ttl": 30, "vip_reuse_after": "10m", "services": [
            {"name": "redis", "vips": ["240.0.0.100", "fd00:fd00::100"]}, {"name": "auto"}]}"#;
        assert_eq!(Config::parse(json).unwrap(), Config::parse(yaml).unwrap());
        // YAML's flow style is not JSON, and still YAML.
        assert_eq!(Config::parse("{zone: mesh, ttl: 30}").unwrap().ttl, 30);
        // JSON that breaks the schema is reported as YAML reports it, with its line.
        let (line, kind) =
            Config::parse("{\n\"zone\": \"mesh\",\n\"ttl\": \"sixty\"\n}").unwrap_err();
        assert_eq!(line, Some(3), "{kind}");
        // And what the checks after parsing find, at the line of its key.
        let text = "{\n  \"zone\": \"mesh\",\n  \"vip_cidr\": \"fd00::/8\"\n}";
        let (line, kind) = Services::parse(text).unwrap_err();
        assert!(matches!(kind, ConfigErrorKind::Cidr { .. }), "{kind}");
        assert_eq!(line, Some(3), "{kind}");
    }

    #[test]
    fn pod_cidrs_are_read_and_a_bad_one_is_rejected_at_its_line() {
        let services = Services::parse("pod_cidrs: [10.244.0.0/16, \"fd00:10::/56\"]\n").unwrap();
        let pods: Vec<String> = services
            .resolver
            .pod_cidrs
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(pods, ["10.244.0.0/16", "fd00:10::/56"]);
        assert_eq!(
            Services::parse("zone: mesh\n").unwrap().resolver.pod_cidrs,
            None
        );
        let (line, kind) =
            Services::parse("zone: mesh\npod_cidrs:\n  - 10.244.0.0/33\n").unwrap_err();
        assert!(
            matches!(
                kind,
                ConfigErrorKind::Cidr {
                    field: "pod_cidrs",
                    ..
                }
            ),
            "{kind}"
        );
        assert_eq!(line, Some(2), "{kind}");
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
    fn type_error_names_its_line() {
        let (line, kind) = Config::parse("zone: mesh\nttl: sixty\n").unwrap_err();
        assert_eq!(line, Some(2), "{kind}");
        let (line, kind) =
            Config::parse("zone: mesh\nservices:\n  - name: a\n    vips: 7\n").unwrap_err();
        assert_eq!(line, Some(4), "{kind}");
        assert!(
            !kind.to_string().contains('\n'),
            "one line for the log: {kind}"
        );
    }

    #[test]
    fn a_file_of_more_services_than_the_parsers_default_budget_parses() {
        // About 80,000 services exhaust the default budget of 250,000 nodes.
        let mut text = String::from("services:\n");
        for i in 0..150_000 {
            text.push_str(&format!("  - name: svc-{i}\n    vips: [240.0.0.1]\n"));
        }
        let config = Config::parse(&text).unwrap_or_else(|(line, kind)| panic!("{line:?}: {kind}"));
        assert_eq!(config.services.len(), 150_000);
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
    fn kuma_names_answer_as_written_and_dotted() {
        let service = Service {
            name: "echo-server_echo-example_svc_1010".into(),
            vips: vec![],
            zone: None,
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

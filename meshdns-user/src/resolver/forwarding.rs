//! Where a forwarded question goes: the zones of the services file's
//! `forward:` list, each with its own upstreams (and their health, retries
//! and timeouts) and TTL bounds; the longest zone that holds the name wins,
//! and the root's upstreams take the rest. A question never goes to
//! another zone's upstreams: when its own fail, the cache serves it stale,
//! or it gets SERVFAIL.

use std::{net::SocketAddr, sync::Arc};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{RData, RecordType},
};

use super::upstream::{Settings, Upstreams};
use crate::{
    config::forward::{ForwardZone, TtlBounds, Upstreams as Configured},
    dns_name,
};

/// The forwarding zones, the longest apex first, the root last.
pub struct Forwarding {
    zones: Vec<Arc<Forwarder>>,
}

/// One zone's forwarding.
pub struct Forwarder {
    /// Its apex in wire format, lowercased (`\x07cluster\x05local\x00`;
    /// `\x00` for the root).
    apex: Vec<u8>,
    /// As the metrics and logs show it: `cluster.local`, `.`.
    pub zone: String,
    pub upstreams: Upstreams,
    pub ttl: TtlBounds,
    /// What it was made from, to keep it (and its upstreams' health) when
    /// a reload leaves it as it was.
    made_from: (Vec<SocketAddr>, bool, TtlBounds),
}

impl Forwarding {
    /// Every name to `root`: what a file without `forward:` means.
    pub fn root_only(root: &[SocketAddr]) -> Self {
        Self::new(&[], root, &[], None)
    }

    /// The file's `zones`; the root's upstreams are the file's if it lists
    /// `.`, else `root` (`--upstream`, or resolv.conf's). `resolv_conf`: the
    /// node's nameservers, less meshdns itself, for a zone that names
    /// them. A zone of `previous` made from the same settings is kept as
    /// it was, with its upstreams' health.
    pub fn new(
        zones: &[ForwardZone],
        root: &[SocketAddr],
        resolv_conf: &[SocketAddr],
        previous: Option<&Forwarding>,
    ) -> Self {
        let mut forwarders: Vec<Arc<Forwarder>> = zones
            .iter()
            .map(|zone| {
                let addrs = match &zone.upstreams {
                    Configured::ResolvConf => resolv_conf.to_vec(),
                    Configured::Addrs(addrs) => addrs.clone(),
                };
                forwarder(
                    zone.shown(),
                    &zone.zone,
                    addrs,
                    zone.force_tcp,
                    zone.ttl,
                    previous,
                )
            })
            .collect();
        if !zones.iter().any(|zone| zone.zone.is_empty()) {
            forwarders.push(forwarder(
                ".",
                "",
                root.to_vec(),
                false,
                TtlBounds::default(),
                previous,
            ));
        }
        // Longest apex first: the first that holds a name is its zone.
        forwarders.sort_by_key(|f| std::cmp::Reverse(f.apex.len()));
        Self { zones: forwarders }
    }

    /// The zone `name` (lowercased, wire format) is forwarded by.
    pub fn for_name(&self, name: &[u8]) -> &Forwarder {
        self.zones
            .iter()
            .find(|zone| dns_name::is_at_or_below(name, &zone.apex))
            .map(|zone| zone.as_ref())
            .expect("the root holds every name")
    }

    /// Every zone, the longest first.
    pub fn zones(&self) -> impl Iterator<Item = &Forwarder> {
        self.zones.iter().map(|zone| zone.as_ref())
    }
}

/// A zone's forwarder: `previous`'s if made from the same settings.
fn forwarder(
    shown: &str,
    zone: &str,
    addrs: Vec<SocketAddr>,
    force_tcp: bool,
    ttl: TtlBounds,
    previous: Option<&Forwarding>,
) -> Arc<Forwarder> {
    let apex = wire_name(zone);
    let made_from = (addrs, force_tcp, ttl);
    if let Some(kept) = previous
        .into_iter()
        .flat_map(|p| p.zones.iter())
        .find(|f| f.apex == apex && f.made_from == made_from)
    {
        return kept.clone();
    }
    Arc::new(Forwarder {
        apex,
        zone: shown.to_string(),
        upstreams: Upstreams::new(&made_from.0, Settings::default()).with_tcp_first(force_tcp),
        ttl,
        made_from,
    })
}

/// `zone` (dotted, lowercase, no trailing dot; empty for the root) in
/// wire format.
fn wire_name(zone: &str) -> Vec<u8> {
    if zone.is_empty() {
        return vec![0];
    }
    dns_name::from_text(zone).expect("the services file's zones are checked")
}

impl Forwarder {
    /// `answer` with its TTLs within the zone's bounds: the answers' and
    /// additional records', and a negative answer's SOA (RFC 2308 §5: how
    /// long it is cached).
    pub fn bound(&self, answer: &mut Message) {
        if self.ttl == TtlBounds::default() {
            return;
        }
        let negative =
            answer.metadata.response_code == ResponseCode::NXDomain || answer.answers.is_empty();
        for record in answer
            .answers
            .iter_mut()
            .chain(answer.additionals.iter_mut())
        {
            if record.record_type() != RecordType::OPT {
                record.ttl = self.ttl.positive(record.ttl);
            }
        }
        if negative {
            for record in &mut answer.authorities {
                if matches!(record.data, RData::SOA(_)) {
                    record.ttl = self.ttl.negative(record.ttl);
                }
            }
        }
    }
}

/// Where in the state folder the agent writes its forwarding, for
/// `meshdns lookup` (which reads pins and files, not the agent).
pub const VIEW_FILE: &str = "forwarding.json";

/// One zone's forwarding as `meshdns lookup` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ZoneView {
    /// `cluster.local`, or `.` for the rest.
    pub zone: String,
    pub upstreams: Vec<SocketAddr>,
}

impl Forwarding {
    /// Every zone and its upstreams, the longest first.
    pub fn view(&self) -> Vec<ZoneView> {
        self.zones()
            .map(|zone| ZoneView {
                zone: zone.zone.clone(),
                upstreams: zone.upstreams.addrs(),
            })
            .collect()
    }
}

/// The zone of `view` that forwards `name` (dotted, any case): the longest
/// that holds it; `None` if the view is empty.
pub fn zone_of<'a>(view: &'a [ZoneView], name: &str) -> Option<&'a ZoneView> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    view.iter().find(|zone| {
        zone.zone == "." || name == zone.zone || name.ends_with(&format!(".{}", zone.zone))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(name: &str, addr: &str) -> ForwardZone {
        ForwardZone {
            zone: name.into(),
            upstreams: Configured::Addrs(vec![addr.parse().unwrap()]),
            force_tcp: false,
            ttl: TtlBounds::default(),
        }
    }

    #[test]
    fn the_longest_zone_that_holds_a_name_forwards_it() {
        let forwarding = Forwarding::new(
            &[
                zone("cluster.local", "198.19.0.10:53"),
                zone("svc.cluster.local", "198.19.0.11:53"),
            ],
            &["198.18.0.53:53".parse().unwrap()],
            &[],
            None,
        );
        let zone_of = |name: &str| forwarding.for_name(&wire_name(name)).zone.clone();
        assert_eq!(
            zone_of("redis.default.svc.cluster.local"),
            "svc.cluster.local"
        );
        assert_eq!(zone_of("svc.cluster.local"), "svc.cluster.local");
        assert_eq!(zone_of("node.cluster.local"), "cluster.local");
        assert_eq!(zone_of("cluster.local"), "cluster.local");
        // A label boundary, not a suffix of bytes.
        assert_eq!(zone_of("notcluster.local"), ".");
        assert_eq!(zone_of("example.org"), ".");
        assert_eq!(zone_of(""), ".");
        let root = forwarding.for_name(&wire_name("example.org"));
        assert_eq!(root.upstreams.addrs(), ["198.18.0.53:53".parse().unwrap()]);
    }

    #[test]
    fn the_files_root_zone_takes_the_place_of_the_default_and_resolv_conf_is_read_for_it() {
        let mut root = zone("", "192.0.2.1:53");
        root.upstreams = Configured::ResolvConf;
        let resolv_conf = ["192.0.2.53:53".parse().unwrap()];
        let forwarding = Forwarding::new(
            &[root],
            &["198.18.0.53:53".parse().unwrap()],
            &resolv_conf,
            None,
        );
        assert_eq!(forwarding.zones().count(), 1);
        assert_eq!(
            forwarding
                .for_name(&wire_name("a.example"))
                .upstreams
                .addrs(),
            resolv_conf
        );
    }

    #[test]
    fn lookup_finds_a_names_zone_in_the_view_as_the_resolver_does() {
        let forwarding = Forwarding::new(
            &[zone("cluster.local", "198.19.0.10:53")],
            &["198.18.0.53:53".parse().unwrap()],
            &[],
            None,
        );
        let view = forwarding.view();
        for name in [
            "Redis.Default.Svc.Cluster.Local.",
            "cluster.local",
            "notcluster.local",
            "example.org",
        ] {
            assert_eq!(
                zone_of(&view, name).unwrap().zone,
                forwarding
                    .for_name(&wire_name(&name.trim_end_matches('.').to_ascii_lowercase()))
                    .zone,
                "{name}"
            );
        }
    }

    #[test]
    fn a_zone_a_reload_leaves_as_it_was_keeps_its_upstreams() {
        let zones = [zone("cluster.local", "198.19.0.10:53")];
        let root = ["198.18.0.53:53".parse().unwrap()];
        let before = Forwarding::new(&zones, &root, &[], None);
        let after = Forwarding::new(&zones, &root, &[], Some(&before));
        assert!(Arc::ptr_eq(&before.zones[0], &after.zones[0]));
        let changed = Forwarding::new(
            &[zone("cluster.local", "198.19.0.12:53")],
            &root,
            &[],
            Some(&before),
        );
        assert!(!Arc::ptr_eq(&before.zones[0], &changed.zones[0]));
        assert!(
            Arc::ptr_eq(&before.zones[1], &changed.zones[1]),
            "the root kept"
        );
    }
}

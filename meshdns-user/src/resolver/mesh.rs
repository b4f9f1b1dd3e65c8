//! [`Mesh`]: the part of the resolver that comes from the services file.

use std::{net::IpAddr, sync::Arc};

use hickory_proto::op::Message;

use super::{
    authority::{self, Verdict, Zones},
    cache::{Cache, Key, Limits, Templates},
    wire::Template,
};
use crate::{cidr::Cidr, config::ResolverSettings, table::Table};

/// What comes from the services file, swapped whole on reload: the table,
/// the zone view of it, who may ask, and the replies given from it so far.
pub struct Mesh {
    pub table: Arc<Table>,
    pub(super) zones: Zones,
    /// What the file says of the resolver.
    settings: ResolverSettings,
    pub(super) allow_from: Vec<Cidr>,
    /// The zone's replies as bytes, for the fast lane (`wire`): made the
    /// first time a question is answered the whole way, kept as long as
    /// this table serves, bounded (most recently asked first).
    pub(super) replies: Arc<Cache>,
}

/// Whom the resolver answers when the services file has no `allow_from`:
/// loopback and the interfaces' subnets, and the pods: the file's
/// `pod_cidrs`, else the node's routes to the pods' interfaces (a routed
/// CNI gives its pods no subnet on the node).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DefaultClients {
    pub local: Vec<Cidr>,
    pub routed_pods: Vec<Cidr>,
}

impl DefaultClients {
    /// Whom to answer under `settings`.
    pub fn allow_from(&self, settings: &ResolverSettings) -> Vec<Cidr> {
        if let Some(allow_from) = &settings.allow_from {
            return allow_from.clone();
        }
        let pods = settings.pod_cidrs.as_ref().unwrap_or(&self.routed_pods);
        self.local.iter().chain(pods).copied().collect()
    }
}

/// Bounds of `Mesh::replies`: a node's working set of mesh names and types
/// (about 200 bytes each), not the whole table: the XDP program answers
/// most of them before they get here.
const MESH_REPLIES: Limits = Limits {
    max_entries: 65_536,
    max_bytes: 16 << 20,
    stale_max: std::time::Duration::ZERO,
    shards: 16,
};

impl Mesh {
    /// `defaults` applies if the file says nothing of whom to answer.
    pub fn new(table: Arc<Table>, settings: &ResolverSettings, defaults: &DefaultClients) -> Self {
        let zones = Zones::of(&table);
        Self {
            table,
            zones,
            settings: settings.clone(),
            allow_from: defaults.allow_from(settings),
            replies: Arc::new(Cache::new(MESH_REPLIES)),
        }
    }

    /// The same table and replies, answering whom `defaults` now says if
    /// the file does not; `None` if that changes nothing.
    pub fn with_defaults(&self, defaults: &DefaultClients) -> Option<Self> {
        let allow_from = defaults.allow_from(&self.settings);
        (allow_from != self.allow_from).then(|| Self {
            table: self.table.clone(),
            zones: self.zones.clone(),
            settings: self.settings.clone(),
            allow_from,
            replies: self.replies.clone(),
        })
    }

    /// Keeps the zone's replies to questions for `key` (without EDNS and
    /// with it) as bytes for the fast lane, if the zone answers them.
    pub(super) fn remember(&self, key: Key) {
        // Kept already: a question the lane cannot take (a reply that
        // needs TC, say) comes the whole way every time.
        if self.replies.contains(&key) {
            return;
        }
        let reply = |edns: bool| match authority::answer(
            &self.table,
            &self.zones,
            &key.template_query(edns)?,
        ) {
            Verdict::Answer(reply) => Some(reply),
            Verdict::Forward => None,
        };
        let Some(plain) = reply(false) else {
            return;
        };
        let template =
            |reply: Option<Message>| Template::new(reply?.to_vec().ok()?, key.name.len());
        let rcode = plain.metadata.response_code;
        let templates = Templates {
            plain: template(Some(plain)),
            edns: template(reply(true)),
        };
        self.replies.insert_lasting(key, rcode, templates);
    }

    pub(super) fn allows(&self, client: IpAddr) -> bool {
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.allow_from.iter().any(|cidr| cidr.contains(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::cidrs;

    #[test]
    fn the_file_says_whom_to_answer_else_the_node_and_its_pods() {
        let defaults = DefaultClients {
            local: cidrs(&["127.0.0.0/8"]),
            routed_pods: cidrs(&["198.18.8.1/32", "198.18.8.2/32"]),
        };
        let mut settings = ResolverSettings::default();
        let shown = |list: Vec<Cidr>| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(
            shown(defaults.allow_from(&settings)),
            ["127.0.0.0/8", "198.18.8.1/32", "198.18.8.2/32"],
            "no allow_from, no pod_cidrs: the routes' pods"
        );
        settings.pod_cidrs = Some(cidrs(&["10.244.0.0/16"]));
        assert_eq!(
            shown(defaults.allow_from(&settings)),
            ["127.0.0.0/8", "10.244.0.0/16"],
            "pod_cidrs over the routes"
        );
        settings.allow_from = Some(cidrs(&["192.0.2.0/24"]));
        assert_eq!(
            shown(defaults.allow_from(&settings)),
            ["192.0.2.0/24"],
            "allow_from over everything"
        );
    }
}

//! [`Mesh`]: the part of the resolver that comes from the services file.

use std::{net::IpAddr, sync::Arc};

use hickory_proto::op::Message;

use super::{
    authority::{self, Verdict, Zones},
    cache::{Cache, Key, Limits, Templates},
    wire::{Copied, Template},
};
use crate::{cidr::Cidr, config::ResolverSettings, table::Table};

/// What comes from the services file, swapped whole on reload: the table,
/// the zone view of it, who may ask, and the replies given from it so far.
pub struct Mesh {
    pub table: Arc<Table>,
    pub(super) zones: Zones,
    pub(super) allow_from: Vec<Cidr>,
    /// The zone's replies as bytes, for the fast lane (`wire`): made the
    /// first time a question is answered the whole way, kept as long as
    /// this table serves, bounded (most recently asked first).
    pub(super) replies: Cache,
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
    /// `default_allow_from` applies if the file says nothing.
    pub fn new(
        table: Arc<Table>,
        settings: &ResolverSettings,
        default_allow_from: &[Cidr],
    ) -> Self {
        let zones = Zones::of(&table);
        let allow_from = settings
            .allow_from
            .clone()
            .unwrap_or_else(|| default_allow_from.to_vec());
        Self {
            table,
            zones,
            allow_from,
            replies: Cache::new(MESH_REPLIES),
        }
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
        let template = |reply: Option<Message>| {
            Template::new(reply?.to_vec().ok()?, key.name.len(), Copied::RdCd)
        };
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

//! [`Mesh`]: the part of the resolver that comes from the services file.

use std::{net::IpAddr, sync::Arc};

use super::authority::Zone;
use crate::{cidr::Cidr, config::ResolverSettings, table::Table};

/// What comes from the services file, swapped whole on reload: the table,
/// the zone view of it, and who may ask.
pub struct Mesh {
    pub table: Arc<Table>,
    pub(super) zone: Zone,
    pub(super) allow_from: Vec<Cidr>,
}

impl Mesh {
    /// `default_allow_from` applies if the file says nothing.
    pub fn new(
        table: Arc<Table>,
        settings: &ResolverSettings,
        default_allow_from: &[Cidr],
    ) -> Self {
        let zone = Zone::of(&table);
        let allow_from = settings
            .allow_from
            .clone()
            .unwrap_or_else(|| default_allow_from.to_vec());
        Self {
            table,
            zone,
            allow_from,
        }
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

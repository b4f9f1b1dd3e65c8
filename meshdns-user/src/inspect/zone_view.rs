//! The zones, as `status` and `dump` show them.

use meshdns_common::{MAX_ZONES, ZoneConfig};
use serde::Serialize;

use crate::dns_name;

/// A zone, as `status` and `dump` show it.
#[derive(Debug, Serialize)]
pub struct ZoneView {
    /// The apex, with its trailing dot.
    pub name: String,
    pub authoritative: bool,
}

impl ZoneView {
    /// The zones the program uses, in the order it walks them.
    pub(super) fn all(zones: &[ZoneConfig; MAX_ZONES]) -> Vec<Self> {
        zones
            .iter()
            .filter(|z| z.apex_len > 0)
            .map(|z| Self {
                name: dns_name::to_text(z.apex_wire()),
                authoritative: z.is_authoritative(),
            })
            .collect()
    }

    /// `mesh. (authoritative), mesh.local.`; `none` while the agent
    /// changes zones (every query is passed meanwhile).
    pub(super) fn list(zones: &[Self]) -> String {
        if zones.is_empty() {
            return "none (every query passed)".into();
        }
        zones
            .iter()
            .map(|z| {
                if z.authoritative {
                    format!("{} (authoritative)", z.name)
                } else {
                    z.name.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

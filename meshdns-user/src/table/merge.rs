//! The names of the sources, added to the table the services file built.
//!
//! Precedence is fixed: the services file's names first, then each source
//! in the order of `sources:`, and within a source its names in its own
//! order (a folder's files by name). A name already taken is not added;
//! if it would have answered differently, that is a conflict: a warning
//! and a count, never a refused table. A source name that is not a valid
//! DNS name is left out and counted too; one outside every zone is
//! answered as written (exact), if the zones leave room for such names.

use std::{
    collections::{BTreeMap, btree_map::Entry as Slot},
    sync::Arc,
};

use meshdns_common::{MAX_ZONES, ServiceRecord, ZoneConfig};

use super::{Entry, record_of, zone_of};
use crate::{dns_name, source::SourceName};

/// The names a source gives, for [`Table::build_with_sources`](super::Table::build_with_sources).
pub struct SourceNames<'a> {
    /// How logs and metrics name the source.
    pub id: &'a str,
    /// TTL of its answers.
    pub ttl: u32,
    /// In the source's order of precedence.
    pub names: Vec<&'a SourceName>,
}

/// What a source's names came to in the table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Merged {
    /// Names of the source that the table answers.
    pub names: usize,
    /// Names the file or an earlier source (or file) had already, with
    /// another answer.
    pub conflicts: usize,
    /// Of `names`, those outside every zone, answered as written.
    pub exact: usize,
    /// Names outside the zones left out: 8 zones leave no room for them.
    pub outside_zone: usize,
    /// Names that are not valid DNS names.
    pub invalid: usize,
}

/// Warnings logged per source and reload, so that a broken source does not
/// flood the log; the counts have the rest.
const WARNINGS_PER_SOURCE: usize = 5;

/// Adds each source's names to `entries` (the services file's, in wire
/// format, lowercased) where they are in one of `zones` and free.
pub(super) fn merge(
    entries: &mut BTreeMap<Box<[u8]>, Entry>,
    zones: &[ZoneConfig],
    sources: &[SourceNames<'_>],
) -> Vec<Merged> {
    let mut merged = Vec::with_capacity(sources.len());
    for (index, source) in sources.iter().enumerate() {
        // Entry 0 is the services file's.
        let source_index = u16::try_from(index + 1).unwrap_or(u16::MAX);
        let mut counts = Merged::default();
        let mut warned = 0;
        let mut warn = |what: std::fmt::Arguments<'_>| {
            warned += 1;
            if warned <= WARNINGS_PER_SOURCE {
                tracing::warn!(source = source.id, "{what}");
            }
        };
        for name in &source.names {
            let wire = match dns_name::from_text(&name.name) {
                Ok(wire) => wire,
                Err(error) => {
                    counts.invalid += 1;
                    warn(format_args!("{:?} left out: {error}", name.name));
                    continue;
                }
            };
            // A name in no zone is answered as written (Kuma's data plane
            // looks every query up in its table), if the program's array
            // has an entry left to stand for such names.
            let exact = zone_of(zones, &wire).is_none();
            if exact && zones.len() >= MAX_ZONES {
                counts.outside_zone += 1;
                warn(format_args!(
                    "{:?} left out: outside the zones, and {MAX_ZONES} zones leave no room for names outside them",
                    name.name
                ));
                continue;
            }
            let record = record_of(&name.addresses, source.ttl);
            match entries.entry(wire.into_boxed_slice()) {
                Slot::Vacant(slot) => {
                    slot.insert(Entry {
                        service: Some(Arc::from(name.name.as_str())),
                        source: source_index,
                        record,
                    });
                    counts.names += 1;
                    counts.exact += usize::from(exact);
                }
                Slot::Occupied(taken) => {
                    if !answers_alike(&taken.get().record, &record) {
                        counts.conflicts += 1;
                        warn(format_args!(
                            "{:?} answers {:?} here, but {} before it has it already",
                            name.name,
                            name.addresses,
                            taken
                                .get()
                                .service
                                .as_deref()
                                .map_or("the zone".to_string(), |s| format!("{s:?}")),
                        ));
                    }
                }
            }
        }
        if warned > WARNINGS_PER_SOURCE {
            tracing::warn!(
                source = source.id,
                more = warned - WARNINGS_PER_SOURCE,
                "more names left out"
            );
        }
        merged.push(counts);
    }
    merged
}

/// Whether two records answer alike (TTLs aside): the same name given
/// twice the same way is no conflict.
fn answers_alike(a: &ServiceRecord, b: &ServiceRecord) -> bool {
    let (v4, v6) = (usize::from(a.v4_count), usize::from(a.v6_count));
    a.v4_count == b.v4_count
        && a.v6_count == b.v6_count
        && a.v4[..v4] == b.v4[..v4]
        && a.v6[..v6] == b.v6[..v6]
}

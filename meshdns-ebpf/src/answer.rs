//! Phase 3's last step: `decide` looks the name up (its key built) and
//! settles on an answer, NODATA, NXDOMAIN or a pass. It does not touch the
//! frame.

use meshdns_common::{
    CompactRecord, Counter, MAX_ADDRS, NameClass, NameKey, NameKey48, NameKey112, SEARCH_CNAME,
    SEARCH_NXDOMAIN, ServiceRecord, ZoneConfig,
};

use crate::dns::*;
use crate::maps::{NAMES_FULL, NAMES_SLOT, NAMES48, NAMES112, NAMES256, Scratch};
use crate::parse::Query;

/// What the reply says.
pub(crate) struct Decision {
    pub(crate) counter: Counter,
    /// Answer records to write, from `addresses`.
    pub(crate) answers: usize,
    pub(crate) addresses: Addresses,
    /// The zone's SOA goes in the authority section (NODATA, NXDOMAIN).
    pub(crate) zone: *const ZoneConfig,
}

/// Where the answers' addresses and TTL are: a map value, valid for the
/// whole run of the program (RCU). Two kinds, so that the verifier knows
/// how many addresses each may hold.
#[derive(Clone, Copy)]
pub(crate) enum Addresses {
    /// NXDOMAIN: none.
    None,
    /// At most one of each family, in the names map's value.
    Compact(*const CompactRecord),
    /// Up to `MAX_ADDRS` of each, in `NAMES_FULL`.
    Full(*const ServiceRecord),
}

impl Addresses {
    /// Whether the record has no address of either family: the apex or
    /// an empty non-terminal (or NXDOMAIN's none).
    #[inline(always)]
    pub(crate) fn is_empty(self) -> bool {
        // SAFETY: map values, valid for the whole run of the program (RCU).
        unsafe {
            match self {
                Addresses::None => true,
                Addresses::Compact(record) => (*record).v4_count | (*record).v6_count == 0,
                Addresses::Full(record) => (*record).v4_count | (*record).v6_count == 0,
            }
        }
    }

    /// The TTL of the record they are in (0 for none).
    #[inline(always)]
    pub(crate) fn ttl(self) -> u32 {
        // SAFETY: map values, valid for the whole run of the program (RCU).
        unsafe {
            match self {
                Addresses::None => 0,
                Addresses::Compact(record) => (*record).ttl,
                Addresses::Full(record) => (*record).ttl,
            }
        }
    }
}

/// Looks the name (its key built) up in the zone's table and decides on an
/// answer, NODATA, NXDOMAIN or a pass. For a search expansion the name is
/// the mesh name: its records after a CNAME, or NXDOMAIN, as the pattern
/// says, and a pass if the table does not hold it.
#[inline(always)]
pub(crate) fn decide(
    scratch: &Scratch,
    query: &Query,
    zone_ref: &ZoneConfig,
) -> Result<Decision, Counter> {
    let zone: *const ZoneConfig = zone_ref;
    let record = lookup(&scratch.key, query.lookup_len());

    let decision = match record {
        Some(compact) => {
            // SAFETY: map values stay valid for the whole run of the
            // program (RCU), and the agent never writes one in place.
            let compact_ref = unsafe { &*compact };
            let (addresses, v4_count, v6_count) = if compact_ref.full == 0 {
                let counts = (compact_ref.v4_count, compact_ref.v6_count);
                (Addresses::Compact(compact), counts.0, counts.1)
            } else {
                // The agent writes NAMES_FULL before pointing a name at it,
                // and removes it only once no name points there: missing,
                // it is the resolver's to answer.
                let full = NAMES_FULL
                    .get_ptr(compact_ref.full)
                    .ok_or(Counter::PassUnknownName)?;
                // SAFETY: as above.
                let full_ref = unsafe { &*full };
                (Addresses::Full(full), full_ref.v4_count, full_ref.v6_count)
            };
            let (available, counter) = if query.qtype == TYPE_A as u64 {
                (v4_count as usize, Counter::AnsweredA)
            } else {
                (v6_count as usize, Counter::AnsweredAaaa)
            };
            let answers = if available > MAX_ADDRS {
                MAX_ADDRS
            } else {
                available
            };
            // The names outside the zones have no SOA for a NODATA: the
            // resolver answers that.
            if answers == 0 && zone_ref.apex_len == 0 {
                return Err(Counter::PassNotInZone);
            }
            let counter = match query.expansion as u32 {
                SEARCH_CNAME => Counter::AnsweredSearchCname,
                // The name is the mesh name's, which exists: the client
                // is told no such name under this suffix, whatever the
                // family.
                SEARCH_NXDOMAIN => {
                    return finish(
                        query,
                        zone_ref,
                        Decision {
                            counter: Counter::AnsweredSearchNxdomain,
                            answers: 0,
                            addresses,
                            zone,
                        },
                    );
                }
                _ if answers == 0 => Counter::AnsweredNodata,
                _ => counter,
            };
            Decision {
                counter,
                answers,
                addresses,
                zone,
            }
        }
        // The name under the suffix is no mesh name: not ours.
        None if query.expansion != 0 => return Err(Counter::PassNotInZone),
        None => {
            // Not one of the names outside the zones: in no zone.
            if zone_ref.apex_len == 0 {
                return Err(Counter::PassNotInZone);
            }
            if !zone_ref.is_authoritative() {
                return Err(Counter::PassUnknownName);
            }
            Decision {
                counter: Counter::AnsweredNxdomain,
                answers: 0,
                addresses: Addresses::None,
                zone,
            }
        }
    };
    finish(query, zone_ref, decision)
}

/// `decision`, if its reply fits in a message the program may send.
#[inline(always)]
fn finish(query: &Query, zone: &ZoneConfig, decision: Decision) -> Result<Decision, Counter> {
    if reply_len(query, &decision, zone) > MAX_MSG_LEN {
        return Err(Counter::PassTooLarge);
    }
    Ok(decision)
}

/// The record of the name in `key` (`key_len` bytes, zeros after), from
/// the map of its length class: the key handed to the kernel is the first
/// 48 or 112 bytes of `key` when the name fits, read in place (by
/// reference: by value would copy the key onto the stack).
#[inline(always)]
fn lookup(key: &NameKey, key_len: usize) -> Option<*const CompactRecord> {
    match NameClass::of(key_len) {
        NameClass::Short => {
            // SAFETY: NameKey48 is the first 48 bytes of a NameKey, with
            // its alignment (8); the name fits, so they are the whole key.
            let short = unsafe { &*(key as *const NameKey as *const NameKey48) };
            NAMES48
                .get_value_ptr_mut(NAMES_SLOT, short)
                .map(|p| p.cast_const())
        }
        NameClass::Medium => {
            // SAFETY: as above, 112 bytes.
            let medium = unsafe { &*(key as *const NameKey as *const NameKey112) };
            NAMES112
                .get_value_ptr_mut(NAMES_SLOT, medium)
                .map(|p| p.cast_const())
        }
        NameClass::Long => NAMES256
            .get_value_ptr_mut(NAMES_SLOT, key)
            .map(|p| p.cast_const()),
    }
}

/// Length of the reply message.
#[inline(always)]
fn reply_len(query: &Query, decision: &Decision, zone: &ZoneConfig) -> usize {
    let mut len = query.question_end();
    if query.expansion == SEARCH_CNAME as u64 {
        len += RR_FIXED_LEN + query.key_len;
    }
    if query.expansion == SEARCH_NXDOMAIN as u64 {
        // The question alone: no record of ours is the asked name's.
    } else if decision.answers > 0 {
        let rr_len = if query.qtype == TYPE_A as u64 {
            A_RR_LEN
        } else {
            AAAA_RR_LEN
        };
        len += decision.answers * rr_len;
    } else {
        len += 2 + zone.soa_rr_len as usize;
    }
    if query.edns_do().is_some() {
        len += OPT_RR_LEN;
    }
    len
}

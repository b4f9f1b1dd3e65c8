//! Phases 3 and 4: `decide` looks the name up and settles on an answer,
//! NODATA, NXDOMAIN or a pass; `build_reply` writes the reply over the query
//! in the scratch buffer. Neither touches the frame.

use meshdns_common::{
    CompactRecord, Counter, EDNS_UDP_PAYLOAD_SIZE, MAX_ADDRS, MAX_NAME_LEN, MAX_SOA_RR_LEN,
    NameClass, NameKey, NameKey48, NameKey112, ServiceRecord, ZONE_KEY, ZoneConfig,
};

use crate::dns::*;
use crate::maps::{NAMES_FULL, NAMES48, NAMES112, NAMES256, Scratch, ZONE};
use crate::parse::Query;

/// What the reply says.
pub(crate) struct Decision {
    pub(crate) counter: Counter,
    /// Answer records to write, from `addresses`.
    answers: usize,
    addresses: Addresses,
    /// The zone's SOA goes in the authority section (NODATA, NXDOMAIN).
    zone: *const ZoneConfig,
}

/// Where the answers' addresses and TTL are: a map value, valid for the
/// whole run of the program (RCU). Two kinds, so that the verifier knows
/// how many addresses each may hold.
#[derive(Clone, Copy)]
enum Addresses {
    /// NXDOMAIN: none.
    None,
    /// At most one of each family, in the names map's value.
    Compact(*const CompactRecord),
    /// Up to `MAX_ADDRS` of each, in `NAMES_FULL`.
    Full(*const ServiceRecord),
}

/// Looks the name up and decides on an answer, NODATA, NXDOMAIN or a pass.
#[inline(always)]
pub(crate) fn decide(scratch: &Scratch, query: &Query) -> Result<Decision, Counter> {
    let zone = ZONE.get_ptr(ZONE_KEY).ok_or(Counter::PassNotInZone)?;
    // SAFETY: map values stay valid for the whole run of the program (RCU).
    let zone_ref = unsafe { &*zone };
    // Most names a node resolves are not the mesh's: they leave here, after
    // comparing a few bytes, without a hash lookup. Every name in the table
    // is in the zone, so this loses no answer.
    if !in_zone(scratch, query.name_len, zone_ref) {
        return Err(Counter::PassNotInZone);
    }
    let record = lookup(&scratch.key, query.name_len);

    let decision = match record {
        Some(compact) => {
            // SAFETY: as above.
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
            let (available, counter) = if query.qtype == TYPE_A {
                (v4_count as usize, Counter::AnsweredA)
            } else {
                (v6_count as usize, Counter::AnsweredAaaa)
            };
            let answers = if available > MAX_ADDRS {
                MAX_ADDRS
            } else {
                available
            };
            Decision {
                counter: if answers == 0 {
                    Counter::AnsweredNodata
                } else {
                    counter
                },
                answers,
                addresses,
                zone,
            }
        }
        None => {
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
    if reply_len(query, &decision, zone_ref) > MAX_MSG_LEN {
        return Err(Counter::PassTooLarge);
    }
    Ok(decision)
}

/// The record of the name in `key` (`name_len` bytes, zeros after), from
/// the map of its length class: the key handed to the kernel is the first
/// 48 or 112 bytes of `key` when the name fits, read in place (by
/// reference: by value would copy the key onto the stack).
#[inline(always)]
fn lookup(key: &NameKey, name_len: usize) -> Option<*const CompactRecord> {
    match NameClass::of(name_len) {
        NameClass::Short => {
            // SAFETY: NameKey48 is the first 48 bytes of a NameKey, with
            // its alignment (8); the name fits, so they are the whole key.
            let short = unsafe { &*(key as *const NameKey as *const NameKey48) };
            NAMES48.get_ptr(short)
        }
        NameClass::Medium => {
            // SAFETY: as above, 112 bytes.
            let medium = unsafe { &*(key as *const NameKey as *const NameKey112) };
            NAMES112.get_ptr(medium)
        }
        NameClass::Long => NAMES256.get_ptr(key),
    }
}

/// Whether the name in `scratch.key` is the zone's apex or below it: its
/// last `apex_len` bytes are the apex, starting at a label boundary.
#[inline(always)]
fn in_zone(scratch: &Scratch, name_len: usize, zone: &ZoneConfig) -> bool {
    let apex_len = zone.apex_len as usize;
    if apex_len == 0 || apex_len > name_len {
        return false;
    }
    let start = (name_len - apex_len) & 0xff;
    if (scratch.label_starts[start >> 6] >> (start & 63)) & 1 == 0 {
        return false;
    }
    for i in 0..MAX_NAME_LEN {
        if i >= apex_len {
            break;
        }
        if scratch.key.wire[(start + i) & 0xff] != zone.apex[i] {
            return false;
        }
    }
    true
}

/// Length of the reply message.
#[inline(always)]
fn reply_len(query: &Query, decision: &Decision, zone: &ZoneConfig) -> usize {
    let mut len = query.question_end();
    if decision.answers > 0 {
        let rr_len = if query.qtype == TYPE_A {
            A_RR_LEN
        } else {
            AAAA_RR_LEN
        };
        len += decision.answers * rr_len;
    } else {
        len += 2 + zone.soa_rr_len as usize;
    }
    if query.edns_do.is_some() {
        len += OPT_RR_LEN;
    }
    len
}

/// Writes `answers` answer records of `qtype` at `at`, from the first
/// addresses of `v4` or `v6`; returns where they end. Generic over how many
/// addresses there can be, so that each kind of record gets its own bound.
#[inline(always)]
fn write_answers<const N: usize>(
    msg: &mut Msg,
    mut at: usize,
    qtype: u16,
    ttl: u32,
    v4: &[[u8; 4]; N],
    v6: &[[u8; 16]; N],
    answers: usize,
) -> usize {
    let ttl = ttl.to_be_bytes();
    for i in 0..N {
        if i >= answers {
            break;
        }
        // Every answer's owner is the question's name.
        msg.put(at, &name_pointer(HDR_LEN));
        msg.put_u16(at + 4, CLASS_IN);
        msg.put(at + 6, &ttl);
        if qtype == TYPE_A {
            msg.put_u16(at + 2, TYPE_A);
            msg.put_u16(at + 10, 4);
            msg.put(at + RR_FIXED_LEN, &v4[i]);
            at += A_RR_LEN;
        } else {
            msg.put_u16(at + 2, TYPE_AAAA);
            msg.put_u16(at + 10, 16);
            msg.put(at + RR_FIXED_LEN, &v6[i]);
            at += AAAA_RR_LEN;
        }
    }
    at
}

/// Writes the reply over the query in `msg` and returns its length. The
/// header and question are the query's, with the header's flags and counts
/// rewritten, so the ID and the client's name bytes (DNS 0x20) are kept.
#[inline(always)]
pub(crate) fn build_reply(msg: &mut Msg, query: &Query, decision: &Decision) -> usize {
    let rcode = if decision.counter == Counter::AnsweredNxdomain {
        RCODE_NXDOMAIN
    } else {
        0
    };
    let flags = FLAG_QR | FLAG_AA | FLAG_RA | (query.flags & (FLAG_RD | FLAG_CD)) | rcode;
    msg.put_u16(HDR_FLAGS, flags);
    msg.put_u16(HDR_ANCOUNT, decision.answers as u16);
    msg.put_u16(HDR_NSCOUNT, (decision.answers == 0) as u16);
    msg.put_u16(HDR_ARCOUNT, query.edns_do.is_some() as u16);

    let mut at = query.question_end();
    if decision.answers > 0 {
        let qtype = query.qtype;
        at = match decision.addresses {
            Addresses::Compact(record) => {
                // SAFETY: a map value, valid for the whole run (RCU).
                let record = unsafe { &*record };
                let (v4, v6) = (
                    core::array::from_ref(&record.v4),
                    core::array::from_ref(&record.v6),
                );
                write_answers(msg, at, qtype, record.ttl, v4, v6, decision.answers)
            }
            Addresses::Full(record) => {
                // SAFETY: as above.
                let record = unsafe { &*record };
                let answers = decision.answers;
                write_answers(msg, at, qtype, record.ttl, &record.v4, &record.v6, answers)
            }
            Addresses::None => at,
        };
    } else {
        // SAFETY: as above.
        let zone = unsafe { &*decision.zone };
        // The SOA's owner is the apex: the end of the question's name.
        let apex_at = HDR_LEN + query.name_len - zone.apex_len as usize;
        msg.put(at, &name_pointer(apex_at));
        at += 2;
        let soa_len = zone.soa_rr_len as usize;
        for i in 0..MAX_SOA_RR_LEN {
            if i >= soa_len {
                break;
            }
            msg.bytes[(at + i) & 0x1ff] = zone.soa_rr[i];
        }
        at += soa_len;
    }

    if let Some(do_bit) = query.edns_do {
        msg.bytes[at & 0x1ff] = 0;
        msg.put_u16(at + OPT_TYPE, TYPE_OPT);
        msg.put_u16(at + OPT_TYPE + 2, EDNS_UDP_PAYLOAD_SIZE);
        msg.put(at + 5, &[0, 0]); // extended RCODE, version
        msg.put_u16(at + OPT_FLAGS, if do_bit { EDNS_FLAG_DO } else { 0 });
        msg.put_u16(at + OPT_RDLENGTH, 0);
        at += OPT_RR_LEN;
    }
    // Zeros up to the next multiple of 4, for the checksum.
    msg.put(at, &[0, 0, 0]);
    at
}

//! Phases 3 and 4: `decide` looks the name up and settles on an answer,
//! NODATA, NXDOMAIN or a pass; `build_reply` writes what the reply appends
//! to the question into the scratch section buffer. Neither touches the
//! frame.

use meshdns_common::{
    CompactRecord, Counter, EDNS_UDP_PAYLOAD_SIZE, EXACT_NAMES_ENTRY, MAX_ADDRS, MAX_NAME_LEN,
    MAX_SOA_RR_LEN, MAX_ZONES, NameClass, NameKey, NameKey48, NameKey112, ServiceRecord,
    ZONE_EXACT_NAMES, ZoneConfig, name::lowercase_word,
};

use crate::checksum;
use crate::dns::*;
use crate::maps::{NAMES_FULL, NAMES_SLOT, NAMES48, NAMES112, NAMES256, Scratch, ZONE, ZONE_SLOT};
use crate::parse::Query;
use crate::verifier::forget_exact_value;

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

/// The zone that holds the question's name: the first, in the agent's
/// order (the longest apex first), whose apex the name is or is below.
/// Most names a node resolves are in none: they leave here, after
/// comparing a few bytes per zone, without a key built or a hash lookup.
/// Every name in the table is in a zone, so this loses no answer.
#[inline(always)]
// The unrolled walk's last step sets `ended` for no step after it.
#[allow(unused_assignments)]
pub(crate) fn zone_of(
    scratch: &mut Scratch,
    query: &Query,
) -> Result<&'static ZoneConfig, Counter> {
    let mut found = None;
    let mut ended = false;
    let mut exact_names = false;
    // Unrolled by hand: as a loop the verifier could not merge its walks.
    macro_rules! try_zone {
        ($index:expr) => {
            if found.is_none() && !ended && $index < MAX_ZONES as u32 {
                let zone = ZONE
                    .get_value(ZONE_SLOT, &$index)
                    .ok_or(Counter::PassNotInZone)?;
                if $index == 0 {
                    exact_names = zone.flags & ZONE_EXACT_NAMES != 0;
                }
                // The zones end at the first empty entry.
                if zone.apex_len == 0 {
                    ended = true;
                } else {
                    // A copy for each zone: the compare's arithmetic links
                    // what it learns of the length back to the register it
                    // came from, and a length known differently after each
                    // zone would have the verifier walk the next zone once
                    // for each.
                    let name_len = forget_exact_value(&mut scratch.laundry, query.name_len, 0xff);
                    if in_zone(scratch, name_len, zone) {
                        found = Some($index);
                    }
                }
            }
        };
    }
    try_zone!(0u32);
    try_zone!(1u32);
    try_zone!(2u32);
    try_zone!(3u32);
    try_zone!(4u32);
    try_zone!(5u32);
    try_zone!(6u32);
    try_zone!(7u32);
    // A name in no zone may still be one of the names outside them, if
    // the table has any: looked up then, and only then.
    let index = match found {
        Some(index) => index,
        None if exact_names => EXACT_NAMES_ENTRY,
        None => return Err(Counter::PassNotInZone),
    };
    // Each zone matched leaves the walk knowing another index (and, in a
    // pointer, another entry): one index again, looked up once, so that
    // what follows is walked once, not once per zone.
    let index = forget_exact_value(&mut scratch.laundry, index as usize, MAX_ZONES - 1) as u32;
    ZONE.get_value(ZONE_SLOT, &index)
        .ok_or(Counter::PassNotInZone)
}

/// Looks the name (its key built) up in the zone's table and decides on an
/// answer, NODATA, NXDOMAIN or a pass.
#[inline(always)]
pub(crate) fn decide(
    scratch: &Scratch,
    query: &Query,
    zone_ref: &ZoneConfig,
) -> Result<Decision, Counter> {
    let zone: *const ZoneConfig = zone_ref;
    let record = lookup(&scratch.key, query.name_len);

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

/// Whether the question's name is the zone's apex or below it: its last
/// `apex_len` bytes, lowercased, are the apex, starting at a label
/// boundary. Read from the message as sent (the key is not built yet),
/// eight bytes at a time.
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
    let apex = zone.apex.as_ptr() as *const u64;
    for w in 0..(MAX_NAME_LEN + 1) / 8 {
        if 8 * w >= apex_len {
            break;
        }
        // What follows the name (its type and class) is not compared.
        let past = (8 * w + 8).saturating_sub(apex_len) & 7;
        let mask = u64::MAX >> (8 * past);
        let word = lowercase_word(scratch.msg.word_at(HDR_LEN + start + 8 * w)) & mask;
        // SAFETY: word `w` of the 256-byte apex, at the start of a map
        // value, which is 8-byte aligned; zeros after its length.
        if word != unsafe { core::ptr::read(apex.add(w)) } {
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

/// Writes `answers` answer records of `qtype` into `section` from
/// `SECTION_ANSWERS` on, from the first addresses of `v4` or `v6`; returns
/// where they end and their checksum's partial sum. Each record is whole
/// 4-byte words at aligned offsets (16 bytes for A, 28 for AAAA). Generic
/// over how many addresses there can be, so that each kind of record gets
/// its own bound.
#[inline(always)]
fn write_answers<const N: usize>(
    section: &mut Section,
    qtype: u16,
    ttl: u32,
    v4: &[[u8; 4]; N],
    v6: &[[u8; 16]; N],
    answers: usize,
) -> (usize, u64) {
    let [t0, t1, t2, t3] = ttl.to_be_bytes();
    // Every answer's owner is the question's name, at offset 12.
    let [p0, p1] = name_pointer(HDR_LEN);
    let mut at = SECTION_ANSWERS;
    let mut sum = 0;
    for i in 0..N {
        if i >= answers {
            break;
        }
        if qtype == TYPE_A {
            sum += section.put32(at, [p0, p1, 0, TYPE_A as u8])
                + section.put32(at + 4, [0, CLASS_IN as u8, t0, t1])
                + section.put32(at + 8, [t2, t3, 0, 4])
                + section.put32(at + 12, v4[i]);
            at += A_RR_LEN;
        } else {
            let a = &v6[i];
            sum += section.put32(at, [p0, p1, 0, TYPE_AAAA as u8])
                + section.put32(at + 4, [0, CLASS_IN as u8, t0, t1])
                + section.put32(at + 8, [t2, t3, 0, 16])
                + section.put32(at + 12, [a[0], a[1], a[2], a[3]])
                + section.put32(at + 16, [a[4], a[5], a[6], a[7]])
                + section.put32(at + 20, [a[8], a[9], a[10], a[11]])
                + section.put32(at + 24, [a[12], a[13], a[14], a[15]]);
            at += AAAA_RR_LEN;
        }
    }
    (at, sum)
}

/// Writes the authority section of a negative answer into `section`: the
/// owner pointer to the apex (the end of the question's name) just before
/// `SECTION_ANSWERS`, and the zone's SOA record from there, eight bytes at
/// a time. Returns where it ends and its checksum's partial sum.
#[inline(always)]
fn write_soa(section: &mut Section, query: &Query, zone: &ZoneConfig) -> (usize, u64) {
    let apex_at = HDR_LEN + query.name_len - zone.apex_len as usize;
    let pointer = name_pointer(apex_at);
    section.put(SECTION_ANSWERS - 2, &pointer);
    // The section starts at the pointer, the record two bytes on: an even
    // distance, so its words sum as they are.
    let mut sum = checksum::sum_words(&pointer);
    let soa_len = zone.soa_rr_len as usize;
    let words = zone.soa_rr.as_ptr() as *const u64;
    for w in 0..MAX_SOA_RR_LEN / 8 {
        if 8 * w >= soa_len {
            break;
        }
        // SAFETY: word `w` of the 160-byte record; a map value is 8-byte
        // aligned and `soa_rr` at a multiple of 8 in it (asserted in
        // meshdns-common). Bytes past its length are zeros, and what
        // follows overwrites them.
        let word = unsafe { core::ptr::read(words.add(w)) };
        sum += section.put64(SECTION_ANSWERS + 8 * w, word);
    }
    (SECTION_ANSWERS + soa_len, sum)
}

/// What the reply appends to the question, in `Section::bytes[start..end]`.
pub(crate) struct Reply {
    pub(crate) flags: u16,
    pub(crate) ancount: u16,
    pub(crate) nscount: u16,
    pub(crate) arcount: u16,
    pub(crate) start: usize,
    pub(crate) end: usize,
    /// The appended bytes' checksum partial sum, as if they started at an
    /// even offset.
    pub(crate) sum: u64,
}

impl Reply {
    /// Length of what is appended to the question.
    pub(crate) fn appended_len(&self) -> usize {
        self.end - self.start
    }
}

/// Writes what the reply appends to the query's question (the answers or
/// the SOA, then the OPT record) into `section`, and returns the header's
/// new flags and counts. The header's ID and the question are the query's,
/// so the client's name bytes (DNS 0x20) are kept; only the header's flags
/// and counts change there.
#[inline(always)]
pub(crate) fn build_reply(section: &mut Section, query: &Query, decision: &Decision) -> Reply {
    let rcode = if decision.counter == Counter::AnsweredNxdomain {
        RCODE_NXDOMAIN
    } else {
        0
    };
    let flags = FLAG_QR | FLAG_AA | FLAG_RA | (query.flags as u16 & (FLAG_RD | FLAG_CD)) | rcode;

    let (start, (mut at, mut sum)) = if decision.answers > 0 {
        let qtype = query.qtype as u16;
        let written = match decision.addresses {
            Addresses::Compact(record) => {
                // SAFETY: a map value, valid for the whole run (RCU).
                let record = unsafe { &*record };
                let (v4, v6) = (
                    core::array::from_ref(&record.v4),
                    core::array::from_ref(&record.v6),
                );
                write_answers(section, qtype, record.ttl, v4, v6, decision.answers)
            }
            Addresses::Full(record) => {
                // SAFETY: as above.
                let record = unsafe { &*record };
                let answers = decision.answers;
                write_answers(section, qtype, record.ttl, &record.v4, &record.v6, answers)
            }
            Addresses::None => (SECTION_ANSWERS, 0),
        };
        (SECTION_ANSWERS, written)
    } else {
        // SAFETY: as above.
        let zone = unsafe { &*decision.zone };
        (SECTION_ANSWERS - 2, write_soa(section, query, zone))
    };

    if let Some(do_bit) = query.edns_do() {
        let [size_hi, size_lo] = EDNS_UDP_PAYLOAD_SIZE.to_be_bytes();
        let flags_hi = if do_bit { (EDNS_FLAG_DO >> 8) as u8 } else { 0 };
        // Root owner, TYPE OPT, CLASS = UDP payload size, extended RCODE
        // and version 0, flags, RDLENGTH 0; and a zero past its end, so
        // that it sums as whole words.
        let opt = [
            0,
            0,
            TYPE_OPT as u8,
            size_hi,
            size_lo,
            0,
            0,
            flags_hi,
            0,
            0,
            0,
            0,
        ];
        section.put(at, &opt);
        // Summed as if at an even distance from the section's start, then
        // moved to where it is.
        let odd = (at - start) & 1 != 0;
        sum += checksum::at_parity(checksum::sum_words(&opt), odd);
        at += OPT_RR_LEN;
    }
    Reply {
        flags,
        ancount: decision.answers as u16,
        nscount: (decision.answers == 0) as u16,
        arcount: query.edns_do().is_some() as u16,
        start,
        end: at,
        sum,
    }
}

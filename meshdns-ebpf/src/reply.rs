//! Phase 4: `build_reply` writes what the reply appends to the question
//! (a search expansion's CNAME, the answers or the SOA, the OPT record)
//! into the scratch section buffer, summing it. It does not touch the
//! frame.

use meshdns_common::{
    Counter, EDNS_UDP_PAYLOAD_SIZE, MAX_NAME_LEN, MAX_SOA_RR_LEN, NameKey, SEARCH_CNAME,
    SEARCH_NXDOMAIN, ZoneConfig,
};

use crate::answer::{Addresses, Decision};
use crate::checksum;
use crate::dns::*;
use crate::maps::Scratch;
use crate::parse::Query;
use crate::verifier::forget_exact_value;

/// What the reply appends to the question, in `Section::bytes[start..end]`.
#[derive(Clone, Copy)]
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

/// Writes what the reply appends to the query's question (a search
/// expansion's CNAME, the answers or the SOA, then the OPT record) into
/// `section`, and returns the header's new flags and counts. The header's
/// ID and the question are the query's, so the client's name bytes (DNS
/// 0x20) are kept; only the header's flags and counts change there.
///
/// The answers start at `SECTION_ANSWERS` and the SOA two bytes after its
/// owner pointer at `SECTION_ANSWERS - 2`, so that their words are
/// aligned; a CNAME goes just before them, ending there.
#[inline(always)]
pub(crate) fn build_reply(scratch: &mut Scratch, query: &Query, decision: &Decision) -> Reply {
    let Scratch {
        section,
        key,
        laundry,
        ..
    } = scratch;
    let expansion = query.expansion as u32;
    let flags = reply_flags(query, decision);
    // SAFETY: a map value, valid for the whole run (RCU).
    let zone = unsafe { &*decision.zone };

    let negative = decision.answers == 0 && expansion != SEARCH_NXDOMAIN;
    let records = if negative {
        SECTION_ANSWERS - 2
    } else {
        SECTION_ANSWERS
    };
    // Where the records' owner is in the reply (the question's name, or
    // the CNAME's target), where the apex is for the SOA's owner, and
    // whether the records start at an odd distance from the section.
    let (start, mut sum, owner, apex_at, odd) = if expansion == SEARCH_CNAME {
        // The copy walks a word at a time up to a length it learns
        // nothing of: the lengths of what follows stay one.
        let words_len = forget_exact_value(laundry, query.key_len, 0xff);
        let (start, sum) = write_cname(section, key, query.key_len, words_len, decision, records);
        let target = query.question_end() + RR_FIXED_LEN;
        let apex_at = target + query.key_len - zone.apex_len as usize;
        (start, sum, target, apex_at, query.key_len & 1 != 0)
    } else {
        let apex_at = HDR_LEN + query.name_len - zone.apex_len as usize;
        (records, 0, HDR_LEN, apex_at, false)
    };

    let (at, records_sum) = if decision.answers > 0 {
        let qtype = query.qtype as u16;
        let owner = name_pointer(owner);
        let answers = decision.answers;
        match decision.addresses {
            Addresses::Compact(record) => {
                // SAFETY: a map value, valid for the whole run (RCU).
                let record = unsafe { &*record };
                let (v4, v6) = (
                    core::array::from_ref(&record.v4),
                    core::array::from_ref(&record.v6),
                );
                write_answers(section, qtype, owner, record.ttl, v4, v6, answers)
            }
            Addresses::Full(record) => {
                // SAFETY: as above.
                let record = unsafe { &*record };
                write_answers(
                    section, qtype, owner, record.ttl, &record.v4, &record.v6, answers,
                )
            }
            Addresses::None => (SECTION_ANSWERS, 0),
        }
    } else if negative {
        write_soa(section, apex_at, zone)
    } else {
        (SECTION_ANSWERS, 0)
    };
    sum += checksum::at_parity(records_sum, odd);

    let (at, opt_sum) = write_opt(section, at, start, query);
    sum += opt_sum;
    Reply {
        flags,
        ancount: (decision.answers + (expansion == SEARCH_CNAME) as usize) as u16,
        nscount: negative as u16,
        arcount: query.edns_do().is_some() as u16,
        start,
        end: at,
        sum,
    }
}

/// The header's flags of the reply `decision` makes: a response, with the
/// query's RD and CD, authoritative unless it answers a search expansion
/// (its asked name is in a zone of another server's: the cluster's), and
/// NXDOMAIN's rcode where it is one.
#[inline(always)]
fn reply_flags(query: &Query, decision: &Decision) -> u16 {
    let nxdomain = matches!(
        decision.counter,
        Counter::AnsweredNxdomain | Counter::AnsweredSearchNxdomain
    );
    let rcode = if nxdomain { RCODE_NXDOMAIN } else { 0 };
    let aa = if query.expansion == 0 { FLAG_AA } else { 0 };
    FLAG_QR | aa | FLAG_RA | (query.flags as u16 & (FLAG_RD | FLAG_CD)) | rcode
}

/// The reply to an answer the rate limit lets slip: the flags and rcode
/// the answer has, and TC; the question alone, and the OPT record if the
/// query had one. A real client asks again over TCP (RFC 1035 §4.2.1,
/// RFC 7766 §5), which the program never answers and the resolver does;
/// a spoofed one gets a reply no larger than its query.
#[inline(always)]
pub(crate) fn build_truncated(scratch: &mut Scratch, query: &Query, decision: &Decision) -> Reply {
    let (end, sum) = write_opt(
        &mut scratch.section,
        SECTION_ANSWERS,
        SECTION_ANSWERS,
        query,
    );
    Reply {
        flags: reply_flags(query, decision) | FLAG_TC,
        ancount: 0,
        nscount: 0,
        arcount: query.edns_do().is_some() as u16,
        start: SECTION_ANSWERS,
        end,
        sum,
    }
}

/// Writes our OPT record at `at` in `section`, if the query had one:
/// payload size `EDNS_UDP_PAYLOAD_SIZE`, the DO bit echoed (RFC 3225), no
/// options. Returns where it ends and its checksum's partial sum, as
/// where it lies from `start` (the appended bytes' first) makes it.
#[inline(always)]
fn write_opt(section: &mut Section, at: usize, start: usize, query: &Query) -> (usize, u64) {
    let Some(do_bit) = query.edns_do() else {
        return (at, 0);
    };
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
    (
        at + OPT_RR_LEN,
        checksum::at_parity(checksum::sum_words(&opt), odd),
    )
}

/// Writes a search expansion's CNAME record into `section`, ending at
/// `end`: owned by the question's name (a pointer to it), its target the
/// mesh name, written whole from its key (lowercased), since the question
/// holds its labels but not its end; `words_len` is `key_len`, laundered,
/// for the copy's loop. Returns where it starts and its checksum's partial
/// sum.
#[inline(always)]
fn write_cname(
    section: &mut Section,
    key: &NameKey,
    key_len: usize,
    words_len: usize,
    decision: &Decision,
    end: usize,
) -> (usize, u64) {
    let key_len = key_len & 0xff;
    let start = end - RR_FIXED_LEN - key_len;
    let target = end - key_len;
    // The target a word at a time, from the key's aligned words, stored
    // wherever it falls: the zeros after the name's end spill past `end`,
    // where the records that follow are written next. It starts an even
    // distance (12) from `start`, so its words sum as they are.
    let words = key as *const NameKey as *const u64;
    let mut sum = 0;
    for w in 0..(MAX_NAME_LEN + 1) / 8 {
        if 8 * w >= words_len {
            break;
        }
        // SAFETY: word `w` of the 256-byte, 8-byte aligned key.
        let word = unsafe { core::ptr::read(words.add(w)) };
        sum += section.put64_unaligned(target + 8 * w, word);
    }
    let [p0, p1] = name_pointer(HDR_LEN);
    let [t0, t1, t2, t3] = decision.addresses.ttl().to_be_bytes();
    // Owner, TYPE CNAME, CLASS IN, TTL, RDLENGTH (below 256).
    let header = [
        p0,
        p1,
        0,
        TYPE_CNAME as u8,
        0,
        CLASS_IN as u8,
        t0,
        t1,
        t2,
        t3,
        0,
        key_len as u8,
    ];
    section.put(start, &header);
    // Folded: each length of the target would otherwise leave the verifier
    // knowing another range of the sum, and walking what follows once for
    // each.
    (
        start,
        checksum::at_parity(sum + checksum::sum_words(&header), false),
    )
}

/// Writes `answers` answer records of `qtype`, owned by the name `owner`
/// points to, into `section` from `SECTION_ANSWERS` on, from the first
/// addresses of `v4` or `v6`; returns where they end and their checksum's
/// partial sum. Each record is whole 4-byte words at aligned offsets (16
/// bytes for A, 28 for AAAA). Generic over how many addresses there can
/// be, so that each kind of record gets its own bound.
#[inline(always)]
fn write_answers<const N: usize>(
    section: &mut Section,
    qtype: u16,
    owner: [u8; 2],
    ttl: u32,
    v4: &[[u8; 4]; N],
    v6: &[[u8; 16]; N],
    answers: usize,
) -> (usize, u64) {
    let [t0, t1, t2, t3] = ttl.to_be_bytes();
    let [p0, p1] = owner;
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
/// owner pointer to the apex (at `apex_at` in the reply: the end of the
/// question's name, or of a CNAME's target) just before `SECTION_ANSWERS`,
/// and the zone's SOA record from there, eight bytes at a time. Returns
/// where it ends and its checksum's partial sum.
#[inline(always)]
fn write_soa(section: &mut Section, apex_at: usize, zone: &ZoneConfig) -> (usize, u64) {
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

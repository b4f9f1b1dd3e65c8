//! Phase 3's first step: `zone_of` finds the zone that holds the
//! question's name, from the message as sent (no key built yet), or, for a
//! search-list expansion (`search::expand`), hands it to the search
//! program (`handover`).

use meshdns_common::{
    Counter, EXACT_NAMES_ENTRY, MAX_NAME_LEN, MAX_ZONES, ZONE_EXACT_NAMES, ZoneConfig,
    name::lowercase_word,
};

use crate::dns::HDR_LEN;
use crate::maps::{Scratch, ZONE, ZONE_SLOT};
use crate::parse::Query;
use crate::search;
use crate::verifier::forget_exact_value;

/// Where the question's name is.
pub(crate) enum InZone {
    /// In this zone, whose table holds it if anyone's does (or, for the
    /// names outside the zones, the entry that stands for them).
    Zone(&'static ZoneConfig),
    /// In no zone, and no names outside them, and it may be under a
    /// search suffix: the search program's (`handover`).
    Search,
}

/// The zone that holds the question's name: the first, in the agent's
/// order (the longest apex first), whose apex the name is or is below.
/// Most names a node resolves are in none: they leave here, after
/// comparing a few bytes per zone and per search pattern, without a key
/// built or a hash lookup. Every name in the table is in a zone or, if the
/// first entry says so, one of the names outside them, so this loses no
/// answer.
#[inline(always)]
// The unrolled walk's last step sets `ended` for no step after it.
#[allow(unused_assignments)]
pub(crate) fn zone_of(scratch: &mut Scratch, query: &Query) -> Result<InZone, Counter> {
    // The zones' array, looked up once for every zone (an array of maps'
    // lookup a zone costs a few ns on every path).
    let zones = ZONE.get(ZONE_SLOT).ok_or(Counter::PassNotInZone)?;
    let mut found = None;
    let mut ended = false;
    let mut exact_names = false;
    // Unrolled by hand: as a loop the verifier could not merge its walks.
    macro_rules! try_zone {
        ($index:expr) => {
            if found.is_none() && !ended && $index < MAX_ZONES as u32 {
                let zone = zones.get($index).ok_or(Counter::PassNotInZone)?;
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
    // A name in no zone may be one of the names outside them, if the
    // table has any: looked up then, and only then. Else it may be a mesh
    // name under a search suffix, which the search program finds.
    let index = match found {
        Some(index) => index,
        None if exact_names => EXACT_NAMES_ENTRY,
        None if search::may_expand(scratch, query.name_len) => return Ok(InZone::Search),
        None => return Err(Counter::PassNotInZone),
    };
    // Each zone matched leaves the walk knowing another index (and, in a
    // pointer, another entry): one index again, looked up once, so that
    // what follows is walked once, not once per zone.
    let index = forget_exact_value(&mut scratch.laundry, index as usize, MAX_ZONES - 1) as u32;
    zones
        .get(index)
        .map(InZone::Zone)
        .ok_or(Counter::PassNotInZone)
}

/// Whether the `name_len`-byte name at the start of the question's name
/// is the zone's apex or below it: its last `apex_len` bytes, lowercased,
/// are the apex, starting at a label boundary. The name is the question's
/// whole name, or the labels it starts with (a search expansion's mesh
/// name): its root label is then not in the message, so the apex's own
/// root label is not compared.
#[inline(always)]
pub(crate) fn in_zone(scratch: &Scratch, name_len: usize, zone: &ZoneConfig) -> bool {
    let apex_len = zone.apex_len as usize;
    if apex_len == 0 || apex_len > name_len {
        return false;
    }
    let start = (name_len - apex_len) & 0xff;
    is_label_start(scratch, start)
        && same_at::<{ (MAX_NAME_LEN + 1) / 8 }>(
            scratch,
            start,
            zone.apex.as_ptr() as *const u64,
            apex_len - 1,
        )
}

/// Whether a label of the question's name starts at offset `at` of it.
#[inline(always)]
pub(crate) fn is_label_start(scratch: &Scratch, at: usize) -> bool {
    let at = at & 0xff;
    (scratch.label_starts[at >> 6] >> (at & 63)) & 1 != 0
}

/// Whether the `len` bytes of the question's name from offset `at`,
/// lowercased, are the first `len` bytes of `expected`: at most `W` words,
/// in lowercased wire format, 8-byte aligned (a map value's field) and
/// zeros from `len` on, read eight bytes at a time.
#[inline(always)]
pub(crate) fn same_at<const W: usize>(
    scratch: &Scratch,
    at: usize,
    expected: *const u64,
    len: usize,
) -> bool {
    for w in 0..W {
        if 8 * w >= len {
            break;
        }
        let past = (8 * w + 8).saturating_sub(len) & 7;
        let mask = u64::MAX >> (8 * past);
        let word = lowercase_word(scratch.msg.word_at(HDR_LEN + at + 8 * w)) & mask;
        // SAFETY: word `w` of `W`, which the caller's value holds.
        if word != unsafe { core::ptr::read(expected.add(w)) } {
            return false;
        }
    }
    true
}

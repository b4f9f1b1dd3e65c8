//! Search-list expansions: `expand` finds, in a name that is in no zone,
//! the mesh name it starts with, by the agent's patterns (see
//! `SearchPattern`): `redis.mesh.default.svc.cluster.local` is `redis.mesh`
//! under `*.svc.cluster.local`. Only for names in no zone, in the search
//! program (`handover`): a name in a zone never pays for it, and one
//! outside them a few compares per pattern, most of which fail at their
//! first check (a label boundary where the suffix would start).

use meshdns_common::{MAX_SEARCH_PATTERNS, MAX_SEARCH_SUFFIX_LEN, MAX_ZONES, SearchPattern};

use crate::maps::{SEARCH, SEARCH_SLOT, Scratch, ZONE, ZONE_SLOT, Zones};
use crate::verifier::forget_exact_value;
use crate::zone::{in_zone, is_label_start, same_at};

/// What a name expands to.
pub(crate) struct Expansion {
    /// The zone of the mesh name, an index into the zones' array.
    pub(crate) zone: u32,
    /// The mesh name's length in wire format: its labels are the first
    /// `key_len - 1` bytes of the question's name, then the root label.
    pub(crate) key_len: usize,
    /// `SEARCH_CNAME` or `SEARCH_NXDOMAIN`.
    pub(crate) answer: u32,
}

/// Whether the `name_len`-byte question name could be under a search
/// suffix: there are patterns, and it ends with the tail that all their
/// suffixes share (below them: a label at least).
#[inline(always)]
pub(crate) fn may_expand(scratch: &Scratch, name_len: usize) -> bool {
    let Some(pattern) = SEARCH.get_value(SEARCH_SLOT, &0) else {
        return false;
    };
    let common_len = pattern.common_len as usize;
    if pattern.suffix_len == 0 || common_len >= name_len || common_len > MAX_SEARCH_SUFFIX_LEN {
        return false;
    }
    let at = name_len - common_len;
    is_label_start(scratch, at)
        && same_at::<{ MAX_SEARCH_SUFFIX_LEN / 8 }>(
            scratch,
            at,
            pattern.common.as_ptr() as *const u64,
            common_len,
        )
}

/// The first pattern, in the agent's order, under which the `name_len`-byte
/// question name is a name of the pattern's zone; `None` if there is none,
/// or no patterns. Whether the table holds that name is for the lookup.
#[inline(always)]
// The unrolled walk's last step sets `ended` for no step after it.
#[allow(unused_assignments)]
pub(crate) fn expand(scratch: &mut Scratch, name_len: usize) -> Option<Expansion> {
    // Each array looked up once for every pattern.
    let patterns = SEARCH.get(SEARCH_SLOT)?;
    let zones = ZONE.get(ZONE_SLOT)?;
    let mut found = None;
    let mut ended = false;
    // Unrolled by hand, as the zones' walk is, for the same reason.
    macro_rules! try_pattern {
        ($index:expr) => {
            if found.is_none() && !ended && $index < MAX_SEARCH_PATTERNS as u32 {
                match patterns.get($index) {
                    Some(pattern) if pattern.suffix_len != 0 => {
                        // A copy for each pattern, as in the zones' walk.
                        let name_len = forget_exact_value(&mut scratch.laundry, name_len, 0xff);
                        found = under(scratch, name_len, pattern, zones);
                    }
                    // The patterns end at the first empty entry; no slot
                    // filled, no patterns.
                    _ => ended = true,
                }
            }
        };
    }
    try_pattern!(0u32);
    try_pattern!(1u32);
    try_pattern!(2u32);
    try_pattern!(3u32);
    try_pattern!(4u32);
    try_pattern!(5u32);
    try_pattern!(6u32);
    try_pattern!(7u32);
    found
}

/// The mesh name that the `name_len`-byte question name is under
/// `pattern`, if it is, in one of `zones`.
#[inline(always)]
fn under(
    scratch: &Scratch,
    name_len: usize,
    pattern: &SearchPattern,
    zones: &Zones,
) -> Option<Expansion> {
    let suffix_len = pattern.suffix_len as usize;
    // A label at least before the suffix.
    if suffix_len >= name_len || suffix_len > MAX_SEARCH_SUFFIX_LEN {
        return None;
    }
    let at = name_len - suffix_len;
    if !is_label_start(scratch, at)
        || !same_at::<{ MAX_SEARCH_SUFFIX_LEN / 8 }>(
            scratch,
            at,
            pattern.suffix.as_ptr() as *const u64,
            suffix_len,
        )
    {
        return None;
    }
    let end = if pattern.wildcard != 0 {
        label_before(&scratch.label_starts, at)?
    } else {
        at
    };
    // The mesh name: the labels before `end`, and the root label.
    if end == 0 {
        return None;
    }
    let key_len = end + 1;
    let index = pattern.zone & (MAX_ZONES as u32 - 1);
    let zone = zones.get(index)?;
    in_zone(scratch, key_len, zone).then_some(Expansion {
        zone: index,
        key_len,
        answer: pattern.answer,
    })
}

/// Where the label before the one at offset `at` (`at > 0`) of the
/// question's name starts: the highest label start below `at`. A label is
/// at most 64 bytes with its length octet, so it starts in the bitmap's
/// word of `at - 1` or in the word before.
#[inline(always)]
fn label_before(label_starts: &[u64; 4], at: usize) -> Option<usize> {
    let last = (at - 1) & 0xff;
    let word = last >> 6;
    // The starts at or below `last` in its word.
    let here = label_starts[word] & (u64::MAX >> (63 - (last & 63)));
    if here != 0 {
        return Some(64 * word + highest_bit(here));
    }
    if word == 0 {
        return None;
    }
    let before = label_starts[(word - 1) & 3];
    (before != 0).then(|| 64 * (word - 1) + highest_bit(before))
}

/// The index of the highest bit set in `bits` (not 0).
#[inline(always)]
fn highest_bit(bits: u64) -> usize {
    63 - bits.leading_zeros() as usize
}

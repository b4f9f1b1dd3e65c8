//! Whom and for which addresses the fast path answers: the clients of
//! `allow_from` and the destinations of `fast_path_destinations`, each as
//! sorted, disjoint address ranges per family, searched by halving.
//!
//! Ranges rather than LPM tries: a trie lookup is a helper call and a walk
//! of nodes, which cost 40 to 90 ns a packet here (meshdns-xdp-cost, a
//! /24 and a /32), six times the budget of both checks; an array in a
//! map's value is read in place, and a node's usual lists (loopback, a
//! subnet, the pods' routes, which merge into few ranges as pods get
//! neighbouring addresses) take one to three halvings.

use bytemuck::{Pod, Zeroable};

use crate::RateLimit;

/// Most IPv4 ranges of each list, after merging: a power of two.
pub const MAX_SCOPE_RANGES4: usize = 1024;
/// Most IPv6 ranges of each list, after merging: a power of two.
pub const MAX_SCOPE_RANGES6: usize = 256;

/// [`ScopeTable::flags`]: every client is answered (`allow_from` holds
/// `0.0.0.0/0` and `::/0`).
pub const SCOPE_ANY_CLIENT: u32 = 1;
/// [`ScopeTable::flags`]: queries to any destination address are answered
/// (`fast_path_destinations: any`).
pub const SCOPE_ANY_DESTINATION: u32 = 2;

/// IPv4 addresses `first..=last`, as numbers (host order).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Pod, Zeroable)]
pub struct Range4 {
    pub first: u32,
    pub last: u32,
}

impl Range4 {
    /// What follows the ranges in use: it starts past every address and
    /// ends before any, so the program's halving never stops past it and
    /// it holds nothing.
    pub const UNUSED: Self = Self {
        first: u32::MAX,
        last: 0,
    };
}

/// IPv6 addresses `first..=last`, each as two numbers (the high and the
/// low 64 bits, host order).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Pod, Zeroable)]
pub struct Range6 {
    pub first: [u64; 2],
    pub last: [u64; 2],
}

impl Range6 {
    /// As [`Range4::UNUSED`].
    pub const UNUSED: Self = Self {
        first: [u64::MAX; 2],
        last: [0; 2],
    };
}

/// One list of IPv4 addresses: `count` ranges, sorted and disjoint, then
/// [`Range4::UNUSED`] ones (an empty list starts with one). `first_step` is
/// the largest power of two below `count` (0 for one range or none): where
/// the halving starts.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct Ranges4 {
    pub count: u32,
    pub first_step: u32,
    pub ranges: [Range4; MAX_SCOPE_RANGES4],
}

/// One list of IPv6 addresses, as [`Ranges4`].
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct Ranges6 {
    pub count: u32,
    pub first_step: u32,
    pub ranges: [Range6; MAX_SCOPE_RANGES6],
}

/// The value in the `SCOPE` slot: both lists in both families, which
/// checks are off, and how many answers a client prefix gets (the rate
/// limit, here because it is asked of the same answers, once they are
/// known to be in scope, and the program has the table then). No table in
/// the slot (no agent has set one) passes every query to the resolver,
/// which answers by its own `allow_from`.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct ScopeTable {
    pub flags: u32,
    pub _pad: u32,
    pub rate_limit: RateLimit,
    pub clients4: Ranges4,
    pub clients6: Ranges6,
    pub destinations4: Ranges4,
    pub destinations6: Ranges6,
}

const _: () = assert!(core::mem::size_of::<Ranges4>() == 8 + 8 * MAX_SCOPE_RANGES4);
const _: () = assert!(core::mem::size_of::<Ranges6>() == 8 + 32 * MAX_SCOPE_RANGES6);
const _: () = assert!(
    core::mem::size_of::<ScopeTable>()
        == 8 + core::mem::size_of::<RateLimit>()
            + 2 * core::mem::size_of::<Ranges4>()
            + 2 * core::mem::size_of::<Ranges6>()
);
const _: () = assert!(MAX_SCOPE_RANGES4.is_power_of_two() && MAX_SCOPE_RANGES6.is_power_of_two());

impl ScopeTable {
    /// No flags, empty lists, no rate limit: answers nobody.
    pub const EMPTY: Self = {
        let mut table: Self = bytemuck::zeroed();
        let mut i = 0;
        while i < MAX_SCOPE_RANGES4 {
            table.clients4.ranges[i] = Range4::UNUSED;
            table.destinations4.ranges[i] = Range4::UNUSED;
            i += 1;
        }
        let mut i = 0;
        while i < MAX_SCOPE_RANGES6 {
            table.clients6.ranges[i] = Range6::UNUSED;
            table.destinations6.ranges[i] = Range6::UNUSED;
            i += 1;
        }
        table
    };
}

#[cfg(feature = "user")]
aya_pod!(ScopeTable);

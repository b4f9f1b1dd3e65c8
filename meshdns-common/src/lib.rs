//! Types shared by the XDP program (`meshdns-ebpf`) and the agent (`meshdns-user`).
//!
//! Everything that crosses the kernel boundary is `#[repr(C)]` with fixed-width
//! fields and explicit padding, and its size is asserted at compile time, so both
//! sides agree on the layout byte for byte. Each derives [`bytemuck::Pod`]: the
//! compiler proves there is no padding and no invalid bit pattern, and the agent's
//! `aya::Pod` rests on that proof (`aya_pod!`).
#![no_std]

/// Compiles only if `T: bytemuck::Pod`: the bound `aya_pod!` checks.
#[cfg(feature = "user")]
const fn require_pod<T: bytemuck::Pod>() {}

/// `unsafe impl aya::Pod` for a map type, which compiles only if the type is
/// `bytemuck::Pod`: aya wants its own marker trait, bytemuck gives the proof.
#[cfg(feature = "user")]
macro_rules! aya_pod {
    ($ty:ty) => {
        const _: () = $crate::require_pod::<$ty>();
        // SAFETY: aya copies the type to and from the kernel as bytes, so it
        // must have no padding and every bit pattern must be a value: that is
        // what `bytemuck::Pod` promises, and `$ty: bytemuck::Pod` holds (the
        // line above does not compile otherwise; the derive checked the layout).
        unsafe impl aya::Pod for $ty {}
    };
}

pub mod counter;
pub mod interface;
pub mod name;
pub mod rate_limit;
pub mod record;
pub mod scope;
pub mod search;
pub mod zone;

pub use counter::Counter;
pub use interface::{InterfaceMac, MAX_INTERFACES};
pub use name::{
    MAX_LABEL_LEN, MAX_NAME_LEN, NAME_WIDTHS, NameClass, NameKey, NameKey48, NameKey112,
};
pub use rate_limit::{Debit, Due, MAX_RATE_BUCKETS, RATE_BURST_NS, RateBucket, RateKey, RateLimit};
pub use record::{CompactRecord, MAX_ADDRS, ServiceRecord};
pub use scope::{
    MAX_SCOPE_RANGES4, MAX_SCOPE_RANGES6, Range4, Range6, Ranges4, Ranges6, SCOPE_ANY_CLIENT,
    SCOPE_ANY_DESTINATION, ScopeTable,
};
pub use search::{
    MAX_SEARCH_PATTERNS, MAX_SEARCH_SUFFIX_LEN, SEARCH_CNAME, SEARCH_NXDOMAIN, SearchPattern,
};
pub use zone::{
    EXACT_NAMES_ENTRY, MAX_SOA_NAMES_LEN, MAX_SOA_RR_LEN, MAX_ZONES, ZONE_AUTHORITATIVE,
    ZONE_EXACT_NAMES, ZoneConfig,
};

/// Names of the hash maps from a name to its [`CompactRecord`], one per
/// [`NameClass`]: [`NameKey48`], [`NameKey112`] and [`NameKey`] keys.
pub const NAMES48_MAP: &str = "NAMES48";
pub const NAMES112_MAP: &str = "NAMES112";
pub const NAMES256_MAP: &str = "NAMES256";
/// Name of the hash map from a `full` id (`u32`) to the [`ServiceRecord`]
/// of a name whose [`CompactRecord`] does not hold it.
pub const NAMES_FULL_MAP: &str = "NAMES_FULL";
/// The maps that make the table: the names maps in [`NameClass`] order,
/// then the full records.
pub const NAMES_MAPS: [&str; 4] = [NAMES48_MAP, NAMES112_MAP, NAMES256_MAP, NAMES_FULL_MAP];
/// Name of the one-slot array of maps whose slot holds the array of the
/// zones, [`MAX_ZONES`] [`ZoneConfig`]s.
pub const ZONE_MAP: &str = "ZONE";
/// Name of the one-slot array of maps whose slot holds the array of the
/// search-list expansions, [`MAX_SEARCH_PATTERNS`] [`SearchPattern`]s.
pub const SEARCH_MAP: &str = "SEARCH";
/// Name of the one-slot array of maps whose slot holds a one-entry array
/// of the [`ScopeTable`]: whom and for which destinations the program
/// answers.
pub const SCOPE_MAP: &str = "SCOPE";
/// Name of the LRU hash map of the rate limit's buckets, by client prefix
/// ([`RateKey`] to [`RateBucket`]).
pub const RATE_BUCKETS_MAP: &str = "RATE_BUCKETS";
/// Name of the hash map of ifindex to [`InterfaceMac`]. Not pinned: each
/// agent fills its program's own, before attaching.
pub const INTERFACES_MAP: &str = "INTERFACES";
/// Name of the per-CPU array of `u64` counters indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Name of the XDP program that answers queries.
pub const ANSWER_PROGRAM: &str = "meshdns";
/// Name of the XDP program that answers the search-list expansions of mesh
/// names, which the answer program tail-calls.
pub const SEARCH_PROGRAM: &str = "meshdns_search";
/// Name of the one-slot program array through which the answer program
/// tail-calls [`SEARCH_PROGRAM`]. Pinned: the kernel empties a program
/// array once no process holds it, which would stop the expansions when
/// the agent exits.
pub const SEARCH_PROGRAM_MAP: &str = "SEARCH_PROGRAM";
/// Name of an XDP program that only returns `XDP_PASS`. Attached to the peer of
/// a veth it turns on NAPI there, which veth needs to deliver `XDP_TX` frames.
pub const PASS_PROGRAM: &str = "meshdns_pass";
/// Name of the benchmark's floor: an XDP program that swaps addresses and
/// returns `XDP_TX`, doing no DNS work.
pub const FLOOR_PROGRAM: &str = "meshdns_floor";
/// Name of the TC hook's floor, for the pod bench: a TC classifier that
/// swaps addresses and sends the query back out of its interface
/// (`bpf_redirect`), doing no DNS work.
pub const TC_FLOOR_PROGRAM: &str = "meshdns_tc_floor";
/// Name of a TC classifier for the tests: counts the IPv4 UDP packets to
/// port 53 it sees in [`LAB_TC_SEEN_MAP`] and hands every packet on, as a
/// CNI's program beside meshdns would.
pub const TC_COUNT_PROGRAM: &str = "meshdns_tc_count";
/// Name of the one-entry per-CPU array of `u64` that [`TC_COUNT_PROGRAM`]
/// counts in.
pub const LAB_TC_SEEN_MAP: &str = "LAB_TC_SEEN";

/// Upper bound on the names of each class the fast path holds: the largest
/// `max_entries` a class's map grows to (the agent sizes each by the table;
/// the kernel allocates 16 bytes of buckets per entry when a map is made).
pub const MAX_NAMES: [u32; 3] = [1 << 20, 1 << 18, 1 << 16];
/// The names maps' flags: `BPF_F_NO_PREALLOC`, so that an update swaps in a
/// whole new element (see the program's `maps.rs`). The agent creates these
/// maps itself, sized by the table.
pub const NAMES_MAP_FLAGS: u32 = 1;

/// Upper bound on the names with more than one address of a family (the
/// `NAMES_FULL` map's `max_entries`).
pub const MAX_FULL_RECORDS: u32 = 1 << 16;

/// UDP payload size advertised in the OPT record of EDNS(0) replies: the
/// DNS Flag Day 2020 value, which avoids IP fragmentation on common paths.
pub const EDNS_UDP_PAYLOAD_SIZE: u16 = 1232;

/// Version of the layout of the maps the program and agent share. Bump it
/// whenever a map's key, value or meaning changes: an agent never reuses
/// pinned maps of another layout, it replaces them.
pub const LAYOUT_VERSION: u32 = 9;

/// A fingerprint of the shared types' sizes, so a layout change that forgot
/// to bump `LAYOUT_VERSION` is still caught.
pub const LAYOUT_FINGERPRINT: u32 = {
    let sizes = [
        core::mem::size_of::<NameKey48>(),
        core::mem::size_of::<NameKey112>(),
        core::mem::size_of::<NameKey>(),
        core::mem::size_of::<ServiceRecord>(),
        core::mem::size_of::<CompactRecord>(),
        core::mem::size_of::<ZoneConfig>(),
        core::mem::size_of::<SearchPattern>(),
        core::mem::size_of::<ScopeTable>(),
        core::mem::size_of::<RateKey>(),
        core::mem::size_of::<RateBucket>(),
        MAX_RATE_BUCKETS as usize,
        Counter::COUNT as usize,
        MAX_NAMES[0] as usize,
        MAX_NAMES[1] as usize,
        MAX_NAMES[2] as usize,
        MAX_FULL_RECORDS as usize,
    ];
    // FNV-1a over the sizes.
    let mut hash: u32 = 0x811c_9dc5;
    let mut i = 0;
    while i < sizes.len() {
        hash ^= sizes[i] as u32;
        hash = hash.wrapping_mul(0x0100_0193);
        i += 1;
    }
    hash
};

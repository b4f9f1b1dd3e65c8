//! Phase-independent state: the maps the agent fills and reads, the per-CPU
//! scratch memory one run works in, and the counters.

use aya_ebpf::{
    bindings::{BPF_F_NO_COMMON_LRU, BPF_F_NO_PREALLOC},
    btf_maps::{self, ArrayOfMaps},
    macros::{btf_map, map},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::XdpContext,
};
use meshdns_common::{
    CompactRecord, Counter, InterfaceMac, MAX_FULL_RECORDS, MAX_INTERFACES, MAX_RATE_BUCKETS,
    MAX_SEARCH_PATTERNS, MAX_ZONES, NAMES_MAP_FLAGS, NameKey, NameKey48, NameKey112, RateBucket,
    RateKey, ScopeTable, SearchPattern, ServiceRecord, ZoneConfig,
};

use crate::MAX_HEADERS_LEN;
use crate::dns::{Msg, Section};

/// The table: lowercased wire-format name to its addresses, in one map per
/// name length class (`NameClass`), so that the kernel hashes a key no
/// wider than the class: 48 bytes for most names.
///
/// Each class's map sits in slot 0 of a one-slot array of maps, so that the
/// agent sizes it by the table (a map of a million slots hashes a 10,000-name
/// table into 16 MiB of buckets, a cache miss a lookup) and, when the table
/// outgrows it, swaps in a bigger one in one update. Reloading the program
/// with bigger maps instead would need CAP_NET_ADMIN, which the agent gives
/// up once attached. The template's size (1) does not bind the maps put in
/// the slot: the kernel checks an inner hash map's key and value size and
/// flags, not its `max_entries`. An empty slot reads as a name not there;
/// the agent fills the slots before it sets the zone, which until then
/// passes every query.
///
/// Not preallocated: an update then swaps in a whole new element and frees
/// the old one after an RCU grace period, so a lookup here never sees a
/// half-written record (a preallocated map recycles elements at once).
///
/// The value is a `CompactRecord`: at most one address of each family, or a
/// mark that the whole `ServiceRecord` is in `NAMES_FULL`.
#[btf_map]
pub(crate) static NAMES48: ArrayOfMaps<Names<NameKey48>, 1> = ArrayOfMaps::new();
#[btf_map]
pub(crate) static NAMES112: ArrayOfMaps<Names<NameKey112>, 1> = ArrayOfMaps::new();
#[btf_map]
pub(crate) static NAMES256: ArrayOfMaps<Names<NameKey>, 1> = ArrayOfMaps::new();

/// One class's names map, as the arrays of maps declare it.
pub(crate) type Names<K> = btf_maps::HashMap<K, CompactRecord, 1, { NAMES_MAP_FLAGS as usize }>;
const _: () = assert!(NAMES_MAP_FLAGS == BPF_F_NO_PREALLOC);

/// The slot of the array of maps that holds a class's names map.
pub(crate) const NAMES_SLOT: u32 = 0;

/// The records of the names with more than one address of a family, by
/// their `CompactRecord::full` id: a 4-byte key, cheap to hash.
#[map]
pub(crate) static NAMES_FULL: HashMap<u32, ServiceRecord> =
    HashMap::with_max_entries(MAX_FULL_RECORDS, BPF_F_NO_PREALLOC);

/// The zones: apex, flags and SOA of each, which change together. An
/// array of `MAX_ZONES` (the longest apex first, `NONE` after the last) in
/// the slot of a one-slot array of maps, replaced whole as the names maps
/// are: an update in place could be read half-written, and a hash map,
/// which an update swaps whole, costs a hash a packet; inlined array
/// lookups cost 4 to 6 ns less on every path through the zone check
/// (meshdns-xdp-cost).
#[btf_map]
pub(crate) static ZONE: ArrayOfMaps<Zones, 1> = ArrayOfMaps::new();

/// The zones' array, in `ZONE`'s slot.
pub(crate) type Zones = btf_maps::Array<ZoneConfig, MAX_ZONES>;

/// The slot of the zone's array of maps that holds its array.
pub(crate) const ZONE_SLOT: u32 = 0;

/// The search-list expansions: `MAX_SEARCH_PATTERNS` patterns in the
/// order they are tried (see `SearchPattern`), in the slot of a one-slot
/// array of maps, replaced whole as the zones are. An empty slot, or a
/// first pattern with no suffix, expands nothing.
#[btf_map]
pub(crate) static SEARCH: ArrayOfMaps<btf_maps::Array<SearchPattern, MAX_SEARCH_PATTERNS>, 1> =
    ArrayOfMaps::new();

/// The slot of the search array of maps that holds its array.
pub(crate) const SEARCH_SLOT: u32 = 0;

/// The interfaces the program is attached to, by ifindex, and their MACs:
/// see `InterfaceMac`. An interface not in it (BPF_PROG_TEST_RUN's
/// loopback) gets no MAC check. Not preallocated, as the names maps: an
/// interface's entry is replaced whole.
#[map]
pub(crate) static INTERFACES: HashMap<u32, InterfaceMac> =
    HashMap::with_max_entries(MAX_INTERFACES, BPF_F_NO_PREALLOC);

/// Whom and for which destinations the program answers (see
/// `ScopeTable`): one table in the slot of a one-slot array of maps,
/// replaced whole as the zones are (its ranges are searched by halving,
/// which a half-written list would mislead). An empty slot passes every
/// query.
#[btf_map]
pub(crate) static SCOPE: ArrayOfMaps<btf_maps::Array<ScopeTable, 1>, 1> = ArrayOfMaps::new();

/// The slot of the scope's array of maps that holds its table.
pub(crate) const SCOPE_SLOT: u32 = 0;

/// The rate limit's buckets, by client prefix (see `RateLimit`). An LRU
/// hash map: a flood from ever new prefixes (spoofed sources) evicts the
/// buckets used least lately instead of finding the map full. Each CPU
/// keeps its own lists of free and used entries (`BPF_F_NO_COMMON_LRU`),
/// so that making a bucket takes no lock that every CPU shares; a bucket
/// is then moved on in place with an atomic add, under no lock at all.
#[map]
pub(crate) static RATE_BUCKETS: LruHashMap<RateKey, RateBucket> =
    LruHashMap::with_max_entries(MAX_RATE_BUCKETS, BPF_F_NO_COMMON_LRU);

/// What happened to each packet, per CPU, indexed by `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Per-CPU working memory of one run: too much for the 512-byte stack.
#[repr(C)]
pub(crate) struct Scratch {
    /// The query as it came.
    pub(crate) msg: Msg,
    /// What the reply appends to the query's question.
    pub(crate) section: Section,
    /// The frame's headers, while the frame grows at its head.
    pub(crate) headers: [u8; MAX_HEADERS_LEN],
    /// The lookup key: the question's name, lowercased.
    pub(crate) key: NameKey,
    /// Bit `i` set: a label starts at offset `i` of the question's name.
    pub(crate) label_starts: [u64; 4],
    /// One's-complement sum of the question's name as sent, in memory
    /// order, for the reply's checksum.
    pub(crate) name_sum: u64,
    /// See `forget_exact_value`.
    pub(crate) laundry: u64,
    /// What the answer program hands the search program.
    pub(crate) handover: crate::handover::Handover,
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// This CPU's scratch memory, for one run of either program.
#[inline(always)]
pub(crate) fn scratch(ctx: &XdpContext) -> Result<&'static mut Scratch, Counter> {
    let Some(scratch) = SCRATCH.get_ptr_mut(0) else {
        // Index 0 of a one-slot per-CPU array: it is always there.
        crate::never::happened(ctx, crate::never::Never::NoScratch);
        return Err(Counter::PassMalformed);
    };
    // SAFETY: a per-CPU slot: nothing else uses it while we run (the
    // answer program that hands a query to the search program has ended
    // when the search program runs).
    Ok(unsafe { &mut *scratch })
}

#[inline(always)]
pub(crate) fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot: nothing else writes it while we run.
        unsafe { *value += 1 };
    }
}

//! Search-list expansions of mesh names: a query for `<mesh name>.<suffix>`
//! (what a pod's stub resolver asks first, with Kubernetes' `ndots:5`),
//! answered in the driver with a CNAME to the mesh name, or NXDOMAIN.

use bytemuck::{Pod, Zeroable};

/// Most patterns the fast path matches: each is one (suffix, zone) pair,
/// the suffixes in the order the file lists them, each with every zone,
/// the longest apex first. Three Kubernetes suffixes over two zones take
/// six. A query the program has no pattern for is passed, and the
/// resolver, which has them all, answers it.
pub const MAX_SEARCH_PATTERNS: usize = 8;
// The program masks a pattern's index with `MAX_SEARCH_PATTERNS - 1`.
const _: () = assert!(MAX_SEARCH_PATTERNS.is_power_of_two());

/// Room for a suffix in wire format, root label included: the Kubernetes
/// suffixes take 15 to 27 bytes.
pub const MAX_SEARCH_SUFFIX_LEN: usize = 128;

/// `SearchPattern::answer`: a CNAME from the asked name to the mesh name,
/// then the mesh name's records of the asked type (or, lacking them, the
/// mesh zone's SOA).
pub const SEARCH_CNAME: u32 = 1;
/// `SearchPattern::answer`: NXDOMAIN, so that the client tries its next
/// search domain at once.
pub const SEARCH_NXDOMAIN: u32 = 2;

/// One pattern of the program's search array: a name `M.W.S`, where `S` is
/// `suffix`, `W` one label of any content if `wildcard` is 1 (none if 0)
/// and `M` a name in zone `zone` that the table holds, is answered as
/// `answer` says about `M`. The array is read in order and the first
/// pattern that leaves a name in its zone wins; its entries after the last
/// have `suffix_len` 0. As the zones' array, it is replaced whole, never
/// updated in place; the agent empties it before it changes the zones, as
/// `zone` indexes theirs.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct SearchPattern {
    /// The suffix in lowercased wire format, root label included, zero
    /// padded: the program compares it eight bytes at a time.
    pub suffix: [u8; MAX_SEARCH_SUFFIX_LEN],
    /// Length of `suffix` in use; 0 ends the array.
    pub suffix_len: u16,
    /// 1: one label of any content between the mesh name and the suffix
    /// (`*.svc.cluster.local`); 0: none.
    pub wildcard: u16,
    /// Index of the mesh name's zone in the zones' array.
    pub zone: u32,
    /// `SEARCH_CNAME` or `SEARCH_NXDOMAIN`.
    pub answer: u32,
    /// Length of `common` in use.
    pub common_len: u16,
    pub _pad: u16,
    /// The longest tail, in whole labels, that every pattern's suffix ends
    /// with (`cluster.local.` for Kubernetes' three), zero padded; the
    /// same in every pattern. The answer program hands a name in no zone
    /// to the search program only if it ends so: a name that no suffix
    /// could match costs one compare, not a tail call.
    pub common: [u8; MAX_SEARCH_SUFFIX_LEN],
}

const _: () = assert!(core::mem::size_of::<SearchPattern>() == 2 * MAX_SEARCH_SUFFIX_LEN + 16);
const _: () = assert!(core::mem::offset_of!(SearchPattern, common) % 8 == 0);
// Compared eight bytes at a time; a map value is 8-byte aligned.
const _: () = assert!(core::mem::offset_of!(SearchPattern, suffix) == 0);

#[cfg(feature = "user")]
aya_pod!(SearchPattern);

impl SearchPattern {
    /// No pattern: ends the array. All zeros.
    pub const NONE: Self = bytemuck::zeroed();

    /// The suffix in wire format.
    pub fn suffix_wire(&self) -> &[u8] {
        &self.suffix[..usize::from(self.suffix_len)]
    }

    /// The tail every suffix ends with, in wire format.
    pub fn common_wire(&self) -> &[u8] {
        &self.common[..usize::from(self.common_len)]
    }
}

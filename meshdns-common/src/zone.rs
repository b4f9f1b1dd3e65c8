//! The zones the fast path answers for: each one's apex and SOA record.

use bytemuck::{Pod, Zeroable};

use crate::name::MAX_NAME_LEN;

/// Room for the SOA record after its owner name: TYPE, CLASS, TTL, RDLENGTH
/// (10 bytes), MNAME and RNAME (130 bytes together at most, in wire format),
/// and five 32-bit fields (RFC 1035 §3.3.13). A multiple of 4, so
/// `ZoneConfig` has no padding.
pub const MAX_SOA_RR_LEN: usize = 160;
/// Most bytes MNAME and RNAME may take together, in wire format.
pub const MAX_SOA_NAMES_LEN: usize = MAX_SOA_RR_LEN - 10 - 20;

/// `flags` bit: unknown names in the zone get NXDOMAIN instead of being passed.
pub const ZONE_AUTHORITATIVE: u32 = 1;

/// `flags` bit of the first entry: the table holds names outside every
/// zone (Kuma's hosts and virtual outbounds, answered as written), and the
/// last entry, [`EXACT_NAMES_ENTRY`], stands for them: no apex, no SOA (a
/// NODATA for such a name carries none), not authoritative (an unknown
/// name outside the zones is passed). Without it a name outside the zones
/// costs no lookup.
pub const ZONE_EXACT_NAMES: u32 = 2;

/// The entry that stands for the names outside every zone, when the first
/// entry says there are any; the zones then number one fewer.
pub const EXACT_NAMES_ENTRY: u32 = MAX_ZONES as u32 - 1;

/// Most zones the fast path answers for at once (`mesh` and `mesh.local`
/// for Kuma, and room for more).
pub const MAX_ZONES: usize = 8;
// The program masks a zone's index with `MAX_ZONES - 1`.
const _: () = assert!(MAX_ZONES.is_power_of_two());

/// What the fast path knows of one zone. The zones are the entries of an
/// array of `MAX_ZONES`, the longest apex first (so the first that matches
/// a name is the one that holds it: nested zones go to the longer), the
/// unused entries `NONE`. The agent never updates the array in place: a
/// new array takes the old one's slot in the `ZONE` array of maps, so a
/// program run reads one set of zones whole.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct ZoneConfig {
    /// The apex in lowercased wire format, zero padded.
    pub apex: [u8; MAX_NAME_LEN + 1],
    /// Length of `apex` in wire format.
    pub apex_len: u16,
    /// Length of `soa_rr` in use.
    pub soa_rr_len: u16,
    /// `ZONE_AUTHORITATIVE` or 0.
    pub flags: u32,
    /// The apex's SOA record as sent in the authority section of NODATA and
    /// NXDOMAIN replies, from TYPE on (the owner name is a pointer into the
    /// question, written by the program). Its TTL is the SOA MINIMUM, as RFC
    /// 2308 §3 asks of negative answers. Zeros after `soa_rr_len`: the
    /// program copies it eight bytes at a time, and its checksum counts
    /// every byte it copies.
    pub soa_rr: [u8; MAX_SOA_RR_LEN],
}

const _: () = assert!(core::mem::size_of::<ZoneConfig>() == 256 + 8 + MAX_SOA_RR_LEN);
// The XDP program copies the SOA record eight bytes at a time; a map value
// is 8-byte aligned.
const _: () = assert!(core::mem::offset_of!(ZoneConfig, soa_rr).is_multiple_of(8));

#[cfg(feature = "user")]
aya_pod!(ZoneConfig);

impl ZoneConfig {
    /// No zone: an apex of length 0 matches no name, and ends the program's
    /// walk of the zones. All `NONE` passes every query: the agent sets that
    /// while it changes zones, so that the program never answers from zones
    /// and a table that do not belong together. All zeros.
    pub const NONE: Self = bytemuck::zeroed();

    /// The apex in wire format (empty for `NONE`).
    pub fn apex_wire(&self) -> &[u8] {
        &self.apex[..usize::from(self.apex_len)]
    }

    pub fn is_authoritative(&self) -> bool {
        self.flags & ZONE_AUTHORITATIVE != 0
    }
}

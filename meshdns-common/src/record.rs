//! The fast path's map value: what a name answers.

use bytemuck::{Pod, Zeroable};

/// Most addresses per name and family that one fast-path reply carries.
pub const MAX_ADDRS: usize = 8;

/// The addresses a name answers with, and their TTL.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct ServiceRecord {
    /// TTL of the answer records, in seconds.
    pub ttl: u32,
    /// How many entries of `v4` are in use (0 to `MAX_ADDRS`).
    pub v4_count: u8,
    /// How many entries of `v6` are in use (0 to `MAX_ADDRS`).
    pub v6_count: u8,
    pub _pad: [u8; 2],
    /// IPv4 addresses, network byte order.
    pub v4: [[u8; 4]; MAX_ADDRS],
    /// IPv6 addresses, network byte order.
    pub v6: [[u8; 16]; MAX_ADDRS],
}

const _: () = assert!(core::mem::size_of::<ServiceRecord>() == 8 + 4 * MAX_ADDRS + 16 * MAX_ADDRS);

#[cfg(feature = "user")]
aya_pod!(ServiceRecord);

impl ServiceRecord {
    /// All zeros: no address of either family, TTL 0.
    pub const EMPTY: Self = bytemuck::zeroed();

    /// The IPv4 addresses in use.
    pub fn v4(&self) -> &[[u8; 4]] {
        &self.v4[..(self.v4_count as usize).min(MAX_ADDRS)]
    }

    /// The IPv6 addresses in use.
    pub fn v6(&self) -> &[[u8; 16]] {
        &self.v6[..(self.v6_count as usize).min(MAX_ADDRS)]
    }
}

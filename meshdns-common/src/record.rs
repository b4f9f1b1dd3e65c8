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

/// What the names maps hold for a name: its record when that has at most
/// one address of each family, as most services have (one VIP of each), in
/// 32 bytes instead of 168. A name with more addresses has a `full` id,
/// and its [`ServiceRecord`] is in the `NAMES_FULL` map under that id;
/// then everything (TTL and counts too) comes from there.
///
/// A full id is never reused while the agent runs (it counts up from the
/// largest in the map): a program that read a name's old id just before
/// the agent moved it finds the old record or none, never another name's.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct CompactRecord {
    /// TTL of the answer records, in seconds.
    pub ttl: u32,
    /// 0 or 1: whether `v4` is in use.
    pub v4_count: u8,
    /// 0 or 1: whether `v6` is in use.
    pub v6_count: u8,
    pub _pad: [u8; 2],
    /// Nonzero: the record is in `NAMES_FULL` under this id, and the other
    /// fields are unused.
    pub full: u32,
    /// The IPv4 address, network byte order.
    pub v4: [u8; 4],
    /// The IPv6 address, network byte order.
    pub v6: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<CompactRecord>() == 32);

#[cfg(feature = "user")]
aya_pod!(CompactRecord);

impl CompactRecord {
    /// Whether `record` needs `NAMES_FULL`: more than one address of a family.
    pub fn needs_full(record: &ServiceRecord) -> bool {
        record.v4_count > 1 || record.v6_count > 1
    }

    /// `record`, which fits (see [`CompactRecord::needs_full`]).
    pub fn of(record: &ServiceRecord) -> Self {
        Self {
            ttl: record.ttl,
            v4_count: record.v4_count.min(1),
            v6_count: record.v6_count.min(1),
            v4: record.v4[0],
            v6: record.v6[0],
            ..bytemuck::zeroed()
        }
    }

    /// The mark of a record in `NAMES_FULL` under `id` (nonzero).
    pub fn full(id: u32) -> Self {
        Self {
            full: id,
            ..bytemuck::zeroed()
        }
    }

    /// The record this holds, if it is not `full`.
    pub fn record(&self) -> Option<ServiceRecord> {
        if self.full != 0 {
            return None;
        }
        let mut record = ServiceRecord {
            ttl: self.ttl,
            v4_count: self.v4_count.min(1),
            v6_count: self.v6_count.min(1),
            ..ServiceRecord::EMPTY
        };
        record.v4[0] = self.v4;
        record.v6[0] = self.v6;
        Some(record)
    }
}

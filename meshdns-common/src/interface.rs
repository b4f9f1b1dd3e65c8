//! The interfaces the fast path is attached to: their hardware addresses.

use bytemuck::{Pod, Zeroable};

/// Most interfaces one program serves.
pub const MAX_INTERFACES: usize = 16;

/// The interfaces the program is attached to, with their MAC addresses: a
/// frame that reaches the program but was sent to another MAC (a NIC in
/// promiscuous mode, a port of a bridge) is not this host's to answer, as
/// the reply would leave with that host's MAC as its source.
///
/// The single entry of an array map rather than a hash map keyed by
/// ifindex: with one or two interfaces, scanning them costs a few
/// nanoseconds, a hash lookup about fifty, on every packet. The agent only
/// appends (and writes `count` last), so a program reading while it writes
/// sees every entry it already had unchanged.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct Interfaces {
    /// Entries in use.
    pub count: u32,
    pub _pad: u32,
    pub entries: [InterfaceMac; MAX_INTERFACES],
}

/// One attached interface.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct InterfaceMac {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<InterfaceMac>() == 12);
const _: () = assert!(core::mem::size_of::<Interfaces>() == 8 + 12 * MAX_INTERFACES);

impl InterfaceMac {
    /// The entry of interface `ifindex`, its padding zeroed.
    pub const fn new(ifindex: u32, mac: [u8; 6]) -> Self {
        Self {
            ifindex,
            mac,
            ..bytemuck::zeroed()
        }
    }
}

#[cfg(feature = "user")]
aya_pod!(Interfaces);

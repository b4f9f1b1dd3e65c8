//! The interfaces the fast path is attached to: their hardware addresses.

use bytemuck::{Pod, Zeroable};

/// Most interfaces one program serves: the size of the `INTERFACES` map. A
/// node runs a few hundred pods at most, each with a host-side veth, and
/// churns through many more over its life; the map is not preallocated, so
/// its size is a bound, not memory.
pub const MAX_INTERFACES: u32 = 4096;

/// The value of the `INTERFACES` map, keyed by ifindex (`u32`): the MAC of
/// an interface the program is attached to. A frame that reaches the
/// program but was sent to another MAC (a NIC in promiscuous mode, a port
/// of a bridge) is not this host's to answer, as the reply would leave with
/// that host's MAC as its source.
///
/// A hash map keyed by ifindex rather than an array indexed by it: ifindexes
/// only grow (each new pod's veth takes the next), so an array would need a
/// slot for every interface the node ever had. A 4-byte key is one round
/// of the kernel's hash: the check costs the same with one interface or a
/// thousand (meshdns-xdp-cost).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Pod, Zeroable)]
pub struct InterfaceMac {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<InterfaceMac>() == 8);

impl InterfaceMac {
    /// The entry of an interface with MAC `mac`, its padding zeroed.
    pub const fn new(mac: [u8; 6]) -> Self {
        Self { mac, _pad: [0; 2] }
    }
}

#[cfg(feature = "user")]
aya_pod!(InterfaceMac);

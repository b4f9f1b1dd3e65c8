//! Bounds-checked access to the frame, in the form the verifier can follow:
//! every pointer handed out has been compared against `data_end` first.

use core::mem::size_of;

use aya_ebpf::programs::XdpContext;

/// Ethernet header. Fields are byte arrays so every header has alignment 1
/// and can sit at any offset.
#[repr(C)]
pub struct EthHdr {
    pub dst: [u8; 6],
    pub src: [u8; 6],
    pub ether_type: [u8; 2],
}

/// An 802.1Q / 802.1ad tag, after the MAC addresses.
#[repr(C)]
pub struct VlanHdr {
    pub tci: [u8; 2],
    pub ether_type: [u8; 2],
}

/// IPv4 header without options.
#[repr(C)]
pub struct Ipv4Hdr {
    pub version_ihl: u8,
    pub tos: u8,
    pub total_len: [u8; 2],
    pub id: [u8; 2],
    pub frag_off: [u8; 2],
    pub ttl: u8,
    pub protocol: u8,
    pub check: [u8; 2],
    pub src: [u8; 4],
    pub dst: [u8; 4],
}

/// IPv6 fixed header.
#[repr(C)]
pub struct Ipv6Hdr {
    pub version_class_flow: [u8; 4],
    pub payload_len: [u8; 2],
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: [u8; 16],
    pub dst: [u8; 16],
}

#[repr(C)]
pub struct UdpHdr {
    pub src_port: [u8; 2],
    pub dst_port: [u8; 2],
    pub len: [u8; 2],
    pub check: [u8; 2],
}

pub const ETH_HDR_LEN: usize = size_of::<EthHdr>();
pub const VLAN_HDR_LEN: usize = size_of::<VlanHdr>();
pub const IPV4_HDR_LEN: usize = size_of::<Ipv4Hdr>();
pub const IPV6_HDR_LEN: usize = size_of::<Ipv6Hdr>();
pub const UDP_HDR_LEN: usize = size_of::<UdpHdr>();

const _: () = assert!(
    ETH_HDR_LEN == 14
        && VLAN_HDR_LEN == 4
        && IPV4_HDR_LEN == 20
        && IPV6_HDR_LEN == 40
        && UDP_HDR_LEN == 8
);

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const ETHERTYPE_VLAN: u16 = 0x8100;
pub const ETHERTYPE_QINQ: u16 = 0x88a8;
pub const IPPROTO_UDP: u8 = 17;
/// Most VLAN tags in front of the IP header (802.1ad outer + 802.1Q inner).
pub const MAX_VLAN_TAGS: usize = 2;

/// A `T` at `offset` bytes into the frame, if the frame is long enough.
#[inline(always)]
pub fn ptr_at<T>(ctx: &XdpContext, offset: usize) -> Option<*const T> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// A writable `T` at `offset` bytes into the frame, if the frame is long enough.
#[inline(always)]
pub fn ptr_at_mut<T>(ctx: &XdpContext, offset: usize) -> Option<*mut T> {
    ptr_at::<T>(ctx, offset).map(|p| p as *mut T)
}

/// The big-endian 16-bit word at `offset`.
#[inline(always)]
pub fn load_be16(ctx: &XdpContext, offset: usize) -> Option<u16> {
    // SAFETY: ptr_at checked that both bytes are inside the frame.
    ptr_at::<[u8; 2]>(ctx, offset).map(|p| u16::from_be_bytes(unsafe { *p }))
}

/// An IPv6 address (network order) as two numbers, its high and low 64
/// bits, as the scope's ranges and the rate limit's keys hold it.
#[inline(always)]
pub fn ipv6_halves(address: &[u8; 16]) -> [u64; 2] {
    let a = address;
    [
        u64::from_be_bytes([a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]]),
        u64::from_be_bytes([a[8], a[9], a[10], a[11], a[12], a[13], a[14], a[15]]),
    ]
}

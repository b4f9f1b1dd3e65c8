//! The bodies of the helper programs the lab, the tests and the benchmarks
//! attach next to the answer program (their entries are in `main.rs`).
//! None of this is on the DNS path.

use aya_ebpf::{
    helpers::generated::bpf_redirect,
    macros::map,
    maps::PerCpuArray,
    programs::{TcContext, XdpContext},
};

use crate::DNS_PORT;
use crate::dns::HDR_FLAGS;
use crate::packet::*;

/// The floor's work, on the packet `start..end` (a frame in XDP, a socket
/// buffer's linear part at TC): an IPv4 UDP query to port 53 without IP
/// options turned into its reflection: MAC and IP addresses and ports
/// swapped, QR set, the UDP checksum zeroed (IPv4 allows none; cheaper
/// than fixing it). `None`, untouched: not one, or shorter than its headers.
#[inline(always)]
fn reflect_packet(start: usize, end: usize) -> Option<()> {
    const LEN: usize = ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN + HDR_FLAGS + 1;
    if start + LEN > end {
        return None;
    }
    let eth = start as *mut EthHdr;
    let ip = (start + ETH_HDR_LEN) as *mut Ipv4Hdr;
    let udp = (start + ETH_HDR_LEN + IPV4_HDR_LEN) as *mut UdpHdr;
    let flags = (start + ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN + HDR_FLAGS) as *mut u8;
    // SAFETY: the packet holds the first LEN bytes, checked against its end.
    unsafe {
        if u16::from_be_bytes((*eth).ether_type) != ETHERTYPE_IPV4
            || (*ip).version_ihl != 0x45
            || (*ip).protocol != IPPROTO_UDP
            || u16::from_be_bytes((*udp).dst_port) != DNS_PORT
        {
            return None;
        }
        core::mem::swap(&mut (*eth).dst, &mut (*eth).src);
        core::mem::swap(&mut (*ip).src, &mut (*ip).dst);
        core::mem::swap(&mut (*udp).src_port, &mut (*udp).dst_port);
        *flags |= 0x80;
        (*udp).check = [0; 2];
    }
    Some(())
}

/// The XDP floor: the reflection, sent back with `XDP_TX` by the caller.
#[inline(always)]
pub(crate) fn reflect(ctx: &XdpContext) -> Option<()> {
    reflect_packet(ctx.data(), ctx.data_end())
}

/// The TC hook's floor: the reflection of a socket buffer at TC ingress,
/// sent back out of the interface it came in on (`bpf_redirect`, the way a
/// TC answer would leave); its verdict.
#[inline(always)]
pub(crate) fn tc_reflect(ctx: &TcContext) -> Option<i32> {
    reflect_packet(ctx.data(), ctx.data_end())?;
    // SAFETY: reading a field of the socket buffer the kernel passed; a
    // helper call with no memory arguments. Egress: flags 0.
    Some(unsafe { bpf_redirect((*ctx.skb.skb).ifindex, 0) } as i32)
}

/// What `meshdns_tc_count` saw: IPv4 UDP packets to port 53.
#[map]
static LAB_TC_SEEN: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Counts an IPv4 UDP packet to port 53 (without IP options) in
/// `LAB_TC_SEEN`.
#[inline(always)]
pub(crate) fn count_dns(ctx: &TcContext) {
    let is_dns = || -> Result<bool, i64> {
        Ok(u16::from_be(ctx.load::<u16>(12)?) == ETHERTYPE_IPV4
            && ctx.load::<u8>(ETH_HDR_LEN)? == 0x45
            && ctx.load::<u8>(ETH_HDR_LEN + 9)? == IPPROTO_UDP
            && u16::from_be(ctx.load::<u16>(ETH_HDR_LEN + IPV4_HDR_LEN + 2)?) == DNS_PORT)
    };
    if is_dns().unwrap_or(false)
        && let Some(seen) = LAB_TC_SEEN.get_ptr_mut(0)
    {
        // SAFETY: a per-CPU slot: nothing else writes it while we run.
        unsafe { *seen += 1 };
    }
}

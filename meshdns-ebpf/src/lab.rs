//! The bodies of the helper programs the lab, the tests and the benchmarks
//! attach next to the answer program (their entries are in `main.rs`).
//! None of this is on the DNS path.

use aya_ebpf::{
    macros::map,
    maps::PerCpuArray,
    programs::{TcContext, XdpContext},
};

use crate::DNS_PORT;
use crate::dns::HDR_FLAGS;
use crate::packet::*;

#[inline(always)]
pub(crate) fn reflect(ctx: &XdpContext) -> Option<()> {
    let eth = ptr_at_mut::<EthHdr>(ctx, 0)?;
    let ip = ptr_at_mut::<Ipv4Hdr>(ctx, ETH_HDR_LEN)?;
    let udp = ptr_at_mut::<UdpHdr>(ctx, ETH_HDR_LEN + IPV4_HDR_LEN)?;
    let flags = ptr_at_mut::<u8>(ctx, ETH_HDR_LEN + IPV4_HDR_LEN + UDP_HDR_LEN + HDR_FLAGS)?;
    // SAFETY: ptr_at_mut checked each is inside the frame.
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
        // Zero: no checksum, which IPv4 allows; cheaper than fixing it.
        (*udp).check = [0; 2];
    }
    Some(())
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

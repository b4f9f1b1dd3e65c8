//! The bodies of the helper programs the lab and the benchmarks attach next
//! to the answer program (their `#[xdp]` entries are in `main.rs`). None of
//! this is on the DNS path.

use aya_ebpf::programs::XdpContext;

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

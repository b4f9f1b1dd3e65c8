//! Internet checksums (RFC 1071) of the rewritten reply, computed from the
//! bytes as they are in the frame.

use aya_ebpf::programs::XdpContext;

use crate::dns::MAX_REPLY_LEN;
use crate::packet::{IPV4_HDR_LEN, UDP_HDR_LEN, ptr_at};

/// Folds a 32-bit one's-complement sum to 16 bits. Two folds suffice for any
/// sum of fewer than 65536 words, and a fixed count keeps the verifier happy.
#[inline(always)]
fn fold(sum: u32) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The IPv4 header checksum of the header at `l3`, whose checksum field the
/// caller has zeroed.
#[inline(always)]
pub fn ipv4_header(ctx: &XdpContext, l3: usize) -> Option<u16> {
    let header = ptr_at::<[[u8; 2]; IPV4_HDR_LEN / 2]>(ctx, l3)?;
    // SAFETY: ptr_at checked that the whole header is inside the frame.
    let header = unsafe { &*header };
    let mut sum = 0u32;
    for word in header {
        sum += u16::from_be_bytes(*word) as u32;
    }
    Some(!fold(sum))
}

/// Most 16-bit words a UDP datagram of the fast path holds.
const MAX_UDP_WORDS: usize = (UDP_HDR_LEN + MAX_REPLY_LEN).div_ceil(2);

/// The UDP checksum over IPv4 of the `udp_len`-byte datagram at `l4`, whose
/// checksum field the caller has zeroed (RFC 768). The datagram must end the
/// frame, as it does once the frame is resized to the reply.
#[inline(always)]
pub fn udp_ipv4(
    ctx: &XdpContext,
    src: [u8; 4],
    dst: [u8; 4],
    l4: usize,
    udp_len: usize,
) -> Option<u16> {
    let end = ctx.data_end();
    if udp_len > 2 * MAX_UDP_WORDS || ctx.data() + l4 + udp_len != end {
        return None;
    }
    let mut sum = u16::from_be_bytes([src[0], src[1]]) as u32
        + u16::from_be_bytes([src[2], src[3]]) as u32
        + u16::from_be_bytes([dst[0], dst[1]]) as u32
        + u16::from_be_bytes([dst[2], dst[3]]) as u32
        + 17 // IPPROTO_UDP
        + udp_len as u32;
    // Walk a cursor to the frame's end: a plain `cursor + 2 > end` test is
    // the form of bounds check the verifier follows.
    let mut cursor = ctx.data() + l4;
    for _ in 0..MAX_UDP_WORDS {
        if cursor + 2 > end {
            break;
        }
        // SAFETY: the two bytes at cursor are inside the frame.
        sum += u16::from_be_bytes(unsafe { *(cursor as *const [u8; 2]) }) as u32;
        cursor += 2;
    }
    // Written as `cursor + len <= end`, like every bounds check here.
    #[allow(clippy::int_plus_one)]
    if cursor + 1 <= end {
        // An odd length: the last byte is padded with a zero byte.
        // SAFETY: the byte at cursor is inside the frame.
        sum += (unsafe { *(cursor as *const u8) } as u32) << 8;
    }
    // A computed zero is sent as all ones: zero means "no checksum" (RFC 768).
    match !fold(sum) {
        0 => Some(0xffff),
        checksum => Some(checksum),
    }
}

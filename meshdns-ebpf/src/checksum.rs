//! Internet checksums (RFC 1071) of the reply.

use aya_ebpf::{helpers::generated::bpf_csum_diff, programs::XdpContext};

use crate::dns::Msg;
use crate::packet::{IPV4_HDR_LEN, ptr_at};

/// Folds a one's-complement sum to 16 bits. Three folds suffice for any
/// 64-bit sum of fewer than 2^32 words, and a fixed count keeps the verifier
/// happy.
#[inline(always)]
fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The IPv4 header checksum of the header at `l3`, whose checksum field the
/// caller has zeroed, as bytes to store.
#[inline(always)]
pub fn ipv4_header(ctx: &XdpContext, l3: usize) -> Option<[u8; 2]> {
    let header = ptr_at::<[[u8; 2]; IPV4_HDR_LEN / 2]>(ctx, l3)?;
    // SAFETY: ptr_at checked that the whole header is inside the frame.
    let header = unsafe { &*header };
    let mut sum = 0u64;
    for word in header {
        sum += u16::from_ne_bytes(*word) as u64;
    }
    Some((!fold(sum)).to_ne_bytes())
}

/// A partial sum of `bytes` as 16-bit words in memory order, the same
/// convention as the kernel's `csum_partial` behind `bpf_csum_diff`: its
/// folded complement is stored as is, on any byte order.
#[inline(always)]
pub fn sum_words<const N: usize>(bytes: &[u8; N]) -> u64 {
    let mut sum = 0u64;
    let mut i = 0;
    while i + 1 < N {
        sum += u16::from_ne_bytes([bytes[i], bytes[i + 1]]) as u64;
        i += 2;
    }
    sum
}

/// The UDP checksum (RFC 768; RFC 8200 §8.1 for IPv6) of a datagram whose
/// pseudo-header and UDP header sum to `header_sum` and whose payload is the
/// first `len` bytes of `msg`, as bytes to store. `msg` must hold zeros
/// after `len` up to the next multiple of 4, and `len` be at most 512.
#[inline(always)]
pub fn udp(header_sum: u64, msg: &mut Msg, len: usize) -> Option<[u8; 2]> {
    // bpf_csum_diff sums whole 32-bit words, at most 512 bytes of them.
    let padded = ((len + 3) & !3) & 0x3fc;
    // SAFETY: `msg` is valid for `padded` <= 512 bytes; `from` is empty.
    let payload_sum = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            msg.bytes.as_mut_ptr() as *mut u32,
            padded as u32,
            0,
        )
    };
    if payload_sum < 0 {
        return None;
    }
    // A computed zero is sent as all ones: zero means "no checksum".
    let checksum = match !fold(header_sum + payload_sum as u32 as u64) {
        0 => 0xffff,
        checksum => checksum,
    };
    Some(checksum.to_ne_bytes())
}

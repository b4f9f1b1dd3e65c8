//! Internet checksums (RFC 1071) of the reply.

use aya_ebpf::programs::XdpContext;

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

/// A partial sum, as `sum_words` gives it, of 16-bit values written
/// big-endian (the DNS header's fields).
#[inline(always)]
pub fn be_words<const N: usize>(values: &[u16; N]) -> u64 {
    let mut sum = 0u64;
    for value in values {
        sum += u16::from_ne_bytes(value.to_be_bytes()) as u64;
    }
    sum
}

/// A partial sum of bytes that start at an even offset, moved to where
/// they are in the datagram: at an odd offset each byte pairs with the
/// other half of a word, which swaps the bytes of the folded sum (RFC 1071
/// §2(B)).
#[inline(always)]
pub fn at_parity(sum: u64, odd: bool) -> u64 {
    let folded = fold(sum);
    if odd {
        folded.swap_bytes() as u64
    } else {
        folded as u64
    }
}

/// The checksum field of a datagram whose parts sum to `sum` (RFC 768; RFC
/// 8200 §8.1 for IPv6), as bytes to store: a computed zero is sent as all
/// ones, since zero means "no checksum".
#[inline(always)]
pub fn finish(sum: u64) -> [u8; 2] {
    match !fold(sum) {
        0 => 0xffff_u16,
        checksum => checksum,
    }
    .to_ne_bytes()
}

//! Phase 5, the only one that writes to the frame: `send_reply` resizes it,
//! copies the reply in, swaps addresses and ports and writes lengths and
//! checksums (the sums themselves are in `checksum`).

use aya_ebpf::{
    helpers::generated::{
        bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    programs::XdpContext,
};
use meshdns_common::Counter;

use crate::dns::*;
use crate::maps::Scratch;
use crate::never::{Never, happened};
use crate::packet::*;
use crate::parse::Transport;
use crate::{MAX_HEADERS_LEN, Outcome, checksum};

/// TTL / hop limit of the reply's IP header.
const REPLY_HOP_LIMIT: u8 = 64;

/// Resizes the frame to `new_len` bytes, the headers (the first
/// `headers_len` bytes) kept in place at its start. On failure the frame is
/// unchanged (`Err`), unless the headers could not be put back (`Ok(false)`).
///
/// Shrinking, which also drops link-layer padding, happens at the tail.
/// Growing (at most 8 AAAA records, 224 bytes) happens where the buffer has
/// room: at the tail if it can (a NIC's page-sized buffers,
/// BPF_PROG_TEST_RUN's page: nothing moves), else at the head, whose 256
/// bytes XDP guarantees less the kernel's `xdp_frame` (about 216 on a
/// veth), else split between the two (a veth frame is the sender's socket
/// buffer, whose spare tail depends on the packet's size).
#[inline(always)]
fn resize(
    ctx: &XdpContext,
    new_len: usize,
    headers: &mut [u8; MAX_HEADERS_LEN],
    headers_len: usize,
) -> Result<bool, ()> {
    let old_len = ctx.data_end() - ctx.data();
    if new_len <= old_len {
        if new_len == old_len {
            return Ok(true);
        }
        return adjust_tail(ctx, new_len as i32 - old_len as i32);
    }
    let grow = ((new_len - old_len) & 0x3ff) as i32;
    if adjust_tail(ctx, grow).is_ok() {
        return Ok(true);
    }
    let headers_len = headers_len & 0xff;
    if headers_len == 0 || headers_len > MAX_HEADERS_LEN {
        return Err(());
    }
    // SAFETY: `headers` holds MAX_HEADERS_LEN bytes, and headers_len is at most that.
    if unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            0,
            headers.as_mut_ptr() as *mut _,
            headers_len as u32,
        )
    } != 0
    {
        return Err(());
    }
    // The whole growth at the head, or this much of it with the rest at the
    // tail: a constant list, as the room at either end cannot be asked. A
    // veth's headroom is 216 (256 less the kernel's `xdp_frame`), its spare
    // tail a few bytes or a few dozen, whatever the packet's size left; the
    // list is only walked for the largest answers.
    for head in [grow, 216, 208, 200, 192, 176, 160, 128, 96, 64, 32] {
        if head > grow {
            continue;
        }
        let tail = grow - head;
        if tail > 0 && adjust_tail(ctx, tail).is_err() {
            continue;
        }
        // SAFETY: a helper call on the program's own context.
        if unsafe { bpf_xdp_adjust_head(ctx.ctx, -head) } != 0 {
            // Back to the query's length: the frame is as it came.
            if tail > 0 && adjust_tail(ctx, -tail).is_err() {
                return Ok(false);
            }
            continue;
        }
        // SAFETY: as for the load.
        let stored = unsafe {
            bpf_xdp_store_bytes(
                ctx.ctx,
                0,
                headers.as_mut_ptr() as *mut _,
                headers_len as u32,
            )
        };
        return Ok(stored == 0);
    }
    Err(())
}

/// Moves the frame's end by `delta` bytes.
#[inline(always)]
fn adjust_tail(ctx: &XdpContext, delta: i32) -> Result<bool, ()> {
    // SAFETY: a helper call on the program's own context.
    if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } == 0 {
        Ok(true)
    } else {
        Err(())
    }
}

/// Turns the frame into the reply: resizes it, copies the reply message in,
/// swaps MAC and IP addresses and ports, writes lengths and checksums.
/// Failures before the resize leave the frame as it was (a pass); after it,
/// the frame is no longer the query (`Outcome::Broken`).
#[inline(always)]
pub(crate) fn send_reply(
    ctx: &XdpContext,
    transport: &Transport,
    scratch: &mut Scratch,
    reply_len: usize,
) -> Result<(), Outcome> {
    let reply_len = reply_len & 0x3ff;
    if !(HDR_LEN..=MAX_MSG_LEN).contains(&reply_len) {
        return Err(Counter::PassTooLarge.into());
    }
    let Some(udp_check) = udp_checksum(ctx, transport, &mut scratch.msg, reply_len) else {
        // bpf_csum_diff on lengths checked above: it cannot fail.
        happened(ctx, Never::ChecksumFailed);
        return Err(Counter::PassMalformed.into());
    };
    match resize(
        ctx,
        transport.dns() + reply_len,
        &mut scratch.headers,
        transport.dns(),
    ) {
        Err(()) => return Err(Counter::PassResize.into()),
        Ok(false) => {
            happened(ctx, Never::HeadersLost);
            return Err(Outcome::Broken);
        }
        Ok(true) => {}
    }
    rewrite_frame(ctx, transport, &mut scratch.msg, reply_len, udp_check).ok_or_else(|| {
        happened(ctx, Never::ReplyNotWritten);
        Outcome::Broken
    })
}

/// The reply's UDP checksum, from the query's headers and the reply message.
#[inline(always)]
fn udp_checksum(
    ctx: &XdpContext,
    transport: &Transport,
    msg: &mut Msg,
    reply_len: usize,
) -> Option<[u8; 2]> {
    let udp_len = UDP_HDR_LEN + reply_len;
    let l4 = transport.l4;

    let udp_header_sum = {
        let ip_sum = if transport.ipv6 {
            let ip = ptr_at::<Ipv6Hdr>(ctx, transport.l3)?;
            // SAFETY: ptr_at checked the header is inside the frame.
            let ip = unsafe { &*ip };
            // Pseudo-header: addresses, 32-bit length, next header (RFC 8200 §8.1).
            checksum::sum_words(&ip.src)
                + checksum::sum_words(&ip.dst)
                + checksum::sum_words(&(udp_len as u32).to_be_bytes())
                + checksum::sum_words(&[0, 0, 0, IPPROTO_UDP])
        } else {
            let ip = ptr_at::<Ipv4Hdr>(ctx, transport.l3)?;
            // SAFETY: as above.
            let ip = unsafe { &*ip };
            checksum::sum_words(&ip.src)
                + checksum::sum_words(&ip.dst)
                + checksum::sum_words(&[0, IPPROTO_UDP])
                + checksum::sum_words(&(udp_len as u16).to_be_bytes())
        };
        let udp = ptr_at::<UdpHdr>(ctx, l4)?;
        // SAFETY: as above.
        let udp = unsafe { &*udp };
        // The UDP header: both ports (swapped, the sum does not care), the
        // length, and a zero checksum.
        ip_sum
            + checksum::sum_words(&udp.src_port)
            + checksum::sum_words(&udp.dst_port)
            + checksum::sum_words(&(udp_len as u16).to_be_bytes())
    };
    checksum::udp(udp_header_sum, msg, reply_len)
}

/// Copies the reply message into the resized frame and rewrites the headers.
#[inline(always)]
fn rewrite_frame(
    ctx: &XdpContext,
    transport: &Transport,
    msg: &mut Msg,
    reply_len: usize,
    udp_check: [u8; 2],
) -> Option<()> {
    let udp_len = UDP_HDR_LEN + reply_len;
    let l4 = transport.l4;
    // SAFETY: the buffer holds at least reply_len <= 512 bytes.
    let stored = unsafe {
        bpf_xdp_store_bytes(
            ctx.ctx,
            transport.dns() as u32,
            msg.bytes.as_mut_ptr() as *mut _,
            reply_len as u32,
        )
    };
    if stored != 0 {
        return None;
    }

    let eth = ptr_at_mut::<EthHdr>(ctx, 0)?;
    let udp = ptr_at_mut::<UdpHdr>(ctx, l4)?;
    // SAFETY: ptr_at_mut checked each header is inside the resized frame;
    // each reference lives only for its statement.
    unsafe {
        core::mem::swap(&mut (*eth).dst, &mut (*eth).src);
        core::mem::swap(&mut (*udp).src_port, &mut (*udp).dst_port);
        (*udp).len = (udp_len as u16).to_be_bytes();
        (*udp).check = udp_check;
    }
    if transport.ipv6 {
        let ip = ptr_at_mut::<Ipv6Hdr>(ctx, transport.l3)?;
        // SAFETY: as above.
        unsafe {
            core::mem::swap(&mut (*ip).src, &mut (*ip).dst);
            (*ip).payload_len = (udp_len as u16).to_be_bytes();
            (*ip).hop_limit = REPLY_HOP_LIMIT;
        }
    } else {
        let ip = ptr_at_mut::<Ipv4Hdr>(ctx, transport.l3)?;
        // SAFETY: as above.
        unsafe {
            core::mem::swap(&mut (*ip).src, &mut (*ip).dst);
            (*ip).total_len = ((IPV4_HDR_LEN + udp_len) as u16).to_be_bytes();
            (*ip).ttl = REPLY_HOP_LIMIT;
            (*ip).check = [0; 2];
        }
        let check = checksum::ipv4_header(ctx, transport.l3)?;
        // SAFETY: as above.
        unsafe { (*ip).check = check };
    }
    Some(())
}

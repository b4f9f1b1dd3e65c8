//! Phase 5, the only one that writes to the frame: `send_reply` resizes it,
//! writes the header's flags and counts and appends the answer after the
//! question (the rest of the message stays as the query had it), swaps
//! addresses and ports and writes lengths and checksums (the sums
//! themselves are in `checksum`).

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
use crate::parse::{Query, Transport};
use crate::reply::Reply;
use crate::verifier::forget_exact_value;
use crate::{MAX_HEADERS_LEN, Outcome, checksum};

/// TTL / hop limit of the reply's IP header.
const REPLY_HOP_LIMIT: u8 = 64;

/// How `resize` left the frame.
enum Resized {
    /// The message is where it was (the frame changed at its tail).
    InPlace,
    /// The frame grew at its head: the headers are back at its start, the
    /// DNS message is still to be written after them.
    Moved,
}

/// Resizes the frame to `new_len` bytes, the headers (the first
/// `headers_len` bytes) kept in place at its start. On failure the frame is
/// unchanged (`Err(true)`), unless the headers could not be put back
/// (`Err(false)`).
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
) -> Result<Resized, bool> {
    let old_len = ctx.data_end() - ctx.data();
    if new_len <= old_len {
        if new_len == old_len {
            return Ok(Resized::InPlace);
        }
        return adjust_tail(ctx, new_len as i32 - old_len as i32)
            .map(|_| Resized::InPlace)
            .map_err(|()| true);
    }
    let grow = ((new_len - old_len) & 0x3ff) as i32;
    if adjust_tail(ctx, grow).is_ok() {
        return Ok(Resized::InPlace);
    }
    let headers_len = headers_len & 0xff;
    if headers_len == 0 || headers_len > MAX_HEADERS_LEN {
        return Err(true);
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
        return Err(true);
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
                return Err(false);
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
        return if stored == 0 {
            Ok(Resized::Moved)
        } else {
            Err(false)
        };
    }
    Err(true)
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

/// The bytes the reply appends: where they are in `Section`, and where
/// they go in the message (the question's end).
struct Appended {
    start: usize,
    len: usize,
    at: usize,
}

impl Appended {
    /// The reply's UDP length.
    fn udp_len(&self) -> usize {
        UDP_HDR_LEN + self.at + self.len
    }
}

/// Turns the frame into the reply: resizes it, writes the header's flags
/// and counts and appends `reply`'s section after the question, swaps MAC
/// and IP addresses and ports, writes lengths and checksums. Failures before
/// the resize leave the frame as it was (a pass); after it, the frame is no
/// longer the query (`Outcome::Broken`).
#[inline(always)]
pub(crate) fn send_reply(
    ctx: &XdpContext,
    transport: &Transport,
    scratch: &mut Scratch,
    query: &Query,
    reply: &Reply,
) -> Result<(), Outcome> {
    // Each count and type of record reaches here knowing other lengths:
    // made one, so that what follows is walked once.
    let question_end = forget_exact_value(&mut scratch.laundry, query.question_end(), 0x1ff);
    let appended = Appended {
        start: forget_exact_value(&mut scratch.laundry, reply.start, 0x1ff),
        len: forget_exact_value(&mut scratch.laundry, reply.appended_len(), 0x1ff),
        at: question_end,
    };
    let reply_len = question_end + appended.len;
    if question_end < HDR_LEN || reply_len > MAX_MSG_LEN {
        return Err(Counter::PassTooLarge.into());
    }
    let Some(udp_check) = udp_checksum(ctx, transport, scratch, query, reply, &appended) else {
        // The headers it reads were checked in parse: it cannot fail.
        happened(ctx, Never::ChecksumFailed);
        return Err(Counter::PassMalformed.into());
    };
    let dns = transport.dns();
    match resize(ctx, dns + reply_len, &mut scratch.headers, dns) {
        Err(true) => return Err(Counter::PassResize.into()),
        Err(false) => {
            happened(ctx, Never::HeadersLost);
            return Err(Outcome::Broken);
        }
        Ok(Resized::InPlace) => {}
        // The header and question, as the query had them, after the
        // headers that `resize` put back.
        Ok(Resized::Moved) => {
            // SAFETY: the buffer holds the query, question_end <= 512 bytes of it.
            let stored = unsafe {
                bpf_xdp_store_bytes(
                    ctx.ctx,
                    dns as u32,
                    scratch.msg.bytes.as_mut_ptr() as *mut _,
                    question_end as u32,
                )
            };
            if stored != 0 {
                happened(ctx, Never::ReplyNotWritten);
                return Err(Outcome::Broken);
            }
        }
    }
    rewrite_frame(ctx, transport, scratch, reply, &appended, udp_check).ok_or_else(|| {
        happened(ctx, Never::ReplyNotWritten);
        Outcome::Broken
    })
}

/// The reply's UDP checksum, from its parts: the pseudo-header and UDP
/// header from the frame, the DNS header's ID from the query and the rest
/// from `reply`, the question's name from the sum `parse` took while it
/// read it, and the appended section from the sum `build_reply` took while
/// it wrote it. No byte of the message is summed here.
#[inline(always)]
fn udp_checksum(
    ctx: &XdpContext,
    transport: &Transport,
    scratch: &mut Scratch,
    query: &Query,
    reply: &Reply,
    appended: &Appended,
) -> Option<[u8; 2]> {
    let udp_len = appended.udp_len();
    let l4 = transport.l4;

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
    let udp_sum = checksum::sum_words(&udp.src_port)
        + checksum::sum_words(&udp.dst_port)
        + checksum::sum_words(&(udp_len as u16).to_be_bytes());

    // The DNS header: the query's ID, the reply's flags and counts.
    let msg = &scratch.msg;
    let header_sum = checksum::sum_words(&[msg.u8(0), msg.u8(1)])
        + checksum::be_words(&[reply.flags, 1, reply.ancount, reply.nscount, reply.arcount]);
    // The question: its name, then its type and class, which start at an
    // odd offset when the name's length is odd.
    let odd = query.name_len & 1 != 0;
    let question_sum = scratch.name_sum
        + checksum::at_parity(checksum::be_words(&[query.qtype as u16, CLASS_IN]), odd);
    // The appended section, summed as `build_reply` wrote it, starts where
    // the question ends: the same parity.
    let section_sum = checksum::at_parity(reply.sum, odd);
    Some(checksum::finish(
        ip_sum + udp_sum + header_sum + question_sum + section_sum,
    ))
}

/// Writes the reply into the resized frame: the header's flags and counts,
/// the appended section after the question, and the rewritten headers.
#[inline(always)]
fn rewrite_frame(
    ctx: &XdpContext,
    transport: &Transport,
    scratch: &mut Scratch,
    reply: &Reply,
    appended: &Appended,
    udp_check: [u8; 2],
) -> Option<()> {
    let udp_len = appended.udp_len();
    let l4 = transport.l4;
    let dns = transport.dns();
    let (start, question_end, appended) = (appended.start, appended.at, appended.len);
    // Empty for a search expansion's NXDOMAIN without EDNS: the question
    // alone.
    if appended > 0 {
        // SAFETY: the section buffer holds 1024 bytes; start and appended
        // are each below 512.
        let stored = unsafe {
            bpf_xdp_store_bytes(
                ctx.ctx,
                (dns + question_end) as u32,
                scratch.section.bytes.as_mut_ptr().add(start) as *mut _,
                appended as u32,
            )
        };
        if stored != 0 {
            return None;
        }
    }

    let header = ptr_at_mut::<DnsHdr>(ctx, dns)?;
    // SAFETY: ptr_at_mut checked the header is inside the resized frame;
    // each reference lives only for its statement.
    unsafe {
        (*header).flags = reply.flags.to_be_bytes();
        (*header).ancount = reply.ancount.to_be_bytes();
        (*header).nscount = reply.nscount.to_be_bytes();
        (*header).arcount = reply.arcount.to_be_bytes();
    }
    let eth = ptr_at_mut::<EthHdr>(ctx, 0)?;
    let udp = ptr_at_mut::<UdpHdr>(ctx, l4)?;
    // SAFETY: as above.
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

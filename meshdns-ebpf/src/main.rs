//! The meshdns fast path: answers `<service>.<zone>` A and AAAA queries over
//! IPv4/UDP straight from the driver, by rewriting the query into its reply
//! and sending it back out of the same interface (`XDP_TX`).
//!
//! The program works in two phases. `parse_query` only reads: it validates
//! the whole frame and looks the name up, and every reason not to answer is
//! an `XDP_PASS` with the packet untouched, so the kernel and the agent see
//! exactly what the client sent. Only once an answer is certain does
//! `write_reply` resize and rewrite the frame.
#![no_std]
#![no_main]

mod checksum;
mod dns;
mod packet;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, xdp_action},
    helpers::generated::bpf_xdp_adjust_tail,
    macros::{map, xdp},
    maps::{HashMap, PerCpuArray},
    programs::XdpContext,
};
use meshdns_common::{
    Counter, EDNS_UDP_PAYLOAD_SIZE, MAX_ADDRS, MAX_LABEL_LEN, MAX_NAME_LEN, MAX_NAMES, NameKey,
    ServiceRecord, name::LOWERCASE,
};

use crate::dns::*;
use crate::packet::*;

/// The table: lowercased wire-format name to its addresses.
///
/// Not preallocated: an update then swaps in a whole new element and frees
/// the old one after an RCU grace period, so a lookup here never sees a
/// half-written record (a preallocated map recycles elements at once).
#[map]
static NAMES: HashMap<NameKey, ServiceRecord> =
    HashMap::with_max_entries(MAX_NAMES, BPF_F_NO_PREALLOC);

/// What happened to each packet, per CPU, indexed by `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Per-CPU working memory of one run.
#[repr(C)]
struct Scratch {
    /// The lookup key: 256 bytes is too much for the 512-byte stack.
    key: NameKey,
    /// See `forget_exact_value`.
    name_len: u64,
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

const L3: usize = ETH_HDR_LEN;
const L4: usize = L3 + IPV4_HDR_LEN;
const DNS: usize = L4 + UDP_HDR_LEN;
const QNAME: usize = DNS + DNS_HDR_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const IPPROTO_UDP: u8 = 17;
const DNS_PORT: u16 = 53;
/// TTL of the reply's IP header.
const REPLY_IP_TTL: u8 = 64;

#[xdp]
pub fn meshdns(ctx: XdpContext) -> u32 {
    let reply = match parse_query(&ctx) {
        Ok(reply) => reply,
        Err(reason) => {
            count(reason);
            return xdp_action::XDP_PASS;
        }
    };
    if !resize(&ctx, DNS + reply.msg_len) {
        // The frame is unchanged: the kernel can still have it.
        count(Counter::PassTailAdjust);
        return xdp_action::XDP_PASS;
    }
    match write_reply(&ctx, &reply) {
        Some(()) => {
            count(reply.answered);
            xdp_action::XDP_TX
        }
        // Unreachable while the lengths computed by parse_query are right:
        // the frame is already resized, so passing it on would hand the
        // kernel a corrupt packet. Abort, which also shows in xdp tracepoints.
        None => xdp_action::XDP_ABORTED,
    }
}

/// Returns `XDP_PASS` and nothing else. Attached to the peer end of a veth,
/// it turns on NAPI there, which veth needs to deliver `XDP_TX` frames.
#[xdp]
pub fn meshdns_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot: nothing else writes it while we run.
        unsafe { *value += 1 };
    }
}

/// Everything `write_reply` needs, found by `parse_query`.
struct Reply {
    record: *const ServiceRecord,
    answered: Counter,
    /// The query's header flags.
    query_flags: u16,
    /// Length of the question's name in wire format.
    name_len: usize,
    /// Number of answer records.
    answers: usize,
    /// `Some(do_bit)` if the query had an OPT record.
    edns_do: Option<bool>,
    /// Length of the reply's DNS message.
    msg_len: usize,
}

/// Validates the frame as a query the fast path can answer and finds the
/// answer. Reads only; every `Err` means `XDP_PASS` for that reason.
#[inline(always)]
fn parse_query(ctx: &XdpContext) -> Result<Reply, Counter> {
    let frame_len = ctx.data_end() - ctx.data();

    let ether_type = load_be16(ctx, 12).ok_or(Counter::PassMalformed)?;
    if ether_type != ETHERTYPE_IPV4 {
        return Err(Counter::PassNotIpv4);
    }

    let ip = ptr_at::<Ipv4Hdr>(ctx, L3).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the header is inside the frame.
    let ip = unsafe { &*ip };
    if ip.version_ihl >> 4 != 4 || ip.version_ihl & 0x0f < 5 {
        return Err(Counter::PassMalformed);
    }
    // Options move every later offset; fragments are not whole queries.
    if ip.version_ihl != 0x45 || u16::from_be_bytes(ip.frag_off) & 0x3fff != 0 {
        return Err(Counter::PassIpOptionsOrFragment);
    }
    if ip.protocol != IPPROTO_UDP {
        return Err(Counter::PassNotUdp);
    }

    let udp = ptr_at::<UdpHdr>(ctx, L4).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the header is inside the frame.
    let udp = unsafe { &*udp };
    if u16::from_be_bytes(udp.dst_port) != DNS_PORT {
        return Err(Counter::PassNotDnsPort);
    }
    // The IP and UDP lengths must agree, and the frame may only be longer
    // than the datagram by link-layer padding.
    let ip_len = u16::from_be_bytes(ip.total_len) as usize;
    let udp_len = u16::from_be_bytes(udp.len) as usize;
    if ip_len != IPV4_HDR_LEN + udp_len
        || L3 + ip_len > frame_len
        || udp_len < UDP_HDR_LEN + DNS_HDR_LEN
    {
        return Err(Counter::PassMalformed);
    }
    let msg_end = L4 + udp_len;

    let header = ptr_at::<DnsHdr>(ctx, DNS).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the header is inside the frame.
    let header = unsafe { &*header };
    let query_flags = u16::from_be_bytes(header.flags);
    if query_flags & (FLAG_QR | OPCODE_MASK | FLAG_TC) != 0
        || u16::from_be_bytes(header.qdcount) != 1
        || u16::from_be_bytes(header.ancount) != 0
        || u16::from_be_bytes(header.nscount) != 0
    {
        return Err(Counter::PassNotQuery);
    }
    let arcount = u16::from_be_bytes(header.arcount);
    if arcount > 1 {
        return Err(Counter::PassNotQuery);
    }

    let scratch = SCRATCH.get_ptr_mut(0).ok_or(Counter::PassMalformed)?;
    // SAFETY: a per-CPU slot: nothing else uses it while we run.
    let scratch = unsafe { &mut *scratch };
    let name_len = read_qname(ctx, msg_end, &mut scratch.key)?;
    let name_len = forget_exact_value(&mut scratch.name_len, name_len);

    let question_end = QNAME + name_len + 4;
    if question_end > msg_end {
        return Err(Counter::PassMalformed);
    }
    let qtype = load_be16(ctx, QNAME + name_len).ok_or(Counter::PassMalformed)?;
    let qclass = load_be16(ctx, QNAME + name_len + 2).ok_or(Counter::PassMalformed)?;
    let (answered, rdata_len) = match (qclass, qtype) {
        (CLASS_IN, TYPE_A) => (Counter::AnsweredA, 4),
        (CLASS_IN, TYPE_AAAA) => (Counter::AnsweredAaaa, 16),
        _ => return Err(Counter::PassUnsupportedType),
    };

    let edns_do = if arcount == 1 {
        Some(read_opt(ctx, question_end, msg_end)?)
    } else if question_end != msg_end {
        return Err(Counter::PassMalformed);
    } else {
        None
    };

    // By reference: by value would copy the 256-byte key onto the stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let record = NAMES
        .get_ptr(&scratch.key)
        .ok_or(Counter::PassUnknownName)?;
    // SAFETY: map values stay valid for the whole run of the program (RCU).
    let available = match answered {
        Counter::AnsweredA => unsafe { (*record).v4_count },
        _ => unsafe { (*record).v6_count },
    } as usize;
    if available == 0 {
        return Err(Counter::PassNoAddress);
    }
    let answers = if available > MAX_ADDRS {
        MAX_ADDRS
    } else {
        available
    };

    let answer_len = 2 + core::mem::size_of::<RrFixed>() + rdata_len;
    let opt_len = if edns_do.is_some() { OPT_RR_LEN } else { 0 };
    let msg_len = question_end - DNS + answers * answer_len + opt_len;
    if msg_len > MAX_REPLY_LEN {
        return Err(Counter::PassTooLarge);
    }

    Ok(Reply {
        record,
        answered,
        query_flags,
        name_len,
        answers,
        edns_do,
        msg_len,
    })
}

/// Copies the question's name, lowercased, into `key` and returns its length
/// in wire format. Compression pointers, labels over 63 bytes, names over 255
/// bytes and names running past the message are all `PassMalformed`.
#[inline(always)]
fn read_qname(ctx: &XdpContext, msg_end: usize, key: &mut NameKey) -> Result<usize, Counter> {
    *key = NameKey::ZERO;
    // Offset in the name of the next length octet.
    let mut next_label = 0;
    for i in 0..MAX_NAME_LEN {
        if QNAME + i >= msg_end {
            return Err(Counter::PassMalformed);
        }
        let byte = load_u8(ctx, QNAME + i).ok_or(Counter::PassMalformed)?;
        key.wire[i] = LOWERCASE[byte as usize];
        if i == next_label {
            if byte == 0 {
                return Ok(i + 1);
            }
            // Also catches compression pointers (top bits 11).
            if byte as usize > MAX_LABEL_LEN {
                return Err(Counter::PassMalformed);
            }
            next_label = i + 1 + byte as usize;
        }
    }
    Err(Counter::PassMalformed)
}

/// Returns `value` such that the verifier knows only that it is at most
/// `MAX_NAME_LEN`, not which value it is.
///
/// `read_qname` returns from a different iteration for every name length,
/// each with the length as a known constant; without this, the verifier would
/// walk everything after it once per length and give up at its limit of one
/// million instructions. A round trip through map memory, which the verifier
/// does not track, makes all those paths one.
#[inline(always)]
fn forget_exact_value(slot: &mut u64, value: usize) -> usize {
    // SAFETY: `slot` is a valid, exclusive reference.
    unsafe {
        core::ptr::write_volatile(slot, value as u64);
        (core::ptr::read_volatile(slot) & 0xff) as usize
    }
}

/// Checks that the one additional record at `at` is an OPT record that ends
/// the message, and returns its DO bit.
#[inline(always)]
fn read_opt(ctx: &XdpContext, at: usize, msg_end: usize) -> Result<bool, Counter> {
    let opt = ptr_at::<OptRr>(ctx, at).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the record is inside the frame.
    let opt = unsafe { &*opt };
    if opt.name != 0 || u16::from_be_bytes(opt.rtype) != TYPE_OPT {
        return Err(Counter::PassNotQuery);
    }
    // The agent answers other versions with BADVERS (RFC 6891 §6.1.3).
    if opt.version != 0 {
        return Err(Counter::PassEdnsVersion);
    }
    // Options (cookies, padding, ...) are ignored, as RFC 6891 allows.
    if at + OPT_RR_LEN + u16::from_be_bytes(opt.rdlength) as usize != msg_end {
        return Err(Counter::PassMalformed);
    }
    Ok(u16::from_be_bytes(opt.flags) & EDNS_FLAG_DO != 0)
}

/// Grows or shrinks the frame to `new_len` bytes (this also drops any
/// link-layer padding). On failure the frame is unchanged.
#[inline(always)]
fn resize(ctx: &XdpContext, new_len: usize) -> bool {
    let delta = new_len as i32 - (ctx.data_end() - ctx.data()) as i32;
    // SAFETY: a helper call on the program's own context.
    delta == 0 || unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } == 0
}

/// Turns the query, already resized to the reply's length, into its reply:
/// swaps addresses and ports, writes header, answers, OPT record and
/// checksums. `None` only if the frame is not as `parse_query` found it.
#[inline(always)]
fn write_reply(ctx: &XdpContext, reply: &Reply) -> Option<()> {
    // Raw pointers, not references: the checksums below read the same
    // bytes through the frame.
    let eth = ptr_at_mut::<EthHdr>(ctx, 0)?;
    let ip = ptr_at_mut::<Ipv4Hdr>(ctx, L3)?;
    let udp = ptr_at_mut::<UdpHdr>(ctx, L4)?;
    let header = ptr_at_mut::<DnsHdr>(ctx, DNS)?;
    // SAFETY: ptr_at_mut checked each header is inside the resized frame,
    // and map values stay valid for the whole run of the program (RCU).
    let record = unsafe { &*reply.record };

    let udp_len = UDP_HDR_LEN + reply.msg_len;
    // SAFETY: as above; each reference lives only for its statement.
    unsafe {
        core::mem::swap(&mut (*eth).dst, &mut (*eth).src);

        core::mem::swap(&mut (*ip).src, &mut (*ip).dst);
        (*ip).total_len = ((IPV4_HDR_LEN + udp_len) as u16).to_be_bytes();
        (*ip).ttl = REPLY_IP_TTL;
        (*ip).check = [0; 2];

        core::mem::swap(&mut (*udp).src_port, &mut (*udp).dst_port);
        (*udp).len = (udp_len as u16).to_be_bytes();
        (*udp).check = [0; 2];
    }

    let flags = FLAG_QR | FLAG_AA | FLAG_RA | (reply.query_flags & (FLAG_RD | FLAG_CD));
    // SAFETY: as above.
    unsafe {
        (*header).flags = flags.to_be_bytes();
        (*header).ancount = (reply.answers as u16).to_be_bytes();
        (*header).nscount = [0; 2];
        (*header).arcount = (reply.edns_do.is_some() as u16).to_be_bytes();
    }

    let ttl = record.ttl.to_be_bytes();
    let mut at = QNAME + reply.name_len + 4;
    for i in 0..MAX_ADDRS {
        if i >= reply.answers {
            break;
        }
        let name = ptr_at_mut::<[u8; 2]>(ctx, at)?;
        let fixed = ptr_at_mut::<RrFixed>(ctx, at + 2)?;
        // SAFETY: ptr_at_mut checked both are inside the frame.
        unsafe {
            *name = NAME_PTR_TO_QUESTION;
            (*fixed).class = CLASS_IN.to_be_bytes();
            (*fixed).ttl = ttl;
        }
        at += 2 + core::mem::size_of::<RrFixed>();
        if reply.answered == Counter::AnsweredA {
            let rdata = ptr_at_mut::<[u8; 4]>(ctx, at)?;
            // SAFETY: as above.
            unsafe {
                (*fixed).rtype = TYPE_A.to_be_bytes();
                (*fixed).rdlength = 4u16.to_be_bytes();
                *rdata = record.v4[i];
            }
            at += 4;
        } else {
            let rdata = ptr_at_mut::<[u8; 16]>(ctx, at)?;
            // SAFETY: as above.
            unsafe {
                (*fixed).rtype = TYPE_AAAA.to_be_bytes();
                (*fixed).rdlength = 16u16.to_be_bytes();
                *rdata = record.v6[i];
            }
            at += 16;
        }
    }

    if let Some(do_bit) = reply.edns_do {
        let opt = ptr_at_mut::<OptRr>(ctx, at)?;
        // SAFETY: ptr_at_mut checked the record is inside the frame.
        let opt = unsafe { &mut *opt };
        opt.name = 0;
        opt.rtype = TYPE_OPT.to_be_bytes();
        opt.udp_payload_size = EDNS_UDP_PAYLOAD_SIZE.to_be_bytes();
        opt.extended_rcode = 0;
        opt.version = 0;
        opt.flags = (if do_bit { EDNS_FLAG_DO } else { 0 }).to_be_bytes();
        opt.rdlength = [0; 2];
    }

    let ip_check = checksum::ipv4_header(ctx, L3)?;
    // SAFETY: as above.
    let (src, dst) = unsafe {
        (*ip).check = ip_check.to_be_bytes();
        ((*ip).src, (*ip).dst)
    };
    let udp_check = checksum::udp_ipv4(ctx, src, dst, L4, udp_len)?;
    // SAFETY: as above.
    unsafe { (*udp).check = udp_check.to_be_bytes() };
    Some(())
}

// Only on the BPF target: a host build of this crate (clippy over the
// workspace) links std through feature unification, and std has its own.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

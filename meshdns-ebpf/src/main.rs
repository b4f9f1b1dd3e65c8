//! The meshdns fast path: answers `<service>.<zone>` A and AAAA queries over
//! UDP, IPv4 or IPv6, with up to two VLAN tags, straight from the driver, by
//! rewriting the query into its reply and sending it back out of the same
//! interface (`XDP_TX`).
//!
//! The program works in phases, and only the last one writes to the frame:
//!
//! 1. `parse_transport` checks Ethernet, VLAN, IP and UDP in the frame;
//! 2. `parse_query` copies the DNS message into a per-CPU buffer and checks
//!    it there (no per-byte bounds checks against the frame);
//! 3. `decide` looks the name up: an answer, NODATA, NXDOMAIN, or a pass;
//! 4. `build_reply` writes the reply into the same buffer;
//! 5. `send_reply` resizes the frame, copies the reply in, swaps addresses
//!    and writes the checksums.
//!
//! Every reason not to answer is found before phase 5 and is an `XDP_PASS`
//! with the frame untouched, so the kernel and the agent see exactly what
//! the client sent.
#![no_std]
#![no_main]

mod checksum;
mod dns;
mod packet;

use aya_ebpf::{
    bindings::{BPF_F_NO_PREALLOC, xdp_action},
    helpers::generated::{
        bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes, bpf_xdp_store_bytes,
    },
    macros::{map, xdp},
    maps::{Array, HashMap, PerCpuArray},
    programs::XdpContext,
};
use meshdns_common::{
    Counter, EDNS_UDP_PAYLOAD_SIZE, Interfaces, MAX_ADDRS, MAX_INTERFACES, MAX_LABEL_LEN,
    MAX_NAME_LEN, MAX_NAMES, MAX_SOA_RR_LEN, NameKey, ServiceRecord, ZONE_KEY, ZoneConfig,
    name::LOWERCASE,
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

/// The zone: one entry, under `ZONE_KEY`. A hash map for the same reason.
#[map]
static ZONE: HashMap<u32, ZoneConfig> = HashMap::with_max_entries(1, BPF_F_NO_PREALLOC);

/// The interfaces the program is attached to and their MACs: see
/// `Interfaces`. An interface not in it (BPF_PROG_TEST_RUN's loopback) gets
/// no MAC check.
#[map]
static INTERFACES: Array<Interfaces> = Array::with_max_entries(1, 0);

/// What happened to each packet, per CPU, indexed by `Counter`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Per-CPU working memory of one run: too much for the 512-byte stack.
#[repr(C)]
struct Scratch {
    /// The query as it came, then the reply.
    msg: Msg,
    /// The frame's headers, while the frame grows at its head.
    headers: [u8; MAX_HEADERS_LEN],
    /// The lookup key: the question's name, lowercased.
    key: NameKey,
    /// Bit `i` set: a label starts at offset `i` of the question's name.
    label_starts: [u64; 4],
    /// See `forget_exact_value`.
    laundry: u64,
}

#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

const DNS_PORT: u16 = 53;
/// Room for every header before the DNS message: the UDP header's offset is
/// at most 127 (see `parse_transport`), plus the UDP header.
const MAX_HEADERS_LEN: usize = 0x80 + UDP_HDR_LEN;
/// TTL / hop limit of the reply's IP header.
const REPLY_HOP_LIMIT: u8 = 64;

#[xdp]
pub fn meshdns(ctx: XdpContext) -> u32 {
    match try_meshdns(&ctx) {
        Ok(answered) => {
            count(answered);
            xdp_action::XDP_TX
        }
        Err(Outcome::Pass(reason)) => {
            count(reason);
            xdp_action::XDP_PASS
        }
        // Unreachable while the lengths computed before are right: the frame
        // is already resized, so passing it on would hand the kernel a
        // corrupt packet. Abort, which also shows in the xdp tracepoints.
        Err(Outcome::Broken) => xdp_action::XDP_ABORTED,
    }
}

/// Returns `XDP_PASS` and nothing else. Attached to the peer end of a veth,
/// it turns on NAPI there, which veth needs to deliver `XDP_TX` frames.
#[xdp]
pub fn meshdns_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The benchmark's floor: swaps MAC and IPv4 addresses and UDP ports, marks
/// the message a response (QR, so load generators count it) and sends it
/// back, doing no DNS work at all: the most any XDP answer can reach on a
/// given machine and load generator. Not for production.
#[xdp]
pub fn meshdns_floor(ctx: XdpContext) -> u32 {
    match reflect(&ctx) {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

#[inline(always)]
fn reflect(ctx: &XdpContext) -> Option<()> {
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

#[inline(always)]
fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: a per-CPU slot: nothing else writes it while we run.
        unsafe { *value += 1 };
    }
}

enum Outcome {
    /// `XDP_PASS`, frame untouched, for this reason.
    Pass(Counter),
    /// The frame was already changed when something failed: `XDP_ABORTED`.
    Broken,
}

impl From<Counter> for Outcome {
    fn from(reason: Counter) -> Self {
        Outcome::Pass(reason)
    }
}

#[inline(always)]
fn try_meshdns(ctx: &XdpContext) -> Result<Counter, Outcome> {
    let scratch = SCRATCH.get_ptr_mut(0).ok_or(Counter::PassMalformed)?;
    // SAFETY: a per-CPU slot: nothing else uses it while we run.
    let scratch = unsafe { &mut *scratch };
    let transport = parse_transport(ctx, &mut scratch.laundry)?;
    let query = parse_query(ctx, &transport, scratch)?;
    let decision = decide(scratch, &query)?;
    let reply_len = build_reply(&mut scratch.msg, &query, &decision);
    send_reply(ctx, &transport, scratch, reply_len)?;
    Ok(decision.counter)
}

/// Returns `value & mask` such that the verifier knows only its bounds, not
/// which value it is.
///
/// Different paths reach the same code with different known values (a name
/// length per iteration of the name loop, an offset per VLAN and IP
/// version); without this the verifier would walk everything after them once
/// per value, and give up at its limit of a million instructions. A round
/// trip through map memory, which the verifier does not track, makes all
/// those paths one.
#[inline(always)]
fn forget_exact_value(slot: &mut u64, value: usize, mask: usize) -> usize {
    // SAFETY: `slot` is a valid, exclusive reference.
    unsafe {
        core::ptr::write_volatile(slot, value as u64);
        core::ptr::read_volatile(slot) as usize & mask
    }
}

/// Whether `dst` is the MAC of the interface the frame came in on, if the
/// agent listed that interface.
#[inline(always)]
fn to_this_interface(ctx: &XdpContext, dst: &[u8; 6]) -> bool {
    let Some(interfaces) = INTERFACES.get(0) else {
        return true;
    };
    // SAFETY: reading a field of the context the kernel passed.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    for i in 0..MAX_INTERFACES {
        if i >= interfaces.count as usize {
            break;
        }
        let entry = &interfaces.entries[i];
        if entry.ifindex == ifindex {
            return same_mac(&entry.mac, dst);
        }
    }
    true
}

/// Compares two MAC addresses byte by byte (an array comparison would call
/// compiler-builtins' `bcmp`).
#[inline(always)]
fn same_mac(a: &[u8; 6], b: &[u8; 6]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5]
}

/// Where the DNS message is in the frame.
struct Transport {
    /// Offset of the IP header.
    l3: usize,
    ipv6: bool,
    /// Offset of the UDP header.
    l4: usize,
    /// Length of the DNS message.
    msg_len: usize,
}

impl Transport {
    /// Offset of the DNS message.
    fn dns(&self) -> usize {
        self.l4 + UDP_HDR_LEN
    }
}

/// Checks Ethernet, VLAN tags, IP and UDP. Reads only.
#[inline(always)]
fn parse_transport(ctx: &XdpContext, laundry: &mut u64) -> Result<Transport, Counter> {
    let frame_len = ctx.data_end() - ctx.data();
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the header is inside the frame.
    let eth = unsafe { &*eth };
    // Only frames sent to us alone: a multicast or broadcast query has no
    // single server to answer it.
    if eth.dst[0] & 1 != 0 {
        return Err(Counter::PassNotUnicast);
    }
    // And to this interface: in promiscuous mode frames for other hosts
    // come here too.
    if !to_this_interface(ctx, &eth.dst) {
        return Err(Counter::PassNotUnicast);
    }
    let mut ether_type = u16::from_be_bytes(eth.ether_type);
    let mut l3 = ETH_HDR_LEN;
    for _ in 0..MAX_VLAN_TAGS {
        if ether_type != ETHERTYPE_VLAN && ether_type != ETHERTYPE_QINQ {
            break;
        }
        // The reply keeps the tags as they are.
        ether_type = load_be16(ctx, l3 + 2).ok_or(Counter::PassMalformed)?;
        l3 += VLAN_HDR_LEN;
    }

    let (ipv6, l4, ip_payload_len) = match ether_type {
        ETHERTYPE_IPV4 => {
            let ip = ptr_at::<Ipv4Hdr>(ctx, l3).ok_or(Counter::PassMalformed)?;
            // SAFETY: ptr_at checked the header is inside the frame.
            let ip = unsafe { &*ip };
            if ip.version_ihl >> 4 != 4 || ip.version_ihl & 0x0f < 5 {
                return Err(Counter::PassMalformed);
            }
            // Options move every later offset; fragments are not whole queries.
            if ip.version_ihl != 0x45 || u16::from_be_bytes(ip.frag_off) & 0x3fff != 0 {
                return Err(Counter::PassIpOptions);
            }
            if ip.protocol != IPPROTO_UDP {
                return Err(Counter::PassNotUdp);
            }
            if ip.dst[0] >= 224 {
                // Multicast (224/4), reserved and limited broadcast.
                return Err(Counter::PassNotUnicast);
            }
            let total_len = u16::from_be_bytes(ip.total_len) as usize;
            if total_len < IPV4_HDR_LEN {
                return Err(Counter::PassMalformed);
            }
            (false, l3 + IPV4_HDR_LEN, total_len - IPV4_HDR_LEN)
        }
        ETHERTYPE_IPV6 => {
            let ip = ptr_at::<Ipv6Hdr>(ctx, l3).ok_or(Counter::PassMalformed)?;
            // SAFETY: ptr_at checked the header is inside the frame.
            let ip = unsafe { &*ip };
            if ip.version_class_flow[0] >> 4 != 6 {
                return Err(Counter::PassMalformed);
            }
            match ip.next_header {
                IPPROTO_UDP => {}
                // Hop-by-hop, routing, fragment, ESP, AH, destination
                // options, mobility, HIP, shim6, experimental (RFC 8200 §4).
                0 | 43 | 44 | 50 | 51 | 60 | 135 | 139 | 140 | 253 | 254 => {
                    return Err(Counter::PassIpOptions);
                }
                _ => return Err(Counter::PassNotUdp),
            }
            if ip.dst[0] == 0xff {
                return Err(Counter::PassNotUnicast);
            }
            (
                true,
                l3 + IPV6_HDR_LEN,
                u16::from_be_bytes(ip.payload_len) as usize,
            )
        }
        // Also a third VLAN tag.
        _ => return Err(Counter::PassNotIp),
    };

    let udp = ptr_at::<UdpHdr>(ctx, l4).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the header is inside the frame.
    let udp = unsafe { &*udp };
    if u16::from_be_bytes(udp.dst_port) != DNS_PORT {
        return Err(Counter::PassNotDnsPort);
    }
    // The IP and UDP lengths must agree, and the frame may only be longer
    // than the datagram by link-layer padding.
    let udp_len = u16::from_be_bytes(udp.len) as usize;
    if udp_len != ip_payload_len || l4 + udp_len > frame_len || udp_len < UDP_HDR_LEN + HDR_LEN {
        return Err(Counter::PassMalformed);
    }
    let msg_len = udp_len - UDP_HDR_LEN;
    if msg_len > MAX_MSG_LEN {
        return Err(Counter::PassTooLarge);
    }
    // Six layouts (0-2 tags, IPv4 or IPv6) become one for the verifier.
    let l3 = forget_exact_value(laundry, l3, 0x1f);
    let l4 = forget_exact_value(laundry, l4, 0x7f);
    // And the helper that copies the message wants a plainly bounded length.
    let msg_len = forget_exact_value(laundry, msg_len, 0x3ff);
    Ok(Transport {
        l3,
        ipv6,
        l4,
        msg_len,
    })
}

/// What the query asks, found by `parse_query`.
struct Query {
    flags: u16,
    /// Length of the question's name in wire format.
    name_len: usize,
    qtype: u16,
    /// `Some(do_bit)` if the query had an OPT record.
    edns_do: Option<bool>,
}

impl Query {
    /// Offset of the first byte after the question.
    fn question_end(&self) -> usize {
        HDR_LEN + self.name_len + 4
    }
}

/// Copies the DNS message into the scratch buffer and checks it is a plain
/// query for class IN, type A or AAAA; leaves the lowercased name in
/// `scratch.key`. Reads the frame only.
#[inline(always)]
fn parse_query(
    ctx: &XdpContext,
    transport: &Transport,
    scratch: &mut Scratch,
) -> Result<Query, Counter> {
    let msg_len = transport.msg_len;
    if !(HDR_LEN..=MAX_MSG_LEN).contains(&msg_len) {
        return Err(Counter::PassMalformed);
    }
    // SAFETY: the buffer holds 1024 bytes, msg_len is at most 512.
    let loaded = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            transport.dns() as u32,
            scratch.msg.bytes.as_mut_ptr() as *mut _,
            msg_len as u32,
        )
    };
    if loaded != 0 {
        return Err(Counter::PassMalformed);
    }
    let msg = &scratch.msg;

    let flags = msg.u16(HDR_FLAGS);
    if flags & (FLAG_QR | OPCODE_MASK | FLAG_TC) != 0
        || msg.u16(HDR_QDCOUNT) != 1
        || msg.u16(HDR_ANCOUNT) != 0
        || msg.u16(HDR_NSCOUNT) != 0
    {
        return Err(Counter::PassNotQuery);
    }
    let arcount = msg.u16(HDR_ARCOUNT);
    if arcount > 1 {
        return Err(Counter::PassNotQuery);
    }

    let name_len = read_qname(msg, msg_len, &mut scratch.key, &mut scratch.label_starts)?;
    let name_len = forget_exact_value(&mut scratch.laundry, name_len, 0xff);
    let msg = &scratch.msg;
    let question_end = HDR_LEN + name_len + 4;
    if question_end > msg_len {
        return Err(Counter::PassMalformed);
    }
    let qtype = msg.u16(HDR_LEN + name_len);
    let qclass = msg.u16(HDR_LEN + name_len + 2);
    if qclass != CLASS_IN || (qtype != TYPE_A && qtype != TYPE_AAAA) {
        return Err(Counter::PassUnsupportedType);
    }

    let edns_do = if arcount == 1 {
        Some(read_opt(msg, question_end, msg_len)?)
    } else if question_end != msg_len {
        return Err(Counter::PassMalformed);
    } else {
        None
    };
    Ok(Query {
        flags,
        name_len,
        qtype,
        edns_do,
    })
}

/// Copies the question's name, lowercased, into `key`, marks where its
/// labels start, and returns its length in wire format. Compression
/// pointers, labels over 63 bytes, names over 255 bytes and names running
/// past the message are all `PassMalformed`.
#[inline(always)]
fn read_qname(
    msg: &Msg,
    msg_len: usize,
    key: &mut NameKey,
    label_starts: &mut [u64; 4],
) -> Result<usize, Counter> {
    clear_key(key);
    *label_starts = [0; 4];
    // Offset in the name of the next length octet.
    let mut next_label = 0;
    for i in 0..MAX_NAME_LEN {
        if HDR_LEN + i >= msg_len {
            return Err(Counter::PassMalformed);
        }
        let byte = msg.bytes[HDR_LEN + i];
        key.wire[i] = LOWERCASE[byte as usize];
        if i == next_label {
            if byte == 0 {
                return Ok(i + 1);
            }
            // Also catches compression pointers (top bits 11).
            if byte as usize > MAX_LABEL_LEN {
                return Err(Counter::PassMalformed);
            }
            label_starts[i >> 6] |= 1 << (i & 63);
            next_label = i + 1 + byte as usize;
        }
    }
    Err(Counter::PassMalformed)
}

/// Zeroes `key` eight bytes at a time. `*key = NameKey::ZERO` compiles to a
/// call to compiler-builtins' `memset`, which stores one byte at a time:
/// about 1,150 instructions and 100 ns a query. The stores are volatile so
/// that the compiler does not turn this loop back into that call.
#[inline(always)]
fn clear_key(key: &mut NameKey) {
    const WORDS: usize = core::mem::size_of::<NameKey>() / 8;
    let words = key as *mut NameKey as *mut u64;
    for i in 0..WORDS {
        // SAFETY: a NameKey is 256 bytes and 8-byte aligned: 32 words.
        unsafe { core::ptr::write_volatile(words.add(i), 0) };
    }
}

/// Checks that the one additional record at `at` is an OPT record that ends
/// the message, and returns its DO bit.
#[inline(always)]
fn read_opt(msg: &Msg, at: usize, msg_len: usize) -> Result<bool, Counter> {
    if at + OPT_RR_LEN > msg_len {
        return Err(Counter::PassMalformed);
    }
    if msg.u8(at) != 0 || msg.u16(at + OPT_TYPE) != TYPE_OPT {
        return Err(Counter::PassNotQuery);
    }
    // The agent answers other versions with BADVERS (RFC 6891 §6.1.3).
    if msg.u8(at + OPT_VERSION) != 0 {
        return Err(Counter::PassEdnsVersion);
    }
    // Options (cookies, padding, ...) are ignored, as RFC 6891 allows.
    if at + OPT_RR_LEN + msg.u16(at + OPT_RDLENGTH) as usize != msg_len {
        return Err(Counter::PassMalformed);
    }
    Ok(msg.u16(at + OPT_FLAGS) & EDNS_FLAG_DO != 0)
}

/// What the reply says.
struct Decision {
    counter: Counter,
    /// Answer records to write, from `record`.
    answers: usize,
    record: *const ServiceRecord,
    /// The zone's SOA goes in the authority section (NODATA, NXDOMAIN).
    zone: *const ZoneConfig,
}

/// Looks the name up and decides on an answer, NODATA, NXDOMAIN or a pass.
#[inline(always)]
fn decide(scratch: &Scratch, query: &Query) -> Result<Decision, Counter> {
    let zone = ZONE.get_ptr(ZONE_KEY).ok_or(Counter::PassNotInZone)?;
    // SAFETY: map values stay valid for the whole run of the program (RCU).
    let zone_ref = unsafe { &*zone };
    // Most names a node resolves are not the mesh's: they leave here, after
    // comparing a few bytes, without hashing a 256-byte key. Every name in
    // the table is in the zone, so this loses no answer.
    if !in_zone(scratch, query.name_len, zone_ref) {
        return Err(Counter::PassNotInZone);
    }
    // By reference: by value would copy the 256-byte key onto the stack.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let record = NAMES.get_ptr(&scratch.key);

    let decision = match record {
        Some(record) => {
            // SAFETY: as above.
            let record_ref = unsafe { &*record };
            let (available, counter) = if query.qtype == TYPE_A {
                (record_ref.v4_count as usize, Counter::AnsweredA)
            } else {
                (record_ref.v6_count as usize, Counter::AnsweredAaaa)
            };
            let answers = if available > MAX_ADDRS {
                MAX_ADDRS
            } else {
                available
            };
            Decision {
                counter: if answers == 0 {
                    Counter::AnsweredNodata
                } else {
                    counter
                },
                answers,
                record,
                zone,
            }
        }
        None => {
            if !zone_ref.is_authoritative() {
                return Err(Counter::PassUnknownName);
            }
            Decision {
                counter: Counter::AnsweredNxdomain,
                answers: 0,
                record: core::ptr::null(),
                zone,
            }
        }
    };
    if reply_len(query, &decision, zone_ref) > MAX_MSG_LEN {
        return Err(Counter::PassTooLarge);
    }
    Ok(decision)
}

/// Whether the name in `scratch.key` is the zone's apex or below it: its
/// last `apex_len` bytes are the apex, starting at a label boundary.
#[inline(always)]
fn in_zone(scratch: &Scratch, name_len: usize, zone: &ZoneConfig) -> bool {
    let apex_len = zone.apex_len as usize;
    if apex_len == 0 || apex_len > name_len {
        return false;
    }
    let start = (name_len - apex_len) & 0xff;
    if (scratch.label_starts[start >> 6] >> (start & 63)) & 1 == 0 {
        return false;
    }
    for i in 0..MAX_NAME_LEN {
        if i >= apex_len {
            break;
        }
        if scratch.key.wire[(start + i) & 0xff] != zone.apex[i] {
            return false;
        }
    }
    true
}

/// Length of the reply message.
#[inline(always)]
fn reply_len(query: &Query, decision: &Decision, zone: &ZoneConfig) -> usize {
    let mut len = query.question_end();
    if decision.answers > 0 {
        let rr_len = if query.qtype == TYPE_A {
            A_RR_LEN
        } else {
            AAAA_RR_LEN
        };
        len += decision.answers * rr_len;
    } else {
        len += 2 + zone.soa_rr_len as usize;
    }
    if query.edns_do.is_some() {
        len += OPT_RR_LEN;
    }
    len
}

/// Writes the reply over the query in `msg` and returns its length. The
/// header and question are the query's, with the header's flags and counts
/// rewritten, so the ID and the client's name bytes (DNS 0x20) are kept.
#[inline(always)]
fn build_reply(msg: &mut Msg, query: &Query, decision: &Decision) -> usize {
    let rcode = if decision.counter == Counter::AnsweredNxdomain {
        RCODE_NXDOMAIN
    } else {
        0
    };
    let flags = FLAG_QR | FLAG_AA | FLAG_RA | (query.flags & (FLAG_RD | FLAG_CD)) | rcode;
    msg.put_u16(HDR_FLAGS, flags);
    msg.put_u16(HDR_ANCOUNT, decision.answers as u16);
    msg.put_u16(HDR_NSCOUNT, (decision.answers == 0) as u16);
    msg.put_u16(HDR_ARCOUNT, query.edns_do.is_some() as u16);

    let mut at = query.question_end();
    if decision.answers > 0 {
        // SAFETY: a map value, valid for the whole run (RCU).
        let record = unsafe { &*decision.record };
        let ttl = record.ttl.to_be_bytes();
        for i in 0..MAX_ADDRS {
            if i >= decision.answers {
                break;
            }
            // Every answer's owner is the question's name.
            msg.put(at, &name_pointer(HDR_LEN));
            msg.put_u16(at + 4, CLASS_IN);
            msg.put(at + 6, &ttl);
            if query.qtype == TYPE_A {
                msg.put_u16(at + 2, TYPE_A);
                msg.put_u16(at + 10, 4);
                msg.put(at + RR_FIXED_LEN, &record.v4[i]);
                at += A_RR_LEN;
            } else {
                msg.put_u16(at + 2, TYPE_AAAA);
                msg.put_u16(at + 10, 16);
                msg.put(at + RR_FIXED_LEN, &record.v6[i]);
                at += AAAA_RR_LEN;
            }
        }
    } else {
        // SAFETY: as above.
        let zone = unsafe { &*decision.zone };
        // The SOA's owner is the apex: the end of the question's name.
        let apex_at = HDR_LEN + query.name_len - zone.apex_len as usize;
        msg.put(at, &name_pointer(apex_at));
        at += 2;
        let soa_len = zone.soa_rr_len as usize;
        for i in 0..MAX_SOA_RR_LEN {
            if i >= soa_len {
                break;
            }
            msg.bytes[(at + i) & 0x1ff] = zone.soa_rr[i];
        }
        at += soa_len;
    }

    if let Some(do_bit) = query.edns_do {
        msg.bytes[at & 0x1ff] = 0;
        msg.put_u16(at + OPT_TYPE, TYPE_OPT);
        msg.put_u16(at + OPT_TYPE + 2, EDNS_UDP_PAYLOAD_SIZE);
        msg.put(at + 5, &[0, 0]); // extended RCODE, version
        msg.put_u16(at + OPT_FLAGS, if do_bit { EDNS_FLAG_DO } else { 0 });
        msg.put_u16(at + OPT_RDLENGTH, 0);
        at += OPT_RR_LEN;
    }
    // Zeros up to the next multiple of 4, for the checksum.
    msg.put(at, &[0, 0, 0]);
    at
}

/// Resizes the frame to `new_len` bytes, the headers (the first
/// `headers_len` bytes) kept in place at its start. On failure the frame is
/// unchanged (`Err`), unless the headers could not be put back (`Ok(false)`).
///
/// A frame grows at its head: XDP guarantees 256 bytes of headroom in driver
/// and generic mode alike, while tailroom depends on the driver (a veth
/// frame is the sender's socket buffer, with a few bytes to spare). The
/// largest growth is 8 AAAA records, 224 bytes. Shrinking, which also drops
/// link-layer padding, happens at the tail.
#[inline(always)]
fn resize(
    ctx: &XdpContext,
    new_len: usize,
    headers: &mut [u8; MAX_HEADERS_LEN],
    headers_len: usize,
) -> Result<bool, ()> {
    let old_len = ctx.data_end() - ctx.data();
    if new_len < old_len {
        let delta = new_len as i32 - old_len as i32;
        // SAFETY: a helper call on the program's own context.
        return if unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) } == 0 {
            Ok(true)
        } else {
            Err(())
        };
    }
    if new_len == old_len {
        return Ok(true);
    }
    let grow = (new_len - old_len) as i32;
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
    // SAFETY: a helper call on the program's own context.
    if unsafe { bpf_xdp_adjust_head(ctx.ctx, -grow) } != 0 {
        return Err(());
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
    Ok(stored == 0)
}

/// Turns the frame into the reply: resizes it, copies the reply message in,
/// swaps MAC and IP addresses and ports, writes lengths and checksums.
/// Failures before the resize leave the frame as it was (a pass); after it,
/// the frame is no longer the query (`Outcome::Broken`).
#[inline(always)]
fn send_reply(
    ctx: &XdpContext,
    transport: &Transport,
    scratch: &mut Scratch,
    reply_len: usize,
) -> Result<(), Outcome> {
    let reply_len = reply_len & 0x3ff;
    if !(HDR_LEN..=MAX_MSG_LEN).contains(&reply_len) {
        return Err(Counter::PassTooLarge.into());
    }
    let udp_check =
        udp_checksum(ctx, transport, &mut scratch.msg, reply_len).ok_or(Counter::PassMalformed)?;
    match resize(
        ctx,
        transport.dns() + reply_len,
        &mut scratch.headers,
        transport.dns(),
    ) {
        Err(()) => return Err(Counter::PassResize.into()),
        Ok(false) => return Err(Outcome::Broken),
        Ok(true) => {}
    }
    rewrite_frame(ctx, transport, &mut scratch.msg, reply_len, udp_check).ok_or(Outcome::Broken)
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

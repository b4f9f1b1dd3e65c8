//! Phases 1 and 2: `parse_transport` checks the frame's headers,
//! `parse_query` copies the DNS message into the scratch buffer and checks it
//! there. Both only read the frame.

use aya_ebpf::{helpers::generated::bpf_xdp_load_bytes, programs::XdpContext};
use meshdns_common::{
    Counter, MAX_LABEL_LEN, MAX_NAME_LEN, NAME_WIDTHS, NameClass, NameKey, name::lowercase_word,
};

use crate::DNS_PORT;
use crate::dns::*;
use crate::maps::Scratch;
use crate::packet::*;
use crate::verifier::forget_exact_value;

/// Where the DNS message is in the frame.
pub(crate) struct Transport {
    /// Offset of the IP header.
    pub(crate) l3: usize,
    pub(crate) ipv6: bool,
    /// Offset of the UDP header.
    pub(crate) l4: usize,
    /// Length of the DNS message.
    msg_len: usize,
}

impl Transport {
    /// A transport as `parse_transport` found it, for the search program,
    /// which takes it over.
    pub(crate) fn new(l3: usize, ipv6: bool, l4: usize, msg_len: usize) -> Self {
        Self {
            l3,
            ipv6,
            l4,
            msg_len,
        }
    }

    /// Length of the DNS message.
    pub(crate) fn msg_len(&self) -> usize {
        self.msg_len
    }

    /// Offset of the DNS message.
    pub(crate) fn dns(&self) -> usize {
        self.l4 + UDP_HDR_LEN
    }
}

/// Checks Ethernet, VLAN tags, IP and UDP. Reads only.
#[inline(always)]
pub(crate) fn parse_transport(ctx: &XdpContext, laundry: &mut u64) -> Result<Transport, Counter> {
    let frame_len = ctx.data_end() - ctx.data();
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the header is inside the frame.
    let eth = unsafe { &*eth };
    // Only frames sent to us alone: a multicast or broadcast query has no
    // single server to answer it.
    if eth.dst[0] & 1 != 0 {
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
///
/// Every field is a whole register wide: with 16-bit fields next to each
/// other LLVM stored them as halves and read them back as one word, which
/// the CPU cannot forward from its store buffer (a stall of a dozen cycles,
/// 8% of an answer's time in `perf`).
pub(crate) struct Query {
    /// The header's flags.
    pub(crate) flags: u64,
    /// Length of the question's name in wire format.
    pub(crate) name_len: usize,
    /// `TYPE_A` or `TYPE_AAAA`.
    pub(crate) qtype: u64,
    /// 0 without an OPT record, else `EDNS_PRESENT`, with `EDNS_DO` if
    /// its DO bit is set.
    pub(crate) edns: u64,
    /// For a search expansion, the length in wire format of its mesh name,
    /// whose labels the question's name starts with (see `lookup_len`).
    pub(crate) key_len: usize,
    /// 0, or how a search expansion is answered: `SEARCH_CNAME` or
    /// `SEARCH_NXDOMAIN`.
    pub(crate) expansion: u64,
}

/// `Query::edns` bits.
pub(crate) const EDNS_PRESENT: u64 = 1;
pub(crate) const EDNS_DO: u64 = 2;

impl Query {
    /// `Some(do_bit)` if the query had an OPT record.
    #[inline(always)]
    pub(crate) fn edns_do(&self) -> Option<bool> {
        if self.edns & EDNS_PRESENT != 0 {
            Some(self.edns & EDNS_DO != 0)
        } else {
            None
        }
    }
}

impl Query {
    /// Length in wire format of the name the table is asked for: the
    /// question's, or a search expansion's mesh name. (Not one field: the
    /// answer program would then have two names for one length, and what
    /// the verifier learns of one it would learn of the other.)
    #[inline(always)]
    pub(crate) fn lookup_len(&self) -> usize {
        if self.expansion == 0 {
            self.name_len
        } else {
            self.key_len
        }
    }

    /// Offset of the first byte after the question.
    pub(crate) fn question_end(&self) -> usize {
        HDR_LEN + self.name_len + 4
    }
}

/// Copies the DNS message into the scratch buffer and checks it is a plain
/// query for class IN, type A or AAAA. Reads the frame only.
#[inline(always)]
pub(crate) fn parse_query(
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

    let name_len = read_qname(msg, msg_len, &mut scratch.label_starts)?;
    // Each label count leaves the walk knowing another range.
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

    let edns = if arcount == 1 {
        EDNS_PRESENT
            | if read_opt(msg, question_end, msg_len)? {
                EDNS_DO
            } else {
                0
            }
    } else if question_end != msg_len {
        return Err(Counter::PassMalformed);
    } else {
        0
    };
    // Each type and each kind of OPT record reaches here knowing its own
    // value: made one, so that the zone's check is walked once.
    Ok(Query {
        flags: flags as u64,
        name_len,
        qtype: qtype as u64,
        edns: forget_exact_value(&mut scratch.laundry, edns as usize, 0x3) as u64,
        key_len: 0,
        expansion: 0,
    })
}

/// Finds the end of the question's name and marks where its labels start:
/// one step per label, not per byte. Returns its length in wire format.
/// Compression pointers, labels over 63 bytes, names over 255 bytes and
/// names running past the message are all `PassMalformed`.
#[inline(always)]
fn read_qname(msg: &Msg, msg_len: usize, label_starts: &mut [u64; 4]) -> Result<usize, Counter> {
    // One store per word: `= [0; 4]` becomes a call to a byte-wise memset.
    for word in label_starts.iter_mut() {
        // SAFETY: a valid, exclusive reference.
        unsafe { core::ptr::write_volatile(word, 0) };
    }
    // Offset in the name of the next length octet.
    let mut at = 0;
    // Every label but the root takes at least two bytes.
    for _ in 0..MAX_NAME_LEN.div_ceil(2) {
        if HDR_LEN + at >= msg_len {
            return Err(Counter::PassMalformed);
        }
        let label = msg.u8(HDR_LEN + at) as usize;
        if label == 0 {
            return Ok(at + 1);
        }
        // Also catches compression pointers (top bits 11).
        if label > MAX_LABEL_LEN {
            return Err(Counter::PassMalformed);
        }
        label_starts[at >> 6] |= 1 << (at & 63);
        at += 1 + label;
        // The root label's octet must be inside the 255 bytes too.
        if at >= MAX_NAME_LEN {
            return Err(Counter::PassMalformed);
        }
    }
    Err(Counter::PassMalformed)
}

/// Writes the key of the name to look up (`Query::key_len`) into
/// `scratch.key`: the question's name, lowercased, as many words of it as
/// its length class uses, cut to the mesh name for a search expansion;
/// and the sum of the question's name as sent into `scratch.name_sum`.
/// Returns the query for what follows. Only for names in a zone: the
/// others pass without a key or a lookup.
#[inline(always)]
pub(crate) fn build_name_key(scratch: &mut Scratch, query: Query) -> Query {
    // The zone's check leaves each length of the apex knowing another
    // range of the name's length: one again, so that the key is walked once.
    let name_len = forget_exact_value(&mut scratch.laundry, query.name_len, 0xff);
    let (msg, key) = (&scratch.msg, &mut scratch.key);
    let name_sum = match NameClass::of(name_len) {
        NameClass::Short => build_key::<{ NAME_WIDTHS[0] / 8 }>(msg, name_len, key),
        NameClass::Medium => build_key::<{ NAME_WIDTHS[1] / 8 }>(msg, name_len, key),
        NameClass::Long => build_key::<{ NAME_WIDTHS[2] / 8 }>(msg, name_len, key),
    };
    // Kept in map memory, which the verifier does not follow: each class,
    // and each word count within it, knows a different range of the sum.
    scratch.name_sum = name_sum;
    // And of the length: made one again for what follows.
    let name_len = forget_exact_value(&mut scratch.laundry, name_len, 0xff);
    if query.expansion == 0 {
        return Query { name_len, ..query };
    }
    // The search program's: the key cut to the mesh name, by copies of the
    // lengths, so that what the cut's loop learns of them stays there.
    let key_len = forget_exact_value(&mut scratch.laundry, query.key_len, 0xff);
    let cut_at = forget_exact_value(&mut scratch.laundry, key_len, 0xff);
    let cut_to = forget_exact_value(&mut scratch.laundry, name_len, 0xff);
    cut_key(&mut scratch.key, cut_at, cut_to);
    Query {
        name_len,
        key_len,
        ..query
    }
}

/// Cuts the key of a `name_len`-byte name to the `key_len`-byte name its
/// labels start with: its first `key_len - 1` bytes are kept, and the
/// rest, up to `name_len`, become zeros, the first of them the root label.
///
/// Each word's mask is computed without a branch: with one comparison per
/// word against the cut, the verifier would walk each word once for each
/// range of the cut it had learnt at the words before.
#[inline(always)]
fn cut_key(key: &mut NameKey, key_len: usize, name_len: usize) {
    let kept = key_len as i64 - 1;
    let words = key as *mut NameKey as *mut u64;
    for w in 0..(MAX_NAME_LEN + 1) / 8 {
        if 8 * w >= name_len {
            break;
        }
        // How many of the word's bytes are kept, from 0 to 8.
        let n = kept - 8 * w as i64;
        let n = n & !(n >> 63);
        let over = n - 8;
        let n = (8 + (over & (over >> 63))) as u32;
        // Byte order in memory is the name's: the low bytes come first.
        // Two shifts, so that 8 bytes (a shift by 64) keeps them all.
        let mask = !((u64::MAX << (4 * n)) << (4 * n));
        // SAFETY: a NameKey is 256 bytes and 8-byte aligned; w < 32.
        unsafe { *words.add(w) &= mask };
    }
}

/// Writes the key of the `name_len`-byte question name into the first `W`
/// words of `key` (the width of its class): lowercased, zeros after the
/// name. Returns the one's-complement sum of the name as sent, in memory
/// order, for the reply's checksum.
#[inline(always)]
fn build_key<const W: usize>(msg: &Msg, name_len: usize, key: &mut NameKey) -> u64 {
    let words = key as *mut NameKey as *mut u64;
    let mut sum = 0u64;
    for w in 0..W {
        let word = if 8 * w >= name_len {
            0
        } else {
            let raw = msg.name_word(w);
            let left = name_len - 8 * w;
            // The bytes past the name's end are the type, class and what
            // follows: not part of the key.
            let raw = if left >= 8 {
                raw
            } else {
                raw & ((1u64 << (8 * left)) - 1)
            };
            sum += (raw & 0xffff_ffff) + (raw >> 32);
            lowercase_word(raw)
        };
        // SAFETY: a NameKey is 256 bytes and 8-byte aligned; w < W <= 32.
        unsafe { core::ptr::write_volatile(words.add(w), word) };
    }
    sum
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

//! DNS-over-UDP Ethernet frames (IPv4 or IPv6, up to two VLAN tags), built
//! and checked without any code of meshdns: queries byte by byte, expected
//! answers with hickory-proto, negative answers by hand, and checksums with
//! a separate RFC 1071 implementation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode},
    rr::{Name, RData, Record, rdata},
};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub const SERVER_IP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
pub const CLIENT_PORT: u16 = 40053;

/// Offsets of an untagged Ethernet + IPv4 (no options) + UDP frame.
pub const IP: usize = 14;
pub const UDP: usize = IP + 20;
pub const DNS: usize = UDP + 8;

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_MX: u16 = 15;
pub const TYPE_TXT: u16 = 16;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;
pub const CLASS_CH: u16 = 3;

/// Header flags (RFC 1035 §4.1.1; CD from RFC 4035 §3.2.2).
pub const QR: u16 = 0x8000;
pub const AA: u16 = 0x0400;
pub const TC: u16 = 0x0200;
pub const RD: u16 = 0x0100;
pub const RA: u16 = 0x0080;
pub const CD: u16 = 0x0010;
pub const NOERROR: u16 = 0;
pub const NXDOMAIN: u16 = 3;

/// How a frame is carried: VLAN tags (TPID, TCI), outermost first, and
/// the IP version.
#[derive(Clone, Debug, Default)]
pub struct Link {
    pub vlans: Vec<(u16, u16)>,
    pub ipv6: bool,
}

impl Link {
    pub fn ipv6() -> Self {
        Self {
            vlans: vec![],
            ipv6: true,
        }
    }

    pub fn vlans(vlans: &[(u16, u16)], ipv6: bool) -> Self {
        Self {
            vlans: vlans.to_vec(),
            ipv6,
        }
    }
}

/// A DNS name in wire format from dotted text, case kept ("" is the root).
pub fn wire_name(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name.split('.').filter(|l| !l.is_empty()) {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// An EDNS(0) OPT record of a query (RFC 6891 §6.1.2).
#[derive(Clone, Debug)]
pub struct Opt {
    pub udp_payload_size: u16,
    pub version: u8,
    pub do_bit: bool,
    /// Raw options (code, data).
    pub options: Vec<(u16, Vec<u8>)>,
}

impl Opt {
    /// What dig sends: 1232 bytes, version 0, a client cookie (RFC 7873).
    pub fn dig() -> Self {
        Self {
            udp_payload_size: 1232,
            version: 0,
            do_bit: false,
            options: vec![(10, vec![0xa5; 8])],
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let rdata: Vec<u8> = self
            .options
            .iter()
            .flat_map(|(code, data)| {
                let mut o = code.to_be_bytes().to_vec();
                o.extend((data.len() as u16).to_be_bytes());
                o.extend(data);
                o
            })
            .collect();
        let mut b = vec![0];
        b.extend(41u16.to_be_bytes());
        b.extend(self.udp_payload_size.to_be_bytes());
        b.extend([0, self.version]);
        b.extend((if self.do_bit { 0x8000u16 } else { 0 }).to_be_bytes());
        b.extend((rdata.len() as u16).to_be_bytes());
        b.extend(rdata);
        b
    }
}

/// A query message, byte by byte.
#[derive(Clone, Debug)]
pub struct Query {
    pub id: u16,
    pub flags: u16,
    /// The question's name in wire format, exactly as sent.
    pub name: Vec<u8>,
    pub qtype: u16,
    pub qclass: u16,
    pub opt: Option<Opt>,
    pub link: Link,
}

impl Query {
    /// `name` type `qtype`, class IN, RD set, no EDNS.
    pub fn new(name: &str, qtype: u16) -> Self {
        Self {
            id: 0x4d53,
            flags: RD,
            name: wire_name(name),
            qtype,
            qclass: CLASS_IN,
            opt: None,
            link: Link::default(),
        }
    }

    pub fn with_opt(mut self, opt: Opt) -> Self {
        self.opt = Some(opt);
        self
    }

    pub fn over(mut self, link: Link) -> Self {
        self.link = link;
        self
    }

    /// The DNS message.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(self.id.to_be_bytes());
        b.extend(self.flags.to_be_bytes());
        b.extend(1u16.to_be_bytes());
        b.extend(0u16.to_be_bytes());
        b.extend(0u16.to_be_bytes());
        b.extend((self.opt.is_some() as u16).to_be_bytes());
        b.extend(&self.name);
        b.extend(self.qtype.to_be_bytes());
        b.extend(self.qclass.to_be_bytes());
        if let Some(opt) = &self.opt {
            b.extend(opt.to_bytes());
        }
        b
    }

    /// The query in a frame from the client to the server.
    pub fn frame(&self) -> Vec<u8> {
        frame(&self.link, Direction::ToServer, &self.to_bytes(), 53)
    }

    /// The frame of a NODATA (`rcode` NOERROR) or NXDOMAIN answer, built by
    /// hand: the question as sent, then the zone's SOA in the authority
    /// section with its owner compressed to the apex's offset in the
    /// question, then our OPT if the query had one. `soa_rr` is the SOA from
    /// TYPE on; `apex_labels` the apex's label count.
    pub fn expected_negative_reply(
        &self,
        rcode: u16,
        soa_rr: &[u8],
        apex_labels: usize,
    ) -> Vec<u8> {
        let flags = QR | AA | RA | (self.flags & (RD | CD)) | rcode;
        let mut dns = self.reply_head(flags, [0, 1]);
        // Offsets of the name's labels; the apex is its last apex_labels.
        let starts = label_starts(&self.name);
        let apex_at = 12 + starts[starts.len() - 1 - apex_labels];
        dns.extend((0xc000 | apex_at as u16).to_be_bytes());
        dns.extend(soa_rr);
        self.push_opt(&mut dns);
        frame(&self.link, Direction::ToClient, &dns, CLIENT_PORT)
    }

    /// The frame of a search expansion's answer (`<mesh name>.<suffix>`),
    /// built with hickory-proto as `expected_reply` is: not authoritative,
    /// a CNAME from the question's name as sent to `target` (lowercased),
    /// then `addrs` owned by the target, all with `ttl`.
    pub fn expected_cname_reply(&self, target: &str, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
        self.hickory_reply(Some(target), addrs, ttl)
    }

    /// The frame of a search expansion's answer for a family the mesh name
    /// lacks, built by hand: not authoritative, NOERROR, the CNAME (owner a
    /// pointer to the question, the target `target_wire` written whole, TTL
    /// `ttl`), and the zone's SOA (`soa_rr`, from TYPE on) owned by a
    /// pointer to the target's last `apex_labels` labels.
    pub fn expected_cname_nodata(
        &self,
        target_wire: &[u8],
        ttl: u32,
        soa_rr: &[u8],
        apex_labels: usize,
    ) -> Vec<u8> {
        let flags = QR | RA | (self.flags & (RD | CD));
        let mut dns = self.reply_head(flags, [1, 1]);
        dns.extend([0xc0, 12, 0, 5, 0, 1]);
        dns.extend(ttl.to_be_bytes());
        dns.extend((target_wire.len() as u16).to_be_bytes());
        let target_at = dns.len();
        dns.extend(target_wire);
        let starts = label_starts(target_wire);
        let apex_at = target_at + starts[starts.len() - 1 - apex_labels];
        dns.extend((0xc000 | apex_at as u16).to_be_bytes());
        dns.extend(soa_rr);
        self.push_opt(&mut dns);
        frame(&self.link, Direction::ToClient, &dns, CLIENT_PORT)
    }

    /// The frame of a search expansion's NXDOMAIN, built by hand: not
    /// authoritative, the question alone (no SOA: the asked name's zone is
    /// not ours), and our OPT if the query had one.
    pub fn expected_search_nxdomain(&self) -> Vec<u8> {
        let flags = QR | RA | (self.flags & (RD | CD)) | 3;
        let mut dns = self.reply_head(flags, [0, 0]);
        self.push_opt(&mut dns);
        frame(&self.link, Direction::ToClient, &dns, CLIENT_PORT)
    }

    /// The frame of an answer over the rate limit that slips, built by
    /// hand: the answer's flags and `rcode` (authoritative if `aa`) with TC
    /// set, the question as sent, no records, and our OPT if the query had
    /// one.
    pub fn expected_truncated(&self, rcode: u16, aa: bool) -> Vec<u8> {
        let aa = if aa { AA } else { 0 };
        let flags = QR | aa | TC | RA | (self.flags & (RD | CD)) | rcode;
        let mut dns = self.reply_head(flags, [0, 0]);
        self.push_opt(&mut dns);
        frame(&self.link, Direction::ToClient, &dns, CLIENT_PORT)
    }

    /// A reply's header (`flags`, one question, `[ancount, nscount]`, an
    /// OPT if the query had one) and the question as sent.
    fn reply_head(&self, flags: u16, counts: [u16; 2]) -> Vec<u8> {
        let mut dns = Vec::new();
        dns.extend(self.id.to_be_bytes());
        dns.extend(flags.to_be_bytes());
        dns.extend(1u16.to_be_bytes());
        for count in counts {
            dns.extend(count.to_be_bytes());
        }
        dns.extend((self.opt.is_some() as u16).to_be_bytes());
        dns.extend(&self.name);
        dns.extend(self.qtype.to_be_bytes());
        dns.extend(self.qclass.to_be_bytes());
        dns
    }

    /// Our OPT record, if the query had one: payload 1232, the DO bit echoed.
    fn push_opt(&self, dns: &mut Vec<u8>) {
        if let Some(opt) = &self.opt {
            dns.extend([0, 0, 41, 0x04, 0xd0, 0, 0]);
            dns.extend((if opt.do_bit { 0x8000u16 } else { 0 }).to_be_bytes());
            dns.extend([0, 0]);
        }
    }

    /// The frame the fast path must send back: built with hickory-proto from
    /// the query as hickory decodes it, so name case and order are the
    /// client's. `addrs` are the answers in order; `ttl` their TTL.
    pub fn expected_reply(&self, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
        self.hickory_reply(None, addrs, ttl)
    }

    /// The reply hickory-proto encodes for the query: authoritative with
    /// `addrs` owned by the question's name, or, with a CNAME `target`, not
    /// authoritative, the CNAME owned by the question's name and `addrs`
    /// by the target.
    fn hickory_reply(&self, target: Option<&str>, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
        let query = Message::from_vec(&self.to_bytes()).expect("hickory decodes the query");
        let question = query.queries[0].clone();
        let mut reply = Message::new(self.id, MessageType::Response, OpCode::Query);
        reply.metadata.authoritative = target.is_none();
        reply.metadata.recursion_desired = self.flags & RD != 0;
        reply.metadata.recursion_available = true;
        reply.metadata.checking_disabled = self.flags & CD != 0;
        let mut owner = question.name().clone();
        reply.add_query(question);
        if let Some(target) = target {
            let target = Name::from_ascii(target).expect("a name");
            let cname = RData::CNAME(rdata::CNAME(target.clone()));
            reply.add_answer(Record::from_rdata(owner, ttl, cname));
            owner = target;
        }
        for addr in addrs {
            let rdata = match addr {
                IpAddr::V4(a) => RData::A(rdata::A(*a)),
                IpAddr::V6(a) => RData::AAAA(rdata::AAAA(*a)),
            };
            reply.add_answer(Record::from_rdata(owner.clone(), ttl, rdata));
        }
        if let Some(opt) = &self.opt {
            let mut edns = Edns::new();
            edns.set_max_payload(1232)
                .set_version(0)
                .set_dnssec_ok(opt.do_bit);
            reply.set_edns(edns);
        }
        let dns = reply.to_vec().expect("hickory encodes the reply");
        frame(&self.link, Direction::ToClient, &dns, CLIENT_PORT)
    }
}

/// Offsets of a wire name's labels, its root label's included.
fn label_starts(wire: &[u8]) -> Vec<usize> {
    let mut starts = vec![];
    let mut at = 0;
    while wire[at] != 0 {
        starts.push(at);
        at += 1 + wire[at] as usize;
    }
    starts.push(at);
    starts
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

/// An untagged Ethernet + IPv4 + UDP frame from the client to `dst_port`
/// on the server, with correct checksums.
pub fn udp_frame(payload: &[u8], dst_port: u16) -> Vec<u8> {
    frame(&Link::default(), Direction::ToServer, payload, dst_port)
}

/// A UDP frame between client and server over `link`, with correct
/// checksums. `port` is the destination port; the other end's is 53 or
/// `CLIENT_PORT`.
pub fn frame(link: &Link, direction: Direction, payload: &[u8], port: u16) -> Vec<u8> {
    let to_server = direction == Direction::ToServer;
    let (dst_mac, src_mac) = if to_server {
        (SERVER_MAC, CLIENT_MAC)
    } else {
        (CLIENT_MAC, SERVER_MAC)
    };
    let (src_port, dst_port) = if to_server {
        (CLIENT_PORT, port)
    } else {
        (53, port)
    };
    let udp_len = 8 + payload.len();
    let mut f = Vec::with_capacity(64 + payload.len());
    f.extend(dst_mac);
    f.extend(src_mac);
    for (tpid, tci) in &link.vlans {
        f.extend(tpid.to_be_bytes());
        f.extend(tci.to_be_bytes());
    }
    if link.ipv6 {
        let (src, dst) = if to_server {
            (CLIENT_IP6, SERVER_IP6)
        } else {
            (SERVER_IP6, CLIENT_IP6)
        };
        f.extend(0x86ddu16.to_be_bytes());
        // Version 6, no traffic class or flow label, UDP, hop limit 64.
        f.extend([0x60, 0, 0, 0]);
        f.extend((udp_len as u16).to_be_bytes());
        f.extend([17, 64]);
        f.extend(src.octets());
        f.extend(dst.octets());
    } else {
        let (src, dst) = if to_server {
            (CLIENT_IP, SERVER_IP)
        } else {
            (SERVER_IP, CLIENT_IP)
        };
        f.extend(0x0800u16.to_be_bytes());
        // Version 4, IHL 5, DF, TTL 64, UDP.
        f.extend([0x45, 0]);
        f.extend(((20 + udp_len) as u16).to_be_bytes());
        f.extend(0x1234u16.to_be_bytes());
        f.extend(0x4000u16.to_be_bytes());
        f.extend([64, 17, 0, 0]);
        f.extend(src.octets());
        f.extend(dst.octets());
    }
    f.extend(src_port.to_be_bytes());
    f.extend(dst_port.to_be_bytes());
    f.extend((udp_len as u16).to_be_bytes());
    f.extend([0, 0]);
    f.extend(payload);
    fix_checksums(&mut f);
    f
}

/// Where the headers of a UDP frame are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Offset of the IP header; the VLAN tags are the bytes from 12 to `l3 - 2`.
    pub l3: usize,
    pub ipv6: bool,
    pub l4: usize,
    pub udp_len: usize,
}

impl Layout {
    /// Reads the layout of an Ethernet frame carrying UDP over IPv4 or IPv6,
    /// or `None` if it is not one whose lengths fit the frame.
    pub fn of(frame: &[u8]) -> Option<Self> {
        let word = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
        let mut at = 12;
        while matches!(word(at)?, 0x8100 | 0x88a8) {
            at += 4;
        }
        let ipv6 = word(at)? == 0x86dd;
        let l3 = at + 2;
        let l4 = l3 + if ipv6 { 40 } else { 20 };
        let udp_len = if ipv6 {
            usize::from(word(l3 + 4)?)
        } else {
            usize::from(word(l3 + 2)?).checked_sub(20)?
        };
        (udp_len >= 8 && l4 + udp_len <= frame.len()).then_some(Layout {
            l3,
            ipv6,
            l4,
            udp_len,
        })
    }

    /// The DNS message of the frame.
    pub fn dns<'a>(&self, frame: &'a [u8]) -> &'a [u8] {
        &frame[self.l4 + 8..self.l4 + self.udp_len]
    }
}

fn layout(frame: &[u8]) -> Layout {
    Layout::of(frame).expect("a UDP frame")
}

/// RFC 1071 sum of `bytes` as big-endian 16-bit words (odd length padded).
fn sum16(bytes: &[u8]) -> u32 {
    bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The pseudo-header sum of a frame's UDP datagram (RFC 768; RFC 8200 §8.1).
fn udp_pseudo_sum(frame: &[u8], l: &Layout) -> u32 {
    let addrs = if l.ipv6 {
        &frame[l.l3 + 8..l.l3 + 40]
    } else {
        &frame[l.l3 + 12..l.l3 + 20]
    };
    sum16(addrs) + 17 + l.udp_len as u32
}

/// Recomputes the checksum of the IPv4 header at `l3` (alone, for frames
/// that carry something other than UDP).
pub fn fix_ipv4_checksum(frame: &mut [u8], l3: usize) {
    frame[l3 + 10..l3 + 12].fill(0);
    let ip = !fold(sum16(&frame[l3..l3 + 20]));
    frame[l3 + 10..l3 + 12].copy_from_slice(&ip.to_be_bytes());
}

/// Recomputes the IPv4 header (if any) and UDP checksums of a frame.
pub fn fix_checksums(frame: &mut [u8]) {
    let l = layout(frame);
    if !l.ipv6 {
        fix_ipv4_checksum(frame, l.l3);
    }
    frame[l.l4 + 6..l.l4 + 8].fill(0);
    let datagram = &frame[l.l4..l.l4 + l.udp_len];
    let udp = match !fold(udp_pseudo_sum(frame, &l) + sum16(datagram)) {
        0 => 0xffff,
        c => c,
    };
    frame[l.l4 + 6..l.l4 + 8].copy_from_slice(&udp.to_be_bytes());
}

/// Checks the IPv4 header (if any) and UDP checksums of a frame; a sum over
/// a header with a right checksum in it folds to all ones.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    let l = layout(frame);
    if !l.ipv6 && fold(sum16(&frame[l.l3..l.l3 + 20])) != 0xffff {
        return Err("bad IPv4 header checksum".into());
    }
    let datagram = &frame[l.l4..l.l4 + l.udp_len];
    if u16::from_be_bytes([datagram[6], datagram[7]]) == 0 {
        return Err("UDP checksum missing".into());
    }
    if fold(udp_pseudo_sum(frame, &l) + sum16(datagram)) != 0xffff {
        return Err("bad UDP checksum".into());
    }
    Ok(())
}

/// The DNS message of a UDP frame.
pub fn dns_payload(frame: &[u8]) -> &[u8] {
    let l = layout(frame);
    &frame[l.l4 + 8..l.l4 + l.udp_len]
}

/// The DNS message of a UDP frame, decoded by hickory-proto.
pub fn decode_dns(frame: &[u8]) -> Result<Message, String> {
    Message::from_vec(dns_payload(frame)).map_err(|e| e.to_string())
}

/// Which address of a frame's IP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Address {
    Source,
    Destination,
}

/// `frame` with its IP header's source or destination address set to
/// `address` (of the frame's family) and its checksums fixed.
pub fn readdressed(frame: &[u8], which: Address, address: std::net::IpAddr) -> Vec<u8> {
    let l = layout(frame);
    let mut frame = frame.to_vec();
    let (octets, at): (Vec<u8>, usize) = match (address, l.ipv6) {
        (std::net::IpAddr::V4(v4), false) => (v4.octets().to_vec(), l.l3 + 12),
        (std::net::IpAddr::V6(v6), true) => (v6.octets().to_vec(), l.l3 + 8),
        _ => panic!("{address} is not of the frame's family"),
    };
    let at = match which {
        Address::Source => at,
        Address::Destination => at + octets.len(),
    };
    frame[at..at + octets.len()].copy_from_slice(&octets);
    fix_checksums(&mut frame);
    frame
}

/// Sets the 16-bit big-endian word at `offset` and fixes the checksums.
pub fn patch_u16(frame: &mut [u8], offset: usize, value: u16) {
    frame[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
    fix_checksums(frame);
}

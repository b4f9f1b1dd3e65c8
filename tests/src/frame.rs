//! DNS-over-UDP/IPv4 Ethernet frames, built and checked without any code of
//! meshdns: queries byte by byte, expected replies with hickory-proto, and
//! checksums with a separate RFC 1071 implementation.

use std::net::{IpAddr, Ipv4Addr};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode},
    rr::{RData, Record, rdata},
};

pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
pub const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const CLIENT_PORT: u16 = 40053;

/// Offsets of an Ethernet + IPv4 (no options) + UDP frame.
pub const IP: usize = 14;
pub const UDP: usize = IP + 20;
pub const DNS: usize = UDP + 8;

pub const TYPE_A: u16 = 1;
pub const TYPE_MX: u16 = 15;
pub const TYPE_AAAA: u16 = 28;
pub const CLASS_IN: u16 = 1;
pub const CLASS_CH: u16 = 3;

/// Header flags of a query (RFC 1035 §4.1.1).
pub const RD: u16 = 0x0100;
pub const CD: u16 = 0x0010;

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
        }
    }

    pub fn with_opt(mut self, opt: Opt) -> Self {
        self.opt = Some(opt);
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
        udp_frame(&self.to_bytes(), 53)
    }

    /// The frame the fast path must send back: built with hickory-proto from
    /// the query as hickory decodes it, so name case and order are the
    /// client's. `addrs` are the answers in order; `ttl` their TTL.
    pub fn expected_reply(&self, addrs: &[IpAddr], ttl: u32) -> Vec<u8> {
        let query = Message::from_vec(&self.to_bytes()).expect("hickory decodes the query");
        let question = query.queries[0].clone();
        let mut reply = Message::new(self.id, MessageType::Response, OpCode::Query);
        reply.metadata.authoritative = true;
        reply.metadata.recursion_desired = self.flags & RD != 0;
        reply.metadata.recursion_available = true;
        reply.metadata.checking_disabled = self.flags & CD != 0;
        let name = question.name().clone();
        reply.add_query(question);
        for addr in addrs {
            let rdata = match addr {
                IpAddr::V4(a) => RData::A(rdata::A(*a)),
                IpAddr::V6(a) => RData::AAAA(rdata::AAAA(*a)),
            };
            reply.add_answer(Record::from_rdata(name.clone(), ttl, rdata));
        }
        if let Some(opt) = &self.opt {
            let mut edns = Edns::new();
            edns.set_max_payload(1232)
                .set_version(0)
                .set_dnssec_ok(opt.do_bit);
            reply.set_edns(edns);
        }
        let dns = reply.to_vec().expect("hickory encodes the reply");
        let mut frame = udp_frame(&dns, 53);
        // Swap ends: the reply goes from server to client.
        frame[0..6].copy_from_slice(&CLIENT_MAC);
        frame[6..12].copy_from_slice(&SERVER_MAC);
        frame[IP + 12..IP + 16].copy_from_slice(&SERVER_IP.octets());
        frame[IP + 16..IP + 20].copy_from_slice(&CLIENT_IP.octets());
        frame[UDP..UDP + 2].copy_from_slice(&53u16.to_be_bytes());
        frame[UDP + 2..UDP + 4].copy_from_slice(&CLIENT_PORT.to_be_bytes());
        fix_checksums(&mut frame);
        frame
    }
}

/// An Ethernet + IPv4 + UDP frame from the client to `dst_port` on the
/// server, with correct checksums.
pub fn udp_frame(payload: &[u8], dst_port: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(DNS + payload.len());
    f.extend(SERVER_MAC);
    f.extend(CLIENT_MAC);
    f.extend(0x0800u16.to_be_bytes());
    // IPv4: version 4, IHL 5, DF, TTL 64, UDP.
    f.extend([0x45, 0]);
    f.extend(((20 + 8 + payload.len()) as u16).to_be_bytes());
    f.extend(0x1234u16.to_be_bytes());
    f.extend(0x4000u16.to_be_bytes());
    f.extend([64, 17, 0, 0]);
    f.extend(CLIENT_IP.octets());
    f.extend(SERVER_IP.octets());
    f.extend(CLIENT_PORT.to_be_bytes());
    f.extend(dst_port.to_be_bytes());
    f.extend(((8 + payload.len()) as u16).to_be_bytes());
    f.extend([0, 0]);
    f.extend(payload);
    fix_checksums(&mut f);
    f
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

/// The UDP datagram of an IPv4 frame, as its IP header bounds it.
fn udp_datagram(frame: &[u8]) -> &[u8] {
    let ip_len = usize::from(u16::from_be_bytes([frame[IP + 2], frame[IP + 3]]));
    &frame[UDP..IP + ip_len]
}

fn udp_pseudo_sum(frame: &[u8], udp_len: usize) -> u32 {
    sum16(&frame[IP + 12..IP + 20]) + 17 + udp_len as u32
}

/// Recomputes the IPv4 header and UDP checksums of a frame.
pub fn fix_checksums(frame: &mut [u8]) {
    frame[IP + 10..IP + 12].fill(0);
    let ip = !fold(sum16(&frame[IP..IP + 20]));
    frame[IP + 10..IP + 12].copy_from_slice(&ip.to_be_bytes());
    frame[UDP + 6..UDP + 8].fill(0);
    let udp_len = udp_datagram(frame).len();
    let udp = match !fold(udp_pseudo_sum(frame, udp_len) + sum16(udp_datagram(frame))) {
        0 => 0xffff,
        c => c,
    };
    frame[UDP + 6..UDP + 8].copy_from_slice(&udp.to_be_bytes());
}

/// Checks the IPv4 header and UDP checksums of a frame; a sum over a header
/// with a right checksum in it folds to all ones.
pub fn verify_checksums(frame: &[u8]) -> Result<(), String> {
    if fold(sum16(&frame[IP..IP + 20])) != 0xffff {
        return Err("bad IPv4 header checksum".into());
    }
    let udp = udp_datagram(frame);
    if u16::from_be_bytes([udp[6], udp[7]]) == 0 {
        return Err("UDP checksum missing".into());
    }
    if fold(udp_pseudo_sum(frame, udp.len()) + sum16(udp)) != 0xffff {
        return Err("bad UDP checksum".into());
    }
    Ok(())
}

/// The DNS message of an IPv4/UDP frame, decoded by hickory-proto.
pub fn decode_dns(frame: &[u8]) -> Result<Message, String> {
    Message::from_vec(&udp_datagram(frame)[8..]).map_err(|e| e.to_string())
}

/// Sets the 16-bit big-endian word at `offset` and fixes the checksums.
pub fn patch_u16(frame: &mut [u8], offset: usize, value: u16) {
    frame[offset..offset + 2].copy_from_slice(&value.to_be_bytes());
    fix_checksums(frame);
}

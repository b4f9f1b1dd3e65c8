//! The resolver's fast lane for cache hits, in wire format: a query read
//! without building a `Message` (RFC 1035 §4.1), and a cached answer kept
//! as the bytes of a reply, with where its TTLs are, so that a hit is a
//! copy with the ID, RD, the question's name (its case, as the client sent
//! it) and the TTLs written in. What the lane does not take (anything but
//! one plain question with at most an OPT record) goes the whole way, and
//! a test checks that both ways give the same bytes.

use meshdns_common::name::{LOWERCASE, wire_name_len};

const HDR_LEN: usize = 12;
const FLAG_QR: u8 = 0x80;
const OPCODE_MASK: u8 = 0x78;
const FLAG_TC: u8 = 0x02;
const FLAG_RD: u8 = 0x01;
/// In the header's second flags byte (RFC 4035 §3.2.2).
const FLAG_CD: u8 = 0x10;
const TYPE_OPT: u16 = 41;
/// DO bit in the OPT record's TTL field (RFC 3225).
const EDNS_DO: u32 = 0x8000;

/// A plain query as it came: one question, no answer or authority records,
/// and at most one additional record, an OPT of version 0.
#[derive(Debug, PartialEq, Eq)]
pub struct QueryView<'a> {
    pub request: &'a [u8],
    /// The question's name in wire format, as sent.
    pub name: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    /// `Some` with the OPT record's UDP payload size and DO bit.
    pub edns: Option<Edns>,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub struct Edns {
    pub payload: u16,
    pub dnssec_ok: bool,
}

impl<'a> QueryView<'a> {
    /// Whether the query set CD.
    pub fn checking_disabled(&self) -> bool {
        self.request[3] & FLAG_CD != 0
    }

    /// The query in `request`, if it is a plain one; `None` sends it the
    /// whole way (which also answers what is malformed).
    pub fn parse(request: &'a [u8]) -> Option<Self> {
        let header = request.get(..HDR_LEN)?;
        let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
        if header[2] & (FLAG_QR | OPCODE_MASK | FLAG_TC) != 0
            || count(4) != 1
            || count(6) != 0
            || count(8) != 0
            || count(10) > 1
        {
            return None;
        }
        let name_len = wire_name_len(&request[HDR_LEN..])?;
        let name = &request[HDR_LEN..HDR_LEN + name_len];
        let question_end = HDR_LEN + name_len + 4;
        let fixed = request.get(HDR_LEN + name_len..question_end)?;
        let qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let qclass = u16::from_be_bytes([fixed[2], fixed[3]]);
        let edns = if count(10) == 1 {
            Some(read_opt(&request[question_end..])?)
        } else if question_end == request.len() {
            None
        } else {
            return None;
        };
        Some(Self {
            request,
            name,
            qtype,
            qclass,
            edns,
        })
    }

    /// The question's name lowercased, as the cache keys it.
    pub fn lowercase_name(&self) -> Box<[u8]> {
        self.name.iter().map(|&b| LOWERCASE[b as usize]).collect()
    }
}

/// EDNS options whose data hickory decodes (and may reject, answering
/// FORMERR the whole way): client subnet (RFC 7871), and DAU, DHU, N3U
/// (RFC 6975). The lane leaves queries with them to the whole way.
const DECODED_OPTIONS: [u16; 4] = [5, 6, 7, 8];

/// The OPT record that ends the message: root owner, version 0, and
/// options that each fit its data and that hickory takes as they are.
fn read_opt(record: &[u8]) -> Option<Edns> {
    // Owner (1), TYPE, CLASS (payload size), TTL (extended RCODE, version,
    // flags), RDLENGTH, and the options, which end the message.
    let fixed = record.get(..11)?;
    let rdlength = usize::from(u16::from_be_bytes([fixed[9], fixed[10]]));
    if fixed[0] != 0
        || u16::from_be_bytes([fixed[1], fixed[2]]) != TYPE_OPT
        || fixed[6] != 0
        || record.len() != 11 + rdlength
    {
        return None;
    }
    let mut options = &record[11..];
    while !options.is_empty() {
        let header = options.get(..4)?;
        let code = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if DECODED_OPTIONS.contains(&code) {
            return None;
        }
        options = options.get(4 + len..)?;
    }
    let ttl = u32::from_be_bytes([fixed[5], fixed[6], fixed[7], fixed[8]]);
    Some(Edns {
        payload: u16::from_be_bytes([fixed[3], fixed[4]]),
        dnssec_ok: ttl & EDNS_DO != 0,
    })
}

/// A cached answer as the bytes of a reply to one query for its key (the
/// name lowercased, RD and CD clear), with each TTL's offset and value.
#[derive(Debug, Clone)]
pub struct Template {
    bytes: Box<[u8]>,
    ttls: Box<[(u16, u32)]>,
    name_len: usize,
}

impl Template {
    /// `reply`, encoded for a query whose name is `name_len` bytes long and
    /// whose RD and CD are clear: `None` if its records cannot be walked
    /// (never for what hickory encodes).
    pub fn new(reply: Vec<u8>, name_len: usize) -> Option<Self> {
        let ttls = ttl_offsets(&reply)?;
        let clear = reply.get(2)? & FLAG_RD == 0 && reply.get(3)? & FLAG_CD == 0;
        clear.then(|| Self {
            bytes: reply.into_boxed_slice(),
            ttls: ttls.into_boxed_slice(),
            name_len,
        })
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// How many bytes longer the whole way's reply to `query` may be than
    /// this template. Its names compress into the lowercased question; the
    /// whole way writes the client's spelling there, and hickory compresses
    /// a name only into the same bytes, case included, so each suffix of the
    /// question that a later name points to may be written out once in
    /// full. Zero when the client asked in lowercase: then both are the same
    /// bytes. The lane declines a reply that could need TC the whole way.
    pub fn case_slack(&self, query: &QueryView) -> usize {
        if query.name == &self.bytes[HDR_LEN..HDR_LEN + self.name_len] {
            return 0;
        }
        // The name is well formed (`QueryView::parse` checked it).
        let (mut labels, mut at) = (0, 0);
        while let Some(&len) = query.name.get(at)
            && len != 0
        {
            labels += 1;
            at += 1 + usize::from(len);
        }
        labels * query.name.len()
    }

    /// The reply to `query` (whose name is as long as the template's) with
    /// every TTL at most `left` seconds, into `out`: the query's ID, RD and
    /// CD (RFC 4035 §3.1.6, §3.2.2) and its name as sent, the rest as the
    /// template has it.
    pub fn reply_to(&self, query: &QueryView, left: u32, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&self.bytes);
        out[..2].copy_from_slice(&query.request[..2]);
        out[2] |= query.request[2] & FLAG_RD;
        out[3] |= query.request[3] & FLAG_CD;
        out[HDR_LEN..HDR_LEN + self.name_len].copy_from_slice(query.name);
        for &(at, ttl) in &self.ttls {
            let at = usize::from(at);
            out[at..at + 4].copy_from_slice(&ttl.min(left).to_be_bytes());
        }
    }
}

/// Where the TTL of each record of `message` is, with its value; the OPT
/// record's TTL field is not a TTL and is left out. `None` if the message
/// does not walk to its end.
fn ttl_offsets(message: &[u8]) -> Option<Vec<(u16, u32)>> {
    let count = |at: usize| -> Option<usize> {
        Some(usize::from(u16::from_be_bytes([
            *message.get(at)?,
            *message.get(at + 1)?,
        ])))
    };
    let (questions, records) = (count(4)?, count(6)? + count(8)? + count(10)?);
    let mut at = HDR_LEN;
    for _ in 0..questions {
        at = skip_name(message, at)? + 4;
    }
    let mut ttls = Vec::with_capacity(records);
    for _ in 0..records {
        at = skip_name(message, at)?;
        let fixed = message.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let ttl = u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        if rtype != TYPE_OPT {
            ttls.push((u16::try_from(at + 4).ok()?, ttl));
        }
        at += 10 + rdlength;
    }
    (at == message.len()).then_some(ttls)
}

/// The offset after the (possibly compressed) name at `at`.
fn skip_name(message: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *message.get(at)?;
        match len {
            0 => return Some(at + 1),
            // A pointer ends the name (RFC 1035 §4.1.4).
            0xc0..=0xff => return message.get(at + 1).map(|_| at + 2),
            1..=63 => at += 1 + usize::from(len),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `redis.example. A`, ID 0x1234, RD, with an OPT record (1232, DO).
    const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01\
        \x05Redis\x07example\x00\x00\x01\x00\x01\
        \x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00";

    #[test]
    fn rfc1035_4_1_a_plain_query_is_read() {
        let view = QueryView::parse(QUERY).unwrap();
        assert_eq!(view.name, b"\x05Redis\x07example\x00");
        assert_eq!(&*view.lowercase_name(), b"\x05redis\x07example\x00");
        assert_eq!((view.qtype, view.qclass), (1, 1));
        assert_eq!(
            view.edns,
            Some(Edns {
                payload: 1232,
                dnssec_ok: true
            })
        );
        assert!(
            QueryView::parse(&QUERY[..QUERY.len() - 11]).is_none(),
            "ARCOUNT 1, no OPT"
        );
    }

    /// `QUERY` with `options` as its OPT record's data.
    fn with_options(options: &[u8]) -> Vec<u8> {
        let mut query = QUERY[..QUERY.len() - 2].to_vec();
        query.extend_from_slice(&(options.len() as u16).to_be_bytes());
        query.extend_from_slice(options);
        query
    }

    #[test]
    fn rfc6891_6_1_2_options_that_fit_are_read_past() {
        let cookie = with_options(b"\x00\x0a\x00\x08\x01\x02\x03\x04\x05\x06\x07\x08");
        assert!(QueryView::parse(&cookie).is_some());
    }

    #[test]
    fn rfc1035_4_1_1_what_is_not_a_plain_query_goes_the_whole_way() {
        let with = |at: usize, byte: u8| {
            let mut query = QUERY.to_vec();
            query[at] = byte;
            query
        };
        for (what, query) in [
            ("a response", with(2, 0x81)),
            ("another opcode", with(2, 0x29)),
            ("truncated", with(2, 0x03)),
            ("two questions", with(5, 2)),
            ("an answer record", with(7, 1)),
            ("EDNS version 1", with(QUERY.len() - 5, 1)),
            ("a compression pointer", with(12, 0xc0)),
            ("trailing bytes", [QUERY, b"\0"].concat()),
            (
                "an option past its record",
                with_options(b"\x00\x0a\x00\x08\x01\x02"),
            ),
            ("a client-subnet option", with_options(b"\x00\x08\x00\x00")),
        ] {
            assert!(QueryView::parse(&query).is_none(), "{what}");
        }
    }

    #[test]
    fn rfc1035_4_1_4_ttls_are_found_through_compressed_names() {
        // Header (1 question, 2 answers, 1 additional OPT), question, two A
        // records with pointer owners, then OPT.
        let mut reply = b"\x00\x00\x81\x80\x00\x01\x00\x02\x00\x00\x00\x01".to_vec();
        reply.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
        for (ttl, last) in [(300u32, 1u8), (60, 2)] {
            reply.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01");
            reply.extend_from_slice(&ttl.to_be_bytes());
            reply.extend_from_slice(&[0, 4, 192, 0, 2, last]);
        }
        reply.extend_from_slice(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00");
        assert_eq!(ttl_offsets(&reply).unwrap(), [(30, 300), (46, 60)]);
        assert!(ttl_offsets(&reply[..reply.len() - 1]).is_none());
    }
}

//! Answers for names in the mesh's zones, from the same table and by the
//! same rules as the XDP program, so a query gets the same answer whichever
//! path it takes; plus what only userspace answers (other types, ANY, the
//! apex's SOA).

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, ResponseCode},
    rr::{
        DNSClass, Name, RData, Record, RecordType,
        rdata::{A, AAAA, CNAME, NS},
    },
    serialize::binary::{BinDecodable as _, BinDecoder, BinEncodable as _},
};
use meshdns_common::{EDNS_UDP_PAYLOAD_SIZE, NameKey, ZoneConfig};

use crate::{
    config::search::SearchAnswer,
    table::{Entry, Table},
};

/// What the zone says about a query.
pub enum Verdict {
    /// Not ours to answer: outside the zone, or unknown in a zone that is
    /// not authoritative. The resolver forwards it.
    Forward,
    /// Our answer.
    Answer(Message),
}

/// A zone's apex and its SOA record as hickory records, decoded from the
/// very bytes the XDP program sends.
#[derive(Clone)]
pub struct Zone {
    apex: Name,
    soa: Record,
    authoritative: bool,
}

impl Zone {
    /// The primary server the SOA names (MNAME): the apex's NS record.
    fn mname(&self) -> Name {
        match &self.soa.data {
            RData::SOA(soa) => soa.mname.clone(),
            _ => self.apex.clone(),
        }
    }

    fn of(zone: &ZoneConfig) -> Self {
        let mut rr = zone.apex_wire().to_vec();
        rr.extend_from_slice(&zone.soa_rr[..usize::from(zone.soa_rr_len)]);
        let mut decoder = BinDecoder::new(&rr);
        let soa = Record::read(&mut decoder).expect("the table's SOA record is well formed");
        Self {
            apex: soa.name.clone(),
            soa,
            authoritative: zone.is_authoritative(),
        }
    }
}

/// The table's zones, as the program walks them: the longest apex first.
#[derive(Clone)]
pub struct Zones(Vec<Zone>);

impl Zones {
    pub fn of(table: &Table) -> Self {
        Self(table.zones().iter().map(Zone::of).collect())
    }

    /// The zone that holds `name`: the innermost that it is in.
    pub fn of_name(&self, name: &Name) -> Option<&Zone> {
        self.0.iter().find(|zone| zone.apex.zone_of(name))
    }
}

/// The table's key for `name`: its wire format, lowercased.
pub fn key_of(name: &Name) -> Option<NameKey> {
    name.to_bytes()
        .ok()
        .and_then(|wire| NameKey::from_wire(&wire))
}

/// Decides on a query with one question (the caller checked).
pub fn answer(table: &Table, zones: &Zones, query: &Message) -> Verdict {
    let question = &query.queries[0];
    let name = question.name();
    let Some(key) = key_of(name) else {
        return Verdict::Forward;
    };
    // The table is class IN's, and QCLASS * (RFC 1035 §3.2.5) asks for
    // every class, of which we have IN. Our names in another class (CH,
    // HS, NONE) are refused, as an authoritative server refuses a class
    // it has no zone of; names of no zone of ours go on as any other.
    if !matches!(question.query_class(), DNSClass::IN | DNSClass::ANY) {
        if zones.of_name(name).is_some() || table.get(&key).is_some() {
            return Verdict::Answer(refused(query));
        }
        return Verdict::Forward;
    }
    let Some(zone) = zones.of_name(name) else {
        // As the fast path: one of the names outside the zones with an
        // address of the family, else a search expansion, else that name's
        // NODATA or the upstreams'.
        let exact = exact_answer(table, &key, query);
        if matches!(&exact, Verdict::Answer(reply) if !reply.answers.is_empty()) {
            return exact;
        }
        return match expansion_answer(table, zones, query, &key) {
            Some(reply) => Verdict::Answer(reply),
            None => exact,
        };
    };
    let mut reply = reply_to(query);
    let entry = match table.get(&key) {
        Some(entry) => entry,
        None if zone.authoritative => {
            reply.metadata.response_code = ResponseCode::NXDomain;
            reply.add_authority(negative_soa(zone, name));
            return Verdict::Answer(reply);
        }
        None => return Verdict::Forward,
    };
    add_records(&mut reply, zone, name, entry, question.query_type());
    Verdict::Answer(reply)
}

/// The records of `entry` (the table's for `name`, in `zone`) of type
/// `qtype` into `reply`'s answers, or, lacking them, the zone's SOA into
/// its authority section (NODATA).
fn add_records(reply: &mut Message, zone: &Zone, name: &Name, entry: &Entry, qtype: RecordType) {
    let ttl = entry.record.ttl;
    let record = |data: RData| Record::from_rdata(name.clone(), ttl, data);
    let (v4, v6) = address_records(name, entry);
    let at_apex = name == &zone.apex;
    let soa = || {
        let mut soa = zone.soa.clone();
        soa.name = name.clone();
        soa
    };
    let ns = || record(RData::NS(NS(zone.mname())));
    let answers: Vec<Record> = match qtype {
        RecordType::A => v4,
        RecordType::AAAA => v6,
        // RFC 8482 §4.1: the records there are (all of them: few). Where
        // there are none (an empty non-terminal) that is NODATA, not a
        // synthesized HINFO, which §4.2 gives a name that has records.
        RecordType::ANY => {
            let apex = at_apex.then(|| [soa(), ns()]).into_iter().flatten();
            v4.into_iter().chain(v6).chain(apex).collect()
        }
        RecordType::SOA if at_apex => vec![soa()],
        RecordType::NS if at_apex => vec![ns()],
        _ => vec![],
    };
    if answers.is_empty() {
        reply.add_authority(negative_soa(zone, name));
    } else {
        reply.add_answers(answers);
    }
}

/// The answer to a search-list expansion of a name of the table (see
/// [`Table::expand`]), as the fast path gives it for A and AAAA: not
/// authoritative (the asked name is in another server's zone), and
/// either NXDOMAIN, or a CNAME to the mesh name, owned by the asked name
/// as spelled, followed by the mesh name's records of the asked type or
/// its zone's SOA (a query for the CNAME itself, or ANY, gets the CNAME
/// alone). `None` if the name expands to no name the table holds: the
/// upstreams', as the fast path passes it.
fn expansion_answer(
    table: &Table,
    zones: &Zones,
    query: &Message,
    key: &NameKey,
) -> Option<Message> {
    let (expansion, entry) = table.expanded(key.as_wire())?;
    let mut reply = reply_to(query);
    reply.metadata.authoritative = false;
    match expansion.answer {
        SearchAnswer::Off => return None,
        SearchAnswer::Nxdomain => reply.metadata.response_code = ResponseCode::NXDomain,
        SearchAnswer::Cname => {
            let question = &query.queries[0];
            let mut decoder = BinDecoder::new(expansion.key.as_wire());
            let mesh_name = Name::read(&mut decoder).ok()?;
            reply.add_answer(Record::from_rdata(
                question.name().clone(),
                entry.record.ttl,
                RData::CNAME(CNAME(mesh_name.clone())),
            ));
            if !matches!(question.query_type(), RecordType::CNAME | RecordType::ANY) {
                let zone = zones.of_name(&mesh_name)?;
                add_records(&mut reply, zone, &mesh_name, entry, question.query_type());
            }
        }
    }
    Some(reply)
}

/// A name outside every zone that the table holds (a source's host,
/// answered as written): its A or AAAA records, or for the family it lacks
/// NOERROR with no records and no SOA (no zone of ours holds it). Other
/// types, and names the table does not hold, are the upstreams'.
fn exact_answer(table: &Table, key: &NameKey, query: &Message) -> Verdict {
    let question = &query.queries[0];
    let Some(entry) = table.get(key) else {
        return Verdict::Forward;
    };
    let (v4, v6) = address_records(question.name(), entry);
    let answers = match question.query_type() {
        RecordType::A => v4,
        RecordType::AAAA => v6,
        _ => return Verdict::Forward,
    };
    let mut reply = reply_to(query);
    reply.add_answers(answers);
    Verdict::Answer(reply)
}

/// `entry`'s A and AAAA records, owned by `name` as the question spells it.
fn address_records(name: &Name, entry: &Entry) -> (Vec<Record>, Vec<Record>) {
    let ttl = entry.record.ttl;
    let record = |data: RData| Record::from_rdata(name.clone(), ttl, data);
    let v4 = entry.record.v4().iter();
    let v6 = entry.record.v6().iter();
    (
        v4.map(|a| record(RData::A(A(std::net::Ipv4Addr::from(*a)))))
            .collect(),
        v6.map(|a| record(RData::AAAA(AAAA(std::net::Ipv6Addr::from(*a)))))
            .collect(),
    )
}

/// The header and question of a reply to `query`, as the fast path writes
/// them: the client's ID and question, QR, AA and RA, RD and CD copied, and
/// our OPT record if the query had one.
pub fn reply_to(query: &Message) -> Message {
    let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
    reply.metadata.authoritative = true;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.checking_disabled = query.metadata.checking_disabled;
    reply.add_queries(query.queries.iter().cloned());
    if let Some(edns) = &query.edns {
        reply.set_edns(our_edns(edns.flags().dnssec_ok));
    }
    reply
}

/// REFUSED, with the header and question of [`reply_to`], not
/// authoritative.
fn refused(query: &Message) -> Message {
    let mut reply = reply_to(query);
    reply.metadata.authoritative = false;
    reply.metadata.response_code = ResponseCode::Refused;
    reply
}

/// Our OPT record: version 0, our payload size, the client's DO bit.
pub fn our_edns(dnssec_ok: bool) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_UDP_PAYLOAD_SIZE)
        .set_version(0)
        .set_dnssec_ok(dnssec_ok);
    edns
}

/// The apex's SOA for the authority section of a negative answer, its owner
/// spelled as in the question (the fast path points into the question).
fn negative_soa(zone: &Zone, name: &Name) -> Record {
    let mut soa = zone.soa.clone();
    soa.name = name.trim_to(usize::from(zone.apex.num_labels()));
    soa
}

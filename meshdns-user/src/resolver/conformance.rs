//! The defects an outside conformance run found (genreport, respdiff
//! against Knot DNS), each as the query that showed it, through the
//! resolver's whole pipeline (`handle_now`) as a socket would call it.
//! The oracle is the RFC's text, written out here, not the resolver's own
//! helpers.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{DNSClass, Name, RData, Record, RecordType, rdata::A},
    serialize::binary::BinEncodable as _,
};

use super::{Resolver, Transport, cache::Cache, cache::Key, cache::Limits, pipeline::Step};
use crate::{config::ResolverSettings, table::Table};

const SERVICES: &str = "zone: mesh\nauthoritative: AUTH\nservices:\n  - name: redis\n    vips: [240.0.0.100]\n  - name: echo-server_echo-example_svc_1010\n    vips: [240.0.0.101]\n";

fn resolver(authoritative: bool) -> Resolver {
    let text = SERVICES.replace("AUTH", &authoritative.to_string());
    Resolver::new(
        Arc::new(Table::parse(&text).unwrap()),
        &ResolverSettings::default(),
        vec!["127.0.0.0/8".parse().unwrap()],
        &[],
        Cache::new(Limits::default()),
    )
}

fn client() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

/// A query for `name` `qtype` in `class`, ID 7, RD set.
fn query(name: &str, qtype: RecordType, class: DNSClass) -> Message {
    let mut query = Message::new(7, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    let mut question = Query::query(Name::from_ascii(name).unwrap(), qtype);
    question.set_query_class(class);
    query.add_query(question);
    query
}

/// What the resolver answers at once; `None` if it would forward.
fn answer_now(resolver: &Resolver, request: &[u8], transport: Transport) -> Option<Vec<u8>> {
    match resolver.handle_now(request, client(), transport) {
        Step::Done(reply) => Some(reply.expect("a reply")),
        Step::Forward(_) => None,
    }
}

fn reply_to(resolver: &Resolver, query: &Message) -> Message {
    let reply = answer_now(resolver, &query.to_vec().unwrap(), Transport::Udp)
        .unwrap_or_else(|| panic!("forwarded: {query}"));
    Message::from_vec(&reply).unwrap()
}

fn is_forwarded(resolver: &Resolver, query: &Message) -> bool {
    answer_now(resolver, &query.to_vec().unwrap(), Transport::Udp).is_none()
}

/// RFC 1035 §4.1.1: RD, RA and CD are a query's flags; an opcode we do
/// not know gets NOTIMP with its ID, QR and the opcode alone, whatever
/// flags it carried (genreport's `opcode` and `opcodeflg`:
/// `dig +noedns +header-only +opcode=15 +rec +cd`).
#[test]
fn rfc1035_4_1_1_an_unknown_opcode_gets_notimp_with_only_qr_and_the_opcode() {
    let resolver = resolver(true);
    // ID 0x1234, opcode 15, RD; CD; no sections.
    let request = [0x12, 0x34, 0x79, 0x10, 0, 0, 0, 0, 0, 0, 0, 0];
    let reply = answer_now(&resolver, &request, Transport::Udp).unwrap();
    assert_eq!(
        reply,
        [0x12, 0x34, 0x80 | 0x78, 0x04, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    // With an OPT record, ours comes back (RFC 6891 §6.1.1), nothing else.
    let mut query = query("redis.mesh.", RecordType::A, DNSClass::IN);
    query.metadata.op_code = OpCode::Update;
    query.metadata.checking_disabled = true;
    query.set_edns(Edns::new());
    let reply = reply_to(&resolver, &query);
    assert_eq!(reply.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(reply.metadata.op_code, OpCode::Update);
    let flags = &reply.metadata;
    assert!(
        !(flags.recursion_desired
            || flags.recursion_available
            || flags.checking_disabled
            || flags.authoritative),
        "{reply}"
    );
    assert!(reply.queries.is_empty() && reply.edns.is_some(), "{reply}");
}

/// RFC 1035 §3.2.4 and §3.2.5: the table is class IN's. A mesh name in
/// CH, HS or NONE is refused (Knot: REFUSED), not answered with IN data;
/// QCLASS * gets the IN records; a name of no zone of ours in another
/// class goes to the upstreams, as any other name.
#[test]
fn rfc1035_3_2_4_a_mesh_name_in_another_class_is_refused_and_qclass_any_gets_in() {
    for authoritative in [true, false] {
        let resolver = resolver(authoritative);
        for class in [DNSClass::CH, DNSClass::HS, DNSClass::NONE] {
            for name in ["redis.mesh.", "nope.mesh.", "mesh."] {
                let reply = reply_to(&resolver, &query(name, RecordType::A, class));
                assert_eq!(
                    reply.metadata.response_code,
                    ResponseCode::Refused,
                    "{name} {class}"
                );
                assert!(reply.answers.is_empty() && reply.authorities.is_empty());
            }
            assert!(is_forwarded(
                &resolver,
                &query("version.bind.", RecordType::TXT, class)
            ));
        }
        let reply = reply_to(
            &resolver,
            &query("redis.mesh.", RecordType::A, DNSClass::ANY),
        );
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        let answers: Vec<(DNSClass, &RData)> = reply
            .answers
            .iter()
            .map(|r| (r.dns_class, &r.data))
            .collect();
        assert_eq!(
            answers,
            [(DNSClass::IN, &RData::A(A(Ipv4Addr::new(240, 0, 0, 100))))]
        );
    }
}

/// RFC 8020 §2: below a name that does not exist nothing exists, so the
/// apex and every empty non-terminal of the table's names are the zone's
/// own in both modes: NODATA with AA, the apex's SOA (and NS, the SOA's
/// MNAME) in the answer with AA. Only names with no table name at or
/// below them are the upstreams' when the zone is not authoritative.
#[test]
fn rfc8020_2_the_apex_and_empty_non_terminals_exist_in_both_modes() {
    for authoritative in [true, false] {
        let resolver = resolver(authoritative);
        let mode = if authoritative {
            "authoritative"
        } else {
            "not"
        };
        for name in [
            "1010.mesh.",
            "svc.1010.mesh.",
            "echo-example.svc.1010.mesh.",
        ] {
            let reply = reply_to(&resolver, &query(name, RecordType::A, DNSClass::IN));
            assert_eq!(
                reply.metadata.response_code,
                ResponseCode::NoError,
                "{mode} {name}"
            );
            assert!(reply.metadata.authoritative, "{mode} {name}");
            assert!(reply.answers.is_empty(), "{mode} {name}: {reply}");
            let soa = &reply.authorities[..];
            assert!(
                soa.len() == 1 && soa[0].record_type() == RecordType::SOA,
                "{mode} {name}: {reply}"
            );
        }
        let reply = reply_to(&resolver, &query("mesh.", RecordType::SOA, DNSClass::IN));
        assert!(reply.metadata.authoritative, "{mode}");
        let RData::SOA(soa) = &reply.answers[0].data else {
            panic!("{mode}: {reply}");
        };
        let mname = soa.mname.clone();
        let reply = reply_to(&resolver, &query("MESH.", RecordType::NS, DNSClass::IN));
        assert!(reply.metadata.authoritative, "{mode}");
        let ns: Vec<&RData> = reply.answers.iter().map(|r| &r.data).collect();
        assert_eq!(
            ns,
            [&RData::NS(hickory_proto::rr::rdata::NS(mname))],
            "{mode}"
        );
        assert_eq!(reply.answers[0].name, Name::from_ascii("MESH.").unwrap());
        // A name with nothing at or below it: NXDOMAIN, or the upstreams'.
        let unknown = query("nope.1010.mesh.", RecordType::A, DNSClass::IN);
        if authoritative {
            let reply = reply_to(&resolver, &unknown);
            assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
        } else {
            assert!(is_forwarded(&resolver, &unknown));
        }
    }
}

/// RFC 8482 §4.1 and §4.2: ANY at a name with records gets them; at an
/// empty non-terminal, which has none, NODATA, not a synthesized HINFO
/// (`dig svc.1010.mesh ANY`). The apex has its SOA and NS.
#[test]
fn rfc8482_4_any_at_an_empty_non_terminal_is_nodata() {
    let resolver = resolver(true);
    let reply = reply_to(
        &resolver,
        &query("svc.1010.mesh.", RecordType::ANY, DNSClass::IN),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty(), "{reply}");
    assert_eq!(reply.authorities[0].record_type(), RecordType::SOA);
    let apex = reply_to(&resolver, &query("mesh.", RecordType::ANY, DNSClass::IN));
    let types: Vec<RecordType> = apex.answers.iter().map(Record::record_type).collect();
    assert_eq!(types, [RecordType::SOA, RecordType::NS], "{apex}");
    let redis = reply_to(
        &resolver,
        &query("redis.mesh.", RecordType::ANY, DNSClass::IN),
    );
    let types: Vec<RecordType> = redis.answers.iter().map(Record::record_type).collect();
    assert_eq!(types, [RecordType::A], "{redis}");
}

/// RFC 5936 §2.2.1: a server that does not transfer a zone says REFUSED;
/// NOERROR with the SOA in the authority section is no transfer (`kdig
/// mesh AXFR`: "first answer record isn't SOA"). The same for IXFR (RFC
/// 1995), and over TCP, where transfers go.
#[test]
fn rfc5936_2_2_1_zone_transfers_are_refused() {
    let resolver = resolver(true);
    for qtype in [RecordType::AXFR, RecordType::IXFR] {
        for name in ["mesh.", "redis.mesh.", "example.org."] {
            let request = query(name, qtype, DNSClass::IN).to_vec().unwrap();
            for transport in [Transport::Udp, Transport::Tcp] {
                let reply = answer_now(&resolver, &request, transport).unwrap();
                let reply = Message::from_vec(&reply).unwrap();
                assert_eq!(
                    reply.metadata.response_code,
                    ResponseCode::Refused,
                    "{name} {qtype}"
                );
                assert!(reply.answers.is_empty() && reply.authorities.is_empty());
            }
        }
    }
}

/// An upstream's answer for `name`: one A record, with `cd` as the
/// header's CD (the upstream copies the query's).
fn upstream_answer(name: &str, cd: bool) -> Message {
    let name = Name::from_ascii(name).unwrap();
    let mut answer = Message::new(99, MessageType::Response, OpCode::Query);
    answer.metadata.recursion_available = true;
    answer.metadata.checking_disabled = cd;
    answer.add_query(Query::query(name.clone(), RecordType::A));
    let a = A(Ipv4Addr::new(192, 0, 2, 1));
    answer.add_answer(Record::from_rdata(name, 300, RData::A(a)));
    answer
}

fn key(name: &str, checking_disabled: bool) -> Key {
    Key {
        name: Name::from_ascii(name).unwrap().to_bytes().unwrap().into(),
        qtype: RecordType::A,
        qclass: 1,
        dnssec_ok: false,
        checking_disabled,
    }
}

/// RFC 4035 §3.2.2 and RFC 6840 §5.9: an answer fetched with CD set was
/// not validated, so it never answers a query without CD (`dig +cd` then
/// `dig` from another client got the unvalidated data, and a CD it never
/// set); each reply's CD is its own query's, not the cached message's,
/// in the fast lane and the whole way alike.
#[test]
fn rfc4035_3_2_2_an_answer_fetched_with_cd_answers_only_queries_with_cd() {
    let resolver = resolver(true);
    resolver.remember(
        key("sip.example.", true),
        &upstream_answer("sip.example.", true),
        Instant::now(),
    );
    let plain = query("sip.example.", RecordType::A, DNSClass::IN);
    assert!(
        is_forwarded(&resolver, &plain),
        "CD's answer served without CD"
    );
    let mut with_cd = plain.clone();
    with_cd.metadata.checking_disabled = true;
    let reply = reply_to(&resolver, &with_cd);
    assert!(reply.metadata.checking_disabled && !reply.answers.is_empty());

    // An answer whose header says CD (an upstream's quirk), cached for
    // queries without: a client without CD gets none, with the same bytes
    // whichever way it goes.
    resolver.remember(
        key("other.example.", false),
        &upstream_answer("other.example.", true),
        Instant::now(),
    );
    let request = query("other.example.", RecordType::A, DNSClass::IN)
        .to_vec()
        .unwrap();
    let fast = answer_now(&resolver, &request, Transport::Udp).unwrap();
    let whole = resolver.whole_way(&request, client(), Transport::Udp);
    for reply in [&fast, &whole] {
        assert_eq!(reply[3] & 0x10, 0, "CD in {reply:?}");
        assert!(!Message::from_vec(reply).unwrap().answers.is_empty());
    }
    assert_eq!(fast, whole);
}

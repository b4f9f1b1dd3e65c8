//! What one query costs the userspace resolver, without sockets: the hot
//! paths one by one (query parse, answer encode, cache lookup), then whole
//! queries (a mesh name answered from the table, a forwarded name answered
//! from the cache).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
    serialize::binary::BinEncodable as _,
};
use meshdns::{
    resolver::{Resolver, Step, Transport, cache::Key},
    table::Table,
};

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    let mut query = Message::new(0x1234, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    query.to_vec().unwrap()
}

fn resolver(names: usize) -> Resolver {
    let mut text = String::from("zone: mesh\nservices:\n");
    for i in 0..names {
        text.push_str(&format!(
            "  - name: svc-{i}.ns-{}\n    vips: [240.0.{}.{}]\n",
            i % 97,
            i / 256,
            i % 256
        ));
    }
    let resolver = meshdns_tests::fixtures::offline_resolver(Table::parse(&text).unwrap());
    // A forwarded name already in the cache.
    let mut answer = Message::from_vec(&query("www.example.", RecordType::A)).unwrap();
    answer.metadata.message_type = MessageType::Response;
    answer.add_answer(hickory_proto::rr::Record::from_rdata(
        Name::from_ascii("www.example.").unwrap(),
        300,
        hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(198, 18, 5, 1)),
    ));
    resolver.remember(www_example(), &answer, std::time::Instant::now());
    resolver
}

/// The cache's key of `www.example. A`.
fn www_example() -> Key {
    Key {
        name: Name::from_ascii("www.example.")
            .unwrap()
            .to_bytes()
            .unwrap()
            .into(),
        qtype: RecordType::A,
        qclass: 1,
        dnssec_ok: false,
        checking_disabled: false,
    }
}

fn hot_paths(c: &mut Criterion) {
    let bytes = query("svc-5000.ns-53.mesh.", RecordType::A);
    c.bench_function("query parse", |b| {
        b.iter(|| Message::from_vec(black_box(&bytes)).unwrap())
    });

    let mut reply = Message::from_vec(&bytes).unwrap();
    reply.metadata.message_type = MessageType::Response;
    for i in 1..=3 {
        reply.add_answer(hickory_proto::rr::Record::from_rdata(
            Name::from_ascii("svc-5000.ns-53.mesh.").unwrap(),
            60,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(240, 0, 0, i)),
        ));
    }
    c.bench_function("answer encode, 3 A records", |b| {
        b.iter(|| black_box(&reply).to_vec().unwrap())
    });

    let resolver = resolver(10);
    let key = www_example();
    let now = std::time::Instant::now();
    c.bench_function("cache lookup, hit", |b| {
        b.iter(|| match resolver.cache().get(black_box(&key), now) {
            meshdns::resolver::cache::Lookup::Fresh(answer) => answer,
            _ => panic!("the entry is in the cache"),
        })
    });
}

fn bench(c: &mut Criterion) {
    let resolver = resolver(10_000);
    let client = "127.0.0.1:40000".parse().unwrap();
    for (label, bytes) in [
        ("mesh name, A", query("svc-5000.ns-53.mesh.", RecordType::A)),
        (
            "mesh name, NODATA",
            query("svc-5000.ns-53.mesh.", RecordType::AAAA),
        ),
        ("cache hit", query("www.example.", RecordType::A)),
    ] {
        c.bench_function(label, |b| {
            b.iter(
                || match resolver.handle_now(black_box(&bytes), client, Transport::Udp) {
                    Step::Done(reply) => reply,
                    Step::Forward(_) => panic!("{label} should not need an upstream"),
                },
            )
        });
    }
}

criterion_group!(benches, hot_paths, bench);
criterion_main!(benches);

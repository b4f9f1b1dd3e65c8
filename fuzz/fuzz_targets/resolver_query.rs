//! A query, any bytes, through the resolver's answer logic (allow_from,
//! the parse, the zones' rules, search expansions, the mesh replies' fast
//! lane, the cache) with a table of each kind of name, over UDP and TCP.
//! A reply, if any, carries the query's ID, is a response, and parses;
//! asked again (the fast lane and the cache now warm), the same holds.
#![no_main]

use std::{
    net::SocketAddr,
    sync::{Arc, LazyLock},
};

use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;
use meshdns::{
    config::ResolverSettings,
    resolver::{
        Resolver, Step, Transport,
        cache::{Cache, Limits},
    },
    table::Table,
};

/// Two zones (one authoritative), names of one and of eight addresses, a
/// dotted Kuma name, an empty non-terminal, search expansions.
const SERVICES: &str = r#"zones:
  - name: mesh
  - name: other.test
    authoritative: true
search:
  suffixes: ["*.svc.cluster.local", svc.cluster.local]
  answer: cname
services:
  - name: redis
    vips: [240.0.0.100, "fd00:fd00::100"]
  - name: eight
    vips: [240.0.1.1, 240.0.1.2, 240.0.1.3, 240.0.1.4, 240.0.1.5, 240.0.1.6, 240.0.1.7, 240.0.1.8]
  - name: echo-server_echo-example_svc_1010
  - name: a.b.deep
    vips: [240.0.0.9]
  - name: db
    zone: other.test
    vips: [240.0.0.10]
"#;

/// No upstream: what would be forwarded comes back as pending, unsent.
static RESOLVER: LazyLock<Resolver> = LazyLock::new(|| {
    let table = Table::parse(SERVICES).expect("the fuzz table parses");
    Resolver::new(
        Arc::new(table),
        &ResolverSettings::default(),
        vec!["127.0.0.0/8".parse().expect("a CIDR")],
        &[],
        Cache::new(Limits::default()),
    )
});

fuzz_target!(|data: &[u8]| {
    let client: SocketAddr = "127.0.0.1:40053".parse().expect("an address");
    for transport in [Transport::Udp, Transport::Tcp, Transport::Udp] {
        let Step::Done(Some(reply)) = RESOLVER.handle_now(data, client, transport) else {
            continue;
        };
        assert!(reply.len() >= 12, "a reply shorter than a header");
        if data.len() >= 2 {
            assert_eq!(reply[..2], data[..2], "the reply's ID is the query's");
        }
        assert!(reply[2] & 0x80 != 0, "the reply is a response (QR)");
        if let Err(error) = Message::from_vec(&reply) {
            panic!("the reply does not parse: {error}: {reply:02x?}");
        }
    }
});

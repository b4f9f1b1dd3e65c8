//! The fast path and the userspace resolver answer alike: for every query
//! shape the XDP program answers, `Resolver::handle` on the same table gives
//! the same message (decoded by hickory-proto and compared whole: every
//! field, TTLs and name case included).

use hickory_proto::op::{Message, ResponseCode};
use meshdns::{
    config::Services,
    fastpath::FastPath,
    resolver::{
        Resolver, Transport,
        authority::{self, Verdict, Zones},
    },
    source::SourceName,
    table::{SourceNames, Table},
    vip::State,
};
use meshdns_tests::{
    fixtures::{self, longest_service, services},
    frame::*,
    xdp::{self, XDP_PASS, XDP_TX},
};
use tokio::runtime::Runtime;

fn queries() -> Vec<(&'static str, Query)> {
    let dig = Opt::dig();
    let do_bit = Opt {
        do_bit: true,
        ..Opt::dig()
    };
    let longest: &'static str = Box::leak(format!("{}.mesh", longest_service()).into_boxed_str());
    vec![
        ("A", Query::new("redis.mesh", TYPE_A)),
        ("AAAA", Query::new("redis.mesh", TYPE_AAAA)),
        ("three A", Query::new("web.mesh", TYPE_A)),
        (
            "eight A, EDNS",
            Query::new("eight.mesh", TYPE_A).with_opt(dig.clone()),
        ),
        (
            "eight AAAA, DO",
            Query::new("eight.mesh", TYPE_AAAA).with_opt(do_bit.clone()),
        ),
        ("0x20", Query::new("rEdIs.MESH", TYPE_A)),
        (
            "Kuma, as written",
            Query::new("echo-server_echo-example_svc_1010.mesh", TYPE_A),
        ),
        (
            "Kuma, dotted",
            Query::new("echo-server.echo-example.svc.1010.mesh", TYPE_A),
        ),
        ("allocated VIPs", Query::new("auto.mesh", TYPE_AAAA)),
        (
            "RD clear, CD set",
            Query {
                flags: CD,
                ..Query::new("redis.mesh", TYPE_A)
            },
        ),
        ("NODATA", Query::new("web.mesh", TYPE_AAAA)),
        (
            "NODATA, EDNS, 0x20",
            Query::new("WeB.mesh", TYPE_AAAA).with_opt(dig.clone()),
        ),
        ("NXDOMAIN", Query::new("nope.mesh", TYPE_A)),
        (
            "NXDOMAIN, DO, 0x20",
            Query::new("NoPe.Deeper.MESH", TYPE_AAAA).with_opt(do_bit),
        ),
        ("empty non-terminal", Query::new("svc.1010.mesh", TYPE_A)),
        ("apex", Query::new("mesh", TYPE_AAAA).with_opt(dig)),
        ("255-byte name", Query::new(longest, TYPE_A)),
    ]
}

#[test]
fn fast_path_and_userspace_give_the_same_answers() {
    // The fixtures' services with their own TTLs, an allocated service, and
    // a 255-byte name, in an authoritative zone (every answer shape).
    let text = services(
        "ttl: 45\nsoa: { minimum: 20 }\nauthoritative: true\n",
        &format!(
            "  - name: auto\n  - name: {}\n    vips: [240.0.2.1]\n",
            longest_service()
        ),
    );
    let (mut fast_path, table) = fixtures::loaded_fast_path(&text);
    let resolver = fixtures::offline_resolver(table);
    let runtime = runtime();

    let mut differences = Vec::new();
    for (description, query) in queries() {
        differences.extend(difference(
            &mut fast_path,
            &resolver,
            &runtime,
            description,
            &query,
        ));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Several zones at once, one inside another: `mesh` (authoritative),
/// `mesh.local` (not), and `svc.mesh` (not, inside `mesh`: its names are
/// its own, the longer apex wins). Both paths answer the same for names in
/// each zone, each zone's negative answers carry its own SOA, and both
/// pass or forward alike what no zone answers.
#[test]
fn several_zones_answer_alike_in_both_paths_and_the_longer_apex_wins() {
    let text = "\
ttl: 45
zones:
  - name: mesh
    authoritative: true
  - name: mesh.local
    soa: { minimum: 10 }
  - name: svc.mesh
services:
  - name: redis
    vips: [240.0.0.100, \"fd00:fd00::100\"]
  - name: redis.kuma-demo
    zone: mesh.local
    vips: [241.0.0.1]
  - name: api
    zone: svc.mesh
    vips: [242.0.0.1]
  - name: echo_demo
    vips: [240.0.0.5]
";
    let (mut fast_path, table) = fixtures::loaded_fast_path(text);
    let resolver = fixtures::offline_resolver(table.clone());
    let runtime = runtime();
    let dig = Opt::dig();
    let answered = [
        ("mesh A", Query::new("redis.mesh", TYPE_A)),
        (
            "mesh.local A",
            Query::new("redis.kuma-demo.mesh.local", TYPE_A),
        ),
        (
            "mesh.local NODATA, its own SOA",
            Query::new("REDIS.kuma-demo.Mesh.Local", TYPE_AAAA).with_opt(dig.clone()),
        ),
        ("svc.mesh, inside mesh", Query::new("api.svc.mesh", TYPE_A)),
        (
            "mesh NXDOMAIN",
            Query::new("nope.mesh", TYPE_A).with_opt(dig),
        ),
        ("mesh's empty non-terminal", Query::new("demo.mesh", TYPE_A)),
        // A zone that is not authoritative has its apex and its empty
        // non-terminals all the same (RFC 8020 §2): NODATA, its own SOA.
        (
            "mesh.local's apex, NODATA",
            Query::new("mesh.local", TYPE_A),
        ),
        (
            "mesh.local's empty non-terminal",
            Query::new("kuma-demo.mesh.local", TYPE_AAAA),
        ),
        (
            "svc.mesh's apex, inside mesh",
            Query::new("svc.mesh", TYPE_A),
        ),
        (
            "mesh NXDOMAIN, like another zone's label",
            Query::new("kuma-demo.mesh", TYPE_A),
        ),
    ];
    let mut differences = Vec::new();
    for (description, query) in answered {
        differences.extend(difference(
            &mut fast_path,
            &resolver,
            &runtime,
            description,
            &query,
        ));
    }
    // Unknown names of the zones that are not authoritative, even inside
    // an authoritative one, and names of no zone: passed, and forwarded.
    differences.extend(
        [
            "nope.mesh.local",
            "nope.kuma-demo.mesh.local",
            "x.svc.mesh",
            "mesh.example",
        ]
        .map(|name| Query::new(name, TYPE_A))
        .iter()
        .filter_map(|query| not_ours(&mut fast_path, &table, query)),
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// How the fast path's answer to `query` and the resolver's differ, on the
/// same table, or that the fast path passed it; `None` if they are the
/// same message. Compared as debug text: hickory's record equality leaves
/// out the TTL (RFC 2136 semantics), and TTLs must agree too.
fn difference(
    fast_path: &mut FastPath,
    resolver: &Resolver,
    runtime: &Runtime,
    description: &str,
    query: &Query,
) -> Option<String> {
    let (action, output) = xdp::run(fast_path, &query.frame()).unwrap();
    if action != XDP_TX {
        return Some(format!(
            "{description}: the fast path must answer it, and passed it"
        ));
    }
    let fast = decode_dns(&output).unwrap();
    let user = userspace(resolver, runtime, query);
    (format!("{fast:?}") != format!("{user:?}"))
        .then(|| format!("{description}:\n  fast path: {fast:?}\n  userspace: {user:?}"))
}

/// Where the resolver's futures run.
fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The resolver's reply to `query`, from a client on loopback.
fn userspace(resolver: &Resolver, runtime: &Runtime, query: &Query) -> Message {
    let client = "127.0.0.1:40053".parse().unwrap();
    let bytes = runtime
        .block_on(resolver.handle(&query.to_bytes(), client, Transport::Udp))
        .expect("a reply");
    Message::from_vec(&bytes).unwrap()
}

/// `None` if the fast path passes `query` and the resolver's rules forward
/// it (neither answers it); else what each did.
fn not_ours(fast_path: &mut FastPath, table: &Table, query: &Query) -> Option<String> {
    let (action, _) = xdp::run(fast_path, &query.frame()).unwrap();
    let message = Message::from_vec(&query.to_bytes()).unwrap();
    let forwarded = matches!(
        authority::answer(table, &Zones::of(table), &message),
        Verdict::Forward
    );
    (action != XDP_PASS || !forwarded).then(|| {
        format!(
            "{query:?}: passed {}, forwarded {forwarded}",
            action == XDP_PASS
        )
    })
}

/// Names outside every zone that a source gives (Kuma's hosts and virtual
/// outbounds, answered as written): A and AAAA answered alike by both
/// paths; the family a name lacks passed by the fast path and answered by
/// the resolver, NOERROR with no records and no SOA (no zone of ours holds
/// the name); other names and types passed and forwarded.
#[test]
fn names_outside_the_zones_answer_alike_and_their_nodata_is_the_resolvers() {
    meshdns_tests::require_root();
    let services = Services::parse(
        "zone: mesh\nauthoritative: true\nservices:\n  - name: redis\n    vips: [240.0.0.100]\n",
    )
    .unwrap();
    let given = [
        SourceName {
            name: "httpbin.org".into(),
            addresses: vec!["240.0.0.3".parse().unwrap()],
        },
        SourceName {
            name: "api.example.com".into(),
            addresses: vec!["fd00::5".parse().unwrap()],
        },
    ];
    let sources = [SourceNames {
        id: "test",
        ttl: 30,
        names: given.iter().collect(),
    }];
    let (table, _) =
        Table::build_with_sources(services, &sources, &mut State::default(), 0).unwrap();
    let mut fast_path = FastPath::load().unwrap();
    fast_path.sync(table.clone()).unwrap();
    let resolver = fixtures::offline_resolver(table.clone());
    let runtime = runtime();
    let mut differences = Vec::new();
    for (description, query) in [
        ("A", Query::new("httpbin.org", TYPE_A)),
        (
            "A, EDNS, 0x20",
            Query::new("HttpBin.ORG", TYPE_A).with_opt(Opt::dig()),
        ),
        ("AAAA", Query::new("api.example.com", TYPE_AAAA)),
        ("in a zone still", Query::new("redis.mesh", TYPE_A)),
    ] {
        differences.extend(difference(
            &mut fast_path,
            &resolver,
            &runtime,
            description,
            &query,
        ));
    }
    // The missing family: the resolver's NODATA, without an SOA.
    let query = Query::new("httpbin.org", TYPE_AAAA);
    let (action, _) = xdp::run(&mut fast_path, &query.frame()).unwrap();
    let reply = userspace(&resolver, &runtime, &query);
    if action != XDP_PASS
        || reply.metadata.response_code != ResponseCode::NoError
        || !reply.answers.is_empty()
        || !reply.authorities.is_empty()
        || !reply.metadata.authoritative
    {
        differences.push(format!(
            "httpbin.org AAAA: passed {}, {reply:?}",
            action == XDP_PASS
        ));
    }
    // Not the table's: passed, and forwarded.
    differences.extend(
        [
            Query::new("other.org", TYPE_A),
            Query::new("httpbin.org", TYPE_MX),
        ]
        .iter()
        .filter_map(|query| not_ours(&mut fast_path, &table, query)),
    );
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}

/// Search-list expansions of mesh names answer alike in both paths, in
/// both modes: the CNAME chain (records, or the SOA for a family the mesh
/// name lacks) and NXDOMAIN, with and without EDNS, in mixed case. What
/// the fast path never answers, the resolver answers by the same rule: a
/// TXT under a suffix gets the CNAME and the mesh zone's SOA, a CNAME
/// query the CNAME alone; names under a suffix that are no mesh name are
/// passed and forwarded.
#[test]
fn search_expansions_answer_alike_in_both_paths_rfc1034_3_6_2() {
    let dig = Opt::dig();
    for answer in ["cname", "nxdomain"] {
        let text = services(
            &format!(
                "ttl: 45\nsearch:\n  suffixes: [\"*.svc.cluster.local\", svc.cluster.local, cluster.local]\n  answer: {answer}\n"
            ),
            "",
        );
        let (mut fast_path, table) = fixtures::loaded_fast_path(&text);
        let resolver = fixtures::offline_resolver(table.clone());
        let runtime = runtime();
        let mut differences = Vec::new();
        for (description, query) in [
            (
                "A",
                Query::new("redis.mesh.default.svc.cluster.local", TYPE_A),
            ),
            (
                "AAAA, EDNS",
                Query::new("redis.mesh.svc.cluster.local", TYPE_AAAA).with_opt(dig.clone()),
            ),
            (
                "0x20",
                Query::new("WeB.Mesh.Default.SVC.Cluster.Local", TYPE_A),
            ),
            (
                "a family it lacks",
                Query::new("web.mesh.cluster.local", TYPE_AAAA),
            ),
            (
                "eight, EDNS",
                Query::new("eight.mesh.ns.svc.cluster.local", TYPE_AAAA).with_opt(dig.clone()),
            ),
        ] {
            differences.extend(difference(
                &mut fast_path,
                &resolver,
                &runtime,
                &format!("{answer}: {description}"),
                &query,
            ));
        }
        differences.extend(
            [
                "nope.mesh.default.svc.cluster.local",
                // The apex and an empty non-terminal exist (RFC 8020) but
                // are no service: the cluster's `mesh` Service, say.
                "mesh.default.svc.cluster.local",
                "svc.1010.mesh.svc.cluster.local",
                "redis.default.svc.cluster.local",
                "redis.mesh.example.org",
            ]
            .map(|name| Query::new(name, TYPE_A))
            .iter()
            .filter_map(|query| not_ours(&mut fast_path, &table, query)),
        );
        assert!(differences.is_empty(), "{}", differences.join("\n"));

        // The resolver's own: other types, by the same rule.
        for (qtype, want_answers, want_authorities) in [(TYPE_TXT, 1, 1), (TYPE_CNAME, 1, 0)] {
            let query = Query::new("redis.mesh.default.svc.cluster.local", qtype);
            let reply = userspace(&resolver, &runtime, &query);
            let (rcode, answers, authorities) = match answer {
                "cname" => (ResponseCode::NoError, want_answers, want_authorities),
                _ => (ResponseCode::NXDomain, 0, 0),
            };
            assert!(
                reply.metadata.response_code == rcode
                    && reply.answers.len() == answers
                    && reply.authorities.len() == authorities
                    && !reply.metadata.authoritative,
                "{answer}: type {qtype}: {reply:?}"
            );
        }
    }
}

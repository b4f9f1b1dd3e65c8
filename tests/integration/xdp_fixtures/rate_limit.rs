//! The rate limit's fixtures, as data: each a limit and the frames sent
//! one after the other (well within a second, so that no bucket refills),
//! with the action, the output bytes and the counter each must get.
//! Expected replies are built by hand ([`Query::expected_truncated`]) or
//! with hickory-proto, as the other fixtures' are. [`super`] runs them,
//! each sequence on a program of its own (its buckets new).

use meshdns::config::rate_limit::RateLimitSettings;
use meshdns_common::Counter;
use meshdns_tests::frame::*;

use super::cases::{Expect, Zone};

pub(super) struct Sequence {
    pub description: &'static str,
    pub zone: Zone,
    /// `None`: no limit.
    pub limit: Option<RateLimitSettings>,
    pub steps: Vec<Step>,
}

pub(super) struct Step {
    pub input: Vec<u8>,
    pub expect: Expect,
}

fn limit(
    responses_per_second: u32,
    slip: u32,
    ipv4_prefix: u8,
    ipv6_prefix: u8,
) -> Option<RateLimitSettings> {
    Some(RateLimitSettings {
        responses_per_second,
        window_seconds: 15,
        slip,
        ipv4_prefix,
        ipv6_prefix,
    })
}

/// `query` from `client` (an address of `ALLOW_FROM`), and what comes of
/// it: `want` given the query as sent from there, and the reply's frame
/// sent back to there.
fn from(client: &str, query: &Query, want: impl Fn(&Query) -> Expect) -> Step {
    let client: std::net::IpAddr = client.parse().unwrap();
    let input = readdressed(&query.frame(), Address::Source, client);
    let expect = match want(query) {
        Expect::Tx(reply, counter) => {
            Expect::Tx(readdressed(&reply, Address::Destination, client), counter)
        }
        other => other,
    };
    Step { input, expect }
}

fn answered_a(query: &Query) -> Expect {
    Expect::Tx(
        query.expected_reply(&["240.0.0.100".parse().unwrap()], 60),
        Counter::AnsweredA,
    )
}

fn answered_aaaa(query: &Query) -> Expect {
    Expect::Tx(
        query.expected_reply(&["fd00:fd00::100".parse().unwrap()], 60),
        Counter::AnsweredAaaa,
    )
}

/// Truncated: NOERROR, authoritative (a name of the zone).
fn truncated(query: &Query) -> Expect {
    Expect::Tx(
        query.expected_truncated(NOERROR, true),
        Counter::RateLimitedTruncated,
    )
}

fn dropped(_: &Query) -> Expect {
    Expect::Drop(Counter::RateLimitedDropped)
}

pub(super) fn sequences() -> Vec<Sequence> {
    let redis_a = Query::new("redis.mesh", TYPE_A);
    let redis_aaaa = Query::new("redis.mesh", TYPE_AAAA).over(Link::ipv6());
    let nope = Query::new("nope.mesh", TYPE_A).with_opt(Opt::dig());
    let expansion = Query::new("redis.mesh.default.svc.cluster.local", TYPE_A);
    let client = "198.18.0.2";
    vec![
        Sequence {
            description: "the rate's answers, then every slip-th truncated and the rest dropped (BIND's slip)",
            zone: Zone::Forwarding,
            limit: limit(2, 2, 24, 56),
            steps: vec![
                from(client, &redis_a, answered_a),
                from(client, &redis_a, answered_a),
                from(client, &redis_a, dropped),
                from(client, &redis_a, truncated),
                from(client, &redis_a, dropped),
                from(client, &redis_a, truncated),
            ],
        },
        Sequence {
            description: "clients of one prefix share its bucket; another prefix has its own",
            zone: Zone::Forwarding,
            limit: limit(1, 0, 25, 56),
            steps: vec![
                from(client, &redis_a, answered_a),
                from("198.18.0.100", &redis_a, dropped),
                from("198.18.0.200", &redis_a, answered_a),
                from("198.18.0.201", &redis_a, dropped),
            ],
        },
        Sequence {
            description: "IPv6: a /56 shares a bucket, a /128 does not",
            zone: Zone::Forwarding,
            limit: limit(1, 0, 24, 56),
            steps: vec![
                from("2001:db8::2", &redis_aaaa, answered_aaaa),
                from("2001:db8::ffff:3", &redis_aaaa, dropped),
            ],
        },
        Sequence {
            description: "IPv6 with ipv6_prefix 128: each address its own bucket",
            zone: Zone::Forwarding,
            limit: limit(1, 0, 24, 128),
            steps: vec![
                from("2001:db8::2", &redis_aaaa, answered_aaaa),
                from("2001:db8::3", &redis_aaaa, answered_aaaa),
                from("2001:db8::2", &redis_aaaa, dropped),
            ],
        },
        Sequence {
            description: "RFC 1035 §4.1.1, RFC 6891 §7: truncated NXDOMAIN keeps its rcode, AA and OPT",
            zone: Zone::Authoritative,
            limit: limit(1, 1, 24, 56),
            steps: vec![
                from(client, &nope, |q| {
                    Expect::Tx(
                        q.expected_negative_reply(NXDOMAIN, &super::cases::soa_rr(), 1),
                        Counter::AnsweredNxdomain,
                    )
                }),
                from(client, &nope, |q| {
                    Expect::Tx(
                        q.expected_truncated(NXDOMAIN, true),
                        Counter::RateLimitedTruncated,
                    )
                }),
            ],
        },
        Sequence {
            description: "a search expansion (the search program) is limited too, truncated not authoritative",
            zone: Zone::Forwarding,
            limit: limit(1, 1, 24, 56),
            steps: vec![
                from(client, &expansion, |q| {
                    Expect::Tx(
                        q.expected_cname_reply(
                            "redis.mesh.",
                            &["240.0.0.100".parse().unwrap()],
                            60,
                        ),
                        Counter::AnsweredSearchCname,
                    )
                }),
                from(client, &expansion, |q| {
                    Expect::Tx(
                        q.expected_truncated(NOERROR, false),
                        Counter::RateLimitedTruncated,
                    )
                }),
                // The answer program's answers share the bucket.
                from(client, &redis_a, truncated),
            ],
        },
        Sequence {
            description: "passes take nothing from the bucket: not in the zone, another type",
            zone: Zone::Forwarding,
            limit: limit(1, 0, 24, 56),
            steps: vec![
                from(client, &Query::new("www.example.com", TYPE_A), |_| {
                    Expect::Pass(Counter::PassNotInZone)
                }),
                from(client, &Query::new("redis.mesh", TYPE_MX), |_| {
                    Expect::Pass(Counter::PassUnsupportedType)
                }),
                from(client, &redis_a, answered_a),
                from(client, &redis_a, dropped),
            ],
        },
        Sequence {
            description: "the scope comes first: a client outside allow_from is passed, not limited",
            zone: Zone::Forwarding,
            limit: limit(1, 0, 0, 0),
            steps: vec![
                from("203.0.113.9", &redis_a, |_| {
                    Expect::Pass(Counter::PassClientNotAllowed)
                }),
                from("203.0.113.9", &redis_a, |_| {
                    Expect::Pass(Counter::PassClientNotAllowed)
                }),
                from(client, &redis_a, answered_a),
            ],
        },
        Sequence {
            description: "no limit: every answer goes out",
            zone: Zone::Forwarding,
            limit: None,
            steps: (0..20)
                .map(|_| from(client, &redis_a, answered_a))
                .collect(),
        },
    ]
}

//! Issue 16's response rate limiting, end to end: a burst of UDP queries
//! from the lab's client (as a flood, or a reflection attack's spoofed
//! sources, would send them) gets the limit's answers, then truncated
//! replies and silence, from the fast path (its counters say so) and from
//! the resolver (its `/metrics`); `dig`, a real client, asks again over
//! TCP when it gets a truncated reply, and TCP is answered; the services
//! file turns the limit off again.

use std::{net::SocketAddr, time::Duration};

use hickory_proto::rr::RecordType;
use meshdns_common::Counter;
use meshdns_tests::{
    fixtures::LAB_SERVICES,
    lab::{Agent, Lab},
    load::{Burst, burst},
};

/// Queries in each burst: within a few milliseconds, so that no bucket
/// refills meanwhile (10 a second is one every 100 ms).
const BURST: u16 = 40;

fn setup(header: &str) -> (Lab, Agent) {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    // Two more client addresses: one in the client's /24, one in another
    // (allow_from lists both).
    for extra in ["198.18.0.3/24", "198.18.1.2/24"] {
        lab.client.add_address(&lab.client_if, extra).unwrap();
    }
    let config = lab.write_services(&format!(
        "allow_from: [127.0.0.0/8, 198.18.0.0/16]\n{header}{LAB_SERVICES}"
    ));
    let agent = lab
        .start_agent(&config, &["--listen", "198.18.0.1:53"])
        .unwrap();
    (lab, agent)
}

fn address(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A burst from `source` for `name` `qtype`, and what the fast path
/// counted meanwhile: (answered whole, truncated, dropped).
fn flood(lab: &Lab, source: &str, name: &str, qtype: RecordType) -> (Burst, [u64; 3]) {
    let before = lab.fast_path_counters().unwrap();
    let got = burst(
        &lab.client,
        address(&format!("{source}:0")),
        address("198.18.0.1:53"),
        name,
        qtype,
        BURST,
    )
    .unwrap();
    let moved = lab.fast_path_counters().unwrap().since(&before);
    let counted = [
        moved.answered() - moved.get(Counter::RateLimitedTruncated),
        moved.get(Counter::RateLimitedTruncated),
        moved.get(Counter::RateLimitedDropped),
    ];
    (got, counted)
}

/// The resolver's rate limit counters, from `/metrics`: (truncated,
/// dropped).
fn resolver_limited(lab: &Lab) -> (u64, u64) {
    let (_, body) = lab.server.http_get("127.0.0.1:9153", "/metrics").unwrap();
    let value = |name: &str| {
        body.lines()
            .find_map(|line| line.strip_prefix(&format!("{name}_total ")))
            .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
            .parse::<u64>()
            .unwrap()
    };
    (
        value("meshdns_resolver_rate_limited_truncated"),
        value("meshdns_resolver_rate_limited_dropped"),
    )
}

/// Asserts that a burst got the limit's answers (`rate`, or one more if
/// the bucket refilled a little meanwhile), then every second of the rest
/// truncated (slip 2) and the others nothing.
#[track_caller]
fn assert_limited(got: Burst, rate: u64) {
    assert!(
        (rate..=rate + 1).contains(&got.whole),
        "{got:?}: want {rate} whole"
    );
    let over = u64::from(BURST) - got.whole;
    assert_eq!(got.truncated + got.missing, over, "{got:?}");
    assert!(
        got.truncated.abs_diff(got.missing) <= 1,
        "{got:?}: slip 2 truncates every second one over the limit"
    );
}

#[test]
fn the_fast_path_answers_the_rate_then_truncates_every_slip_th_and_drops_the_rest() {
    let header = "rate_limit:\n  responses_per_second: 10\n  slip: 2\n";
    let (lab, mut agent) = setup(header);
    let (got, counted) = flood(&lab, "198.18.0.2", "redis.mesh", RecordType::A);
    assert_limited(got, 10);
    // The program did it: what the client saw is what it counted.
    assert_eq!(counted, [got.whole, got.truncated, got.missing], "{got:?}");
    // Another client of the same /24 shares the bucket, spent; a client of
    // another /24 has its own.
    let (got, _) = flood(&lab, "198.18.0.3", "redis.mesh", RecordType::A);
    assert_eq!(got.whole, 0, "{got:?}");
    let (got, counted) = flood(&lab, "198.18.1.2", "redis.mesh", RecordType::A);
    assert_limited(got, 10);
    assert_eq!(counted[0], got.whole);

    // A real client over the limit, each answer slipping: dig gets TC,
    // asks again over TCP (RFC 7766 §5), and the resolver answers it.
    lab.write_services(&format!(
        "allow_from: [127.0.0.0/8, 198.18.0.0/16]\nrate_limit:\n  responses_per_second: 10\n  slip: 1\n{LAB_SERVICES}"
    ));
    agent
        .wait_for_logs("fast path table updated", 1, Duration::from_secs(5))
        .unwrap();
    let before = lab.fast_path_counters().unwrap();
    let out = lab
        .client
        .dig("198.18.0.1", &["-b", "198.18.0.2", "redis.mesh", "A"]);
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(
        out.contains("status: NOERROR") && out.contains("240.0.0.100"),
        "{out}"
    );
    assert_eq!(moved.get(Counter::RateLimitedTruncated), 1, "{moved}");

    // The file turns the limit off: the whole burst is answered.
    lab.write_services(&format!(
        "allow_from: [127.0.0.0/8, 198.18.0.0/16]\n{LAB_SERVICES}"
    ));
    agent
        .wait_for_logs("fast path table updated", 2, Duration::from_secs(5))
        .unwrap();
    let (got, counted) = flood(&lab, "198.18.0.2", "redis.mesh", RecordType::A);
    assert_eq!(got.whole, u64::from(BURST), "{got:?}");
    assert_eq!(counted, [u64::from(BURST), 0, 0]);
}

#[test]
fn the_resolver_limits_what_it_answers_over_udp_and_not_over_tcp() {
    let header = "rate_limit:\n  responses_per_second: 10\n  slip: 2\n";
    let (lab, _agent) = setup(header);
    // TXT is the resolver's to answer (NODATA from the table): the program
    // passes it.
    let (got, counted) = flood(&lab, "198.18.0.2", "redis.mesh", RecordType::TXT);
    assert_limited(got, 10);
    assert_eq!(counted, [0, 0, 0], "the fast path answered none");
    assert_eq!(resolver_limited(&lab), (got.truncated, got.missing));
    // The fast path's buckets are its own: the same client's A queries
    // get the program's rate.
    let (got, _) = flood(&lab, "198.18.0.2", "redis.mesh", RecordType::A);
    assert_limited(got, 10);
    // TCP proves the client's address: never limited.
    for _ in 0..5 {
        let out = lab.client.dig(
            "198.18.0.1",
            &["-b", "198.18.0.2", "+tcp", "redis.mesh", "TXT"],
        );
        assert!(out.contains("status: NOERROR"), "{out}");
    }
}

//! Forwarding by zone against real upstreams: Unbound from Debian serving
//! `cluster.local` on one address (the cluster DNS here) and `test.` on
//! another (the node's resolvers), the agent's `forward:` sending each zone
//! to its own. Each name reaches its zone's upstream only; a dead zone's
//! cached names are served stale and its new names get SERVFAIL, while the
//! other zone goes on.

use std::{
    net::Ipv4Addr,
    thread::sleep,
    time::{Duration, Instant},
};

use meshdns_tests::{
    fixtures::LAB_SERVICES,
    lab::{Agent, Lab, SERVER_V4, dig_status},
    unbound::{UNBOUND_ADDR, Unbound},
};

/// Where the cluster DNS Unbound listens, inside the server namespace.
const CLUSTER_DNS: &str = "127.0.0.3:5353";

struct Setup {
    lab: Lab,
    cluster: Unbound,
    _node: Unbound,
    agent: Agent,
}

fn setup(forward: &str) -> Setup {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let node = Unbound::start(&lab.server).unwrap();
    let cluster = Unbound::start_zone(
        &lab.server,
        Ipv4Addr::new(127, 0, 0, 3),
        "cluster.local.",
        &[
            "cluster.local. 3600 IN SOA ns.cluster.local. hostmaster.cluster.local. 1 3600 600 86400 30"
                .to_string(),
            "redis.default.svc.cluster.local. 300 IN A 198.18.7.1".to_string(),
            "brief.default.svc.cluster.local. 1 IN A 198.18.7.2".to_string(),
            "later.default.svc.cluster.local. 300 IN A 198.18.7.3".to_string(),
        ],
        ("redis.default.svc.cluster.local", "198.18.7.1"),
    )
    .unwrap();
    let config = lab.write_services(&format!("{LAB_SERVICES}{forward}"));
    let listen = format!("{SERVER_V4}:53");
    // --upstream: the root zone's (the rest of the names).
    let agent = lab
        .start_agent(&config, &["--listen", &listen, "--upstream", UNBOUND_ADDR])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lab
        .dig(&["www.test", "+noall", "+comments"])
        .contains("status:")
    {
        assert!(Instant::now() < deadline, "the resolver never answered");
        sleep(Duration::from_millis(50));
    }
    Setup {
        lab,
        cluster,
        _node: node,
        agent,
    }
}

const FORWARD: &str =
    "forward:\n  - zone: cluster.local\n    upstreams: [\"127.0.0.3:5353\"]\n    max_ttl: 20\n";

fn short(lab: &Lab, name: &str) -> String {
    lab.dig(&[name, "A", "+short", "+time=3"])
        .trim()
        .to_string()
}

fn status(lab: &Lab, name: &str) -> String {
    dig_status(&lab.dig(&[name, "A", "+noall", "+comments", "+time=3"])).unwrap_or_default()
}

/// The `_count` of the upstream latency histogram for `zone` and `upstream`.
fn exchanges(lab: &Lab, zone: &str, upstream: &str) -> u64 {
    let (_, metrics) = lab.server.http_get("127.0.0.1:9153", "/metrics").unwrap();
    let series = format!(
        "meshdns_upstream_request_duration_seconds_count{{zone=\"{zone}\",upstream=\"{upstream}\"}} "
    );
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{series} in {metrics}"))
}

#[test]
fn each_name_reaches_the_upstreams_of_its_zone_only() {
    let s = setup(FORWARD);
    // Each upstream serves only its zone: a name sent to the other would
    // not get these answers; and each exchange is counted under its zone.
    let root_before = exchanges(&s.lab, ".", UNBOUND_ADDR);
    assert_eq!(
        short(&s.lab, "redis.default.svc.cluster.local"),
        "198.18.7.1"
    );
    assert_eq!(exchanges(&s.lab, "cluster.local", CLUSTER_DNS), 1);
    assert_eq!(exchanges(&s.lab, ".", UNBOUND_ADDR), root_before);
    assert_eq!(short(&s.lab, "short.test"), "198.18.5.2");
    assert_eq!(exchanges(&s.lab, ".", UNBOUND_ADDR), root_before + 1);
    assert_eq!(exchanges(&s.lab, "cluster.local", CLUSTER_DNS), 1);
    // `meshdns lookup` names the zone and its upstream.
    let state_dir = s.lab.state_dir.to_string_lossy().into_owned();
    let pin_dir = s.lab.pin_dir.to_string_lossy().into_owned();
    let lookup = s
        .lab
        .meshdns(&[
            "lookup",
            "redis.default.svc.cluster.local",
            "--pin-dir",
            &pin_dir,
            "--state-dir",
            &state_dir,
        ])
        .unwrap();
    let lookup = String::from_utf8_lossy(&lookup.stdout);
    assert!(
        lookup.contains(&format!(
            "forwards it to zone cluster.local's upstreams, {CLUSTER_DNS}"
        )),
        "{lookup}"
    );
    // The zone's max_ttl bounds what is sent (the record says 300).
    let answer = s
        .lab
        .dig(&["later.default.svc.cluster.local", "A", "+noall", "+answer"]);
    let ttl: u32 = answer.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(ttl <= 20, "{answer}");
}

#[test]
fn a_dead_zones_names_are_served_stale_and_the_other_zone_goes_on() {
    let mut s = setup(FORWARD);
    // RFC 8767: cached, then expired (TTL 1).
    assert_eq!(
        short(&s.lab, "brief.default.svc.cluster.local"),
        "198.18.7.2"
    );
    s.cluster.kill();
    sleep(Duration::from_millis(1500));
    assert_eq!(
        short(&s.lab, "brief.default.svc.cluster.local"),
        "198.18.7.2",
        "stale while its zone's upstream is dead"
    );
    // A name of the dead zone never asked before: SERVFAIL, not the other
    // zone's upstream.
    let root_before = exchanges(&s.lab, ".", UNBOUND_ADDR);
    assert_eq!(
        status(&s.lab, "later.default.svc.cluster.local"),
        "SERVFAIL"
    );
    assert_eq!(exchanges(&s.lab, ".", UNBOUND_ADDR), root_before);
    // The other zone: unaffected.
    assert_eq!(short(&s.lab, "www.test"), "198.18.5.1");
}

#[test]
fn a_zone_that_forwards_to_meshdns_itself_is_rejected_with_its_line() {
    let mut s = setup(FORWARD);
    assert_eq!(
        short(&s.lab, "redis.default.svc.cluster.local"),
        "198.18.7.1"
    );
    let listen = format!("{SERVER_V4}:53");
    let broken =
        format!("{LAB_SERVICES}forward:\n  - zone: cluster.local\n    upstreams: [\"{listen}\"]\n");
    let path = s.lab.write_services(&broken);
    let line = broken
        .lines()
        .position(|l| l.contains("zone: cluster.local"))
        .unwrap()
        + 1;
    let logged = s
        .agent
        .wait_for_log("is meshdns itself", Duration::from_secs(5))
        .unwrap()
        .to_string();
    assert!(
        logged.contains(&format!("{}:{line}", path.display())),
        "{logged}"
    );
    // The old forwarding keeps serving.
    assert_eq!(
        short(&s.lab, "later.default.svc.cluster.local"),
        "198.18.7.3"
    );
}

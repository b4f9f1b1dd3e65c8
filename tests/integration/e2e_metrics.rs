//! `/metrics`, `/healthz` and `/readyz` of a running agent, scraped while the
//! test sends known queries: the counters move by exactly what was sent.

use std::{collections::BTreeMap, net::UdpSocket, sync::LazyLock, time::Duration};

use meshdns_tests::{
    fixtures::LAB_SERVICES,
    lab::{Lab, SERVER_V4},
    unbound::{UNBOUND_ADDR, Unbound},
};

/// The lab's services; only loopback and the lab's client address may ask,
/// so a query over the veth from another address of the client is REFUSED
/// (by the resolver: the kernel program passes it).
static SERVICES: LazyLock<String> =
    LazyLock::new(|| format!("allow_from: [127.0.0.0/8, 198.18.0.2/32]\n{LAB_SERVICES}"));

/// The client's other address, outside `allow_from`.
const OUTSIDER: &str = "198.18.0.3";

const LATENCY: &str = "meshdns_upstream_request_duration_seconds";

/// `GET path` on the agent's metrics listener (loopback of the server
/// namespace); returns the status line and the body.
fn get(lab: &Lab, path: &str) -> (String, String) {
    lab.server.http_get("127.0.0.1:9153", path).unwrap()
}

/// The samples of a text exposition, `name{labels}` to value, checked as
/// they are read: every sample belongs to a family declared before it, and
/// no family is declared twice.
struct Samples(BTreeMap<String, f64>);

fn scrape(lab: &Lab) -> Samples {
    let (status, body) = get(lab, "/metrics");
    assert!(status.contains("200"), "{status}");
    let mut families: BTreeMap<&str, &str> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    for line in body.lines().filter(|l| !l.is_empty()) {
        if let Some(declared) = line.strip_prefix("# TYPE ") {
            let (name, kind) = declared.split_once(' ').expect("TYPE name kind");
            assert!(
                families.insert(name, kind).is_none(),
                "{name} declared twice"
            );
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let name = series.split('{').next().unwrap_or_default();
        // OpenMetrics: a counter's samples carry `_total`, a histogram's
        // `_bucket`, `_sum` and `_count`, after the family's name.
        let family = [
            ("_total", "counter"),
            ("_bucket", "histogram"),
            ("_sum", "histogram"),
            ("_count", "histogram"),
        ]
        .iter()
        .filter_map(|(suffix, kind)| Some((name.strip_suffix(suffix)?, *kind)))
        .find(|(base, kind)| families.get(base) == Some(kind))
        .map_or(name, |(base, _)| base);
        assert!(families.contains_key(family), "{line}: no TYPE before it");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line}"));
        samples.insert(series.to_string(), value);
    }
    Samples(samples)
}

impl Samples {
    /// An integer sample (a counter or gauge); it must be there.
    fn count(&self, series: &str) -> u64 {
        let value = *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("no sample {series} in {:?}", self.0));
        assert_eq!(value.fract(), 0.0, "{series} {value}");
        value as u64
    }

    /// A series that appears once non-zero: absent is 0.
    fn count_or_zero(&self, series: &str) -> u64 {
        self.0.get(series).map_or(0, |_| self.count(series))
    }

    /// The sum of every series of `name`.
    fn total(&self, name: &str) -> u64 {
        self.0
            .keys()
            .filter(|series| series.split('{').next() == Some(name))
            .map(|series| self.count(series))
            .sum()
    }

    /// `upstream`'s latency buckets in `le` order, which must be
    /// cumulative with `+Inf` equal to `_count`; returns `_count` and `_sum`.
    fn histogram(&self, upstream: &str) -> (u64, f64) {
        // Labels in any order: `le` and `upstream`.
        let prefix = format!("{LATENCY}_bucket{{");
        let of_upstream = format!("upstream=\"{upstream}\"");
        let mut buckets: Vec<(f64, u64)> = self
            .0
            .keys()
            .filter(|series| series.starts_with(&prefix) && series.contains(&of_upstream))
            .filter_map(|series| {
                let le = series.split("le=\"").nth(1)?.split('"').next()?;
                Some((le.parse().unwrap(), self.count(series)))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        assert_eq!(buckets.len(), 14, "13 bounds and +Inf: {buckets:?}");
        assert!(
            buckets.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "not cumulative: {buckets:?}"
        );
        let count = self.count(&format!(
            "{LATENCY}_count{{zone=\".\",upstream=\"{upstream}\"}}"
        ));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, count)));
        let sum = self.0[&format!("{LATENCY}_sum{{zone=\".\",upstream=\"{upstream}\"}}")];
        (count, sum)
    }
}

fn delta(before: &Samples, after: &Samples, series: &str) -> u64 {
    after.count_or_zero(series) - before.count_or_zero(series)
}

fn responses(transport: &str, qtype: &str, rcode: &str) -> String {
    format!(
        "meshdns_resolver_responses_total{{transport=\"{transport}\",type=\"{qtype}\",rcode=\"{rcode}\"}}"
    )
}

/// Sends raw datagrams to the resolver on loopback from one socket, in
/// order, and returns the reply to the last.
fn udp_exchange(lab: &Lab, datagrams: &'static [&'static [u8]]) -> Vec<u8> {
    lab.server
        .run(move || {
            let socket = UdpSocket::bind("127.0.0.1:0")?;
            socket.set_read_timeout(Some(Duration::from_secs(3)))?;
            for datagram in datagrams {
                socket.send_to(datagram, "127.0.0.1:53")?;
            }
            let mut buf = [0u8; 512];
            let len = socket.recv(&mut buf)?;
            Ok(buf[..len].to_vec())
        })
        .unwrap()
}

#[test]
fn counters_move_by_exactly_what_was_sent_and_the_probes_answer() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    lab.client
        .add_address(&lab.client_if, &format!("{OUTSIDER}/24"))
        .unwrap();
    let mut unbound = Unbound::start(&lab.server).unwrap();
    let config = lab.write_services(&SERVICES);
    // On the veth too, so that what XDP passes reaches the resolver (and,
    // from the outsider, is refused).
    let listen_veth = format!("{SERVER_V4}:53");
    let _agent = lab
        .start_agent(
            &config,
            &[
                "--listen",
                "127.0.0.1:53",
                "--listen",
                &listen_veth,
                "--upstream",
                UNBOUND_ADDR,
            ],
        )
        .unwrap();

    assert!(get(&lab, "/healthz").0.contains("200"));
    // Ready once attached, loaded and listening: poll as a kubelet would.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = get(&lab, "/readyz");
        if status.contains("200") {
            break;
        }
        assert!(
            status.contains("503") && body.contains("not ready"),
            "{status} {body}"
        );
        assert!(std::time::Instant::now() < deadline, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(get(&lab, "/nope").0.contains("404"));

    let before = scrape(&lab);
    assert_eq!(
        // redis, web and the apex, which every zone has (RFC 8020).
        before.count("meshdns_table_names"),
        3,
        "redis and web: {:?}",
        before.0
    );
    assert_eq!(before.count("meshdns_ready"), 1);
    // The fast path: these never reach the resolver.
    for _ in 0..3 {
        assert!(
            lab.dig(&["redis.mesh", "A", "+short"])
                .contains("240.0.0.100")
        );
    }
    for _ in 0..2 {
        lab.dig(&["web.mesh", "AAAA", "+short"]);
    }
    // The resolver, on loopback. Mesh names: over TCP, and types the fast
    // path does not answer (NODATA), and EDNS version 1 (BADVERS).
    assert!(
        lab.server
            .dig("127.0.0.1", &["+tcp", "+short", "redis.mesh"])
            .contains("240.0.0.100")
    );
    assert!(
        lab.server
            .dig("127.0.0.1", &["redis.mesh", "TXT"])
            .contains("status: NOERROR")
    );
    assert!(
        lab.server
            .dig("127.0.0.1", &["redis.mesh", "MX"])
            .contains("status: NOERROR")
    );
    let badvers = lab
        .server
        .dig("127.0.0.1", &["redis.mesh", "TXT", "+edns=1", "+noednsneg"]);
    assert!(badvers.contains("status: BADVERS"), "{badvers}");
    // Forwarded to Unbound: one exchange, then the cache; and an NXDOMAIN
    // over TCP, another exchange.
    for _ in 0..2 {
        assert!(
            lab.server
                .dig("127.0.0.1", &["www.test", "+short"])
                .contains("198.18.5.1")
        );
    }
    let nxdomain = lab.server.dig("127.0.0.1", &["+tcp", "nope.test", "AAAA"]);
    assert!(nxdomain.contains("status: NXDOMAIN"), "{nxdomain}");
    // Over the veth, from outside allow_from: XDP passes it, REFUSED.
    let refused = lab.dig(&["-b", OUTSIDER, "www.test", "TXT"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    // Raw messages from one socket, handled in order: a response and a
    // runt get no reply (received, not answered); a header with a broken
    // question gets FORMERR.
    let formerr = udp_exchange(
        &lab,
        &[
            &[0x12, 0x34, 0x81, 0x80, 0, 0, 0, 0, 0, 0, 0, 0],
            &[0x12, 0x34, 0x01],
            &[0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff],
        ],
    );
    assert_eq!(&formerr[..2], [0xab, 0xcd]);
    assert_eq!(formerr[3] & 0x0f, 1, "FORMERR: {formerr:?}");
    let after = scrape(&lab);

    let moved = |series: &str| delta(&before, &after, series);
    assert_eq!(
        moved("meshdns_xdp_packets_total{outcome=\"answered_a\"}"),
        3
    );
    assert_eq!(
        moved("meshdns_xdp_packets_total{outcome=\"answered_nodata\"}"),
        2
    );
    assert_eq!(
        moved("meshdns_xdp_packets_total{outcome=\"answered_aaaa\"}"),
        0
    );
    // TXT, MX, BADVERS, www.test twice, REFUSED, and the three raw ones.
    assert_eq!(
        moved("meshdns_resolver_queries_total{transport=\"udp\"}"),
        9
    );
    assert_eq!(
        moved("meshdns_resolver_queries_total{transport=\"tcp\"}"),
        2
    );
    for (transport, qtype, rcode, count) in [
        ("tcp", "A", "NOERROR", 1),
        ("udp", "TXT", "NOERROR", 1),
        ("udp", "MX", "NOERROR", 1),
        ("udp", "TXT", "BADVERS", 1),
        ("udp", "A", "NOERROR", 2),
        ("tcp", "AAAA", "NXDOMAIN", 1),
        ("udp", "TXT", "REFUSED", 1),
        ("udp", "other", "FORMERR", 1),
    ] {
        assert_eq!(
            moved(&responses(transport, qtype, rcode)),
            count,
            "{transport} {qtype} {rcode}"
        );
    }
    // Each reply once, and nothing else: no reply for the two that get none.
    assert_eq!(
        after.total("meshdns_resolver_responses_total")
            - before.total("meshdns_resolver_responses_total"),
        9
    );
    assert_eq!(moved("meshdns_resolver_mesh_answers_total"), 3);
    assert_eq!(moved("meshdns_resolver_refused_total"), 1);
    assert_eq!(moved("meshdns_cache_hits_total"), 1);
    assert_eq!(moved("meshdns_cache_misses_total"), 2);
    let upstream_up = format!("meshdns_upstream_up{{zone=\".\",upstream=\"{UNBOUND_ADDR}\"}}");
    assert_eq!(after.count(&upstream_up), 1);
    let (count_before, sum_before) = before.histogram(UNBOUND_ADDR);
    let (count_after, sum_after) = after.histogram(UNBOUND_ADDR);
    assert_eq!(count_after - count_before, 2, "www.test and nope.test");
    assert!(sum_after > sum_before, "{sum_before} {sum_after}");
    let failures =
        format!("meshdns_upstream_failures_total{{zone=\".\",upstream=\"{UNBOUND_ADDR}\"}}");
    assert_eq!(moved(&failures), 0);

    // The upstream dies: every attempt fails (three, fast: the port is
    // closed), and the client gets SERVFAIL.
    unbound.kill();
    let before = after;
    let servfail = lab.server.dig("127.0.0.1", &["never.test", "A"]);
    assert!(servfail.contains("status: SERVFAIL"), "{servfail}");
    let after = scrape(&lab);
    let moved = |series: &str| delta(&before, &after, series);
    assert_eq!(moved(&responses("udp", "A", "SERVFAIL")), 1);
    assert_eq!(moved("meshdns_resolver_servfail_total"), 1);
    assert_eq!(
        after.histogram(UNBOUND_ADDR).0 - before.histogram(UNBOUND_ADDR).0,
        3
    );
    assert_eq!(moved(&failures), 3);
    assert_eq!(after.count(&upstream_up), 0, "skipped after 3 failures");

    // A reload and a rejected file are counted.
    lab.write_services(&format!(
        "{}  - name: late\n    vips: [240.0.0.103]\n",
        SERVICES.as_str()
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while scrape(&lab).count("meshdns_config_reloads_total") < 1 {
        assert!(std::time::Instant::now() < deadline, "reload not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(scrape(&lab).count("meshdns_table_names"), 4);
    lab.write_services("services: [");
    while scrape(&lab).count("meshdns_config_reload_errors_total") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "reload error not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

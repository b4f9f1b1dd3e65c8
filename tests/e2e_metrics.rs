//! `/metrics`, `/healthz` and `/readyz` of a running agent, scraped while the
//! test sends known queries: the counters move by exactly what was sent.

use std::{
    collections::BTreeMap,
    fs,
    io::{Read as _, Write as _},
    net::TcpStream,
    time::Duration,
};

use meshdns_tests::lab::{Lab, SERVER_V4};

const SERVICES: &str = "\
zone: mesh
services:
  - name: redis
    vips: [240.0.0.100, \"fd00:fd00::100\"]
  - name: web
    vips: [240.0.0.101]
";

/// `GET path` on the agent's metrics listener (loopback of the server
/// namespace); returns the status line and the body.
fn get(lab: &Lab, path: &'static str) -> (String, String) {
    lab.server
        .run(move || {
            let mut stream = TcpStream::connect("127.0.0.1:9153")?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            write!(stream, "GET {path} HTTP/1.1\r\nHost: meshdns\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            Ok((
                head.lines().next().unwrap_or_default().to_string(),
                body.to_string(),
            ))
        })
        .unwrap()
}

/// The samples of a text exposition: `name{labels}` to value.
fn scrape(lab: &Lab) -> BTreeMap<String, u64> {
    let (status, body) = get(lab, "/metrics");
    assert!(status.contains("200"), "{status}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn delta(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>, name: &str) -> u64 {
    let value = |m: &BTreeMap<String, u64>| {
        m.get(name)
            .copied()
            .unwrap_or_else(|| panic!("no sample {name}"))
    };
    value(after) - value(before)
}

#[test]
fn counters_move_by_exactly_what_was_sent_and_the_probes_answer() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = std::env::temp_dir().join(format!("{}-metrics.yaml", lab.server.name));
    fs::write(&config, SERVICES).unwrap();
    let _agent = lab.start_agent(&config, &[]).unwrap();

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
        before["meshdns_table_names"], 2,
        "redis and web: {before:?}"
    );
    assert_eq!(before["meshdns_ready"], 1);
    let server = format!("@{SERVER_V4}");
    for _ in 0..3 {
        assert!(
            lab.dig(&[&server, "redis.mesh", "A", "+short", "+tries=1"])
                .unwrap()
                .contains("240.0.0.100")
        );
    }
    for _ in 0..2 {
        lab.dig(&[&server, "web.mesh", "AAAA", "+short", "+tries=1"])
            .unwrap();
    }
    // One mesh name through the userspace resolver (TCP, on loopback here).
    let tcp = lab
        .server
        .command("dig")
        .args(["@127.0.0.1", "+tcp", "+short", "+tries=1", "redis.mesh"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&tcp.stdout).contains("240.0.0.100"));
    let after = scrape(&lab);

    assert_eq!(
        delta(
            &before,
            &after,
            "meshdns_xdp_packets_total{outcome=\"answered_a\"}"
        ),
        3
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "meshdns_xdp_packets_total{outcome=\"answered_nodata\"}"
        ),
        2
    );
    assert_eq!(
        delta(
            &before,
            &after,
            "meshdns_xdp_packets_total{outcome=\"answered_aaaa\"}"
        ),
        0
    );
    assert_eq!(delta(&before, &after, "meshdns_resolver_queries_total"), 1);
    assert_eq!(
        delta(&before, &after, "meshdns_resolver_mesh_answers_total"),
        1
    );
    assert_eq!(delta(&before, &after, "meshdns_resolver_refused_total"), 0);
    assert!(
        after.contains_key("meshdns_upstream_up{upstream=\"127.0.0.1:54\"}"),
        "{after:?}"
    );

    // A reload and a rejected file are counted.
    fs::write(
        &config,
        format!("{SERVICES}  - name: late\n    vips: [240.0.0.102]\n"),
    )
    .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while scrape(&lab)["meshdns_config_reloads_total"] < 1 {
        assert!(std::time::Instant::now() < deadline, "reload not counted");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(scrape(&lab)["meshdns_table_names"], 3);
    fs::write(&config, "services: [").unwrap();
    while scrape(&lab)["meshdns_config_reload_errors_total"] < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "reload error not counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fs::remove_file(config).ok();
}

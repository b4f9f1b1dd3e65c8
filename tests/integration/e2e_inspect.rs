//! `meshdns status`, `lookup` and `dump` against an agent attached in a
//! lab, and after it has stopped: what they say must be what the kernel
//! did (dig's answers, the attached program's counters, `ip link`).

use meshdns_common::Counter;
use meshdns_tests::{
    fixtures::LAB_SERVICES,
    lab::{Lab, SERVER_V4},
};
use serde_json::Value;

/// `meshdns ARGS --pin-dir <lab's> --state-dir <lab's> --json` in the
/// server namespace; its JSON, or its error message.
pub(crate) fn meshdns_json(lab: &Lab, args: &[&str]) -> Result<Value, String> {
    let pin_dir = lab.pin_dir.to_string_lossy().into_owned();
    let state_dir = lab.state_dir.to_string_lossy().into_owned();
    let mut args = args.to_vec();
    args.extend(["--pin-dir", &pin_dir, "--state-dir", &state_dir, "--json"]);
    let output = lab.meshdns(&args).unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(serde_json::from_slice(&output.stdout).expect("meshdns printed JSON"))
}

/// A reply's records as dig prints them: answers, then authority.
pub(crate) fn records(reply: &Value) -> Vec<String> {
    ["answers", "authority"]
        .iter()
        .flat_map(|section| reply[section].as_array().unwrap().iter())
        .map(|rr| {
            format!(
                "{} {} IN {} {}",
                rr["name"].as_str().unwrap(),
                rr["ttl"],
                rr["type"].as_str().unwrap(),
                rr["data"].as_str().unwrap()
            )
        })
        .collect()
}

/// Counters that other traffic on the veth moves (neighbour discovery,
/// multicast listener reports): never a DNS query's outcome.
fn is_background(counter: Counter) -> bool {
    matches!(
        counter,
        Counter::PassNotIp | Counter::PassNotUdp | Counter::PassNotUnicast
    )
}

#[test]
fn lookup_says_what_the_fast_path_really_did_and_what_the_agent_does() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(LAB_SERVICES);
    // The resolver on the veth too, so that dig reaches it with what the
    // fast path passes.
    let listen = format!("{SERVER_V4}:53");
    let _agent = lab.start_agent(&config, &["--listen", &listen]).unwrap();

    // (name, type, the counter that must move, what dig must see)
    let cases = [
        ("redis.mesh", "A", Counter::AnsweredA, "NOERROR"),
        ("web.mesh", "AAAA", Counter::AnsweredNodata, "NOERROR"),
        ("redis.mesh", "TXT", Counter::PassUnsupportedType, "NOERROR"),
        ("nope.mesh", "A", Counter::PassUnknownName, "SERVFAIL"),
    ];
    for (name, qtype, expected, status) in cases {
        let before = lab.fast_path_counters().unwrap();
        let (header, dug) = lab.dig_records(SERVER_V4, name, qtype);
        let moved = lab.fast_path_counters().unwrap().since(&before);
        let outcomes: Vec<Counter> = Counter::ALL
            .into_iter()
            .filter(|c| !is_background(*c) && moved.get(*c) != 0)
            .collect();
        assert_eq!(
            outcomes,
            [expected],
            "{name} {qtype}: counters moved: {moved}"
        );
        assert_eq!(moved.get(expected), 1, "{name} {qtype}");
        assert!(
            header.contains(&format!("status: {status}")),
            "{name} {qtype}: {header}"
        );

        let lookup = meshdns_json(&lab, &["lookup", name, qtype]).unwrap();
        let verdict = &lookup["fast_path"];
        assert_eq!(
            verdict["outcome"],
            expected.name(),
            "{name} {qtype}: {lookup:#}"
        );
        if expected.is_answer() {
            assert_eq!(verdict["action"], "answered");
            let reply = &verdict["reply"];
            assert_eq!(reply["rcode"], status);
            assert_eq!(records(reply), dug, "{name} {qtype}");
            assert!(lookup["agent"].is_null());
        } else {
            assert_eq!(verdict["action"], "passed");
            let agent = &lookup["agent"];
            match status {
                // The agent answers from the table: the same reply dig got.
                "NOERROR" => {
                    assert_eq!(agent["action"], "answers", "{lookup:#}");
                    assert_eq!(agent["reply"]["rcode"], status);
                    assert_eq!(records(&agent["reply"]), dug, "{name} {qtype}");
                }
                // Forwarded, to the lab's upstream, which is a closed port.
                _ => {
                    assert_eq!(agent["action"], "forwards", "{lookup:#}");
                    assert!(agent["reply"].is_null());
                }
            }
        }
    }

    // Running the query through the program moved nothing that serves.
    let before = lab.fast_path_counters().unwrap();
    meshdns_json(&lab, &["lookup", "redis.mesh", "A"]).unwrap();
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.answered(), 0, "{moved}");
}

#[test]
fn status_and_dump_read_the_pins_with_the_agent_running_and_stopped() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(LAB_SERVICES);
    let agent = lab.start_agent(&config, &[]).unwrap();
    lab.dig_records(SERVER_V4, "redis.mesh", "A");

    let attached = {
        let iface = lab.server_if.clone();
        lab.server
            .run(move || {
                let json =
                    meshdns_tests::lab::sh("ip", &["-j", "-d", "link", "show", "dev", &iface])?;
                let links: Value = serde_json::from_str(&json)?;
                Ok(links[0]["xdp"]["prog"]["id"]
                    .as_u64()
                    .expect("a program attached"))
            })
            .unwrap()
    };
    let status = meshdns_json(&lab, &["status"]).unwrap();
    let interfaces = status["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), 1, "{status:#}");
    let iface = &interfaces[0];
    assert_eq!(iface["name"], lab.server_if.as_str());
    assert_eq!(iface["mode"], "driver");
    assert_eq!(iface["program_id"], attached);
    assert_eq!(iface["serving"], true, "{status:#}");
    assert_eq!(status["agent"]["pid"], agent.pid(), "{status:#}");
    assert_eq!(status["agent"]["command"], "meshdns");
    assert_eq!(status["zones"][0]["name"], "mesh.");
    // redis, web and the apex, which every zone has (RFC 8020).
    assert_eq!(status["names"], 3);
    assert_eq!(status["counters"]["answered_a"], 1, "{status:#}");

    let dump = meshdns_json(&lab, &["dump"]).unwrap();
    let names: Vec<(String, Value, Value)> = dump["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_string(),
                n["a"].clone(),
                n["aaaa"].clone(),
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            // The apex exists, without addresses (RFC 8020).
            (
                "mesh.".to_string(),
                serde_json::json!([]),
                serde_json::json!([])
            ),
            (
                "redis.mesh.".to_string(),
                serde_json::json!(["240.0.0.100"]),
                serde_json::json!(["fd00:fd00::100"])
            ),
            (
                "web.mesh.".to_string(),
                serde_json::json!(["240.0.0.101", "240.0.0.102"]),
                serde_json::json!([])
            ),
        ]
    );

    // Stopped without --detach-on-exit: the program serves on, unowned.
    assert!(agent.stop().unwrap().success());
    let status = meshdns_json(&lab, &["status"]).unwrap();
    assert!(status["agent"].is_null(), "{status:#}");
    assert_eq!(status["interfaces"][0]["serving"], true, "{status:#}");
    let lookup = meshdns_json(&lab, &["lookup", "web.mesh"]).unwrap();
    assert_eq!(lookup["fast_path"]["outcome"], "answered_a");

    // The text forms say the same for people.
    let pin_dir = lab.pin_dir.to_string_lossy().into_owned();
    let text = lab.meshdns(&["status", "--pin-dir", &pin_dir]).unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains(&format!("interface:  {}, XDP Driver mode", lab.server_if)),
        "{text}"
    );
    assert!(text.contains("agent:      not running"), "{text}");

    // Once detached, there is nothing to read, and it says so.
    let detach = lab
        .meshdns(&["detach", "--iface", &lab.server_if, "--pin-dir", &pin_dir])
        .unwrap();
    assert!(detach.status.success());
    let error = meshdns_json(&lab, &["status"]).unwrap_err();
    assert!(error.contains("nothing is pinned"), "{error}");
}

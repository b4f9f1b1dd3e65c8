//! The agent as operators live with it, under a steady query load from a
//! client namespace: hot reloads, broken files, and `kill -9` restarts
//! must not cost one fast-path answer.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::Path,
    thread::sleep,
    time::{Duration, Instant},
};

use meshdns_common::Counter;
use meshdns_tests::{
    lab::{Lab, SERVER_V4},
    load::{Load, Outcome, Report},
};

const BEFORE: &str = "\
zone: mesh
services:
  - name: steady
    vips: [240.0.0.1]
  - name: moving
    vips: [240.0.0.2]
  - name: auto
";

/// `moving` gets a new VIP; `late` appears.
const AFTER: &str = "\
zone: mesh
services:
  - name: steady
    vips: [240.0.0.1]
  - name: moving
    vips: [240.0.0.22]
  - name: auto
  - name: late
    vips: [240.0.0.3]
";

fn server() -> SocketAddr {
    SocketAddr::new(SERVER_V4.parse().unwrap(), 53)
}

fn answer(addr: &str) -> Outcome {
    Outcome::Answer(vec![addr.parse().unwrap()])
}

/// The name no file here changes got its one answer every time.
fn steady_never_failed(report: &Report) {
    report.assert_seen(
        "steady.mesh",
        &[answer("240.0.0.1")],
        "an unchanged name never fails",
    );
}

/// Replaces the file as tools do: write a new one and rename it over.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    fs::write(&tmp, text).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// The one A answer `auto.mesh` gives now, straight from the fast path.
fn auto_vip(lab: &Lab) -> Ipv4Addr {
    let out = lab.dig(&["auto.mesh", "A", "+short", "+time=2"]);
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("no VIP for auto.mesh: {out:?}"))
}

#[test]
fn hot_reload_under_load_never_drops_an_answer() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(BEFORE);
    let mut agent = lab.start_agent(&config, &[]).unwrap();
    let auto = Outcome::Answer(vec![auto_vip(&lab)]);

    let load = Load::start(
        &lab.client,
        server(),
        &["steady.mesh", "moving.mesh", "auto.mesh"],
    );
    sleep(Duration::from_millis(300));
    let written = Instant::now();
    write_atomically(&config, AFTER);
    agent
        .wait_for_log("table reloaded", Duration::from_secs(5))
        .unwrap();
    sleep(Duration::from_millis(300));
    // An in-place rewrite (truncate, write) back to the old file works too.
    lab.write_services(BEFORE);
    sleep(Duration::from_millis(300));
    let report = load.stop().unwrap();

    steady_never_failed(&report);
    report.assert_seen(
        "auto.mesh",
        std::slice::from_ref(&auto),
        "the allocated VIP never moves",
    );
    report.assert_seen(
        "moving.mesh",
        &[answer("240.0.0.2"), answer("240.0.0.22")],
        "every answer is the old or the new VIP, never a failure",
    );
    let applied = report
        .first_seen("moving.mesh", &answer("240.0.0.22"))
        .unwrap()
        .duration_since(written);
    println!(
        "{} queries; the change answered {applied:?} after the write",
        report.sent
    );
    // The target is 100 ms; this bound only catches a reload that did not
    // come from the file watch at all.
    assert!(
        applied < Duration::from_secs(1),
        "change applied after {applied:?}"
    );

    // The VIP allocated to `auto` is kept across the reload.
    assert_eq!(Outcome::Answer(vec![auto_vip(&lab)]), auto);
}

#[test]
fn a_broken_file_is_rejected_with_its_line_and_the_old_table_keeps_serving() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(BEFORE);
    let mut agent = lab.start_agent(&config, &[]).unwrap();

    let load = Load::start(&lab.client, server(), &["steady.mesh", "moving.mesh"]);
    sleep(Duration::from_millis(200));
    write_atomically(
        &config,
        "zone: mesh\nservices:\n  - name: moving\n    vips: [240.0.0.300]\n",
    );
    let line = agent
        .wait_for_log("keeps serving", Duration::from_secs(5))
        .unwrap()
        .to_string();
    assert!(line.contains(&format!("{}:4:", config.display())), "{line}");
    sleep(Duration::from_millis(300));
    let report = load.stop().unwrap();
    steady_never_failed(&report);
    report.assert_seen(
        "moving.mesh",
        &[answer("240.0.0.2")],
        "the broken file changes nothing",
    );

    // SIGHUP after fixing the file applies it.
    lab.write_services(AFTER);
    agent.signal(libc::SIGHUP);
    agent
        .wait_for_log("table reloaded", Duration::from_secs(5))
        .unwrap();
}

#[test]
fn kill_9_and_restart_under_load_lose_no_fast_path_answer() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(BEFORE);
    let agent = lab.start_agent(&config, &[]).unwrap();
    let auto = Outcome::Answer(vec![auto_vip(&lab)]);

    let load = Load::start(
        &lab.client,
        server(),
        &["steady.mesh", "moving.mesh", "auto.mesh"],
    );
    sleep(Duration::from_millis(200));
    agent.kill().unwrap();
    // No agent at all for a while: the pinned program keeps answering.
    sleep(Duration::from_millis(300));
    let mut agent = lab.start_agent(&config, &[]).unwrap();
    agent
        .wait_for_log("took over the pinned link", Duration::ZERO)
        .unwrap();
    sleep(Duration::from_millis(300));
    // And once more, gracefully this time, with a changed file.
    assert!(agent.stop().unwrap().success());
    write_atomically(&config, AFTER);
    let _agent = lab.start_agent(&config, &[]).unwrap();
    sleep(Duration::from_millis(300));
    let report = load.stop().unwrap();

    steady_never_failed(&report);
    report.assert_seen("auto.mesh", &[auto], "the allocated VIP never moves");
    report.assert_seen(
        "moving.mesh",
        &[answer("240.0.0.2"), answer("240.0.0.22")],
        "every answer is the old or the new VIP, never a failure",
    );
    println!("{} queries across two restarts, none failed", report.sent);
}

#[test]
fn a_corrupt_state_file_is_reported_and_rebuilt() {
    let lab = Lab::new().unwrap();
    let config = lab.write_services(BEFORE);
    fs::create_dir_all(&lab.state_dir).unwrap();
    fs::write(lab.state_dir.join("vips.json"), "{ this is not json").unwrap();
    let mut agent = lab.start_agent(&config, &["--detach-on-exit"]).unwrap();
    agent
        .wait_for_log("VIP state file is corrupt; rebuilding it", Duration::ZERO)
        .unwrap();
    let state = fs::read_to_string(lab.state_dir.join("vips.json")).unwrap();
    assert!(state.contains("\"auto\""), "state not rebuilt: {state}");
    assert!(agent.stop().unwrap().success());
}

#[test]
fn maps_of_another_layout_are_replaced_not_read() {
    let lab = Lab::new().unwrap();
    let config = lab.write_services(BEFORE);
    // What an agent of another layout would have left: its own maps folder.
    let stale = lab.pin_dir.join("maps-v0-00000000");
    fs::create_dir_all(&stale).unwrap();
    let mut agent = lab.start_agent(&config, &["--detach-on-exit"]).unwrap();
    agent
        .wait_for_log("removed maps of another layout", Duration::from_secs(5))
        .unwrap();
    assert!(!stale.exists());
    let ours: Vec<String> = fs::read_dir(&lab.pin_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let this_layout = format!("maps-v{}-", meshdns_common::LAYOUT_VERSION);
    assert!(ours.iter().any(|n| n.starts_with(&this_layout)), "{ours:?}");
    assert!(agent.stop().unwrap().success());
}

/// Each thread of `pid`: its name, effective and permitted capabilities.
fn thread_capabilities(pid: u32) -> Vec<(String, u64, u64)> {
    let field = |status: &str, name: &str| {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"));
        u64::from_str_radix(hex.trim(), 16).unwrap()
    };
    fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|task| {
            let task = task.unwrap().path();
            let status = fs::read_to_string(task.join("status")).unwrap();
            let name = fs::read_to_string(task.join("comm")).unwrap();
            (
                name.trim().to_string(),
                field(&status, "CapEff:"),
                field(&status, "CapPrm:"),
            )
        })
        .collect()
}

#[test]
fn once_attached_every_thread_keeps_only_cap_bpf_and_that_is_enough() {
    const CAP_BPF: u64 = 1 << 39;
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(BEFORE);
    let mut agent = lab.start_agent(&config, &["--detach-on-exit"]).unwrap();
    agent
        .wait_for_log("capabilities dropped", Duration::from_secs(5))
        .unwrap();

    let threads = thread_capabilities(agent.pid());
    // The main thread, the runtime's workers, a UDP thread per core.
    assert!(threads.len() >= 4, "{threads:?}");
    for (name, effective, permitted) in &threads {
        assert_eq!(
            *effective, CAP_BPF,
            "thread {name}: CapEff {effective:#x}: {threads:x?}"
        );
        assert_eq!(*permitted, CAP_BPF, "thread {name}: CapPrm {permitted:#x}");
    }

    // What the agent still does: update the table on a reload ...
    write_atomically(&config, AFTER);
    agent
        .wait_for_log("fast path table updated", Duration::from_secs(5))
        .unwrap();
    let (_, records) = lab.dig_records(SERVER_V4, "moving.mesh", "A");
    assert_eq!(records, ["moving.mesh. 60 IN A 240.0.0.22"]);
    // ... serve the program's counters on /metrics ...
    let (status, body) = lab.server.http_get("127.0.0.1:9153", "/metrics").unwrap();
    assert!(status.contains("200"), "{status}");
    assert!(
        body.contains("meshdns_xdp_packets_total{outcome=\"answered_a\"} 1"),
        "{body}"
    );
    // ... and detach on exit.
    assert!(agent.stop().unwrap().success());
    assert!(!lab.server_has_xdp().unwrap());
}

#[test]
fn readyz_is_not_ready_until_the_interface_exists_and_the_program_is_attached() {
    let lab = Lab::new().unwrap();
    let config = lab.write_services(BEFORE);
    // An interface that does not exist yet, as a CNI bridge before the
    // node's first pod.
    let late = format!("{}l", lab.server_if);
    let mut agent = lab
        .spawn_agent_on(&late, &config, &["--detach-on-exit"])
        .unwrap();
    agent
        .wait_for_log(
            "waiting for the interface to appear",
            Duration::from_secs(10),
        )
        .unwrap();
    let get = |path| lab.server.http_get("127.0.0.1:9153", path).unwrap();
    let (status, _) = get("/healthz");
    assert!(status.contains("200"), "alive while waiting: {status}");
    let (status, body) = get("/readyz");
    assert!(
        status.contains("503"),
        "ready before attaching: {status} {body}"
    );
    let (_, metrics) = get("/metrics");
    assert!(metrics.contains("\nmeshdns_ready 0\n"), "{metrics}");

    let peer = format!("{}p", lab.server_if);
    lab.server
        .ip(&["link", "add", &late, "type", "veth", "peer", "name", &peer])
        .unwrap();
    for iface in [&late, &peer] {
        lab.server.ip(&["link", "set", iface, "up"]).unwrap();
    }
    agent
        .wait_for_log("fast path attached", Duration::from_secs(10))
        .unwrap();
    // Ready once the resolver listens too, a moment after the attach.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _) = get("/readyz");
        if status.contains("200") {
            break;
        }
        assert!(Instant::now() < deadline, "never ready: {status}");
        sleep(Duration::from_millis(20));
    }
    let (_, metrics) = get("/metrics");
    assert!(metrics.contains("\nmeshdns_ready 1\n"), "{metrics}");

    // Detached behind the agent's back: not ready any more, and why.
    let pin_dir = lab.pin_dir.to_string_lossy().into_owned();
    let detach = lab
        .meshdns(&["detach", "--iface", &late, "--pin-dir", &pin_dir])
        .unwrap();
    assert!(detach.status.success());
    let (status, body) = get("/readyz");
    assert!(status.contains("503"), "ready without a program: {status}");
    assert!(
        body.contains(&format!("not ready: fast path on {late}: no pinned link")),
        "{body}"
    );
    assert!(agent.stop().unwrap().success());
}

#[test]
fn an_interface_that_goes_away_and_comes_back_gets_the_fast_path_again() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(BEFORE);
    let mut agent = lab.start_agent(&config, &["--detach-on-exit"]).unwrap();
    let ready = |lab: &Lab| lab.server.http_get("127.0.0.1:9153", "/readyz").unwrap();

    lab.disconnect().unwrap();
    agent
        .wait_for_log("the interface is gone", Duration::from_secs(10))
        .unwrap();
    let (status, body) = ready(&lab);
    assert!(status.contains("503"), "{status}");
    assert!(body.contains("the interface is gone"), "{body}");

    // Back, under the same name with a new ifindex.
    lab.connect().unwrap();
    lab.enable_peer_napi().unwrap();
    agent
        .wait_for_log("fast path attached again", Duration::from_secs(10))
        .unwrap();
    assert!(ready(&lab).0.contains("200"));
    let before = lab.fast_path_counters().unwrap();
    let (_, records) = lab.dig_records(SERVER_V4, "steady.mesh", "A");
    assert_eq!(records, ["steady.mesh. 60 IN A 240.0.0.1"]);
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredA), 1, "{moved}");
    assert!(agent.stop().unwrap().success());
}

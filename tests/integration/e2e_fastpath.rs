//! End to end: `meshdns run` attached to a veth in a namespace of the test's
//! own, queried by `dig` from a client namespace, with the fast path's
//! counters read from the kernel to prove who answered.

use std::{fs, sync::LazyLock, time::Duration};

use meshdns_common::Counter;
use meshdns_tests::{
    fixtures::LAB_SERVICES,
    frame::{Query, TYPE_A},
    lab::{Agent, Lab, PeerNapi, SERVER_V4, SERVER_V6, agent_args},
};

/// The lab's services, with a Kuma name and eight IPv6 VIPs (the
/// largest answer, grown at the frame's head on a veth).
static SERVICES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{LAB_SERVICES}  - name: echo-server_echo-example_svc_1010
    vips: [240.0.0.104]
  - name: eight
    vips: [\"fd00::1\", \"fd00::2\", \"fd00::3\", \"fd00::4\", \"fd00::5\", \"fd00::6\", \"fd00::7\", \"fd00::8\"]
"
    )
});

fn dig(lab: &Lab, name: &str, qtype: &str) -> (String, Vec<String>) {
    lab.dig_records(SERVER_V4, name, qtype)
}

#[test]
fn dig_gets_its_answer_from_the_xdp_fast_path() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(&SERVICES);
    let agent = lab.start_agent(&config, &[]).unwrap();

    // Nothing in the server namespace listens on port 53 of the veth's
    // addresses (the agent's resolver is on loopback here): an answer on
    // the veth can only come from the XDP program.
    let sockets = lab
        .server
        .command("ss")
        .args(["-Hlnu", "sport = :53"])
        .output()
        .unwrap();
    assert!(sockets.status.success());
    let sockets = String::from_utf8_lossy(&sockets.stdout).into_owned();
    for local in sockets.lines().filter_map(|l| l.split_whitespace().nth(3)) {
        assert!(
            local.starts_with("127.0.0.1:"),
            "something listens on {local}"
        );
    }

    let before = lab.fast_path_counters().unwrap();

    let (header, answers) = dig(&lab, "redis.mesh", "A");
    assert!(header.contains("status: NOERROR"), "{header}");
    assert!(header.contains("qr aa rd ra"), "{header}");
    assert_eq!(answers, ["redis.mesh. 60 IN A 240.0.0.100"]);

    let (_, answers) = dig(&lab, "redis.mesh", "AAAA");
    assert_eq!(answers, ["redis.mesh. 60 IN AAAA fd00:fd00::100"]);

    let (_, answers) = dig(&lab, "Web.Mesh", "A");
    assert_eq!(
        answers,
        [
            "Web.Mesh. 60 IN A 240.0.0.101",
            "Web.Mesh. 60 IN A 240.0.0.102"
        ]
    );

    let (_, answers) = dig(&lab, "echo-server.echo-example.svc.1010.mesh", "A");
    assert_eq!(
        answers,
        ["echo-server.echo-example.svc.1010.mesh. 60 IN A 240.0.0.104"]
    );

    // Over IPv6 too.
    let (_, answers) = lab.dig_records(SERVER_V6, "redis.mesh", "AAAA");
    assert_eq!(answers, ["redis.mesh. 60 IN AAAA fd00:fd00::100"]);
    let (_, answers) = lab.dig_records(SERVER_V6, "redis.mesh", "A");
    assert_eq!(answers, ["redis.mesh. 60 IN A 240.0.0.100"]);
    // The largest reply growth: eight AAAA records, 224 bytes more than the
    // query, which a veth frame only has room for at its head.
    let (_, answers) = lab.dig_records(SERVER_V6, "eight.mesh", "AAAA");
    let want: Vec<String> = (1..=8)
        .map(|i| format!("eight.mesh. 60 IN AAAA fd00::{i}"))
        .collect();
    assert_eq!(answers, want);
    // With EDNS but no cookie (the reply's OPT record as long as the
    // query's) and without EDNS, the frame grows by the whole 224 bytes,
    // more than a veth frame's headroom: at both ends.
    for edns in ["+nocookie", "+noedns"] {
        let before = lab.fast_path_counters().unwrap();
        let out = lab.client.dig(
            SERVER_V6,
            &["eight.mesh", "AAAA", edns, "+noall", "+answer"],
        );
        let moved = lab.fast_path_counters().unwrap().since(&before);
        assert_eq!(out.lines().count(), 8, "{edns}: {out} {moved}");
    }

    // RFC 2308 NODATA: web has no IPv6 address; the SOA comes with its
    // MINIMUM as TTL.
    let (header, records) = dig(&lab, "web.mesh", "AAAA");
    assert!(
        header.contains("status: NOERROR") && header.contains("ANSWER: 0"),
        "{header}"
    );
    assert_eq!(
        records,
        ["mesh. 30 IN SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 30"]
    );

    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredA), 4, "{moved}");
    assert_eq!(moved.get(Counter::AnsweredAaaa), 5, "{moved}");
    assert_eq!(moved.get(Counter::AnsweredNodata), 1, "{moved}");

    // An unknown name is passed to the kernel; with no resolver behind the
    // fast path yet, dig times out, and the counter says why.
    let before = lab.fast_path_counters().unwrap();
    let (header, answers) = dig(&lab, "unknown.mesh", "A");
    assert!(
        answers.is_empty() && !header.contains("NOERROR"),
        "{header} {answers:?}"
    );
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.answered(), 0, "{moved}");
    assert!(moved.get(Counter::PassUnknownName) >= 1, "{moved}");

    // SIGTERM ends the agent but leaves the fast path attached (pinned):
    // it keeps answering with no agent at all.
    let status = agent.stop().unwrap();
    assert!(status.success(), "meshdns exited with {status}");
    assert!(
        lab.server_has_xdp().unwrap(),
        "program gone after the agent exited"
    );
    let (_, answers) = dig(&lab, "redis.mesh", "A");
    assert_eq!(answers, ["redis.mesh. 60 IN A 240.0.0.100"]);

    // `meshdns detach` removes it and its pins.
    let pin_dir = lab.pin_dir.to_string_lossy().into_owned();
    let detach = lab
        .meshdns(&["detach", "--iface", &lab.server_if, "--pin-dir", &pin_dir])
        .unwrap();
    assert!(
        detach.status.success(),
        "{}",
        String::from_utf8_lossy(&detach.stderr)
    );
    assert!(
        !lab.server_has_xdp().unwrap(),
        "program still attached after detach"
    );
    assert!(!lab.pin_dir.exists(), "pins left behind");
}

#[test]
fn a_broken_config_is_rejected_with_its_line_before_attaching() {
    let lab = Lab::new().unwrap();
    let config =
        lab.write_services("zone: mesh\nservices:\n  - name: redis\n    vips: [240.0.0.300]\n");
    let output = lab
        .server
        .command(meshdns_tests::lab::Agent::binary().unwrap())
        .args(["run", "--iface", &lab.server_if, "--config"])
        .arg(&config)
        .arg("--pin-dir")
        .arg(&lab.pin_dir)
        .arg("--state-dir")
        .arg(&lab.state_dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains(&format!("{}:4:", config.display())),
        "error does not name the file and line 4: {stderr}"
    );
    assert!(!lab.server_has_xdp().unwrap());
}

#[test]
fn auto_mode_falls_back_to_generic_xdp_with_a_warning() {
    // Loopback has no driver-mode XDP.
    let lab = Lab::new().unwrap();
    let config = lab.write_services(&SERVICES);
    let pin_dir = lab.pin_dir.to_string_lossy().into_owned();
    let state_dir = lab.state_dir.to_string_lossy().into_owned();
    let args = [
        "--xdp-mode",
        "auto",
        "--pin-dir",
        &pin_dir,
        "--state-dir",
        &state_dir,
        "--detach-on-exit",
    ];
    let mut agent = Agent::start(&lab.server, "lo", &config, &args).unwrap();
    agent
        .wait_for_log("falling back to generic (SKB) mode", Duration::from_secs(5))
        .unwrap();
    let attached = agent
        .wait_for_log("fast path attached", Duration::ZERO)
        .unwrap();
    assert!(attached.contains("mode=\"generic\""), "{attached}");
    assert!(agent.stop().unwrap().success());
    assert!(!lab.pin_dir.exists(), "--detach-on-exit left pins behind");
}

#[test]
fn log_format_json_gives_one_json_object_per_line() {
    let dir = std::env::temp_dir().join(format!("meshdns-json-{}", std::process::id()));
    let output = std::process::Command::new(Agent::binary().unwrap())
        .args([
            "--log-format",
            "json",
            "detach",
            "--iface",
            "none0",
            "--pin-dir",
        ])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(!lines.is_empty(), "no log lines");
    for line in lines {
        let record: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(record["level"], "INFO", "{line}");
        assert!(record["fields"]["message"].is_string(), "{line}");
    }
}

#[test]
fn one_agent_answers_on_every_interface_it_is_given() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    // A second link between the namespaces, on 198.19.0.0/24.
    let second = format!("{}2", lab.server_if);
    let peer = format!("{}2", lab.client_if);
    lab.server
        .ip(&[
            "link",
            "add",
            &second,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &lab.client.name,
        ])
        .unwrap();
    lab.server
        .ip(&["addr", "add", "198.19.0.1/24", "dev", &second])
        .unwrap();
    lab.client
        .ip(&["addr", "add", "198.19.0.2/24", "dev", &peer])
        .unwrap();
    lab.server.ip(&["link", "set", &second, "up"]).unwrap();
    lab.client.ip(&["link", "set", &peer, "up"]).unwrap();
    let napi_peer = peer.clone();
    let _napi = lab
        .client
        .run(move || PeerNapi::attach(&napi_peer))
        .unwrap();
    let config = lab.write_services(&SERVICES);
    let mut agent = lab
        .start_agent(&config, &["--iface", &second, "--detach-on-exit"])
        .unwrap();
    agent
        .wait_for_log(&format!("iface=\"{second}\""), Duration::from_secs(10))
        .unwrap();

    // One program, a link per interface: both answer, one set of counters.
    let before = lab.fast_path_counters().unwrap();
    for server in [SERVER_V4, "198.19.0.1"] {
        let (header, answers) = lab.dig_records(server, "redis.mesh", "A");
        assert!(header.contains("status: NOERROR"), "{server}: {header}");
        assert_eq!(answers, ["redis.mesh. 60 IN A 240.0.0.100"], "{server}");
    }
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredA), 2, "{moved}");

    // Ready only while every interface runs the program.
    let ready = || lab.server.http_get("127.0.0.1:9153", "/readyz").unwrap();
    // The agent logs an attachment a moment before `/readyz` counts it.
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !ready().0.contains("200") {
        assert!(std::time::Instant::now() < deadline, "{:?}", ready());
        std::thread::sleep(Duration::from_millis(20));
    }
    let pin_dir = lab.pin_dir.to_string_lossy().into_owned();
    let detach = lab
        .meshdns(&["detach", "--iface", &second, "--pin-dir", &pin_dir])
        .unwrap();
    assert!(detach.status.success());
    let (status, body) = ready();
    assert!(status.contains("503"), "{status}");
    assert!(body.contains(&format!("fast path on {second}")), "{body}");

    assert!(agent.stop().unwrap().success());
    assert!(!lab.server_has_xdp().unwrap());
}

#[test]
fn a_taken_over_link_keeps_its_mode_and_the_agent_says_so() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(&SERVICES);
    let (pin_dir, state_dir) = (
        lab.pin_dir.to_string_lossy().into_owned(),
        lab.state_dir.to_string_lossy().into_owned(),
    );
    let args = |mode| agent_args(&pin_dir, &state_dir, &["--xdp-mode", mode]);
    let first = Agent::start(&lab.server, &lab.server_if, &config, &args("skb")).unwrap();
    assert!(first.stop().unwrap().success());
    let mut second = Agent::start(&lab.server, &lab.server_if, &config, &args("driver")).unwrap();
    second
        .wait_for_log("the pinned link keeps its mode", Duration::from_secs(5))
        .unwrap();
    let (_, answers) = dig(&lab, "redis.mesh", "A");
    assert_eq!(answers, ["redis.mesh. 60 IN A 240.0.0.100"]);
    let status = lab
        .meshdns(&["status", "--pin-dir", &pin_dir, "--json"])
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["interfaces"][0]["mode"], "generic", "{status:#}");
    assert!(second.stop().unwrap().success());
}

#[test]
fn a_new_zone_applies_whole_on_reload() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(&SERVICES);
    let mut agent = lab.start_agent(&config, &[]).unwrap();

    // Another apex, authoritative now: both change with the names.
    let moved = SERVICES.replace("zone: mesh", "zone: svc\nauthoritative: true");
    let tmp = config.with_extension("new");
    fs::write(&tmp, moved).unwrap();
    fs::rename(&tmp, &config).unwrap();
    agent
        .wait_for_log("fast path table updated", Duration::from_secs(5))
        .unwrap();
    let before = lab.fast_path_counters().unwrap();
    let (header, answers) = dig(&lab, "redis.svc", "A");
    assert!(header.contains("status: NOERROR"), "{header}");
    assert_eq!(answers, ["redis.svc. 60 IN A 240.0.0.100"]);
    let (header, _) = dig(&lab, "nope.svc", "A");
    assert!(header.contains("status: NXDOMAIN"), "{header}");
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredA), 1, "{moved}");
    assert_eq!(moved.get(Counter::AnsweredNxdomain), 1, "{moved}");
}

/// The names maps are sized by the table and grow with it while the agent
/// runs with CAP_BPF alone (no program is loaded again: a bigger map goes
/// into the program's slot): a file that outgrows the first map is answered
/// by the program, old names and new, and a restart keeps the grown map.
#[test]
fn a_table_that_outgrows_its_map_is_answered_from_a_bigger_one() {
    use std::fmt::Write as _;
    const MORE: usize = 3_000;
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(&SERVICES);
    let mut agent = lab.start_agent(&config, &[]).unwrap();
    let grew = |agent: &meshdns_tests::lab::Agent| {
        agent.lines().iter().any(|l| l.contains("names map grown"))
    };
    assert!(!grew(&agent), "{:?}", agent.lines());

    // Past the first map's 1,024 names.
    let mut grown = SERVICES.clone();
    for i in 0..MORE {
        writeln!(
            grown,
            "  - name: grown-{i}\n    vips: [241.0.{}.{}]",
            i / 256,
            i % 256
        )
        .unwrap();
    }
    let tmp = config.with_extension("new");
    fs::write(&tmp, &grown).unwrap();
    fs::rename(&tmp, &config).unwrap();
    let grown_line = agent
        .wait_for_log("names map grown", Duration::from_secs(10))
        .unwrap();
    assert!(
        grown_line.contains("NAMES48") && grown_line.contains("to=8192"),
        "{grown_line}"
    );
    agent
        .wait_for_log("fast path table updated", Duration::from_secs(10))
        .unwrap();
    let before = lab.fast_path_counters().unwrap();
    let (_, answers) = dig(&lab, "redis.mesh", "A");
    assert_eq!(answers, ["redis.mesh. 60 IN A 240.0.0.100"]);
    let (_, answers) = dig(&lab, "grown-2999.mesh", "A");
    assert_eq!(answers, ["grown-2999.mesh. 60 IN A 241.0.11.183"]);
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredA), 2, "{moved}");
    assert!(agent.stop().unwrap().success());

    // The next agent finds the grown map pinned, in the slot: nothing to add.
    let mut agent = lab.start_agent(&config, &[]).unwrap();
    let loaded = agent
        .wait_for_log("table loaded", Duration::from_secs(10))
        .unwrap()
        .to_string();
    assert!(loaded.contains("added=0 updated=0 removed=0"), "{loaded}");
    assert!(!grew(&agent), "{:?}", agent.lines());
    let before = lab.fast_path_counters().unwrap();
    let (_, answers) = dig(&lab, "grown-0.mesh", "A");
    assert_eq!(answers, ["grown-0.mesh. 60 IN A 241.0.0.0"]);
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredA), 1, "{moved}");
}

/// A pinned names map that is not the one in the program's slot (what an
/// agent stopped between putting a new map in the slot and pinning it
/// leaves) is not trusted: the next agent fills a new one, puts it in the
/// slot, pins it, and answers from it.
#[test]
fn a_pinned_names_map_that_is_not_the_programs_is_filled_anew() {
    use aya::maps::{HashMap, IterableMap as _, MapData};
    use meshdns::{
        fastpath::{FastPath, Pins, Scope, XDP_TX},
        table::Table,
    };
    use meshdns_common::{CompactRecord, NAMES_MAP_FLAGS, NameKey48};

    let lab = Lab::new().unwrap();
    let pins = Pins::new(&lab.pin_dir);
    let table = std::sync::Arc::new(Table::parse(&SERVICES).unwrap());
    let mut first = FastPath::load_pinned(&pins).unwrap();
    assert_eq!(first.sync(table.clone()).unwrap().added, table.len());
    let [short, ..] = pins.slot_maps();
    let id = |map: &MapData| map.info().unwrap().id();
    let served = id(first.names().maps()[0]);
    assert_eq!(id(&MapData::from_pin(&short).unwrap()), served);
    let zone_pin = pins.slot_map(meshdns_common::ZONE_MAP);
    let zone = id(&MapData::from_pin(&zone_pin).unwrap());
    drop(first);

    // Stopped between pinning the slot's map beside the old pin and
    // renaming it over: that one is the slot's, and is taken as it is.
    let beside = short.with_file_name("NAMES48_0_new");
    fs::rename(&short, &beside).unwrap();
    let mut adopted = FastPath::load_pinned(&pins).unwrap();
    let report = adopted.sync(table.clone()).unwrap();
    assert_eq!(
        (report.added, report.unchanged),
        (0, table.len()),
        "{report:?}"
    );
    assert_eq!(id(&MapData::from_pin(&short).unwrap()), served);
    assert!(!beside.exists());
    // The same zone: not written again (no moment of passing everything).
    assert_eq!(id(&MapData::from_pin(&zone_pin).unwrap()), zone);
    drop(adopted);

    let stray: HashMap<MapData, NameKey48, CompactRecord> =
        HashMap::create(1024, NAMES_MAP_FLAGS).unwrap();
    fs::remove_file(&short).unwrap();
    stray.map().pin(&short).unwrap();

    let mut second = FastPath::load_pinned(&pins).unwrap();
    let report = second.sync(table.clone()).unwrap();
    assert_eq!(
        (report.added, report.unchanged),
        (table.len(), 0),
        "{report:?}"
    );
    let now = id(second.names().maps()[0]);
    assert_ne!(now, served);
    assert_eq!(id(&MapData::from_pin(&short).unwrap()), now);
    // New pinned maps answer nobody until the agent sets the scope.
    second.set_scope(&Scope::any()).unwrap();
    let (action, _) =
        meshdns_tests::xdp::run(&mut second, &Query::new("redis.mesh", TYPE_A).frame()).unwrap();
    assert_eq!(action, XDP_TX);
}

/// The verifier gives up with EAGAIN when a signal arrives for the thread
/// loading the program (the agent handles SIGHUP, SIGTERM and SIGINT, and
/// its children's SIGCHLD): the load is tried again, so a storm of signals
/// during the first 300 ms still ends in a loaded program.
#[test]
fn signals_during_the_verifiers_work_do_not_fail_the_load() {
    use std::sync::atomic::{AtomicBool, Ordering};
    extern "C" fn ignore(_: libc::c_int) {}
    meshdns_tests::require_root();
    // SAFETY: a handler that does nothing, for a signal nothing else uses.
    unsafe { libc::signal(libc::SIGUSR2, ignore as *const () as libc::sighandler_t) };
    // SAFETY: pthread_self has no preconditions.
    let loader = unsafe { libc::pthread_self() } as usize;
    let loaded = std::sync::Arc::new(AtomicBool::new(false));
    let storm = {
        let loaded = loaded.clone();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut sent = 0;
            while start.elapsed() < Duration::from_millis(300) && !loaded.load(Ordering::Relaxed) {
                // SAFETY: the test's own thread, alive until the load returns.
                unsafe { libc::pthread_kill(loader as libc::pthread_t, libc::SIGUSR2) };
                sent += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
            sent
        })
    };
    let fast_path = meshdns::fastpath::FastPath::load();
    loaded.store(true, Ordering::Relaxed);
    let sent = storm.join().unwrap();
    assert!(sent > 10, "only {sent} signals sent");
    fast_path.unwrap();
}

/// Sends `frame` as it is out of `iface`, from the calling thread's
/// namespace (AF_PACKET): a frame dig would never send.
fn send_raw(iface: &str, frame: &[u8]) -> anyhow::Result<()> {
    let index = meshdns::netif::index(iface).ok_or_else(|| anyhow::anyhow!("no {iface}"))?;
    // SAFETY: a socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    anyhow::ensure!(
        fd >= 0,
        "AF_PACKET socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid start.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_ifindex = index as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].copy_from_slice(&frame[..6]);
    // SAFETY: sending our buffer to a valid sockaddr_ll of the right size.
    let sent = unsafe {
        libc::sendto(
            fd,
            frame.as_ptr().cast(),
            frame.len(),
            0,
            (&to as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: our fd.
    unsafe { libc::close(fd) };
    anyhow::ensure!(sent == frame.len() as isize, "sendto: {error}");
    Ok(())
}

#[test]
fn frames_for_another_mac_are_passed_not_answered() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(&SERVICES);
    let _agent = lab.start_agent(&config, &[]).unwrap();
    let server_if = lab.server_if.clone();
    let server_mac = lab
        .server
        .run(move || Ok(meshdns::netif::mac(&server_if)?.expect("a veth has a MAC")))
        .unwrap();

    // The same query, to the server's MAC and to another host's (as a NIC
    // in promiscuous mode would hand it over). Neighbour discovery and
    // multicast listener reports on the veth move pass_not_unicast too: a
    // send whose window saw one of those is tried again, up to five times.
    let query = Query::new("redis.mesh", TYPE_A).frame();
    for (dst, expected) in [
        ([0x02, 0, 0, 0, 0, 0x99], Counter::PassNotUnicast),
        (server_mac, Counter::AnsweredA),
    ] {
        let mut frame = query.clone();
        frame[..6].copy_from_slice(&dst);
        let mut tries = 0;
        let moved = loop {
            tries += 1;
            let moved = send_and_count(&lab, &frame, expected);
            // Whatever the window saw, this frame was never answered wrongly.
            assert_eq!(moved.answered(), u64::from(expected.is_answer()), "{moved}");
            if moved.get(expected) == 1 || tries == 5 {
                break moved;
            }
        };
        assert_eq!(moved.get(expected), 1, "to {dst:02x?}: {moved}");
    }
}

/// Sends `frame` from the client end; returns how the counters moved once
/// `counter` has (or after 2 s).
fn send_and_count(lab: &Lab, frame: &[u8], counter: Counter) -> meshdns::fastpath::Counters {
    let before = lab.fast_path_counters().unwrap();
    let (client_if, frame) = (lab.client_if.clone(), frame.to_vec());
    lab.client
        .run(move || send_raw(&client_if, &frame))
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let moved = lab.fast_path_counters().unwrap().since(&before);
        if moved.get(counter) > 0 || std::time::Instant::now() > deadline {
            return moved;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

//! Pods of a routed CNI (`routed::RoutedNode`), answered by the kernel
//! program on their host-side veths, which the agent finds by pattern and
//! follows as pods come and go. The agent attaches in its automatic mode,
//! which on a veth is generic (SKB) mode: driver mode's `XDP_TX` would need
//! NAPI on the pod's end, which is not the agent's to touch.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use meshdns_tests::{
    lab::dig_status,
    load::{Load, Outcome},
    routed::{CLUSTER_DNS, RoutedNode, counter},
    tc::TcHelper,
};

/// The pods ask the cluster DNS address, which the fast path answers for
/// as a DaemonSet's file says (it is not the node's own).
const SERVICES: &str = "zone: mesh\nfast_path_destinations: [198.19.0.10]\nservices:\n  - name: redis\n    vips: [240.0.0.100, \"fd00:fd00::100\"]\n";

const PODS: usize = 32;

#[test]
fn every_pod_of_a_routed_cni_is_answered_by_the_kernel_without_touching_the_pod() {
    let node = RoutedNode::new("all", PODS);
    let _agent = node.start_agent(SERVICES, &["--detach-on-exit"]);
    let status = node.status();
    let interfaces = status["interfaces"].as_array().unwrap();
    assert_eq!(interfaces.len(), PODS);
    for interface in interfaces {
        assert_eq!(
            interface["mode"], "generic",
            "automatic mode on a veth: {interface}"
        );
        assert_eq!(interface["serving"], true, "{interface}");
    }
    node.assert_ready(PODS, 0);

    let before = node.status();
    for pod in node.pods() {
        for (qtype, want) in [("A", "240.0.0.100"), ("AAAA", "fd00:fd00::100")] {
            let answer = pod.netns.dig(CLUSTER_DNS, &["redis.mesh", qtype, "+short"]);
            assert_eq!(answer.trim(), want, "{}, {qtype}", pod.host_end);
        }
    }
    let after = node.status();
    for name in ["answered_a", "answered_aaaa"] {
        assert_eq!(
            counter(&after, name) - counter(&before, name),
            PODS as u64,
            "{name}: every answer from the kernel program"
        );
    }

    // Another name passes to the node's stack, where nothing answers for
    // the cluster DNS address here: no reply, and the program passed it.
    let before = node.status();
    let answer = node
        .pod(0)
        .netns
        .dig(CLUSTER_DNS, &["example.org", "A", "+time=1"]);
    assert!(!answer.contains("status: NOERROR"), "{answer}");
    let after = node.status();
    assert_eq!(
        counter(&after, "pass_not_in_zone") - counter(&before, "pass_not_in_zone"),
        1
    );
}

/// Asks `redis.mesh` from `pod` until the kernel answers, for at most
/// `within` from the pod's interface appearing; how long it took.
fn first_answer(node: &RoutedNode, pod: usize, within: Duration) -> Option<Duration> {
    let pod = node.pod(pod);
    while pod.created.elapsed() < within {
        let answer = pod.netns.dig(
            CLUSTER_DNS,
            &["redis.mesh", "A", "+short", "+time=1", "+tries=1"],
        );
        if answer.trim() == "240.0.0.100" {
            return Some(pod.created.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn pods_that_come_are_answered_within_a_second_and_pods_that_go_leave_no_pin() {
    let mut node = RoutedNode::new("new", 2);
    let mut agent = node.start_agent(SERVICES, &["--detach-on-exit"]);
    assert_eq!(node.pinned().len(), 2);

    for _ in 0..4 {
        let pod = node.add_pod();
        let took = first_answer(&node, pod, Duration::from_secs(1));
        assert!(
            took.is_some(),
            "{}: not answered within 1 s of its interface appearing; the agent logged:\n{}",
            node.pod(pod).host_end,
            agent.lines().join("\n")
        );
        eprintln!(
            "{}: answered {:?} after its interface appeared",
            node.pod(pod).host_end,
            took.unwrap()
        );
    }
    assert_eq!(node.pinned().len(), 6);

    let gone = node.pod(1).host_end.clone();
    node.remove_pod(1);
    agent
        .wait_for_log(&format!("pin removed iface={gone}"), Duration::from_secs(5))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(2);
    while node.pinned().contains(&gone) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!node.pinned().contains(&gone), "{gone}'s pin is left");
    assert_eq!(node.pinned().len(), 5);
    // A pod that replaces it under the same name (Calico names the veth by
    // the pod) is attached anew, on its new ifindex.
    node.add_pod_numbered(1);
    assert_eq!(node.pod(1).host_end, gone);
    assert!(first_answer(&node, 1, Duration::from_secs(1)).is_some());
    assert!(node.pinned().contains(&gone));
    let failures: Vec<&String> = agent
        .lines()
        .iter()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    assert!(
        failures.is_empty(),
        "pods that came and went: {failures:#?}"
    );
    node.assert_ready(6, 0);
}

#[test]
fn an_interface_given_a_new_mac_or_renamed_is_followed() {
    let node = RoutedNode::new("ren", 1);
    let mut agent = node.start_agent(SERVICES, &["--detach-on-exit"]);
    let host_end = node.pod(0).host_end.clone();
    // A new MAC: the program checks frames against it from now on (the pod
    // learns it again through proxy ARP once its neighbour entry is gone).
    node.node
        .ip(&["link", "set", &host_end, "address", "02:00:00:00:0a:01"])
        .unwrap();
    node.pod(0).netns.ip(&["neigh", "flush", "all"]).unwrap();
    let answer = node
        .pod(0)
        .netns
        .dig(CLUSTER_DNS, &["redis.mesh", "A", "+short", "+time=2"]);
    assert_eq!(answer.trim(), "240.0.0.100", "answered for the new MAC");
    // Renamed out of the pattern: forgotten, its pin removed; and back in:
    // attached again (a veth is renamed while down).
    let other = format!("x{}", &host_end[1..]);
    node.node.ip(&["link", "set", &host_end, "down"]).unwrap();
    node.node
        .ip(&["link", "set", &host_end, "name", &other])
        .unwrap();
    agent
        .wait_for_log(
            &format!("pin removed iface={host_end}"),
            Duration::from_secs(2),
        )
        .unwrap();
    assert!(node.pinned().is_empty(), "{:?}", node.pinned());
    node.assert_ready(0, 0);
    node.node
        .ip(&["link", "set", &other, "name", &host_end])
        .unwrap();
    node.assert_ready(1, 0);
    assert_eq!(node.pinned(), [host_end]);
}

#[test]
fn an_agent_restarted_under_load_from_pods_loses_no_fast_path_answer() {
    let node = RoutedNode::new("rst", 4);
    let mut agent = Some(node.start_agent(SERVICES, &[]));
    let server: SocketAddr = format!("{CLUSTER_DNS}:53").parse().unwrap();
    let before = node.status();
    let loads: Vec<Load> = node
        .pods()
        .map(|pod| Load::start(&pod.netns, server, &["redis.mesh"]))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A rolling update (SIGTERM), then a crash (kill -9), each followed by
    // a new agent that takes the pinned links over.
    agent.take().unwrap().stop().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let restarted = node.start_agent(SERVICES, &[]);
    std::thread::sleep(Duration::from_millis(300));
    restarted.kill().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut last = node.start_agent(SERVICES, &["--detach-on-exit"]);
    std::thread::sleep(Duration::from_millis(300));
    let reports: Vec<_> = loads.into_iter().map(|load| load.stop().unwrap()).collect();
    let after = node.status();
    let mut sent = 0;
    for report in &reports {
        report.assert_seen(
            "redis.mesh",
            &[Outcome::Answer(vec!["240.0.0.100".parse().unwrap()])],
            "every query answered across two restarts",
        );
        sent += report.sent;
    }
    assert!(sent > 100, "a steady load: {sent} queries");
    assert_eq!(
        counter(&after, "answered_a") - counter(&before, "answered_a"),
        sent,
        "every answer from the kernel program (nothing listens on the cluster DNS address)"
    );
    last.wait_for_log("took over the pinned link", Duration::from_secs(1))
        .unwrap();
}

#[test]
fn a_new_agent_takes_over_the_pods_that_stayed_and_removes_the_pins_of_those_gone() {
    let mut node = RoutedNode::new("adp", 3);
    let agent = node.start_agent(SERVICES, &[]);
    assert_eq!(node.pinned().len(), 3);
    assert!(agent.stop().unwrap().success());
    // While no agent runs: one pod goes; the others stay answered.
    let gone = node.pod(1).host_end.clone();
    node.remove_pod(1);
    let answer = node
        .pod(0)
        .netns
        .dig(CLUSTER_DNS, &["redis.mesh", "A", "+short"]);
    assert_eq!(answer.trim(), "240.0.0.100", "the pinned program serves on");
    let mut next = node.start_agent(SERVICES, &["--detach-on-exit"]);
    next.wait_for_log("took over the pinned link", Duration::from_secs(1))
        .unwrap();
    let pinned = node.pinned();
    assert_eq!(pinned.len(), 2, "{pinned:?}");
    assert!(!pinned.contains(&gone), "{gone}'s pin is left: {pinned:?}");
    node.assert_ready(2, 0);
}

#[test]
fn another_tc_program_on_a_pod_interface_sees_every_packet_meshdns_does_not_answer() {
    let node = RoutedNode::new("tc", 2);
    // What a CNI attaches: a program on the interface's ingress, here one
    // that counts the DNS queries it sees, there before meshdns.
    let tc = TcHelper::counter(&node.node, &node.pod(0).host_end).unwrap();
    let _agent = node.start_agent(SERVICES, &["--detach-on-exit"]);
    let before = (tc.seen().unwrap(), node.status());
    let pod = &node.pod(0).netns;
    for _ in 0..5 {
        let answer = pod.dig(CLUSTER_DNS, &["redis.mesh", "A", "+short"]);
        assert_eq!(answer.trim(), "240.0.0.100");
    }
    for i in 0..3 {
        pod.dig(
            CLUSTER_DNS,
            &[&format!("name{i}.example.org"), "A", "+time=1", "+tries=1"],
        );
    }
    let after = (tc.seen().unwrap(), node.status());
    assert_eq!(
        counter(&after.1, "answered_a") - counter(&before.1, "answered_a"),
        5
    );
    assert_eq!(
        after.0 - before.0,
        3,
        "the TC program sees the three queries meshdns passed, and none it answered"
    );
}

#[test]
fn an_interface_running_another_xdp_program_is_skipped_and_counted() {
    let node = RoutedNode::new("oth", 3);
    let taken = node.pod(1).host_end.clone();
    let bin_dir = meshdns_tests::lab::Agent::binary().unwrap();
    let _other =
        meshdns_topology::XdpHelper::attach(bin_dir.parent().unwrap(), &node.node, &taken, "pass")
            .unwrap();
    let mut agent = node.start_agent(SERVICES, &["--detach-on-exit"]);
    let skipped = agent
        .wait_for_log(
            &format!("the interface is skipped iface={taken}"),
            Duration::from_secs(1),
        )
        .unwrap();
    assert!(skipped.contains("WARN"), "{skipped}");
    // Ready: one pod's interface does not take the node's DNS out.
    node.assert_ready(2, 1);
    assert!(!node.pinned().contains(&taken));
    for i in [0, 2] {
        let answer = node
            .pod(i)
            .netns
            .dig(CLUSTER_DNS, &["redis.mesh", "A", "+short"]);
        assert_eq!(answer.trim(), "240.0.0.100");
    }
    let (_, metrics) = node.node.http_get("127.0.0.1:9153", "/metrics").unwrap();
    let line = format!(
        "meshdns_interfaces{{pattern=\"{}\",state=\"skipped\"}} 1",
        node.pattern()
    );
    assert!(metrics.contains(&line), "{line} in {metrics}");
}

/// The kernel's memory in use, in KiB: slab, per-CPU and vmalloc, where
/// links, maps and interfaces live.
fn kernel_memory_kib() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    meminfo
        .lines()
        .filter(|line| {
            ["Slab:", "Percpu:", "VmallocUsed:"]
                .iter()
                .any(|k| line.starts_with(k))
        })
        .map(|line| {
            line.split_whitespace()
                .nth(1)
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

/// Waits until `/readyz` says `attached` of the pattern's interfaces are
/// attached; how long that took.
fn wait_attached(node: &RoutedNode, attached: usize, within: Duration) -> Duration {
    let start = Instant::now();
    let want = node.interfaces_line(attached, 0);
    loop {
        let readyz = node.readyz();
        if readyz.contains(&want) {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "{want}: {readyz}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_thousand_interfaces_are_attached_as_they_come_and_forgotten_as_they_go() {
    const MANY: usize = 1000;
    let node = RoutedNode::new("big", 1);
    let mut agent = node.start_agent(SERVICES, &["--detach-on-exit"]);
    wait_attached(&node, 1, Duration::from_secs(5));
    let before = kernel_memory_kib();

    // A thousand appearing at once while the agent runs.
    let start = Instant::now();
    node.add_bare_interfaces(MANY);
    let created = start.elapsed();
    let attached = created + wait_attached(&node, 1 + MANY, Duration::from_secs(60));
    let memory = kernel_memory_kib().saturating_sub(before);
    assert_eq!(node.pinned().len(), 1 + MANY);
    eprintln!(
        "{MANY} interfaces: created in {created:?}, all attached {attached:?} after the first appeared; kernel memory +{memory} KiB with them (interfaces included)"
    );
    // `meshdns status` counts them rather than listing a thousand lines,
    // by pattern as the agent last wrote (at most a second ago).
    std::thread::sleep(Duration::from_millis(1100));
    let status = String::from_utf8(node.meshdns_status(&[])).unwrap();
    for line in [
        format!("interfaces: {} pinned, {} serving\n", MANY + 1, MANY + 1),
        format!(
            "--iface {}: {} attached, 0 skipped, 0 failed\n",
            node.pattern(),
            MANY + 1
        ),
    ] {
        assert!(status.contains(&line), "{line} in {status}");
    }
    // The pod's interface still answers, its entry among a thousand.
    let answer = node
        .pod(0)
        .netns
        .dig(CLUSTER_DNS, &["redis.mesh", "A", "+short"]);
    assert_eq!(answer.trim(), "240.0.0.100");

    // And gone at once: every pin removed.
    node.delete_bare_interfaces(MANY);
    wait_attached(&node, 1, Duration::from_secs(60));
    assert_eq!(node.pinned().len(), 1);

    // An agent started with a thousand there attaches them all before it
    // says it is up.
    node.add_bare_interfaces(MANY);
    wait_attached(&node, 1 + MANY, Duration::from_secs(60));
    agent.signal(libc::SIGTERM);
    agent
        .wait_for_log("detached from", Duration::from_secs(60))
        .unwrap();
    drop(agent);
    let without = kernel_memory_kib();
    let start = Instant::now();
    let _agent = node.start_agent(SERVICES, &["--detach-on-exit"]);
    let started = start.elapsed();
    wait_attached(&node, 1 + MANY, Duration::from_secs(1));
    let memory = kernel_memory_kib().saturating_sub(without);
    eprintln!(
        "an agent started beside {MANY} interfaces: up and attached to all in {started:?} (the program's load and verification included); kernel memory +{memory} KiB (the program, its maps and {} links)",
        MANY + 1
    );
}

/// `redis.mesh TXT` from pod `i` to the resolver (the kernel passes other
/// types): its rcode.
fn resolver_rcode(node: &RoutedNode, i: usize) -> String {
    let answer = node
        .pod(i)
        .netns
        .dig(CLUSTER_DNS, &["redis.mesh", "TXT", "+time=1", "+tries=1"]);
    dig_status(&answer).unwrap_or_else(|| format!("no reply: {answer}"))
}

#[test]
fn the_resolver_answers_the_pods_the_routes_say_and_pod_cidrs_override_them() {
    let mut node = RoutedNode::new("res", 2);
    let mut agent = node.start_agent(
        SERVICES,
        &["--detach-on-exit", "--listen", &format!("{CLUSTER_DNS}:53")],
    );
    agent
        .wait_for_log(
            "the pods' addresses, for allow_from: the node's routes",
            Duration::from_secs(1),
        )
        .unwrap();
    // RFC 1035 §4.1.1: NOERROR with no answer (the name has no TXT).
    for i in 0..2 {
        assert_eq!(resolver_rcode(&node, i), "NOERROR", "pod {i}, by its route");
    }
    // A pod that comes later is answered once its route is there.
    let late = node.add_pod();
    let deadline = Instant::now() + Duration::from_secs(2);
    while resolver_rcode(&node, late) != "NOERROR" {
        assert!(
            Instant::now() < deadline,
            "{}: never answered",
            node.pod(late).host_end
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // pod_cidrs in the file say who the pods are: the routes no longer count.
    std::fs::write(
        node.services_path(),
        format!("pod_cidrs: [198.18.200.0/24]\n{SERVICES}"),
    )
    .unwrap();
    agent
        .wait_for_log("table reloaded", Duration::from_secs(5))
        .unwrap();
    assert_eq!(resolver_rcode(&node, 0), "REFUSED", "outside pod_cidrs");
    // And the kernel program no longer answers them either: it passes
    // their mesh names to the resolver, which refuses them too.
    let before = node.status();
    let answer = node
        .pod(0)
        .netns
        .dig(CLUSTER_DNS, &["redis.mesh", "A", "+time=1", "+tries=1"]);
    assert!(answer.contains("status: REFUSED"), "{answer}");
    let after = node.status();
    assert_eq!(
        counter(&after, "pass_client_not_allowed") - counter(&before, "pass_client_not_allowed"),
        1
    );
    assert_eq!(
        counter(&after, "answered_a"),
        counter(&before, "answered_a")
    );
}

//! A routed CNI, as Calico lays a node out: each pod's veth has its host
//! end in the node's namespace and its pod end with a /32, a default route
//! through a link-local gateway that proxy ARP on the host end answers, and
//! nothing of meshdns's (no XDP program, no GRO setting) on the pod's side.
//! The cluster DNS address is not local to the node. The agent attaches in
//! its automatic mode, which on a veth is generic (SKB) mode: driver mode's
//! `XDP_TX` would need NAPI on the pod's end.

use std::{path::PathBuf, time::Duration};

use meshdns_tests::lab::{Agent, Netns};
use meshdns_topology::{End, Veth};
use serde_json::Value;

/// As many pods as the program's interface list holds today
/// (`MAX_INTERFACES`); the 32, and 1,024, wait for that list to
/// become a map.
const PODS: usize = meshdns_common::MAX_INTERFACES;
/// The cluster DNS Service's address: not an address of the node.
const CLUSTER_DNS: &str = "198.19.0.10";

/// The node and its pods, removed on drop: the veths, then the
/// namespaces (fields drop in order).
struct RoutedNode {
    /// Held only to be deleted first.
    _veths: Vec<Veth>,
    node: Netns,
    pods: Vec<Netns>,
    host_ends: Vec<String>,
    /// The agent's pins and files.
    dir: PathBuf,
}

impl Drop for RoutedNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(self.pin_dir());
    }
}

impl RoutedNode {
    fn new(pods: usize) -> Self {
        meshdns_tests::require_root();
        let tag = std::process::id() % 100_000;
        let node = Netns::new(format!("mdr{tag}n")).unwrap();
        node.command("sysctl")
            .args(["-qw", "net.ipv4.ip_forward=1"])
            .status()
            .unwrap();
        // The node's uplink and default route: proxy ARP answers for the
        // pods' gateway only with a route to it out of another interface,
        // as a real node has.
        // A veth whose far end stays in the node: this kernel has no
        // dummy device.
        node.ip(&[
            "link",
            "add",
            "uplink",
            "type",
            "veth",
            "peer",
            "name",
            "uplink-far",
        ])
        .unwrap();
        node.ip(&["link", "set", "uplink-far", "up"]).unwrap();
        node.ip(&["link", "set", "uplink", "up"]).unwrap();
        node.ip(&["addr", "add", "10.255.255.1/24", "dev", "uplink"])
            .unwrap();
        node.ip(&[
            "route",
            "add",
            "default",
            "via",
            "10.255.255.254",
            "dev",
            "uplink",
        ])
        .unwrap();
        let mut pod_namespaces = Vec::new();
        let mut host_ends = Vec::new();
        let mut veths = Vec::new();
        for i in 0..pods {
            let pod = Netns::new(format!("mdr{tag}p{i}")).unwrap();
            let host_end = format!("r{tag}h{i}");
            let address = format!("198.18.8.{}", i + 1);
            // Addressed by `ip` below: a /32 and the routes Calico sets.
            let veth = Veth::create(
                Some(&node),
                End {
                    iface: &host_end,
                    addresses: &[],
                },
                &pod,
                End {
                    iface: "eth0",
                    addresses: &[],
                },
            )
            .unwrap();
            veths.push(veth);
            pod.ip(&["addr", "add", &format!("{address}/32"), "dev", "eth0"])
                .unwrap();
            pod.ip(&[
                "route",
                "add",
                "169.254.1.1",
                "dev",
                "eth0",
                "scope",
                "link",
            ])
            .unwrap();
            pod.ip(&[
                "route",
                "add",
                "default",
                "via",
                "169.254.1.1",
                "dev",
                "eth0",
            ])
            .unwrap();
            node.command("sysctl")
                .args(["-qw", &format!("net.ipv4.conf.{host_end}.proxy_arp=1")])
                .status()
                .unwrap();
            node.ip(&["route", "add", &format!("{address}/32"), "dev", &host_end])
                .unwrap();
            pod_namespaces.push(pod);
            host_ends.push(host_end);
        }
        let dir = std::env::temp_dir().join(format!("meshdns-routed-{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        Self {
            _veths: veths,
            node,
            pods: pod_namespaces,
            host_ends,
            dir,
        }
    }

    fn pin_dir(&self) -> PathBuf {
        PathBuf::from(format!(
            "/sys/fs/bpf/meshdns-routed-{}",
            std::process::id() % 100_000
        ))
    }

    /// The agent on every host end, in automatic mode.
    fn start_agent(&self, services: &str) -> Agent {
        let config = self.dir.join("services.yaml");
        std::fs::write(&config, services).unwrap();
        let pin_dir = self.pin_dir().to_string_lossy().into_owned();
        let state_dir = self.dir.join("state").to_string_lossy().into_owned();
        let mut args: Vec<&str> = vec![
            "--pin-dir",
            &pin_dir,
            "--state-dir",
            &state_dir,
            "--listen",
            "127.0.0.1:53",
            "--upstream",
            "127.0.0.1:54",
            "--detach-on-exit",
        ];
        for host_end in &self.host_ends[1..] {
            args.extend(["--iface", host_end]);
        }
        let mut agent = Agent::spawn(&self.node, &self.host_ends[0], &config, &args).unwrap();
        agent
            .wait_for_log("capabilities dropped", Duration::from_secs(30))
            .unwrap();
        agent
    }

    /// `meshdns status --json` in the node's namespace.
    fn status(&self) -> Value {
        let pin_dir = self.pin_dir().to_string_lossy().into_owned();
        let output = self
            .node
            .nsenter(Agent::binary().unwrap())
            .args(["status", "--pin-dir", &pin_dir, "--json"])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name].as_u64().unwrap_or(0)
}

#[test]
fn every_pod_of_a_routed_cni_is_answered_by_the_kernel_without_touching_the_pod() {
    let node = RoutedNode::new(PODS);
    let _agent = node.start_agent(
        "zone: mesh\nservices:\n  - name: redis\n    vips: [240.0.0.100, \"fd00:fd00::100\"]\n",
    );
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

    let before = node.status();
    for (i, pod) in node.pods.iter().enumerate() {
        for (qtype, want) in [("A", "240.0.0.100"), ("AAAA", "fd00:fd00::100")] {
            let answer = pod.dig(CLUSTER_DNS, &["redis.mesh", qtype, "+short"]);
            assert_eq!(answer.trim(), want, "pod {i}, {qtype}");
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
    let answer = node.pods[0].dig(CLUSTER_DNS, &["example.org", "A", "+time=1"]);
    assert!(!answer.contains("status: NOERROR"), "{answer}");
    let after = node.status();
    assert_eq!(
        counter(&after, "pass_not_in_zone") - counter(&before, "pass_not_in_zone"),
        1
    );
}

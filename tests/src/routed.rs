//! A node of a routed CNI, as Calico lays one out: each pod's veth has its
//! host end in the node's namespace and its pod end with a /32, a default
//! route through a link-local gateway that proxy ARP on the host end
//! answers, and nothing of meshdns's (no XDP program, no GRO setting) on
//! the pod's side. The cluster DNS address is not local to the node. Pods
//! come and go while the agent runs, as they do on a real node.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use meshdns_topology::Veth;
use serde_json::Value;

use crate::lab::{Agent, Netns, agent_args};

/// The cluster DNS Service's address: not an address of the node.
pub const CLUSTER_DNS: &str = "198.19.0.10";

/// One pod: its namespace and the veth to it, removed on drop (the veth
/// first: fields drop in order).
pub struct Pod {
    veth: Veth,
    pub netns: Netns,
    /// The veth's end in the node's namespace.
    pub host_end: String,
    /// Its /32.
    pub address: String,
    /// When its interface appeared.
    pub created: Instant,
}

/// The node and its pods, removed on drop.
pub struct RoutedNode {
    /// By number; dropped before the node's namespace.
    pods: BTreeMap<usize, Pod>,
    next: usize,
    pub node: Netns,
    tag: u32,
    /// The agent's files.
    dir: PathBuf,
}

impl Drop for RoutedNode {
    fn drop(&mut self) {
        // The pods' veths before the pins' folder: a pinned link outlives
        // nothing it is attached to.
        self.pods.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::fs::remove_dir_all(self.pin_dir());
    }
}

impl RoutedNode {
    /// A node with `pods` pods. `name` tells the namespaces of one test
    /// from another's (at most 3 characters: interface names are short).
    pub fn new(name: &str, pods: usize) -> Self {
        crate::require_root();
        assert!(name.len() <= 3, "{name}: at most 3 characters");
        let tag = std::process::id() % 10_000;
        let node = Netns::new(format!("md{name}{tag}n")).unwrap();
        meshdns_topology::routed::make_node(&node).unwrap();
        // The cluster DNS address on the node's loopback, for tests whose
        // resolver listens there (NodeLocal DNSCache binds it to a device of
        // its own the same way); the kernel program answers before it.
        node.ip(&["addr", "add", &format!("{CLUSTER_DNS}/32"), "dev", "lo"])
            .unwrap();
        let dir = std::env::temp_dir().join(format!("meshdns-routed-{name}{tag}"));
        std::fs::create_dir_all(&dir).unwrap();
        let mut routed = Self {
            pods: BTreeMap::new(),
            next: 0,
            node,
            tag: tag + name.bytes().map(u32::from).sum::<u32>() * 10_000,
            dir,
        };
        for _ in 0..pods {
            routed.add_pod();
        }
        routed
    }

    /// The pattern of the pods' host ends, as a DaemonSet gives it
    /// (`cali*` on Calico).
    pub fn pattern(&self) -> String {
        format!("r{}h*", self.tag)
    }

    /// Adds a pod as a CNI does: the veth, the pod's /32 and routes, proxy
    /// ARP and the route to the pod on the node. Returns its number.
    pub fn add_pod(&mut self) -> usize {
        let i = self.next;
        self.next += 1;
        self.add_pod_numbered(i);
        i
    }

    /// Adds pod `i` again after [`RoutedNode::remove_pod`]: the same
    /// names (Calico names a pod's veth after the pod, so a pod re-created
    /// gets its namesake) and a new ifindex.
    pub fn add_pod_numbered(&mut self, i: usize) {
        assert!(!self.pods.contains_key(&i), "pod {i} is there");
        let pod = Netns::new(format!("md{}p{i}", self.tag)).unwrap();
        let host_end = format!("r{}h{i}", self.tag);
        assert!(host_end.len() <= 15, "{host_end}");
        let address = format!("198.18.{}.{}", 8 + i / 250, 1 + i % 250);
        let created = Instant::now();
        let veth =
            meshdns_topology::routed::add_pod(&self.node, &pod, &host_end, &address).unwrap();
        self.pods.insert(
            i,
            Pod {
                veth,
                netns: pod,
                host_end,
                address,
                created,
            },
        );
    }

    /// Adds `count` veth pairs whose node ends match the pattern and whose
    /// other ends stay in the node: what a thousand pods' interfaces cost
    /// the agent and the kernel, without a thousand namespaces. In one
    /// `ip -batch`; deleted with the node's namespace.
    pub fn add_bare_interfaces(&self, count: usize) {
        self.bare_interfaces(count, |host, peer| {
            format!("link add {host} type veth peer name {peer}\nlink set {host} up\nlink set {peer} up\n")
        });
    }

    /// Deletes the interfaces [`RoutedNode::add_bare_interfaces`] added.
    pub fn delete_bare_interfaces(&self, count: usize) {
        self.bare_interfaces(count, |host, _| format!("link delete {host}\n"));
    }

    fn bare_interfaces(&self, count: usize, command: impl Fn(&str, &str) -> String) {
        let batch: String = (0..count)
            .map(|i| {
                command(
                    &format!("r{}hb{i}", self.tag),
                    &format!("r{}b{i}", self.tag),
                )
            })
            .collect();
        let path = self.dir.join("batch");
        std::fs::write(&path, batch).unwrap();
        let status = std::process::Command::new("ip")
            .args(["-n", &self.node.name, "-batch"])
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "ip -batch");
    }

    /// Deletes pod `i`, its veth first, as the CNI does when a pod ends.
    pub fn remove_pod(&mut self, i: usize) {
        let pod = self.pods.remove(&i).expect("a pod of this node");
        pod.veth.delete().unwrap();
    }

    pub fn pod(&self, i: usize) -> &Pod {
        &self.pods[&i]
    }

    pub fn pods(&self) -> impl Iterator<Item = &Pod> {
        self.pods.values()
    }

    pub fn pin_dir(&self) -> PathBuf {
        PathBuf::from(format!("/sys/fs/bpf/meshdns-routed-{}", self.tag))
    }

    pub fn services_path(&self) -> PathBuf {
        self.dir.join("services.yaml")
    }

    /// The agent on the pods' interfaces by pattern, in automatic mode, with
    /// `extra` arguments; waits until it has started.
    pub fn start_agent(&self, services: &str, extra: &[&str]) -> Agent {
        let config = self.services_path();
        std::fs::write(&config, services).unwrap();
        let pin_dir = self.pin_dir().to_string_lossy().into_owned();
        let state_dir = self.state_dir().to_string_lossy().into_owned();
        let args = agent_args(&pin_dir, &state_dir, extra);
        let mut agent = Agent::spawn(&self.node, &self.pattern(), &config, &args).unwrap();
        agent
            .wait_for_log("capabilities dropped", Duration::from_secs(60))
            .unwrap();
        agent
    }

    /// `meshdns status --json` in the node's namespace.
    pub fn status(&self) -> Value {
        let output = self.meshdns_status(&["--json"]);
        serde_json::from_slice(&output).unwrap()
    }

    /// `meshdns status ARGS` in the node's namespace, with the agent's pin
    /// and state folders: its output.
    pub fn meshdns_status(&self, args: &[&str]) -> Vec<u8> {
        let pin_dir = self.pin_dir().to_string_lossy().into_owned();
        let state_dir = self.state_dir().to_string_lossy().into_owned();
        let output = self
            .node
            .nsenter(Agent::binary().unwrap())
            .args(["status", "--pin-dir", &pin_dir, "--state-dir", &state_dir])
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output.stdout
    }

    /// The agent's state folder.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.join("state")
    }

    /// The interfaces with a pinned link.
    pub fn pinned(&self) -> Vec<String> {
        meshdns::fastpath::Pins::new(self.pin_dir()).linked_interfaces()
    }

    /// The line of `/readyz` that counts the pattern's interfaces.
    pub fn interfaces_line(&self, attached: usize, skipped: usize) -> String {
        format!(
            "interfaces {}: {attached} attached, {skipped} skipped, 0 failed",
            self.pattern()
        )
    }

    /// Asserts that the agent is ready with these interfaces counted, or
    /// becomes so within a moment (it says it has started a little before
    /// `/readyz` does).
    #[track_caller]
    pub fn assert_ready(&self, attached: usize, skipped: usize) {
        let want = self.interfaces_line(attached, skipped);
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let readyz = self.readyz();
            if readyz.starts_with("ready\n") && readyz.contains(&want) {
                return;
            }
            assert!(Instant::now() < deadline, "{want}: {readyz}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The agent's `/readyz` body (it listens on its default address).
    pub fn readyz(&self) -> String {
        self.node.http_get("127.0.0.1:9153", "/readyz").unwrap().1
    }
}

/// A counter of `meshdns status --json`.
pub fn counter(status: &Value, name: &str) -> u64 {
    status["counters"][name].as_u64().unwrap_or(0)
}

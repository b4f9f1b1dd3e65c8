//! The pod target: what one pod of a routed CNI gets through its host-side
//! veth, as Calico lays a node out (a /32, a link-local gateway answered by
//! proxy ARP on the host end, nothing of meshdns's in the pod), measured
//! with dnsperf from the pod's namespace against the cluster DNS address
//! (on the node's loopback, so that the userspace servers can listen
//! there):
//!
//! 1. meshdns with its fast path, as it attaches on a pod's veth (generic
//!    XDP, the automatic mode);
//! 2. the two hooks' floors, swapping addresses and doing no DNS work:
//!    generic XDP with `XDP_TX`, and TC ingress (TCX) with `bpf_redirect`
//!    back out of the interface, which is how a TC answer would leave;
//! 3. meshdns with XDP off (its resolver answers everything);
//! 4. Unbound on the node, with the names as local-data.

use std::{fs, path::Path, process::Stdio};

use meshdns_topology::{Netns, Veth, XdpHelper, routed};

use super::{Args, targets, tools, workload::Workload};
use crate::report::PodRow;

const NODE_NS: &str = "mdbench-n";
const POD_NS: &str = "mdbench-p";
const HOST_IF: &str = "mdbpod0";
const CLUSTER_DNS: &str = "198.19.0.10";
const POD_IP: &str = "198.18.9.1";
const PIN_DIR: &str = "/sys/fs/bpf/meshdns-bench-pod";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum PodTarget {
    MeshdnsGenericXdp,
    XdpFloor,
    TcFloor,
    MeshdnsUserspace,
    Unbound,
}

impl PodTarget {
    const ALL: [PodTarget; 5] = [
        PodTarget::MeshdnsGenericXdp,
        PodTarget::XdpFloor,
        PodTarget::TcFloor,
        PodTarget::MeshdnsUserspace,
        PodTarget::Unbound,
    ];

    fn name(self) -> &'static str {
        match self {
            PodTarget::MeshdnsGenericXdp => "meshdns, generic XDP on the pod's veth",
            PodTarget::XdpFloor => "floor: generic XDP (swap, XDP_TX)",
            PodTarget::TcFloor => "floor: TC ingress (swap, bpf_redirect)",
            PodTarget::MeshdnsUserspace => "meshdns, XDP off",
            PodTarget::Unbound => "Unbound 1.17 on the node",
        }
    }

    fn is_dns(self) -> bool {
        !matches!(self, PodTarget::XdpFloor | PodTarget::TcFloor)
    }
}

/// Measures every pod target, one after the other.
pub fn measure(
    bin: &Path,
    work: &Path,
    workload: &Workload,
    args: &Args,
) -> anyhow::Result<Vec<PodRow>> {
    let node = RoutedNode::create()?;
    let mut rows = Vec::new();
    for target in PodTarget::ALL {
        eprintln!("bench: pod: {} ...", target.name());
        let running = start(target, &node, bin, work, workload)?;
        if target.is_dns() {
            tools::check_sample(&node.pod, CLUSTER_DNS, target.name(), &workload.sample)?;
        }
        tools::dnsperf_from(&node.pod, CLUSTER_DNS, &workload.dnsperf, 1)?;
        let mut row = PodRow {
            name: target.name(),
            dnsperf: Vec::new(),
            mean_latency_us: Vec::new(),
        };
        for i in 1..=args.repetitions {
            let (qps, latency) =
                tools::dnsperf_from(&node.pod, CLUSTER_DNS, &workload.dnsperf, args.seconds)?;
            eprintln!(
                "bench: pod: {}: dnsperf {i}/{}: {qps:.0} queries/s",
                target.name(),
                args.repetitions
            );
            row.dnsperf.push(qps);
            row.mean_latency_us.push(latency);
        }
        if target.is_dns() {
            tools::check_sample(&node.pod, CLUSTER_DNS, target.name(), &workload.sample)?;
        }
        rows.push(row);
        drop(running);
    }
    Ok(rows)
}

/// What runs for a target, a server or a helper program's holder, stopped
/// on drop.
struct Running {
    server: Option<std::process::Child>,
    _helper: Option<XdpHelper>,
}

impl Running {
    fn server(child: std::process::Child) -> Self {
        Self {
            server: Some(child),
            _helper: None,
        }
    }

    fn helper(helper: XdpHelper) -> Self {
        Self {
            server: None,
            _helper: Some(helper),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = &mut self.server {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(PIN_DIR);
    }
}

fn start(
    target: PodTarget,
    node: &RoutedNode,
    bin: &Path,
    work: &Path,
    workload: &Workload,
) -> anyhow::Result<Running> {
    let log = fs::File::create(work.join(format!("pod-{target:?}.log")))?;
    let (out, err): (Stdio, Stdio) = (log.try_clone()?.into(), log.into());
    let agent = |mode: &str| -> anyhow::Result<Running> {
        let child = node
            .node
            .nsenter(bin.join("meshdns"))
            .args(["run", "--iface", HOST_IF, "--xdp-mode", mode, "--config"])
            .arg(&workload.services)
            .args(["--listen", &format!("{CLUSTER_DNS}:53")])
            .args(["--upstream", "127.0.0.1:54", "--pin-dir", PIN_DIR])
            .args(["--detach-on-exit", "--state-dir"])
            .arg(work.join("pod-state"))
            .stdout(out)
            .stderr(err)
            .spawn()?;
        Ok(Running::server(child))
    };
    let running = match target {
        PodTarget::MeshdnsGenericXdp => agent("auto")?,
        PodTarget::MeshdnsUserspace => agent("off")?,
        PodTarget::XdpFloor => Running::helper(XdpHelper::attach(
            bin,
            &node.node,
            HOST_IF,
            "floor-generic",
        )?),
        PodTarget::TcFloor => {
            Running::helper(XdpHelper::attach(bin, &node.node, HOST_IF, "tc-floor")?)
        }
        PodTarget::Unbound => {
            let mut data = String::from("  local-zone: \"mesh.\" static\n");
            data.push_str(&workload.unbound_data);
            Running::server(targets::unbound(
                &node.node,
                work,
                "pod-unbound",
                &format!("{CLUSTER_DNS}@53"),
                "198.18.0.0/15",
                &data,
            )?)
        }
    };
    if target.is_dns() {
        wait_answered(node, &workload.sample[0].0)?;
    }
    // The resolver answers before the fast path is attached.
    if target == PodTarget::MeshdnsGenericXdp {
        super::measure::wait_readyz(&node.node)?;
    }
    Ok(running)
}

/// Waits until the pod gets an address for `name`.
fn wait_answered(node: &RoutedNode, name: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let out = tools::dig_from(&node.pod, CLUSTER_DNS, &[name, "A", "+short"])?;
        if out
            .lines()
            .any(|l| l.trim().parse::<std::net::IpAddr>().is_ok())
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    anyhow::bail!("the pod got no answer for {name} in time")
}

/// The node and its one pod; removed on drop (the veth, then the
/// namespaces).
struct RoutedNode {
    _veth: Veth,
    node: Netns,
    pod: Netns,
}

impl RoutedNode {
    fn create() -> anyhow::Result<Self> {
        for ns in [NODE_NS, POD_NS] {
            Netns::delete_leftover(ns);
        }
        let _ = fs::remove_dir_all(PIN_DIR);
        let node = Netns::create(NODE_NS)?;
        let pod = Netns::create(POD_NS)?;
        // The cluster DNS address on the node's loopback, where the
        // userspace servers listen (NodeLocal DNSCache binds its address to
        // a device of its own the same way).
        node.ip(&["addr", "add", &format!("{CLUSTER_DNS}/32"), "dev", "lo"])?;
        routed::make_node(&node)?;
        let veth = routed::add_pod(&node, &pod, HOST_IF, POD_IP)?;
        Ok(Self {
            _veth: veth,
            node,
            pod,
        })
    }
}

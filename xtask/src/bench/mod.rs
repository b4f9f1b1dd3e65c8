//! `cargo xtask bench`: meshdns against the servers a user would otherwise
//! pick, on the same machine, in the same run, with the same workload.
//!
//! Topology: a server and a client network namespace joined by a veth pair
//! (198.18.0.1 and 198.18.0.2). Every target serves the same names on
//! 198.18.0.1, one after the other:
//!
//! 1. meshdns with its XDP fast path;
//! 2. meshdns with XDP off (its userspace resolver answers everything);
//! 3. Knot DNS in XDP mode, serving the names as a `mesh.` zone;
//! 4. Unbound, with the names as local-data;
//! 5. the floor: an XDP program that only swaps addresses (kxdpgun only).
//!
//! Then, in a topology of its own (`pod`), the same names asked from a pod
//! of a routed CNI through its host-side veth: meshdns's hook there, the
//! floors of the two hooks a pod's veth allows, the resolver and Unbound.
//!
//! kxdpgun (AF_XDP, the throughput ceiling) and dnsperf (sockets, latency)
//! each run a fixed time per target after a warm-up, several times; the
//! report gives medians, ranges, and ratios to meshdns XDP. A sample of
//! names is checked with dig before and after each load: a wrong answer
//! fails the bench.

mod measure;
mod pod;
mod targets;
mod tools;
mod workload;

use std::{fs, path::Path};

use meshdns_topology::{End, Netns, Veth};

use self::{measure::measure, targets::Server, tools::BpfStats, workload::Workload};
use crate::{cmd, report, setup};

const SERVER_NS: &str = "mdbench-s";
const CLIENT_NS: &str = "mdbench-c";
const SERVER_IF: &str = "mdbench0";
const CLIENT_IF: &str = "mdbench0c";
const SERVER_IP: &str = "198.18.0.1";
const PIN_DIR: &str = "/sys/fs/bpf/meshdns-bench";

/// Commands the bench runs, and their Debian packages.
const PACKAGES: [(&str, &str); 6] = [
    ("dnsperf", "dnsperf"),
    ("kxdpgun", "knot-dnsutils"),
    ("knotd", "knot"),
    ("unbound", "unbound"),
    ("dig", "dnsutils"),
    ("bpftool", "bpftool"),
];

pub struct Args {
    pub names: usize,
    pub seconds: u64,
    pub repetitions: usize,
    pub scale: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Target {
    MeshdnsXdp,
    MeshdnsUserspace,
    KnotXdp,
    Unbound,
    Floor,
    /// meshdns answering forwarded names from its cache.
    MeshdnsCache,
    /// Unbound as a caching forwarder, same upstream, same names.
    UnboundCache,
}

impl Target {
    const ALL: [Target; 5] = [
        Target::MeshdnsXdp,
        Target::MeshdnsUserspace,
        Target::KnotXdp,
        Target::Unbound,
        Target::Floor,
    ];

    fn name(self) -> &'static str {
        match self {
            Target::MeshdnsXdp => "meshdns XDP",
            Target::MeshdnsUserspace => "meshdns, XDP off",
            Target::KnotXdp => "Knot DNS 3.2, XDP",
            Target::Unbound => "Unbound 1.17",
            Target::Floor => "floor (swap, XDP_TX)",
            Target::MeshdnsCache => "meshdns cache hits",
            Target::UnboundCache => "Unbound cache hits",
        }
    }

    /// Whether it is measured on forwarded names (answered from a cache)
    /// rather than the mesh's.
    fn forwards(self) -> bool {
        matches!(self, Target::MeshdnsCache | Target::UnboundCache)
    }

    /// Whether it answers DNS (the floor reflects queries).
    fn is_dns(self) -> bool {
        self != Target::Floor
    }
}

pub fn run(root: &Path, args: &Args) -> anyhow::Result<()> {
    setup::debian_packages(&PACKAGES)?;
    eprintln!("bench: building release binaries");
    let bin = cmd::build_bins(root, true)?;
    let work = std::env::temp_dir().join("meshdns-bench");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;

    let workload = Workload::generate(args.names, &work)?;
    eprintln!(
        "bench: {} services ({} IPv4-only), {} query templates, {}s per run, {} runs per tool",
        args.names,
        args.names / 2,
        workload.queries,
        args.seconds,
        args.repetitions
    );
    eprintln!("bench: the XDP program, path by path (BPF_PROG_TEST_RUN)");
    let paths = tools::xdp_paths(&bin, 20_000)?;
    let network = Network::create()?;
    let _stats = BpfStats::enable()?;

    let mut results = Vec::new();
    for target in Target::ALL
        .into_iter()
        .chain([Target::MeshdnsCache, Target::UnboundCache])
    {
        eprintln!("bench: {} ...", target.name());
        let server = Server::start(target, &network, &bin, &work, &workload)?;
        results.push(measure(target, &server, &bin, &workload, args)?);
        drop(server);
    }
    eprintln!("bench: from a pod of a routed CNI ...");
    let pod_rows = pod::measure(&bin, &work, &workload, args)?;
    let scale_rows = if args.scale {
        measure::scale(&network, &bin, &work, args)?
    } else {
        Vec::new()
    };
    drop(network);
    let setup = report::Setup {
        names: args.names,
        seconds: args.seconds,
        repetitions: args.repetitions,
    };
    let dir = root.join("target/bench");
    let markdown = report::write(
        &dir,
        &setup,
        &measure::rows(&results),
        &scale_rows,
        &pod_rows,
        &paths,
    )?;
    println!("\n{markdown}");
    eprintln!(
        "bench: report in {}/report.md, with report.json and report.svg",
        dir.display()
    );
    Ok(())
}

/// The server and client namespaces and the veth pair between them
/// (198.18.0.1 and 198.18.0.2); removed on drop, with the agent's pins.
struct Network {
    // Dropped in this order: the veth, then the namespaces.
    _veth: Veth,
    server: Netns,
    client: Netns,
}

impl Network {
    fn create() -> anyhow::Result<Self> {
        Self::remove_leftovers();
        let server = Netns::create(SERVER_NS)?;
        let client = Netns::create(CLIENT_NS)?;
        let veth = Veth::create(
            Some(&server),
            End {
                iface: SERVER_IF,
                addresses: &["198.18.0.1/24"],
            },
            &client,
            End {
                iface: CLIENT_IF,
                addresses: &["198.18.0.2/24"],
            },
        )?;
        Ok(Self {
            _veth: veth,
            server,
            client,
        })
    }

    /// What a bench that was killed left behind.
    fn remove_leftovers() {
        for ns in [SERVER_NS, CLIENT_NS] {
            Netns::delete_leftover(ns);
        }
        let _ = fs::remove_dir_all(PIN_DIR);
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(PIN_DIR);
    }
}

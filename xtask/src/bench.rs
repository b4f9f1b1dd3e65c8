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
//! kxdpgun (AF_XDP, the throughput ceiling) and dnsperf (sockets, latency)
//! each run a fixed time per target after a warm-up, several times; the
//! report gives medians, ranges, and ratios to meshdns XDP. A sample of
//! names is checked with dig before and after each load: a wrong answer
//! fails the bench.

use std::{
    collections::BTreeMap,
    fmt::Write as _,
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{
    cmd,
    report::{self, median},
    setup,
};

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
    cmd::cargo(
        root,
        &[
            "build",
            "--release",
            "-p",
            "meshdns-user",
            "-p",
            "meshdns-tests",
            "--bins",
        ],
    )?;
    let bin = root.join("target/release");
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
    let paths = xdp_paths(&bin, 20_000)?;
    let topology = Topology::create()?;
    let _stats = BpfStats::enable()?;

    let mut results = Vec::new();
    for target in Target::ALL
        .into_iter()
        .chain([Target::MeshdnsCache, Target::UnboundCache])
    {
        eprintln!("bench: {} ...", target.name());
        let server = Server::start(target, &bin, &work, &workload)?;
        results.push(measure(target, &server, &bin, &workload, args)?);
        drop(server);
    }
    let scale_rows = if args.scale {
        scale(&bin, &work, args)?
    } else {
        Vec::new()
    };
    drop(topology);
    let setup = report::Setup {
        names: args.names,
        seconds: args.seconds,
        repetitions: args.repetitions,
    };
    let dir = root.join("target/bench");
    let markdown = report::write(&dir, &setup, &rows(&results), &scale_rows, &paths)?;
    println!("\n{markdown}");
    eprintln!(
        "bench: report in {}/report.md, with report.json and report.svg",
        dir.display()
    );
    Ok(())
}

/// The names, the query files, and what each name must answer.
struct Workload {
    services: PathBuf,
    /// `name TYPE [E]` lines for kxdpgun: half with EDNS.
    kxdpgun: PathBuf,
    /// `name TYPE` lines for dnsperf.
    dnsperf: PathBuf,
    unbound_data: String,
    knot_zone: PathBuf,
    queries: usize,
    /// A sample of (name, IPv4, IPv6 if any) to check answers with.
    sample: Vec<(String, Ipv4Addr, Option<Ipv6Addr>)>,
    /// Forwarded names (`fwd-N.test.`): the upstream's local-data, the
    /// query files, and a sample.
    upstream_data: String,
    forward_kxdpgun: PathBuf,
    forward_dnsperf: PathBuf,
    forward_sample: Vec<(String, Ipv4Addr, Option<Ipv6Addr>)>,
}

impl Workload {
    fn generate(names: usize, dir: &Path) -> anyhow::Result<Self> {
        let mut services = String::from("zone: mesh\nttl: 60\nservices:\n");
        let mut kxdpgun = String::new();
        let mut dnsperf = String::new();
        let mut unbound_data = String::from(
            "  local-data: 'mesh. 3600 IN SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 30'\n",
        );
        let mut zone = String::from(
            "$ORIGIN mesh.\n$TTL 60\n@ 3600 SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 30\n@ NS ns\nns A 198.18.0.1\n",
        );
        let mut sample = Vec::new();
        for i in 0..names {
            let name = format!("svc-{i}.ns-{}", i % 97);
            let [_, b, c, d] = (i as u32).to_be_bytes();
            let v4 = Ipv4Addr::new(240, b, c, d);
            // Every other service is IPv4-only: half the AAAA queries are NODATA.
            let v6 = (i % 2 == 0)
                .then(|| Ipv6Addr::new(0xfd00, 0xfd00, 0, 0, 0, 0, (i >> 16) as u16, i as u16));
            match v6 {
                Some(v6) => {
                    writeln!(services, "  - name: {name}\n    vips: [{v4}, \"{v6}\"]")?;
                    writeln!(unbound_data, "  local-data: '{name}.mesh. 60 IN AAAA {v6}'")?;
                    writeln!(zone, "{name} AAAA {v6}")?;
                }
                None => writeln!(services, "  - name: {name}\n    vips: [{v4}]")?,
            }
            writeln!(unbound_data, "  local-data: '{name}.mesh. 60 IN A {v4}'")?;
            writeln!(zone, "{name} A {v4}")?;
            // Some clients send mixed case (DNS 0x20).
            let asked = if i % 4 == 3 {
                name.to_uppercase()
            } else {
                name.clone()
            };
            for qtype in ["A", "AAAA"] {
                let edns = if i % 2 == 0 { " E" } else { "" };
                writeln!(kxdpgun, "{asked}.mesh {qtype}{edns}")?;
                writeln!(dnsperf, "{asked}.mesh {qtype}")?;
            }
            if i % (names / 20).max(1) == 0 {
                sample.push((format!("{asked}.mesh"), v4, v6));
            }
        }
        // Names outside the mesh, for the cache-hit targets: A records only.
        let mut upstream_data = String::from(
            "  local-data: 'test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60'\n",
        );
        let (mut forward_kxdpgun, mut forward_dnsperf, mut forward_sample) =
            (String::new(), String::new(), vec![]);
        for i in 0..names {
            let [_, b, c, d] = (i as u32).to_be_bytes();
            let v4 = Ipv4Addr::new(198, 19, c, d.wrapping_add(b));
            let name = format!("fwd-{i}.test");
            writeln!(upstream_data, "  local-data: '{name}. 3600 IN A {v4}'")?;
            let edns = if i % 2 == 0 { " E" } else { "" };
            writeln!(forward_kxdpgun, "{name} A{edns}")?;
            writeln!(forward_dnsperf, "{name} A")?;
            if i % (names / 20).max(1) == 0 {
                forward_sample.push((name, v4, None));
            }
        }
        let path = |name: &str| dir.join(name);
        fs::write(path("forward.kxdpgun"), forward_kxdpgun)?;
        fs::write(path("forward.dnsperf"), forward_dnsperf)?;
        fs::write(path("services.yaml"), services)?;
        fs::write(path("queries.kxdpgun"), kxdpgun)?;
        fs::write(path("queries.dnsperf"), dnsperf)?;
        fs::write(path("mesh.zone"), zone)?;
        Ok(Self {
            services: path("services.yaml"),
            kxdpgun: path("queries.kxdpgun"),
            dnsperf: path("queries.dnsperf"),
            unbound_data,
            knot_zone: path("mesh.zone"),
            queries: 2 * names,
            sample,
            upstream_data,
            forward_kxdpgun: path("forward.kxdpgun"),
            forward_dnsperf: path("forward.dnsperf"),
            forward_sample,
        })
    }
}

/// The two namespaces and the veth pair; removed on drop.
struct Topology;

impl Topology {
    fn create() -> anyhow::Result<Self> {
        Self::remove();
        let ip = |args: &[&str]| cmd::output(Command::new("ip").args(args));
        ip(&["netns", "add", SERVER_NS])?;
        ip(&["netns", "add", CLIENT_NS])?;
        let topology = Topology;
        ip(&[
            "-n", SERVER_NS, "link", "add", SERVER_IF, "type", "veth", "peer", "name", CLIENT_IF,
            "netns", CLIENT_NS,
        ])?;
        for (ns, iface, addr) in [
            (SERVER_NS, SERVER_IF, "198.18.0.1/24"),
            (CLIENT_NS, CLIENT_IF, "198.18.0.2/24"),
        ] {
            ip(&["-n", ns, "addr", "add", addr, "dev", iface])?;
            ip(&["-n", ns, "link", "set", iface, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(topology)
    }

    fn remove() {
        for ns in [SERVER_NS, CLIENT_NS] {
            let _ = Command::new("ip")
                .args(["netns", "delete", ns])
                .stderr(Stdio::null())
                .status();
        }
        let _ = fs::remove_dir_all(PIN_DIR);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        Self::remove();
    }
}

/// kernel.bpf_stats_enabled on for the run (run_time_ns per program),
/// restored on drop.
struct BpfStats(String);

impl BpfStats {
    fn enable() -> anyhow::Result<Self> {
        let path = "/proc/sys/kernel/bpf_stats_enabled";
        let old = fs::read_to_string(path).unwrap_or_else(|_| "0".into());
        fs::write(path, "1").context("enabling kernel.bpf_stats_enabled")?;
        Ok(Self(old))
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = fs::write("/proc/sys/kernel/bpf_stats_enabled", self.0.trim());
    }
}

/// A target's processes, killed on drop.
struct Server {
    children: Vec<Child>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(PIN_DIR);
        // Knot leaves its XDP program attached when it exits; the next
        // target must start from a bare interface.
        clear_xdp(SERVER_NS, SERVER_IF);
    }
}

fn in_server_ns(program: impl AsRef<std::ffi::OsStr>) -> Command {
    // nsenter, not `ip netns exec`: the host's bpffs stays visible.
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{SERVER_NS}"))
        .arg(program);
    command
}

impl Server {
    fn start(target: Target, bin: &Path, work: &Path, workload: &Workload) -> anyhow::Result<Self> {
        if matches!(target, Target::MeshdnsUserspace | Target::Unbound) {
            ensure!(
                xdp_prog_stats()?.is_none(),
                "an XDP program is still attached before {}",
                target.name()
            );
        }
        // Each target's output, stdout and stderr, in the work folder.
        let log = fs::File::create(work.join(format!("{target:?}.log")))?;
        let (out, err): (Stdio, Stdio) = (log.try_clone()?.into(), log.into());
        let mut children = Vec::new();
        if target.forwards() {
            // The upstream both cache targets forward to, on loopback.
            let mut data = String::from("  local-zone: \"test.\" static\n");
            data.push_str(&workload.upstream_data);
            children.push(unbound(
                work,
                "upstream",
                "127.0.0.2@5353",
                "127.0.0.0/8",
                &data,
            )?);
        }
        let child = match target {
            Target::MeshdnsXdp | Target::MeshdnsUserspace | Target::MeshdnsCache => {
                let mode = if target == Target::MeshdnsUserspace {
                    "off"
                } else {
                    "driver"
                };
                let upstream = if target.forwards() {
                    "127.0.0.2:5353"
                } else {
                    "127.0.0.1:54"
                };
                in_server_ns(bin.join("meshdns"))
                    .args(["run", "--iface", SERVER_IF, "--xdp-mode", mode, "--config"])
                    .arg(&workload.services)
                    .args(["--listen", "198.18.0.1:53", "--upstream", upstream])
                    .args(["--pin-dir", PIN_DIR, "--detach-on-exit", "--state-dir"])
                    .arg(work.join("state"))
                    .stdout(out)
                    .stderr(err)
                    .spawn()?
            }
            Target::Unbound => {
                let mut data = String::from("  local-zone: \"mesh.\" static\n");
                data.push_str(&workload.unbound_data);
                unbound(work, "unbound", "198.18.0.1@53", "198.18.0.0/15", &data)?
            }
            Target::UnboundCache => unbound(
                work,
                "forwarder",
                "198.18.0.1@53",
                "198.18.0.0/15",
                // Unbound serves test. itself (RFC 6761) unless told not to.
                "  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n\
                 forward-zone:\n  name: \"test.\"\n  forward-addr: 127.0.0.2@5353\n",
            )?,
            Target::KnotXdp => {
                let dir = work.join("knot");
                fs::create_dir_all(&dir)?;
                let conf = dir.join("knot.conf");
                fs::write(
                    &conf,
                    format!(
                        "server:\n    rundir: \"{dir}\"\n    listen: 198.18.0.1@53\n    udp-workers: 2\n    \
                         tcp-workers: 1\n    background-workers: 1\nxdp:\n    listen: {SERVER_IF}@53\n    udp: on\n\
                         database:\n    storage: \"{dir}\"\nlog:\n  - target: stderr\n    any: warning\n\
                         zone:\n  - domain: mesh\n    file: \"{zone}\"\n    journal-content: none\n    \
                         zonefile-sync: -1\n",
                        dir = dir.display(),
                        zone = workload.knot_zone.display()
                    ),
                )?;
                in_server_ns("knotd")
                    .arg("-c")
                    .arg(&conf)
                    .stdout(out)
                    .stderr(err)
                    .spawn()?
            }
            Target::Floor => helper(bin, SERVER_NS, SERVER_IF, "floor")?,
        };
        children.push(child);
        let server = Server { children };
        if target.forwards() {
            server.wait_ready(&workload.forward_sample[0].0)?;
        } else if target.is_dns() {
            server.wait_ready(&workload.sample[0].0)?;
        } else {
            sleep(Duration::from_secs(1));
        }
        Ok(server)
    }

    /// Waits until the first sample name resolves to an address (over TCP,
    /// which needs no XDP on the client end; dig prints its errors on
    /// stdout too, so only an address counts).
    fn wait_ready(&self, name: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let out = dig(&["+tcp", name, "A", "+short"])?;
            if out
                .lines()
                .any(|l| l.trim().parse::<std::net::IpAddr>().is_ok())
            {
                return Ok(());
            }
            sleep(Duration::from_millis(200));
        }
        bail!("the server did not answer {name} in time")
    }
}

/// Starts Unbound in the server namespace on `interface` (`ADDR@PORT`),
/// with `extra` at the end of its `server:` clause (or after it).
fn unbound(
    work: &Path,
    name: &str,
    interface: &str,
    allow: &str,
    extra: &str,
) -> anyhow::Result<Child> {
    let conf = work.join(format!("{name}.conf"));
    let (addr, port) = interface.split_once('@').unwrap_or((interface, "53"));
    fs::write(
        &conf,
        format!(
            "server:\n  interface: {addr}\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  \
             chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  \
             verbosity: 0\n  num-threads: 2\n  do-ip6: no\n  access-control: {allow} allow\n  \
             module-config: \"iterator\"\n  msg-cache-size: 64m\n  rrset-cache-size: 64m\n{extra}\
             remote-control:\n  control-enable: no\n",
            dir = work.display()
        ),
    )?;
    let log = fs::File::create(work.join(format!("{name}.log")))?;
    Ok(in_server_ns("unbound")
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// `dig @198.18.0.1 ARGS` from the client namespace.
fn dig(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            CLIENT_NS,
            "dig",
            "@198.18.0.1",
            "+tries=1",
            "+time=2",
        ])
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks the sample's A and AAAA answers over UDP (through the fast path,
/// where there is one); any wrong answer fails the bench.
fn check_answers(target: Target, workload: &Workload) -> anyhow::Result<usize> {
    let mut checked = 0;
    let sample = if target.forwards() {
        &workload.forward_sample
    } else {
        &workload.sample
    };
    for (name, v4, v6) in sample {
        let a = dig(&[name, "A", "+short"])?;
        ensure!(
            a.trim() == v4.to_string(),
            "{}: {name} A answered {a:?}, want {v4}",
            target.name()
        );
        let aaaa = dig(&[name, "AAAA", "+short"])?;
        let want = v6.map(|v| v.to_string()).unwrap_or_default();
        ensure!(
            aaaa.trim() == want,
            "{}: {name} AAAA answered {aaaa:?}, want {want:?}",
            target.name()
        );
        checked += 2;
    }
    Ok(checked)
}

/// A target's numbers.
struct Measured {
    target: Target,
    kxdpgun_qps: Vec<f64>,
    reply_ratio: Vec<f64>,
    rcodes: BTreeMap<String, u64>,
    dnsperf_qps: Vec<f64>,
    latency_us: Vec<f64>,
    ns_per_packet: Option<f64>,
    /// p50 and p99 in microseconds at a fixed rate below capacity.
    percentiles: Option<(f64, f64)>,
}

fn measure(
    target: Target,
    server: &Server,
    bin: &Path,
    workload: &Workload,
    args: &Args,
) -> anyhow::Result<Measured> {
    let _ = server;
    let mut m = Measured {
        target,
        kxdpgun_qps: vec![],
        reply_ratio: vec![],
        rcodes: BTreeMap::new(),
        dnsperf_qps: vec![],
        latency_us: vec![],
        ns_per_packet: None,
        percentiles: None,
    };
    // kxdpgun brings its own XDP program to the client end; a warm-up first.
    let (kx_queries, dp_queries) = if target.forwards() {
        (&workload.forward_kxdpgun, &workload.forward_dnsperf)
    } else {
        (&workload.kxdpgun, &workload.dnsperf)
    };
    let stats_before = xdp_prog_stats()?;
    // The warm-up also fills the caches of the cache targets.
    kxdpgun(kx_queries, 1)?;
    let name = target.name();
    for i in 1..=args.repetitions {
        let run = kxdpgun(kx_queries, args.seconds)?;
        eprintln!(
            "bench: {name}: kxdpgun {i}/{}: {:.0} replies/s, {:.0}% replied",
            args.repetitions,
            run.replies_per_second,
            run.reply_ratio * 100.0
        );
        m.kxdpgun_qps.push(run.replies_per_second);
        m.reply_ratio.push(run.reply_ratio);
        for (rcode, n) in run.rcodes {
            *m.rcodes.entry(rcode).or_default() += n;
        }
    }
    let stats_after = xdp_prog_stats()?;
    if let (Some(before), Some(after)) = (stats_before, stats_after)
        && after.1 > before.1
    {
        m.ns_per_packet = Some((after.0 - before.0) as f64 / (after.1 - before.1) as f64);
    }
    if !target.is_dns() {
        return Ok(m);
    }
    // dnsperf and dig use sockets: the client end needs NAPI for XDP_TX.
    clear_xdp(CLIENT_NS, CLIENT_IF);
    let mut pass = helper(bin, CLIENT_NS, CLIENT_IF, "pass")?;
    let result = (|| -> anyhow::Result<()> {
        check_answers(target, workload)?;
        dnsperf(dp_queries, 1)?;
        for i in 1..=args.repetitions {
            let run = dnsperf(dp_queries, args.seconds)?;
            eprintln!(
                "bench: {name}: dnsperf {i}/{}: {:.0} queries/s",
                args.repetitions, run.0
            );
            m.dnsperf_qps.push(run.0);
            m.latency_us.push(run.1);
        }
        eprintln!("bench: {name}: latency at a fixed rate, {} s", args.seconds);
        m.percentiles = Some(latency(bin, dp_queries, args.seconds)?);
        check_answers(target, workload)?;
        Ok(())
    })();
    // SAFETY: kill has no memory preconditions.
    unsafe { libc::kill(pass.id() as libc::pid_t, libc::SIGTERM) };
    let _ = pass.wait();
    result?;
    Ok(m)
}

struct KxdpgunRun {
    replies_per_second: f64,
    reply_ratio: f64,
    rcodes: Vec<(String, u64)>,
}

fn kxdpgun(queries: &Path, seconds: u64) -> anyhow::Result<KxdpgunRun> {
    // kxdpgun brings its own XDP program and can leave it behind.
    clear_xdp(CLIENT_NS, CLIENT_IF);
    let out = cmd::output(
        Command::new("ip")
            .args([
                "netns",
                "exec",
                CLIENT_NS,
                "kxdpgun",
                "-t",
                &seconds.to_string(),
                "-Q",
                "3000000",
                "-i",
            ])
            .arg(queries)
            .args(["-I", CLIENT_IF, SERVER_IP]),
    )?;
    let number_after = |prefix: &str| -> Option<f64> {
        let line = out.lines().find(|l| l.trim_start().starts_with(prefix))?;
        // "total replies:     992700 (330900 pps) (100%)"
        let inner = line.split('(').nth(1)?;
        inner.split_whitespace().next()?.parse().ok()
    };
    let sent = number_after("total queries:").context("kxdpgun printed no total")?;
    let replies = number_after("total replies:").unwrap_or(0.0);
    let rcodes = out
        .lines()
        .filter_map(|l| l.trim().strip_prefix("responded "))
        .filter_map(|l| {
            let (rcode, n) = l.split_once(':')?;
            Some((rcode.to_string(), n.trim().parse().ok()?))
        })
        .collect();
    Ok(KxdpgunRun {
        replies_per_second: replies,
        reply_ratio: if sent > 0.0 { replies / sent } else { 0.0 },
        rcodes,
    })
}

/// One dnsperf run: queries per second and mean latency in microseconds.
fn dnsperf(queries: &Path, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let out = cmd::output(
        Command::new("ip")
            .args(["netns", "exec", CLIENT_NS, "dnsperf", "-s", SERVER_IP, "-d"])
            .arg(queries)
            .args(["-l", &seconds.to_string(), "-c", "8", "-Q", "1000000"]),
    )?;
    let field = |prefix: &str| -> Option<f64> {
        let line = out.lines().find(|l| l.trim_start().starts_with(prefix))?;
        line.split(':')
            .nth(1)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let qps = field("Queries per second").context("dnsperf printed no rate")?;
    let latency = field("Average Latency (s)").unwrap_or(0.0) * 1e6;
    Ok((qps, latency))
}

/// Detaches whatever XDP program a tool left on an interface.
fn clear_xdp(netns: &str, iface: &str) {
    let _ = Command::new("ip")
        .args(["-n", netns, "link", "set", "dev", iface, "xdp", "off"])
        .stderr(Stdio::null())
        .status();
}

/// Starts `meshdns-lab-xdp` with one of the object's helper programs and
/// waits until it says the program is attached.
fn helper(bin: &Path, netns: &str, iface: &str, program: &str) -> anyhow::Result<Child> {
    use std::io::BufRead as _;
    let mut child = Command::new(bin.join("meshdns-lab-xdp"))
        .args(["--netns", netns, "--iface", iface, "--program", program])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    if !line.contains("attached") {
        let _ = child.wait();
        bail!("meshdns-lab-xdp could not attach {program} to {iface}");
    }
    Ok(child)
}

/// Each path through the XDP program, timed by `meshdns-xdp-cost` over
/// `runs` single runs (which also checks each path's action).
fn xdp_paths(bin: &Path, runs: usize) -> anyhow::Result<Vec<report::PathCost>> {
    let out = cmd::output(
        Command::new(bin.join("meshdns-xdp-cost")).args(["--runs", &runs.to_string()]),
    )?;
    out.lines()
        .map(|line| {
            // path="A, answered" action=TX ns=731
            let (path, rest) = line
                .strip_prefix("path=\"")
                .and_then(|l| l.split_once("\" "))
                .with_context(|| format!("meshdns-xdp-cost printed {line:?}"))?;
            let field = |key: &str| {
                rest.split_whitespace()
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .with_context(|| format!("no {key} in {line:?}"))
            };
            Ok(report::PathCost {
                path: path.to_string(),
                action: field("action")?.to_string(),
                ns: field("ns")?.parse()?,
            })
        })
        .collect()
}

/// Query rate of the latency probe: below every target's capacity here, so
/// the percentiles show service time, not queueing.
const PROBE_RATE: u32 = 20_000;

/// p50 and p99 round trips in microseconds at `PROBE_RATE` (dnsperf 2.10
/// reports only a mean, and only at saturation).
fn latency(bin: &Path, queries: &Path, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let out = cmd::output(
        Command::new(bin.join("meshdns-latency"))
            .args([
                "--netns",
                CLIENT_NS,
                "--server",
                "198.18.0.1:53",
                "--queries",
            ])
            .arg(queries)
            .args([
                "--rate",
                &PROBE_RATE.to_string(),
                "--seconds",
                &seconds.to_string(),
            ]),
    )?;
    let field = |key: &str| -> Option<f64> {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
            .parse()
            .ok()
    };
    let (sent, answered) = (
        field("sent").unwrap_or(0.0),
        field("answered").unwrap_or(0.0),
    );
    ensure!(
        answered >= 0.99 * sent,
        "the latency probe lost {:.1}% of its queries at {PROBE_RATE} qps: {out}",
        100.0 * (1.0 - answered / sent.max(1.0))
    );
    Ok((
        field("p50_us").unwrap_or(0.0),
        field("p99_us").unwrap_or(0.0),
    ))
}

/// (run_time_ns, run_cnt) of the XDP program on the server end, if any.
fn xdp_prog_stats() -> anyhow::Result<Option<(u64, u64)>> {
    let link = cmd::output(
        Command::new("ip").args(["-n", SERVER_NS, "-j", "-d", "link", "show", SERVER_IF]),
    )?;
    let Some(id) = json_number(&link, "\"id\":") else {
        return Ok(None);
    };
    let prog =
        cmd::output(Command::new("bpftool").args(["prog", "show", "id", &id.to_string(), "-j"]))?;
    // bpftool leaves the fields out until the program has run.
    Ok(Some((
        json_number(&prog, "\"run_time_ns\":").unwrap_or(0),
        json_number(&prog, "\"run_cnt\":").unwrap_or(0),
    )))
}

/// The first number after `key` in a JSON text (enough for ip and bpftool).
fn json_number(json: &str, key: &str) -> Option<u64> {
    let rest = &json[json.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The bench's numbers as the report wants them.
fn rows(results: &[Measured]) -> Vec<report::Row> {
    results
        .iter()
        .map(|m| report::Row {
            name: m.target.name(),
            cache: m.target.forwards(),
            kxdpgun: m.kxdpgun_qps.clone(),
            replied: median(&m.reply_ratio),
            ns_per_packet: m.ns_per_packet,
            dnsperf: m.dnsperf_qps.clone(),
            mean_latency_us: median(&m.latency_us),
            p50_p99_us: m.percentiles,
            rcodes: m.rcodes.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        })
        .collect()
}

/// The fast path's rate and the agent's load time and memory at 1k, 100k and 1M names.
fn scale(bin: &Path, work: &Path, args: &Args) -> anyhow::Result<Vec<report::ScaleRow>> {
    let mut rows = Vec::new();
    for names in [1_000, 100_000, 1_000_000] {
        eprintln!("bench: scale, {names} names ...");
        let dir = work.join(format!("scale-{names}"));
        fs::create_dir_all(&dir)?;
        let workload = Workload::generate(names, &dir)?;
        let start = Instant::now();
        let server = Server::start(Target::MeshdnsXdp, bin, &dir, &workload)?;
        let loaded = start.elapsed();
        kxdpgun(&workload.kxdpgun, 1)?;
        let run = kxdpgun(&workload.kxdpgun, args.seconds)?;
        let pid = server.children[0].id();
        let rss = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:").map(|v| v.trim().to_string()))
            })
            .unwrap_or_default();
        rows.push(report::ScaleRow {
            names,
            replies_per_second: run.replies_per_second,
            load_seconds: loaded.as_secs_f64(),
            rss,
        });
        drop(server);
    }
    Ok(rows)
}

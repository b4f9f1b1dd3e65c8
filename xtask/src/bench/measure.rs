//! What the bench measures: each target's numbers under every tool, the
//! fast path at scale, and the report's rows from them.

use std::{collections::BTreeMap, fs, path::Path, time::Instant};

use meshdns_topology::{XdpHelper, clear_xdp};

use super::{Args, CLIENT_IF, Network, Target, targets::Server, tools, workload::Workload};
use crate::report::{self, median};

/// A target's numbers.
pub struct Measured {
    target: Target,
    kxdpgun_qps: Vec<f64>,
    reply_ratio: Vec<f64>,
    rcodes: BTreeMap<String, u64>,
    dnsperf_qps: Vec<f64>,
    latency_us: Vec<f64>,
    ns_per_packet: Option<f64>,
    /// Round trips at a fixed rate.
    probe: Option<report::Probe>,
}

pub fn measure(
    target: Target,
    server: &Server<'_>,
    bin: &Path,
    workload: &Workload,
    args: &Args,
) -> anyhow::Result<Measured> {
    let network = server.network;
    let mut m = Measured {
        target,
        kxdpgun_qps: vec![],
        reply_ratio: vec![],
        rcodes: BTreeMap::new(),
        dnsperf_qps: vec![],
        latency_us: vec![],
        ns_per_packet: None,
        probe: None,
    };
    // kxdpgun brings its own XDP program to the client end; a warm-up first.
    let (kx_queries, dp_queries) = if target.forwards() {
        (&workload.forward_kxdpgun, &workload.forward_dnsperf)
    } else {
        (&workload.kxdpgun, &workload.dnsperf)
    };
    // The resolver answers (which is what `Server::start` waits for)
    // before the fast path is attached: the program's counts start once
    // /readyz says it is.
    if matches!(target, Target::MeshdnsXdp | Target::MeshdnsCache) {
        wait_readyz(&network.server)?;
    }
    let stats_before = tools::xdp_prog_stats(network)?;
    // The warm-up also fills the caches of the cache targets.
    tools::kxdpgun(network, kx_queries, 1)?;
    let name = target.name();
    for i in 1..=args.repetitions {
        let run = tools::kxdpgun(network, kx_queries, args.seconds)?;
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
    let stats_after = tools::xdp_prog_stats(network)?;
    if let (Some(before), Some(after)) = (stats_before, stats_after)
        && after.1 > before.1
    {
        m.ns_per_packet = Some((after.0 - before.0) as f64 / (after.1 - before.1) as f64);
    }
    if !target.is_dns() {
        return Ok(m);
    }
    // dnsperf and dig use sockets: the client end needs NAPI for XDP_TX.
    clear_xdp(&network.client, CLIENT_IF);
    // Detached when this returns, on an error too.
    let _pass = XdpHelper::attach(bin, &network.client, CLIENT_IF, "pass")?;
    tools::check_answers(network, target, workload)?;
    tools::dnsperf(network, dp_queries, 1)?;
    for i in 1..=args.repetitions {
        let run = tools::dnsperf(network, dp_queries, args.seconds)?;
        eprintln!(
            "bench: {name}: dnsperf {i}/{}: {:.0} queries/s",
            args.repetitions, run.0
        );
        m.dnsperf_qps.push(run.0);
        m.latency_us.push(run.1);
    }
    eprintln!("bench: {name}: latency at a fixed rate, {} s", args.seconds);
    m.probe = Some(tools::latency(network, bin, dp_queries, args.seconds)?);
    tools::check_answers(network, target, workload)?;
    Ok(m)
}

/// The bench's numbers as the report wants them.
pub fn rows(results: &[Measured]) -> Vec<report::Row> {
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
            probe: m.probe,
            rcodes: m.rcodes.iter().map(|(r, n)| (r.clone(), *n)).collect(),
        })
        .collect()
}

/// The fast path's rate and the agent's load time and memory at 1k, 100k and 1M names.
pub fn scale(
    network: &Network,
    bin: &Path,
    work: &Path,
    args: &Args,
) -> anyhow::Result<Vec<report::ScaleRow>> {
    let mut rows = Vec::new();
    for (names, format) in [
        (1_000, "YAML"),
        (100_000, "YAML"),
        (1_000_000, "YAML"),
        (1_000_000, "JSON"),
    ] {
        eprintln!("bench: scale, {names} names from {format} ...");
        let dir = work.join(format!("scale-{names}-{format}"));
        fs::create_dir_all(&dir)?;
        let mut workload = Workload::generate(names, &dir)?;
        if format == "JSON" {
            workload.services = workload.services_json.clone();
        }
        let start = Instant::now();
        let server = Server::start(Target::MeshdnsXdp, network, bin, &dir, &workload)?;
        let loaded = start.elapsed();
        wait_readyz(&network.server)?;
        let ready = start.elapsed();
        tools::kxdpgun(network, &workload.kxdpgun, 1)?;
        let run = tools::kxdpgun(network, &workload.kxdpgun, args.seconds)?;
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
            format,
            replies_per_second: run.replies_per_second,
            load_seconds: loaded.as_secs_f64(),
            ready_seconds: ready.as_secs_f64(),
            rss,
        });
        drop(server);
    }
    Ok(rows)
}

/// Waits until the agent's `/readyz` (on its default metrics address, in
/// `netns`) says 200: the fast path attached and its table filled, which
/// at a million names ends after the resolver's first answer.
pub(super) fn wait_readyz(netns: &meshdns_topology::Netns) -> anyhow::Result<()> {
    let deadline = Instant::now() + std::time::Duration::from_secs(120);
    while Instant::now() < deadline {
        let status = netns.http_get("127.0.0.1:9153", "/readyz");
        if status.is_ok_and(|(line, _)| line.contains(" 200 ")) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    anyhow::bail!("the agent's /readyz did not say 200 in time")
}

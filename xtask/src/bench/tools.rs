//! The bench's tools, each run and its output parsed: kxdpgun, dnsperf,
//! the latency probe, the XDP program's cost per path, bpf_stats, and dig
//! for checking answers.

use std::{
    fs,
    net::{Ipv4Addr, Ipv6Addr},
    path::Path,
    process::Command,
};

use anyhow::{Context as _, ensure};
use meshdns_topology::{Netns, clear_xdp};

use super::{CLIENT_IF, Network, SERVER_IF, SERVER_IP, Target, workload::Workload};
use crate::{cmd, report};

/// kernel.bpf_stats_enabled on for the run (run_time_ns per program),
/// restored on drop.
pub struct BpfStats(String);

impl BpfStats {
    pub fn enable() -> anyhow::Result<Self> {
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

/// `dig @198.18.0.1 ARGS` from the client namespace.
pub fn dig(network: &Network, args: &[&str]) -> anyhow::Result<String> {
    dig_from(&network.client, SERVER_IP, args)
}

/// `dig @SERVER ARGS` from `client`.
pub fn dig_from(client: &Netns, server: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = client
        .command("dig")
        .arg(format!("@{server}"))
        .args(["+tries=2", "+time=2"])
        .args(args)
        .output()?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks the sample's A and AAAA answers over UDP (through the fast path,
/// where there is one); any wrong answer fails the bench.
pub fn check_answers(
    network: &Network,
    target: Target,
    workload: &Workload,
) -> anyhow::Result<usize> {
    let sample = if target.forwards() {
        &workload.forward_sample
    } else {
        &workload.sample
    };
    check_sample(&network.client, SERVER_IP, target.name(), sample)
}

/// Checks the A and AAAA answers of `sample` from `client` to `server`;
/// any wrong answer fails the bench.
pub fn check_sample(
    client: &Netns,
    server: &str,
    target: &str,
    sample: &[(String, Ipv4Addr, Option<Ipv6Addr>)],
) -> anyhow::Result<usize> {
    let mut checked = 0;
    for (name, v4, v6) in sample {
        let a = dig_from(client, server, &[name, "A", "+short"])?;
        ensure!(
            a.trim() == v4.to_string(),
            "{target}: {name} A answered {a:?}, want {v4}"
        );
        let aaaa = dig_from(client, server, &[name, "AAAA", "+short"])?;
        let want = v6.map(|v| v.to_string()).unwrap_or_default();
        ensure!(
            aaaa.trim() == want,
            "{target}: {name} AAAA answered {aaaa:?}, want {want:?}"
        );
        checked += 2;
    }
    Ok(checked)
}

/// One kxdpgun run: replies per second, the share of queries replied to,
/// and the replies per rcode.
pub struct KxdpgunRun {
    pub replies_per_second: f64,
    pub reply_ratio: f64,
    pub rcodes: Vec<(String, u64)>,
}

pub fn kxdpgun(network: &Network, queries: &Path, seconds: u64) -> anyhow::Result<KxdpgunRun> {
    // kxdpgun brings its own XDP program and can leave it behind.
    clear_xdp(&network.client, CLIENT_IF);
    let out = cmd::output(
        network
            .client
            .command("kxdpgun")
            .args(["-t", &seconds.to_string(), "-Q", "3000000", "-i"])
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
pub fn dnsperf(network: &Network, queries: &Path, seconds: u64) -> anyhow::Result<(f64, f64)> {
    dnsperf_from(&network.client, SERVER_IP, queries, seconds)
}

/// [`dnsperf`] from `client` to `server`.
pub fn dnsperf_from(
    client: &Netns,
    server: &str,
    queries: &Path,
    seconds: u64,
) -> anyhow::Result<(f64, f64)> {
    let out = cmd::output(
        client
            .command("dnsperf")
            .args(["-s", server, "-d"])
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

/// Each path through the XDP program, timed by `meshdns-xdp-cost` over
/// `runs` single runs (which also checks each path's action).
pub fn xdp_paths(bin: &Path, runs: usize) -> anyhow::Result<Vec<report::PathCost>> {
    let out = cmd::output(
        Command::new(bin.join("meshdns-xdp-cost")).args(["--runs", &runs.to_string()]),
    )?;
    out.lines()
        .map(|line| {
            // path="A, answered" action=TX ns=731
            // path="MX, passed: another type" action=PASS ns=231 ns_in_loop=12
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
                ns_in_loop: field("ns_in_loop").ok().map(str::parse).transpose()?,
            })
        })
        .collect()
}

/// Query rate of the latency probe: meant to be below every target's
/// capacity, so the percentiles show service time, not queueing. On a slower
/// machine a target may lose some of it; the report shows how many.
const PROBE_RATE: u32 = 20_000;

/// p50 and p99 round trips at `PROBE_RATE`, and the share lost (dnsperf 2.10
/// reports only a mean, and only at saturation).
pub fn latency(
    network: &Network,
    bin: &Path,
    queries: &Path,
    seconds: u64,
) -> anyhow::Result<report::Probe> {
    let out = cmd::output(
        Command::new(bin.join("meshdns-latency"))
            .args(["--netns", &network.client.name])
            .args(["--server", "198.18.0.1:53", "--queries"])
            .arg(queries)
            .args([
                "--rate",
                &PROBE_RATE.to_string(),
                "--seconds",
                &seconds.to_string(),
            ]),
    )?;
    let field = |key: &str| -> anyhow::Result<f64> {
        out.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("meshdns-latency printed no {key}: {out:?}"))
    };
    let (sent, answered) = (field("sent")?, field("answered")?);
    // No answer at all is a broken target, not a slow one.
    ensure!(
        answered > 0.0,
        "the latency probe got no answer to {sent} queries: {out}"
    );
    Ok(report::Probe {
        p50_us: field("p50_us")?,
        p99_us: field("p99_us")?,
        lost: 1.0 - answered / sent,
    })
}

/// (run_time_ns, run_cnt) of the XDP program on the server end, if any.
pub fn xdp_prog_stats(network: &Network) -> anyhow::Result<Option<(u64, u64)>> {
    let link = network
        .server
        .ip(&["-j", "-d", "link", "show", SERVER_IF])?;
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

//! `meshdns-xdp-cost [--runs N]`: what each path through the XDP program
//! costs in the kernel, measured with BPF_PROG_TEST_RUN on the compiled
//! object: answers (A, AAAA, a long name, NODATA, search expansions) and
//! passes (a name not in the table, names outside the zone, which walk the
//! search patterns, another type, a client or destination out of scope),
//! with the benchmark's floor program for reference. The scope is a routed
//! node's (see `node_scope`), with no rate limit; the paths marked `scope:
//! any` run again without its checks, which is what they cost, and those
//! marked `rate limit` with one: under it, and over it (dropped, and
//! truncated). Prints one line per path: `path="..." action=TX ns=832`,
//! and for a pass or a drop also the mean of a run in a loop of them
//! (`ns_in_loop=`), which tells them apart to the nanosecond.
//!
//! Each number is the median of N single runs (BPF_PROG_TEST_RUN's repeat
//! would rerun an answer on its own reply). A single run includes the test
//! run's own overhead, which the floor's line shows: compare paths with
//! each other and with the floor, not with packets on a wire. `cargo xtask
//! bench` prints these next to kxdpgun's rates, so that a change to the
//! program shows where it gained or lost.

use aya::programs::{TestRun as _, TestRunOptions, Xdp};
use clap::Parser;
use meshdns::{config::rate_limit::RateLimitSettings, fastpath::Scope};
use meshdns_common::{FLOOR_PROGRAM, InterfaceMac};
use meshdns_tests::{
    fixtures,
    frame::{self, Opt, Query, TYPE_A, TYPE_AAAA, TYPE_MX},
    xdp::{XDP_DROP, XDP_PASS, XDP_TX},
};

#[derive(Parser)]
struct Args {
    /// Single runs per path; the median is reported.
    #[arg(long, default_value_t = 20_000)]
    runs: usize,
    /// Instead of measuring, run the one path whose name contains this
    /// text `--runs` times, as a load for `perf record -a -g` (a repeated
    /// run, live frames or not, would rerun an answer on its own reply).
    #[arg(long)]
    profile: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // The fixtures' services: one of each answer shape; and a pod's search
    // expansions, so that names outside the zone walk their patterns.
    let (mut fast_path, _) = fixtures::loaded_fast_path(&fixtures::services(
        "search:\n  suffixes: [\"*.svc.cluster.local\", svc.cluster.local, cluster.local]\n  answer: cname\n",
        "",
    ));
    list_loopback(&mut fast_path)?;
    let scope = node_scope();
    fast_path.set_scope(&scope)?;
    for (name, info) in [
        ("program", fast_path.program()?.info()?),
        ("search program", fast_path.search_program()?.info()?),
    ] {
        eprintln!(
            "{name}: {} instructions; the verifier processed {}",
            info.size_translated().unwrap_or(0) / 8,
            info.verified_instruction_count().unwrap_or(0)
        );
    }
    // What a resolver sends: EDNS(0) with a cookie, as dig does.
    let query = |name: &'static str, qtype| Query::new(name, qtype).with_opt(Opt::dig()).frame();
    let any = Scope::any();
    let paths = [
        ("A, answered", query("redis.mesh", TYPE_A), XDP_TX),
        ("AAAA, answered", query("redis.mesh", TYPE_AAAA), XDP_TX),
        (
            "A, answered, 38-byte name",
            query("echo-server.echo-example.svc.1010.mesh", TYPE_A),
            XDP_TX,
        ),
        ("AAAA, NODATA", query("web.mesh", TYPE_AAAA), XDP_TX),
        (
            "A, passed: not in the table",
            query("unknown.mesh", TYPE_A),
            XDP_PASS,
        ),
        (
            "A, passed: not in the zone",
            query("www.example.com", TYPE_A),
            XDP_PASS,
        ),
        (
            "A, passed: not in the zone, 63-byte name",
            query(
                "a-rather-long-hostname.some-service.namespace.svc.cluster.local",
                TYPE_A,
            ),
            XDP_PASS,
        ),
        (
            "A, search expansion: CNAME and A",
            query("redis.mesh.default.svc.cluster.local", TYPE_A),
            XDP_TX,
        ),
        (
            "AAAA, search expansion: CNAME and SOA",
            query("web.mesh.default.svc.cluster.local", TYPE_AAAA),
            XDP_TX,
        ),
        (
            "A, passed: under a suffix, no mesh name",
            query("redis.default.svc.cluster.local", TYPE_A),
            XDP_PASS,
        ),
        (
            "MX, passed: another type",
            query("redis.mesh", TYPE_MX),
            XDP_PASS,
        ),
        (
            "A, passed: a client outside allow_from",
            from_outside(query("redis.mesh", TYPE_A)),
            XDP_PASS,
        ),
    ];
    // Run again with no scope checks: the difference is what they cost.
    let unscoped = [
        (
            "A, answered (scope: any)",
            query("redis.mesh", TYPE_A),
            XDP_TX,
        ),
        (
            "A, passed: not in the table (scope: any)",
            query("unknown.mesh", TYPE_A),
            XDP_PASS,
        ),
    ];
    // The node's scope with a rate limit: one it stays under (a million
    // answers a second, more than the test runs reach), and one it is over
    // from the second answer on, whose answers are all dropped, or all
    // truncated.
    let limited = |responses_per_second, slip| Scope {
        rate_limit: Some(RateLimitSettings {
            responses_per_second,
            window_seconds: 15,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }),
        ..node_scope()
    };
    let (under, dropping, truncating) = (limited(1_000_000, 2), limited(1, 0), limited(1, 1));
    let rate_limited = [
        (
            "A, answered (rate limit: under it)",
            query("redis.mesh", TYPE_A),
            XDP_TX,
            &under,
        ),
        (
            "A, dropped (rate limit: over it)",
            query("redis.mesh", TYPE_A),
            XDP_DROP,
            &dropping,
        ),
        (
            "A, truncated (rate limit: over it, slips)",
            query("redis.mesh", TYPE_A),
            XDP_TX,
            &truncating,
        ),
    ];
    if let Some(wanted) = &args.profile {
        let (path, frame, _) = paths
            .iter()
            .find(|(path, _, _)| path.contains(wanted.as_str()))
            .ok_or_else(|| anyhow::anyhow!("no path named like {wanted:?}"))?;
        let program = fast_path.program()?;
        for _ in 0..args.runs {
            program.test_run(TestRunOptions {
                data_in: Some(frame),
                ..TestRunOptions::default()
            })?;
        }
        let counters = fast_path.counters()?;
        let seen: Vec<String> = meshdns_common::Counter::ALL
            .iter()
            .filter(|c| counters.get(**c) > 0)
            .map(|c| format!("{}={}", c.name(), counters.get(*c)))
            .collect();
        println!("path={path:?} profiled: {}", seen.join(" "));
        return Ok(());
    }
    let runs = paths
        .iter()
        .map(|(path, frame, expected)| (path, frame, expected, &scope))
        .chain(
            unscoped
                .iter()
                .map(|(path, frame, expected)| (path, frame, expected, &any)),
        )
        .chain(
            rate_limited
                .iter()
                .map(|(path, frame, expected, scope)| (path, frame, expected, *scope)),
        );
    for (path, frame, expected, scope) in runs {
        fast_path.set_scope(scope)?;
        // Over the limit from the second answer on: the first, outside
        // the measurement, takes the burst.
        fast_path.test_run(frame)?;
        let (action, ns) = cost(fast_path.program()?, frame, args.runs)?;
        anyhow::ensure!(
            action == *expected,
            "{path}: action {action}, expected {expected}"
        );
        if action == XDP_TX {
            println!("path={path:?} action=TX ns={ns}");
        } else {
            let in_loop = cost_in_loop(fast_path.program()?, frame, args.runs, action)?;
            let action = if action == XDP_PASS { "PASS" } else { "DROP" };
            println!("path={path:?} action={action} ns={ns} ns_in_loop={in_loop}");
        }
    }
    let floor: &mut Xdp = fast_path
        .ebpf_mut()
        .program_mut(FLOOR_PROGRAM)
        .ok_or_else(|| anyhow::anyhow!("no {FLOOR_PROGRAM} program"))?
        .try_into()?;
    floor.load()?;
    let (_, ns) = cost(floor, &query("redis.mesh", TYPE_A), args.runs)?;
    println!("path=\"floor (swap and send back)\" action=TX ns={ns}");
    Ok(())
}

/// The scope of a routed node of 110 pods (kubelet's default most): its
/// clients are loopback, the node's subnets and a /32 or /128 route per
/// pod, the frames' client among them; its destinations the node's
/// addresses and the cluster DNS Service's.
fn node_scope() -> Scope {
    let v4 = (2..112u8).map(|i| format!("198.18.0.{i}/32"));
    let v6 = (2..112u16).map(|i| format!("2001:db8::{i:x}/128"));
    let clients = ["127.0.0.0/8", "::1/128", "198.18.0.0/24", "2001:db8::/64"]
        .into_iter()
        .map(String::from)
        .chain(v4)
        .chain(v6);
    let destinations = ["198.18.0.1/32", "2001:db8::1/128", "198.19.0.10/32"];
    Scope {
        clients: Some(clients.map(|c| c.parse().expect("a CIDR")).collect()),
        destinations: Some(
            destinations
                .iter()
                .map(|c| c.parse().expect("a CIDR"))
                .collect(),
        ),
        rate_limit: None,
    }
}

/// `frame`, from a client outside `node_scope`'s.
fn from_outside(frame: Vec<u8>) -> Vec<u8> {
    frame::readdressed(
        &frame,
        frame::Address::Source,
        "203.0.113.9".parse().expect("an address"),
    )
}

/// Lists the test run's interface (the loopback) with the frames' MAC, so
/// that every path pays the interface check an attached interface's
/// packets pay.
fn list_loopback(fast_path: &mut meshdns::fastpath::FastPath) -> anyhow::Result<()> {
    let map = fast_path
        .ebpf_mut()
        .map_mut(meshdns_common::INTERFACES_MAP)
        .ok_or_else(|| anyhow::anyhow!("no interfaces map"))?;
    let mut interfaces: aya::maps::HashMap<_, u32, InterfaceMac> =
        aya::maps::HashMap::try_from(map)?;
    let loopback = meshdns::netif::index("lo").ok_or_else(|| anyhow::anyhow!("no lo"))?;
    interfaces.insert(loopback, InterfaceMac::new(frame::SERVER_MAC), 0)?;
    Ok(())
}

/// The mean duration of a run of a pass or a drop (`action`) among
/// `runs` in one test run (BPF_PROG_TEST_RUN's repeat): either leaves the
/// frame as it was, so each repetition takes the same path, and none pays
/// the test run's own overhead or the clock's granularity, which single
/// runs do. Not for answers: one would be rerun on its own reply.
fn cost_in_loop(program: &mut Xdp, frame: &[u8], runs: usize, action: u32) -> anyhow::Result<u128> {
    let run = program.test_run(TestRunOptions {
        data_in: Some(frame),
        repeat: u32::try_from(runs.max(1))?,
        ..TestRunOptions::default()
    })?;
    anyhow::ensure!(run.return_value == action, "not the same action in a loop");
    Ok(run.duration.as_nanos())
}

/// The action, and the median duration of `runs` single runs on `frame`.
fn cost(program: &mut Xdp, frame: &[u8], runs: usize) -> anyhow::Result<(u32, u128)> {
    let mut output = vec![0u8; 4096];
    let mut durations = Vec::with_capacity(runs);
    let mut action = 0;
    for _ in 0..runs.max(1) {
        let run = program.test_run(TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut output),
            ..TestRunOptions::default()
        })?;
        action = run.return_value;
        durations.push(run.duration.as_nanos());
    }
    durations.sort_unstable();
    Ok((action, durations[durations.len() / 2]))
}

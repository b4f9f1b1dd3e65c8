//! The bench's report: a markdown document (printed, and written to
//! `target/bench/report.md`), the raw numbers as JSON, and a bar chart of
//! replies per second per target as SVG, all in `target/bench/`.

use std::{fmt::Write as _, fs, path::Path};

use serde_json::json;

/// One target's numbers, as measured.
pub struct Row {
    pub name: &'static str,
    /// A cache-hit target (forwarded names), reported apart.
    pub cache: bool,
    pub kxdpgun: Vec<f64>,
    pub replied: f64,
    pub ns_per_packet: Option<f64>,
    pub dnsperf: Vec<f64>,
    pub mean_latency_us: f64,
    pub probe: Option<Probe>,
    pub rcodes: Vec<(String, u64)>,
}

/// The latency probe's result: round trips at a fixed rate.
#[derive(Clone, Copy)]
pub struct Probe {
    pub p50_us: f64,
    pub p99_us: f64,
    /// The share of its queries that got no answer. Near a target's
    /// capacity (a slower machine) queries are lost and the percentiles
    /// include queueing; the report says so rather than failing the bench.
    pub lost: f64,
}

impl Probe {
    /// The report's cell: `p50 / p99 µs`, and the loss when there was any.
    fn cell(probe: Option<&Probe>) -> String {
        match probe {
            None => "-".into(),
            Some(p) if p.lost >= 0.001 => format!(
                "{:.0} / {:.0} µs, {:.1}% lost",
                p.p50_us,
                p.p99_us,
                100.0 * p.lost
            ),
            Some(p) => format!("{:.0} / {:.0} µs", p.p50_us, p.p99_us),
        }
    }
}

/// The fast path at one table size.
pub struct ScaleRow {
    pub names: usize,
    /// The services file's: YAML, or the same as a JSON document.
    pub format: &'static str,
    pub replies_per_second: f64,
    /// From the agent's start to its first answer (the resolver's).
    pub load_seconds: f64,
    /// From the agent's start to `/readyz`: the kernel's table full too.
    pub ready_seconds: f64,
    pub rss: String,
}

/// One target of the pod bench: dnsperf from a pod of a routed CNI.
pub struct PodRow {
    pub name: &'static str,
    pub dnsperf: Vec<f64>,
    pub mean_latency_us: Vec<f64>,
}

/// One path through the XDP program, as `meshdns-xdp-cost` measured it.
pub struct PathCost {
    pub path: String,
    pub action: String,
    pub ns: f64,
    /// A pass's mean in a loop of them, without the test run's overhead.
    pub ns_in_loop: Option<f64>,
}

pub struct Setup {
    pub names: usize,
    pub seconds: u64,
    pub repetitions: usize,
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

fn range(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.is_empty() {
        "-".into()
    } else {
        format!("{min:.0}–{max:.0}")
    }
}

/// Kernel, CPU and cores of this machine.
fn machine() -> String {
    let kernel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cpu = fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
                .map(str::trim)
                .map(String::from)
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("Linux {}, {cpu}, {cores} cores", kernel.trim())
}

/// Writes report.md, report.json and report.svg to `dir` and returns the markdown.
pub fn write(
    dir: &Path,
    setup: &Setup,
    rows: &[Row],
    scale: &[ScaleRow],
    pods: &[PodRow],
    paths: &[PathCost],
) -> anyhow::Result<String> {
    fs::create_dir_all(dir)?;
    let base = rows
        .iter()
        .find(|r| r.name.starts_with("meshdns XDP"))
        .map_or(1.0, |r| median(&r.kxdpgun));
    let mut md = String::new();
    writeln!(md, "# meshdns bench")?;
    writeln!(md)?;
    writeln!(
        md,
        "{} names (half IPv4-only), {} s per run, {} runs per tool; {}. Medians, with the range of the runs.",
        setup.names,
        setup.seconds,
        setup.repetitions,
        machine()
    )?;
    writeln!(md)?;
    writeln!(
        md,
        "| target | kxdpgun replies/s | range | vs meshdns XDP | replied | XDP ns/packet | dnsperf qps | mean latency, saturated | p50 / p99 at 20k qps |"
    )?;
    writeln!(md, "|---|--:|--:|--:|--:|--:|--:|--:|--:|")?;
    for row in rows.iter().filter(|r| !r.cache) {
        let kx = median(&row.kxdpgun);
        writeln!(
            md,
            "| {} | {:.0} | {} | {:.2}x | {:.1}% | {} | {} | {} | {} |",
            row.name,
            kx,
            range(&row.kxdpgun),
            kx / base,
            100.0 * row.replied,
            row.ns_per_packet.map_or("-".into(), |n| format!("{n:.0}")),
            if row.dnsperf.is_empty() {
                "-".into()
            } else {
                format!("{:.0}", median(&row.dnsperf))
            },
            if row.dnsperf.is_empty() {
                "-".into()
            } else {
                format!("{:.0} µs", row.mean_latency_us)
            },
            Probe::cell(row.probe.as_ref()),
        )?;
    }
    let cache: Vec<&Row> = rows.iter().filter(|r| r.cache).collect();
    if let [ours, theirs] = cache.as_slice() {
        writeln!(md)?;
        writeln!(
            md,
            "Cache hits: {} forwarded names, answered from each server's cache.",
            setup.names
        )?;
        writeln!(md)?;
        writeln!(
            md,
            "| target | kxdpgun replies/s | replied | XDP ns/packet | dnsperf qps | p50 / p99 at 20k qps |"
        )?;
        writeln!(md, "|---|--:|--:|--:|--:|--:|")?;
        for row in [ours, theirs] {
            writeln!(
                md,
                "| {} | {:.0} | {:.1}% | {} | {:.0} | {} |",
                row.name,
                median(&row.kxdpgun),
                100.0 * row.replied,
                row.ns_per_packet.map_or("-".into(), |n| format!("{n:.0}")),
                median(&row.dnsperf),
                Probe::cell(row.probe.as_ref()),
            )?;
        }
        writeln!(
            md,
            "| meshdns / Unbound | {:.2}x | | | {:.2}x | |",
            median(&ours.kxdpgun) / median(&theirs.kxdpgun),
            median(&ours.dnsperf) / median(&theirs.dnsperf)
        )?;
    }
    if let Some(ours) = pods.first() {
        let base = median(&ours.dnsperf);
        writeln!(md)?;
        writeln!(
            md,
            "From a pod of a routed CNI (a /32, a link-local gateway answered by proxy ARP), \
             to the cluster DNS address, through the pod's host-side veth (dnsperf, the same names):"
        )?;
        writeln!(md)?;
        writeln!(
            md,
            "| target | dnsperf qps | range | meshdns / target | mean latency |"
        )?;
        writeln!(md, "|---|--:|--:|--:|--:|")?;
        for row in pods {
            let qps = median(&row.dnsperf);
            writeln!(
                md,
                "| {} | {qps:.0} | {} | {:.2}x | {:.0} µs |",
                row.name,
                range(&row.dnsperf),
                base / qps,
                median(&row.mean_latency_us)
            )?;
        }
    }
    if !scale.is_empty() {
        writeln!(md)?;
        writeln!(md, "The fast path by table size (kxdpgun):")?;
        writeln!(md)?;
        writeln!(
            md,
            "| names | services file | replies/s | agent start to serving | to the fast path full | agent RSS |"
        )?;
        writeln!(md, "|--:|--|--:|--:|--:|--:|")?;
        for row in scale {
            writeln!(
                md,
                "| {} | {} | {:.0} | {:.1} s | {:.1} s | {} |",
                row.names,
                row.format,
                row.replies_per_second,
                row.load_seconds,
                row.ready_seconds,
                row.rss
            )?;
        }
    }
    if let Some(floor) = paths.iter().find(|p| p.path.starts_with("floor")) {
        writeln!(md)?;
        writeln!(
            md,
            "The XDP program path by path (meshdns-xdp-cost: BPF_PROG_TEST_RUN, median of single runs, \
             each with the test run's own overhead, as the floor's shows; a pass also in a loop of \
             them, without it):"
        )?;
        writeln!(md)?;
        writeln!(
            md,
            "| path | action | ns per run | vs floor | ns in a loop |"
        )?;
        writeln!(md, "|---|---|--:|--:|--:|")?;
        for path in paths {
            writeln!(
                md,
                "| {} | {} | {:.0} | {:.1}x | {} |",
                path.path,
                path.action,
                path.ns,
                path.ns / floor.ns,
                path.ns_in_loop
                    .map_or_else(String::new, |ns| format!("{ns:.0}"))
            )?;
        }
    }
    writeln!(md)?;
    writeln!(md, "rcodes (kxdpgun, all runs): {}", {
        let parts: Vec<String> = rows
            .iter()
            .filter(|r| !r.rcodes.is_empty())
            .map(|r| {
                let rc: Vec<String> = r.rcodes.iter().map(|(c, n)| format!("{c} {n}")).collect();
                format!("{}: {}", r.name, rc.join(", "))
            })
            .collect();
        parts.join("; ")
    })?;
    writeln!(md)?;
    writeln!(
        md,
        "kxdpgun sends through AF_XDP from the client namespace and is this machine's ceiling (see the floor); \
         dnsperf uses sockets and saturates far lower whatever the server, so its latency is queueing; \
         the percentiles come from meshdns-latency at a fixed 20k qps, meant to be below every target's capacity \
         (where a target loses queries at that rate, the cell says how many, and its percentiles include queueing)."
    )?;
    fs::write(dir.join("report.md"), &md)?;

    let json = json!({
        "machine": machine(),
        "names": setup.names,
        "seconds": setup.seconds,
        "repetitions": setup.repetitions,
        "targets": rows.iter().map(|r| json!({
            "name": r.name,
            "cache_hits": r.cache,
            "kxdpgun_replies_per_second": r.kxdpgun,
            "reply_ratio": r.replied,
            "xdp_ns_per_packet": r.ns_per_packet,
            "dnsperf_qps": r.dnsperf,
            "dnsperf_mean_latency_us": r.mean_latency_us,
            "p50_us": r.probe.map(|p| p.p50_us),
            "p99_us": r.probe.map(|p| p.p99_us),
            "probe_lost_ratio": r.probe.map(|p| p.lost),
            "rcodes": r.rcodes.iter().map(|(c, n)| json!({"rcode": c, "count": n})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "pod": pods.iter().map(|p| json!({
            "name": p.name,
            "dnsperf_qps": p.dnsperf,
            "dnsperf_mean_latency_us": p.mean_latency_us,
        })).collect::<Vec<_>>(),
        "xdp_paths": paths.iter().map(|p| json!({
            "path": p.path,
            "action": p.action,
            "ns_per_run": p.ns,
            "ns_in_loop": p.ns_in_loop,
        })).collect::<Vec<_>>(),
        "scale": scale.iter().map(|s| json!({
            "names": s.names,
            "replies_per_second": s.replies_per_second,
            "services_file": s.format,
            "load_seconds": s.load_seconds,
            "ready_seconds": s.ready_seconds,
            "agent_rss": s.rss,
        })).collect::<Vec<_>>(),
    });
    fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    fs::write(dir.join("report.svg"), chart(rows))?;
    Ok(md)
}

/// A horizontal bar chart of median kxdpgun replies per second.
fn chart(rows: &[Row]) -> String {
    let (bar_h, gap, label_w, chart_w) = (26.0, 10.0, 190.0, 520.0);
    let max = rows.iter().map(|r| median(&r.kxdpgun)).fold(1.0, f64::max);
    let height = 50.0 + rows.len() as f64 * (bar_h + gap);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"22\" font-size=\"15\">Replies per second (kxdpgun, median)</text>\n",
        w = label_w + chart_w + 110.0
    );
    for (i, row) in rows.iter().enumerate() {
        let value = median(&row.kxdpgun);
        let y = 40.0 + i as f64 * (bar_h + gap);
        let width = chart_w * value / max;
        let color = if row.name.starts_with("meshdns") {
            "#2b7bb9"
        } else {
            "#9aa5b1"
        };
        let _ = writeln!(
            svg,
            "<text x=\"10\" y=\"{ty}\">{name}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{width:.1}\" height=\"{bar_h}\" fill=\"{color}\"/>\
             <text x=\"{tx:.1}\" y=\"{ty}\">{value:.0}</text>",
            ty = y + bar_h * 0.7,
            name = row.name,
            tx = label_w + width + 6.0,
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::Probe;

    #[test]
    fn a_probe_that_lost_queries_says_how_many_beside_its_percentiles() {
        let probe = |lost| Probe {
            p50_us: 779.9,
            p99_us: 21485.2,
            lost,
        };
        assert_eq!(
            Probe::cell(Some(&probe(0.049))),
            "780 / 21485 µs, 4.9% lost"
        );
        assert_eq!(Probe::cell(Some(&probe(0.0))), "780 / 21485 µs");
        assert_eq!(Probe::cell(None), "-");
    }
}

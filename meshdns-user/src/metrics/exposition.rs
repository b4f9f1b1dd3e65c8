//! Every metric the agent exposes, encoded by `prometheus-client` at scrape
//! time (OpenMetrics text). The hot paths keep their own counters
//! (atomics, a fixed array for replies, the XDP program's per-CPU map):
//! nothing here runs per query, and no lock or allocation is added there.
//!
//! Counters are declared without their `_total` suffix, which the encoder
//! adds to each sample: `meshdns_config_reloads` is scraped as
//! `meshdns_config_reloads_total`, as OpenMetrics names them.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use meshdns_common::Counter;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, MetricEncoder, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use super::Metrics;
use crate::{resolver::Transport, source::SourceStatus};

/// The registry `/metrics` encodes: one collector that reads `metrics`.
pub fn registry(metrics: Arc<Metrics>) -> Registry {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(metrics)));
    registry
}

/// The whole exposition, as `/metrics` serves it.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry)
        .expect("writing to a String does not fail");
    text
}

/// Reads the agent's, the resolver's and the program's numbers when
/// scraped.
struct Scrape(Arc<Metrics>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("meshdns metrics")
    }
}

type Labels<'a> = Vec<(&'static str, &'a str)>;

/// A family of samples of one type, each under its labels.
fn family<'a>(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'a>, u64)>,
) -> std::fmt::Result {
    let mut family = out.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        encode(family.encode_family(&labels)?, kind, value)?;
    }
    Ok(())
}

/// A family of one sample without labels.
fn single(
    out: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    value: u64,
) -> std::fmt::Result {
    encode(out.encode_descriptor(name, help, None, kind)?, kind, value)
}

fn encode(sample: MetricEncoder, kind: MetricType, value: u64) -> std::fmt::Result {
    match kind {
        MetricType::Counter => ConstCounter::new(value).encode(sample),
        _ => ConstGauge::new(value).encode(sample),
    }
}

/// Each source's families, labelled by its id: a handful of sources, so a
/// handful of series each.
fn sources(out: &mut DescriptorEncoder, sources: &[SourceStatus]) -> std::fmt::Result {
    use MetricType::{Counter as C, Gauge as G};
    let by_source = |value: fn(&SourceStatus) -> u64| {
        sources
            .iter()
            .map(move |s| (vec![("source", s.id.as_str())], value(s)))
    };
    family(
        out,
        "meshdns_source_up",
        "1 if the source's last read succeeded for every file; 0 while it serves its last good names.",
        G,
        by_source(|s| u64::from(s.up)),
    )?;
    family(
        out,
        "meshdns_source_last_success_seconds",
        "When the source was last read whole, in Unix seconds (0: never).",
        G,
        by_source(|s| {
            s.last_success
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs())
        }),
    )?;
    family(
        out,
        "meshdns_source_read_failures",
        "Reads of the source with a failure since start.",
        C,
        by_source(|s| s.failures),
    )?;
    family(
        out,
        "meshdns_source_names",
        "Names of the source that the table answers.",
        G,
        by_source(|s| s.merged.names as u64),
    )?;
    family(
        out,
        "meshdns_source_names_left_out",
        "Names of the source the table does not answer, by why: conflict (the file or an earlier source has it, answering otherwise), outside_zone, invalid.",
        G,
        sources.iter().flat_map(|s| {
            [
                ("conflict", s.merged.conflicts),
                ("outside_zone", s.merged.outside_zone),
                ("invalid", s.merged.invalid),
            ]
            .map(|(reason, n)| {
                (
                    vec![("source", s.id.as_str()), ("reason", reason)],
                    n as u64,
                )
            })
        }),
    )
}

impl Collector for Scrape {
    fn encode(&self, mut out: DescriptorEncoder) -> std::fmt::Result {
        use MetricType::{Counter as C, Gauge as G};
        let metrics = &self.0;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        family(
            &mut out,
            "meshdns_build_info",
            "The running build.",
            G,
            [(vec![("version", env!("CARGO_PKG_VERSION"))], 1)],
        )?;
        if let Some(counters) = metrics.xdp_counters() {
            family(
                &mut out,
                "meshdns_xdp_packets",
                "Packets the XDP program saw, by outcome (answered_*, or pass_* and why).",
                C,
                Counter::ALL.map(|c| (vec![("outcome", c.name())], counters.get(c))),
            )?;
        }
        let agent = &metrics.agent;
        single(
            &mut out,
            "meshdns_config_reloads",
            "Services files applied since start.",
            C,
            load(&agent.reloads),
        )?;
        single(
            &mut out,
            "meshdns_config_reload_errors",
            "Services files rejected since start.",
            C,
            load(&agent.reload_errors),
        )?;
        single(
            &mut out,
            "meshdns_table_names",
            "Names in the mesh table.",
            G,
            load(&agent.names),
        )?;
        sources(
            &mut out,
            &agent.sources.lock().unwrap_or_else(|e| e.into_inner()),
        )?;
        let interfaces = metrics.interface_status();
        family(
            &mut out,
            "meshdns_interfaces",
            "Interfaces each --iface value matches, by what became of them: attached, skipped (another XDP program runs there) or failed.",
            G,
            interfaces.iter().flat_map(|status| {
                [
                    ("attached", status.attached),
                    ("skipped", status.skipped),
                    ("failed", status.failed),
                ]
                .map(|(state, count)| {
                    (
                        vec![("pattern", status.pattern.as_str()), ("state", state)],
                        count,
                    )
                })
            }),
        )?;
        single(
            &mut out,
            "meshdns_ready",
            "1 while /readyz says ready: the program attached and serving, its table in step.",
            G,
            u64::from(metrics.readiness().is_ok()),
        )?;
        let Some(resolver) = metrics.resolver.get() else {
            return Ok(());
        };
        let stats = &resolver.stats;
        family(
            &mut out,
            "meshdns_resolver_queries",
            "Messages the resolver received, by transport, replied to or not.",
            C,
            Transport::ALL.map(|t| (vec![("transport", t.name())], stats.queries(t))),
        )?;
        // Only the combinations seen so far: all of them would be 364
        // series per scrape, nearly all zero.
        family(
            &mut out,
            "meshdns_resolver_responses",
            "Replies the resolver made, by transport, query type and rcode (series appear once non-zero; a UDP reply over the rate limit is counted here too).",
            C,
            stats.responses.nonzero().map(|r| {
                let labels = vec![
                    ("transport", r.transport.name()),
                    ("type", r.qtype),
                    ("rcode", r.rcode),
                ];
                (labels, r.count)
            }),
        )?;
        for (name, help, value) in [
            (
                "meshdns_resolver_refused",
                "Queries refused: the client is outside allow_from.",
                &stats.refused,
            ),
            (
                "meshdns_resolver_mesh_answers",
                "Queries answered from the mesh table in userspace.",
                &stats.mesh_answers,
            ),
            (
                "meshdns_cache_hits",
                "Forwarded questions answered from the cache.",
                &stats.cache_hits,
            ),
            (
                "meshdns_cache_misses",
                "Forwarded questions the cache could not answer fresh.",
                &stats.cache_misses,
            ),
            (
                "meshdns_cache_stale_answers",
                "Expired answers served because every upstream failed.",
                &stats.stale_answers,
            ),
            (
                "meshdns_resolver_servfail",
                "SERVFAIL answers: every upstream failed, nothing stale.",
                &stats.servfail,
            ),
            (
                "meshdns_resolver_truncated",
                "Replies sent truncated (TC) to fit the client's UDP size.",
                &stats.truncated,
            ),
            (
                "meshdns_resolver_rate_limited_truncated",
                "UDP replies over the rate limit sent truncated (TC), so that the client asks over TCP.",
                &stats.rate_limited_truncated,
            ),
            (
                "meshdns_resolver_rate_limited_dropped",
                "UDP replies over the rate limit not sent.",
                &stats.rate_limited_dropped,
            ),
        ] {
            single(&mut out, name, help, C, load(value))?;
        }
        let (entries, bytes, evictions) = resolver.cache().stats();
        single(
            &mut out,
            "meshdns_cache_entries",
            "Answers in the cache.",
            G,
            entries as u64,
        )?;
        single(
            &mut out,
            "meshdns_cache_bytes",
            "Bytes of answers in the cache.",
            G,
            bytes as u64,
        )?;
        single(
            &mut out,
            "meshdns_cache_evictions",
            "Answers evicted to stay within the cache's limits.",
            C,
            evictions,
        )?;

        // Each zone's upstreams, labelled by zone (`forward:`; `.` for the
        // rest).
        let forwarding = resolver.forwarding();
        let mut health: Vec<(String, String, bool)> = Vec::new();
        let mut exchanges = Vec::new();
        for zone in forwarding.zones() {
            for (addr, up) in zone.upstreams.health() {
                health.push((zone.zone.clone(), addr.to_string(), up));
            }
            for stats in zone.upstreams.exchange_stats() {
                exchanges.push((zone.zone.clone(), stats.addr.to_string(), stats));
            }
        }
        family(
            &mut out,
            "meshdns_upstream_up",
            "1 if the upstream is in use, 0 if it is skipped for failing.",
            G,
            health.iter().map(|(zone, addr, up)| {
                (
                    vec![("zone", zone.as_str()), ("upstream", addr.as_str())],
                    u64::from(*up),
                )
            }),
        )?;
        let mut latency = out.encode_descriptor(
            "meshdns_upstream_request_duration_seconds",
            "Time of each exchange with an upstream (one attempt: UDP, then TCP if truncated), failed ones included.",
            None,
            MetricType::Histogram,
        )?;
        for (zone, addr, stats) in &exchanges {
            let labels = [("zone", zone.as_str()), ("upstream", addr.as_str())];
            let h = &stats.latency;
            latency
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(
                    h.sum_nanos as f64 / 1e9,
                    h.count,
                    &h.buckets(),
                    None,
                )?;
        }
        family(
            &mut out,
            "meshdns_upstream_failures",
            "Exchanges with an upstream that failed: timeout, error, or no matching answer.",
            C,
            exchanges.iter().map(|(zone, addr, stats)| {
                (
                    vec![("zone", zone.as_str()), ("upstream", addr.as_str())],
                    stats.failures,
                )
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{AgentState, OnceLock};

    #[test]
    fn counters_are_scraped_with_their_total_suffix_and_the_exposition_ends() {
        let agent = Arc::new(AgentState::default());
        agent.reloads.store(3, Ordering::Relaxed);
        let metrics = Arc::new(Metrics {
            resolver: OnceLock::new(),
            agent,
            counters_pin: None,
            link_pins: Vec::new(),
            interfaces: Some(Arc::new(std::sync::Mutex::new(vec![
                crate::agent::interfaces::PatternStatus {
                    pattern: "cali*".into(),
                    attached: 31,
                    skipped: 1,
                    failed: 0,
                },
            ]))),
        });
        assert_eq!(
            metrics.interface_lines(),
            "interfaces cali*: 31 attached, 1 skipped, 0 failed\n"
        );
        let text = render(&registry(metrics));
        for line in [
            "# TYPE meshdns_config_reloads counter",
            "meshdns_config_reloads_total 3",
            "meshdns_interfaces{pattern=\"cali*\",state=\"attached\"} 31",
            "meshdns_interfaces{pattern=\"cali*\",state=\"skipped\"} 1",
            "meshdns_interfaces{pattern=\"cali*\",state=\"failed\"} 0",
            "meshdns_build_info{version=\"",
            "meshdns_ready 0",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

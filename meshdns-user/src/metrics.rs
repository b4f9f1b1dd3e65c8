//! Prometheus text exposition (`/metrics`), liveness (`/healthz`) and
//! readiness (`/readyz`) on one small HTTP listener.
//!
//! The XDP counters are read from the pinned counters map by path, so this
//! needs nothing from the agent's main loop.

use std::{
    fmt::{Display, Write as _},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use aya::maps::{Map, MapData, PerCpuArray};
use meshdns_common::{COUNTERS_MAP, Counter};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use crate::{
    fastpath::{self, Counters},
    resolver::{Resolver, Transport},
};

pub use std::sync::OnceLock;

/// What the agent itself reports, besides the resolver's and the XDP
/// program's counters.
#[derive(Default)]
pub struct AgentState {
    /// Started: the program attached (or XDP off), the table loaded, the
    /// resolver listening.
    pub ready: AtomicBool,
    /// The last update of the kernel's table failed: it is not in step with
    /// the services file until one succeeds.
    pub out_of_step: AtomicBool,
    pub reloads: AtomicU64,
    pub reload_errors: AtomicU64,
    pub names: AtomicU64,
}

pub struct Metrics {
    /// Set once the resolver is up; until then only the agent's and the
    /// program's numbers are reported.
    pub resolver: std::sync::OnceLock<Arc<Resolver>>,
    pub agent: Arc<AgentState>,
    /// The pinned counters map, if the fast path runs.
    pub counters_pin: Option<PathBuf>,
    /// The pinned link of each interface, if the fast path runs.
    pub link_pins: Vec<PathBuf>,
}

impl Metrics {
    /// Ready: started, the kernel's table in step with the services file,
    /// and the interface running the program (it may have been detached,
    /// or its interface removed, since). Else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.agent.ready.load(Ordering::Relaxed) {
            return Err("starting".into());
        }
        if self.agent.out_of_step.load(Ordering::Relaxed) {
            return Err("the kernel's table is not in step with the services file".into());
        }
        for link in &self.link_pins {
            fastpath::check_pinned_serving(link).map_err(|error| {
                let iface = link.file_name().unwrap_or_default().to_string_lossy();
                format!("fast path on {iface}: {error}")
            })?;
        }
        Ok(())
    }

    fn xdp_counters(&self) -> Option<Counters> {
        let path = self.counters_pin.as_ref()?;
        let map = MapData::from_pin(path).ok()?;
        let counters: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(Map::PerCpuArray(map)).ok()?;
        Counters::read(&counters).ok()
    }

    /// The whole exposition, in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = Exposition::default();
        out.single(
            "meshdns_build_info",
            "gauge",
            "The running build.",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
        if let Some(counters) = self.xdp_counters() {
            out.family(
                "meshdns_xdp_packets_total",
                "counter",
                "Packets the XDP program saw, by outcome (answered_*, or pass_* and why).",
            );
            for c in Counter::ALL {
                out.sample(
                    "meshdns_xdp_packets_total",
                    &[("outcome", c.name())],
                    counters.get(c),
                );
            }
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for (name, help, value) in [
            (
                "meshdns_config_reloads_total",
                "Services files applied since start.",
                load(&self.agent.reloads),
            ),
            (
                "meshdns_config_reload_errors_total",
                "Services files rejected since start.",
                load(&self.agent.reload_errors),
            ),
        ] {
            out.single(name, "counter", help, &[], value);
        }
        out.single(
            "meshdns_table_names",
            "gauge",
            "Names in the mesh table.",
            &[],
            load(&self.agent.names),
        );
        out.single(
            "meshdns_ready",
            "gauge",
            "1 while /readyz says ready: the program attached and serving, its table in step.",
            &[],
            u64::from(self.readiness().is_ok()),
        );
        let Some(resolver) = self.resolver.get() else {
            return out.text;
        };
        let stats = &resolver.stats;
        out.family(
            "meshdns_resolver_queries_total",
            "counter",
            "Messages the resolver received, by transport, replied to or not.",
        );
        for transport in Transport::ALL {
            out.sample(
                "meshdns_resolver_queries_total",
                &[("transport", transport.name())],
                stats.queries(transport),
            );
        }
        // Only the combinations seen so far: all of them would be 364
        // series per scrape, nearly all zero.
        out.family(
            "meshdns_resolver_responses_total",
            "counter",
            "Replies the resolver sent, by transport, query type and rcode (series appear once non-zero).",
        );
        for r in stats.responses.nonzero() {
            out.sample(
                "meshdns_resolver_responses_total",
                &[
                    ("transport", r.transport.name()),
                    ("type", r.qtype),
                    ("rcode", r.rcode),
                ],
                r.count,
            );
        }
        for (name, help, value) in [
            (
                "meshdns_resolver_refused_total",
                "Queries refused: the client is outside allow_from.",
                load(&stats.refused),
            ),
            (
                "meshdns_resolver_mesh_answers_total",
                "Queries answered from the mesh table in userspace.",
                load(&stats.mesh_answers),
            ),
            (
                "meshdns_cache_hits_total",
                "Forwarded questions answered from the cache.",
                load(&stats.cache_hits),
            ),
            (
                "meshdns_cache_misses_total",
                "Forwarded questions the cache could not answer fresh.",
                load(&stats.cache_misses),
            ),
            (
                "meshdns_cache_stale_answers_total",
                "Expired answers served because every upstream failed.",
                load(&stats.stale_answers),
            ),
            (
                "meshdns_resolver_servfail_total",
                "SERVFAIL answers: every upstream failed, nothing stale.",
                load(&stats.servfail),
            ),
            (
                "meshdns_resolver_truncated_total",
                "Replies sent truncated (TC) to fit the client's UDP size.",
                load(&stats.truncated),
            ),
        ] {
            out.single(name, "counter", help, &[], value);
        }
        let (entries, bytes, evictions) = resolver.cache().stats();
        out.single(
            "meshdns_cache_entries",
            "gauge",
            "Answers in the cache.",
            &[],
            entries,
        );
        out.single(
            "meshdns_cache_bytes",
            "gauge",
            "Bytes of answers in the cache.",
            &[],
            bytes,
        );
        out.single(
            "meshdns_cache_evictions_total",
            "counter",
            "Answers evicted to stay within the cache's limits.",
            &[],
            evictions,
        );
        let upstreams = resolver.upstreams();
        out.family(
            "meshdns_upstream_up",
            "gauge",
            "1 if the upstream is in use, 0 if it is skipped for failing.",
        );
        for (addr, up) in upstreams.health() {
            let addr = addr.to_string();
            out.sample("meshdns_upstream_up", &[("upstream", &addr)], u64::from(up));
        }
        let exchanges = upstreams.exchange_stats();
        let latency = "meshdns_upstream_request_duration_seconds";
        out.family(
            latency,
            "histogram",
            "Time of each exchange with an upstream (one attempt: UDP, then TCP if truncated), failed ones included.",
        );
        for upstream in &exchanges {
            let addr = upstream.addr.to_string();
            for &(le, count) in &upstream.latency.cumulative {
                out.sample(
                    &format!("{latency}_bucket"),
                    &[("upstream", &addr), ("le", le)],
                    count,
                );
            }
            out.sample(
                &format!("{latency}_sum"),
                &[("upstream", &addr)],
                Seconds(upstream.latency.sum_nanos),
            );
            out.sample(
                &format!("{latency}_count"),
                &[("upstream", &addr)],
                upstream.latency.count,
            );
        }
        out.family(
            "meshdns_upstream_failures_total",
            "counter",
            "Exchanges with an upstream that failed: timeout, error, or no matching answer.",
        );
        for upstream in &exchanges {
            let addr = upstream.addr.to_string();
            out.sample(
                "meshdns_upstream_failures_total",
                &[("upstream", &addr)],
                upstream.failures,
            );
        }
        out.text
    }
}

/// Prometheus text format 0.0.4, written a family at a time: its HELP and
/// TYPE lines once, then its samples.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample; label values are escaped, names are ours and need not be.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                let _ = write!(self.text, "{label}=\"{}\"", LabelValue(value));
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }

    /// A family of one sample.
    fn single(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        labels: &[(&str, &str)],
        value: impl Display,
    ) {
        self.family(name, kind, help);
        self.sample(name, labels, value);
    }
}

/// A label value as the text format wants it: backslash, double quote and
/// newline escaped.
struct LabelValue<'a>(&'a str);

impl Display for LabelValue<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Nanoseconds printed as seconds, exactly: no float rounding on the way.
struct Seconds(u64);

impl Display for Seconds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{:09}",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _ = respond(stream, &metrics).await;
        });
    }
}

async fn respond(mut stream: TcpStream, metrics: &Metrics) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    // Read the request head (a GET carries no body).
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let path = head.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics.render()),
        "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/readyz" => match metrics.readiness() {
            Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

/// Where the counters map of a fast path pinned under `pins` is.
pub fn counters_pin(pins: &crate::fastpath::Pins) -> PathBuf {
    pins.maps_dir().join(COUNTERS_MAP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_carry_escaped_labels_and_families_their_help_and_type_once() {
        let mut out = Exposition::default();
        out.family("x_total", "counter", "Things.");
        out.sample("x_total", &[("a", "1"), ("b", "q\"b\\s\nn")], 7);
        out.sample("x_total", &[], 8);
        assert_eq!(
            out.text,
            "# HELP x_total Things.\n# TYPE x_total counter\n\
             x_total{a=\"1\",b=\"q\\\"b\\\\s\\nn\"} 7\nx_total 8\n"
        );
    }

    #[test]
    fn nanoseconds_print_as_exact_seconds() {
        assert_eq!(Seconds(0).to_string(), "0.000000000");
        assert_eq!(Seconds(1_234_567).to_string(), "0.001234567");
        assert_eq!(Seconds(61_000_000_001).to_string(), "61.000000001");
        assert_eq!("0.001234567".parse::<f64>().unwrap(), 0.001234567);
    }
}

//! Prometheus text exposition (`/metrics`), liveness (`/healthz`) and
//! readiness (`/readyz`) on one small HTTP listener.
//!
//! The XDP counters are read from the pinned counters map by path, so this
//! needs nothing from the agent's main loop.

use std::{
    fmt::Write as _,
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

use crate::{fastpath::Counters, resolver::Resolver};

pub use std::sync::OnceLock;

/// What the agent itself reports, besides the resolver's and the XDP
/// program's counters.
#[derive(Default)]
pub struct AgentState {
    /// The program is attached (or XDP is off) and the table is loaded.
    pub ready: AtomicBool,
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
}

impl Metrics {
    fn xdp_counters(&self) -> Option<Counters> {
        let path = self.counters_pin.as_ref()?;
        let map = MapData::from_pin(path).ok()?;
        let counters: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(Map::PerCpuArray(map)).ok()?;
        Counters::read(&counters).ok()
    }

    /// The whole exposition, in Prometheus text format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        metric(
            "meshdns_build_info",
            "gauge",
            "The running build.",
            &[(format!("{{version=\"{}\"}}", env!("CARGO_PKG_VERSION")), 1)],
        );
        if let Some(counters) = self.xdp_counters() {
            let samples: Vec<(String, u64)> = Counter::ALL
                .iter()
                .map(|c| (format!("{{outcome=\"{}\"}}", c.name()), counters.get(*c)))
                .collect();
            metric(
                "meshdns_xdp_packets_total",
                "counter",
                "Packets the XDP program saw, by outcome (answered_*, or pass_* and why).",
                &samples,
            );
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
            metric(name, "counter", help, &[(String::new(), value)]);
        }
        metric(
            "meshdns_table_names",
            "gauge",
            "Names in the mesh table.",
            &[(String::new(), load(&self.agent.names))],
        );
        metric(
            "meshdns_ready",
            "gauge",
            "1 once the program is attached and the table loaded.",
            &[(
                String::new(),
                u64::from(self.agent.ready.load(Ordering::Relaxed)),
            )],
        );
        let Some(resolver) = self.resolver.get() else {
            return out;
        };
        let stats = &resolver.stats;
        for (name, help, value) in [
            (
                "meshdns_resolver_queries_total",
                "Queries the resolver received.",
                load(&stats.queries),
            ),
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
            metric(name, "counter", help, &[(String::new(), value)]);
        }
        let (entries, bytes, evictions) = resolver.cache().stats();
        metric(
            "meshdns_cache_entries",
            "gauge",
            "Answers in the cache.",
            &[(String::new(), entries as u64)],
        );
        metric(
            "meshdns_cache_bytes",
            "gauge",
            "Bytes of answers in the cache.",
            &[(String::new(), bytes as u64)],
        );
        metric(
            "meshdns_cache_evictions_total",
            "counter",
            "Answers evicted to stay within the cache's limits.",
            &[(String::new(), evictions)],
        );
        let upstreams: Vec<(String, u64)> = resolver
            .upstreams()
            .health()
            .into_iter()
            .map(|(addr, up)| (format!("{{upstream=\"{addr}\"}}"), u64::from(up)))
            .collect();
        metric(
            "meshdns_upstream_up",
            "gauge",
            "1 if the upstream is in use, 0 if it is skipped for failing.",
            &upstreams,
        );
        out
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
        "/readyz" if metrics.agent.ready.load(Ordering::Relaxed) => {
            ("200 OK", "text/plain", "ready\n".to_string())
        }
        "/readyz" => (
            "503 Service Unavailable",
            "text/plain",
            "not ready\n".to_string(),
        ),
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

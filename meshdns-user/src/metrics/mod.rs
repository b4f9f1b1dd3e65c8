//! What the agent reports: `/metrics` (the Prometheus exposition),
//! liveness (`/healthz`) and readiness (`/readyz`).
//!
//! - this module: the agent's own state, and readiness;
//! - [`exposition`]: every metric, encoded by `prometheus-client` when
//!   scraped, from the counters the hot paths keep (atomics, and the XDP
//!   program's per-CPU map, read by path so this needs nothing from the
//!   agent's main loop);
//! - [`http`]: the three paths over HTTP/1.1 (hyper).

pub mod exposition;
pub mod http;

pub use http::serve;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
};

use aya::maps::{Map, MapData, PerCpuArray};

use crate::{
    fastpath::{self, Counters},
    resolver::Resolver,
    source::SourceStatus,
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
    /// How each source of the services file is doing, as of the last
    /// reload.
    pub sources: std::sync::Mutex<Vec<SourceStatus>>,
}

pub struct Metrics {
    /// Set once the resolver is up; until then only the agent's and the
    /// program's numbers are reported.
    pub resolver: std::sync::OnceLock<Arc<Resolver>>,
    pub agent: Arc<AgentState>,
    /// The pinned counters map, if the fast path runs.
    pub counters_pin: Option<PathBuf>,
    /// The pinned link of each interface named outright (not by a
    /// pattern), if the fast path runs: each must serve for `/readyz`.
    pub link_pins: Vec<PathBuf>,
    /// The interfaces of each `--iface` value, by what became of them, if
    /// the fast path runs.
    pub interfaces: Option<crate::agent::interfaces::SharedStatus>,
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
            let iface = link.file_name().unwrap_or_default().to_string_lossy();
            if crate::netif::index(&iface).is_none() {
                return Err(format!(
                    "fast path on {iface}: the interface is gone; attached again when it is back"
                ));
            }
            fastpath::check_pinned_serving(link)
                .map_err(|error| format!("fast path on {iface}: {error}"))?;
        }
        Ok(())
    }

    /// The interfaces of each `--iface` value, by what became of them.
    pub fn interface_status(&self) -> Vec<crate::agent::interfaces::PatternStatus> {
        self.interfaces.as_ref().map_or_else(Vec::new, |status| {
            status.lock().unwrap_or_else(|e| e.into_inner()).clone()
        })
    }

    /// What `/readyz` says of the interfaces after its first line, a line
    /// per `--iface` value: `interfaces cali*: 31 attached, 1 skipped, 0
    /// failed`. Not part of readiness: one pod's interface that cannot be
    /// attached does not take the node's DNS out of service.
    pub fn interface_lines(&self) -> String {
        self.interface_status()
            .iter()
            .map(|s| {
                format!(
                    "interfaces {}: {} attached, {} skipped, {} failed\n",
                    s.pattern, s.attached, s.skipped, s.failed
                )
            })
            .collect()
    }

    pub(crate) fn xdp_counters(&self) -> Option<Counters> {
        let path = self.counters_pin.as_ref()?;
        let map = MapData::from_pin(path).ok()?;
        let counters: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(Map::PerCpuArray(map)).ok()?;
        Counters::read(&counters).ok()
    }
}

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

    pub(crate) fn xdp_counters(&self) -> Option<Counters> {
        let path = self.counters_pin.as_ref()?;
        let map = MapData::from_pin(path).ok()?;
        let counters: PerCpuArray<MapData, u64> =
            PerCpuArray::try_from(Map::PerCpuArray(map)).ok()?;
        Counters::read(&counters).ok()
    }
}

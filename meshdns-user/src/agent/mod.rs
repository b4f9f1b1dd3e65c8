//! The agent: everything `meshdns run` does, as a library type.
//!
//! [`Agent::start`] reads the services file (a broken one fails the start
//! before anything changes), serves `/metrics`, waits for the interfaces,
//! attaches the fast path, starts the resolver and drops capabilities;
//! [`Agent::run`] then keeps both in step with the file ([`reconcile`])
//! until SIGINT or SIGTERM.
//!
//! - [`watch`]: signals and the services file's changes;
//! - `serve`: the loop once started, and the exit;
//! - [`fast_path`]: the program loaded and filled;
//! - [`interfaces`]: where it is attached: every interface `--iface`'s
//!   names and patterns match, followed as they come and go;
//! - [`pods`]: the pods' addresses, for whom the resolver answers;
//! - [`resolver`]: where the resolver listens, whom it answers, where it
//!   forwards;
//! - [`reconcile`]: the reload loop's state;
//! - [`bpffs`]: the filesystem the pins live on;
//! - [`AgentError`]: what can stop it, typed.

pub mod bpffs;
mod error;
pub mod fast_path;
pub mod interfaces;
pub mod pods;
pub mod reconcile;
pub mod resolver;
pub mod scope;
mod serve;
pub mod watch;

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use tokio::runtime::Runtime;

use crate::{
    fastpath::{AttachMode, Pins},
    metrics::{self, AgentState, Metrics, OnceLock},
    netif::{self, IfacePattern, LinkEvents},
    privileges,
    registry::{Registry, Reload},
    resolver::server,
};
pub use error::{AgentError, FastPathStep, Result};
use interfaces::Interfaces;
use pods::PodRoutes;
use reconcile::Reconciler;
use serve::{Attached, Serving};
use watch::{Caught, ConfigWatch, Signals};

/// What `meshdns run` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// The interfaces whose queries the fast path answers: names, and
    /// patterns for interfaces that come and go.
    pub ifaces: Vec<IfacePattern>,
    /// The services file.
    pub config: PathBuf,
    /// How to attach the fast path; `None`: no fast path, the resolver
    /// answers everything.
    pub xdp_mode: Option<AttachMode>,
    /// Where the VIP allocations are kept.
    pub state_dir: PathBuf,
    pub pins: Pins,
    /// Detach the program and remove its pins on exit.
    pub detach_on_exit: bool,
    /// Where the resolver listens; empty: the interfaces' addresses, port 53.
    pub listen: Vec<SocketAddr>,
    /// Where other names go; empty: /etc/resolv.conf's nameservers.
    pub upstream: Vec<SocketAddr>,
    /// `/metrics`, `/healthz` and `/readyz`.
    pub metrics_addr: SocketAddr,
}

/// A started agent: attached, listening, with capabilities dropped.
pub struct Agent {
    serving: Serving,
    /// Last, so that it goes after everything that runs on it.
    runtime: Runtime,
}

impl Agent {
    /// Starts the agent; `None` if SIGINT or SIGTERM came while it waited
    /// for an interface to appear.
    pub fn start(options: Options) -> Result<Option<Self>> {
        // What every thread keeps once the work that needs more is done:
        // the runtime's threads from their start (they attach nothing and
        // bind nothing), the main thread once attached and listening.
        let running: &'static [u32] = match options.xdp_mode {
            None => &[],
            Some(_) => privileges::RUNNING,
        };
        let drop_privileges = move || {
            if let Err(error) = privileges::keep_only(running) {
                tracing::warn!(%error, "cannot drop capabilities");
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .on_thread_start(drop_privileges)
            .build()
            .map_err(AgentError::Runtime)?;
        // Catch the signals before attaching: a SIGTERM that comes right
        // after the attach must still end the agent cleanly, not kill it.
        let mut signals = runtime
            .block_on(async { Signals::new() })
            .map_err(AgentError::Signals)?;

        // Read the services first: a broken file fails the start before
        // anything changes, with the line at fault. A program a previous
        // agent left keeps serving meanwhile.
        let mut registry = Registry::new(&options.config, &options.state_dir);
        // Watch before the first read, so that a change saved while
        // starting is not missed.
        let changes = {
            let _context = runtime.enter();
            ConfigWatch::new(registry.config_path())?
        };
        // In the runtime: a polled source starts its task at its first read.
        let first = {
            let _context = runtime.enter();
            registry.reload()?
        };
        let Reload::Changed { table, settings } = first else {
            unreachable!("the first read is always a change");
        };
        // The sources' folders are known once the file is read: watched
        // now, and read once more if that added a watch, so that a change
        // made between the read and the watch is not missed.
        let mut changes = changes;
        let (table, settings) = if changes.watch(&registry.watch_paths()) {
            let _context = runtime.enter();
            match registry.reload()? {
                Reload::Changed { table, settings } => (table, settings),
                Reload::Unchanged => (table, settings),
            }
        } else {
            (table, settings)
        };
        // Up before the attach, so /readyz can say "not yet".
        let agent = Arc::new(AgentState::default());
        agent.names.store(table.len() as u64, Ordering::Relaxed);
        *agent.sources.lock().unwrap_or_else(|e| e.into_inner()) = registry.source_status();
        let with_fast_path = options.xdp_mode.is_some();
        let named: Vec<&str> = options
            .ifaces
            .iter()
            .filter_map(IfacePattern::name)
            .collect();
        let interfaces = options
            .xdp_mode
            .map(|mode| Interfaces::new(&options.ifaces, mode, &options.pins, &options.state_dir));
        let metrics = Arc::new(Metrics {
            resolver: OnceLock::new(),
            agent: agent.clone(),
            counters_pin: with_fast_path.then(|| options.pins.map(meshdns_common::COUNTERS_MAP)),
            // The interfaces named outright must serve for /readyz; those
            // of patterns are counted.
            link_pins: match with_fast_path {
                true => named.iter().map(|i| options.pins.link(i)).collect(),
                false => Vec::new(),
            },
            interfaces: interfaces.as_ref().map(Interfaces::status),
        });
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(options.metrics_addr))
            .map_err(|source| AgentError::MetricsListener {
                addr: options.metrics_addr,
                source,
            })?;
        runtime.spawn(metrics::serve(listener, metrics.clone()));
        for iface in &named {
            if let Some(signal) = runtime.block_on(wait_for_interface(iface, &mut signals)) {
                tracing::info!("{signal} while waiting for {iface}: exiting");
                return Ok(None);
            }
        }
        // Subscribed before the interfaces (and routes) are listed, so that
        // one that comes or goes in between is not missed.
        let events = {
            let _context = runtime.enter();
            LinkEvents::new().map_err(AgentError::LinkEvents)?
        };
        let links = netif::links().map_err(AgentError::Links)?;
        let matched: Vec<&netif::Link> = links
            .iter()
            .filter(|link| netif::first_match(&options.ifaces, &link.name).is_some())
            .collect();
        // The resolver answers first: it has every name as soon as the file
        // is read, while filling the kernel's table takes longer (a second
        // or two at a million names; each name is a map update). Meanwhile
        // the program a previous agent left, if any, answers from the maps
        // it has; a new one is attached only once its table is filled.
        //
        // Where it listens by default, and whom it answers: read once, from
        // the interfaces there are now.
        let names: Vec<&str> = matched.iter().map(|link| link.name.as_str()).collect();
        let addresses = netif::addresses_of(&names).map_err(|source| AgentError::Addresses {
            ifaces: names.join(", "),
            source,
        })?;
        let listen = resolver::listen_addresses(&options, &addresses)?;
        // Known only now: a `forward:` zone may not send names to meshdns
        // itself (checked again on every reload).
        registry.set_own_addresses(&listen, &settings)?;
        let resolver = Arc::new(resolver::resolver(
            &options,
            table.clone(),
            &settings,
            &listen,
            &addresses,
        ));
        reconcile::save_forwarding(&resolver, &options.state_dir);
        let mut pod_routes = PodRoutes::new(&options.ifaces);
        match &settings.pod_cidrs {
            Some(cidrs) => tracing::info!(
                pod_cidrs = ?cidrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "the pods' addresses, for allow_from: pod_cidrs of the services file"
            ),
            None => {
                let prefixes = pod_routes.refresh(&resolver);
                tracing::info!(
                    prefixes,
                    "the pods' addresses, for allow_from: the node's routes out of the --iface interfaces (no pod_cidrs in the services file), followed as they change"
                );
            }
        }
        // Whom, for which addresses and how often the fast path answers:
        // the resolver's clients, and the file's destinations and limit.
        let mut scope_source = scope::ScopeSource::new(&listen, &addresses);
        scope_source.set_settings(&settings);
        let listeners = runtime.block_on(server::listen(
            resolver.clone(),
            &listen,
            Arc::new(drop_privileges),
        ))?;
        let fast_path = match interfaces {
            Some(mut interfaces) => {
                let mut fast_path =
                    fast_path::load(&options, &table, &mut scope_source, &resolver)?;
                interfaces.start(&mut fast_path, &links)?;
                options.pins.remove_stale_maps();
                // What should never happen in the program, in our log.
                match fast_path.take_log() {
                    Ok(log) => {
                        runtime.spawn(log.forward());
                    }
                    Err(error) => tracing::warn!(%error, "the fast path's log is not read"),
                }
                Some(Attached {
                    fast_path,
                    interfaces,
                })
            }
            None => {
                tracing::info!("--xdp-mode off: no fast path; the resolver answers everything");
                None
            }
        };

        let kept = privileges::keep_only(running).map_err(AgentError::Capabilities)?;
        tracing::info!(%kept, "capabilities dropped but for those the table updates need");
        let _ = metrics.resolver.set(resolver.clone());
        agent.ready.store(true, Ordering::Relaxed);

        Ok(Some(Self {
            serving: Serving {
                events,
                pod_routes,
                resolver: resolver.clone(),
                reconciler: Reconciler::new(registry, resolver, agent).with_scope(scope_source),
                options,
                signals,
                changes,
                fast_path,
                _listeners: listeners,
            },
            runtime,
        }))
    }

    /// Keeps the table in step with the services file until SIGINT or
    /// SIGTERM, then exits: detached if asked, else leaving the fast path
    /// pinned and serving.
    pub fn run(mut self) -> Result<()> {
        let signal = self.runtime.block_on(self.serving.serve())?;
        self.serving.exit(signal)
    }
}

/// Waits until `iface` exists: on a node that is still coming up, or for a
/// bridge that the CNI creates with the first pod. Meanwhile /readyz says
/// not ready. Returns the signal if one ends the wait.
async fn wait_for_interface(iface: &str, signals: &mut Signals) -> Option<&'static str> {
    const POLL: Duration = Duration::from_millis(100);
    const REMIND: Duration = Duration::from_secs(30);
    let mut warned: Option<std::time::Instant> = None;
    while netif::index(iface).is_none() {
        if warned.is_none_or(|at| at.elapsed() >= REMIND) {
            tracing::warn!(
                iface,
                "waiting for the interface to appear; not ready until then"
            );
            warned = Some(std::time::Instant::now());
        }
        tokio::select! {
            signal = signals.next() => {
                if let Caught::Shutdown(name) = signal {
                    return Some(name);
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    None
}

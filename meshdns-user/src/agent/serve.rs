//! The agent's loop, once started: the services file's changes and the
//! sources', the kernel's announcements of interfaces and routes, the
//! retries, until SIGINT or SIGTERM; then the exit, detached if asked.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinSet;

use super::{
    FastPathStep, Options, Result,
    interfaces::Interfaces,
    pods::PodRoutes,
    reconcile::Reconciler,
    watch::{Caught, ConfigWatch, Signals},
};
use crate::{
    fastpath::{self, FastPath},
    netif::{self, LinkEvents},
    resolver::Resolver,
};

/// How often `/metrics`' view of the polled sources is refreshed between
/// reloads (their polls succeed or fail without changing the table).
const SOURCE_STATUS: Duration = Duration::from_secs(1);

/// How often interfaces that could not be attached (or run another
/// program) are tried again.
const RETRY_INTERFACES: Duration = Duration::from_secs(10);

/// What the agent's loop works on.
pub(super) struct Serving {
    pub(super) options: Options,
    pub(super) signals: Signals,
    pub(super) changes: ConfigWatch,
    /// The fast path and where it is attached.
    pub(super) fast_path: Option<Attached>,
    /// The kernel's announcements of interfaces and routes.
    pub(super) events: LinkEvents,
    pub(super) pod_routes: PodRoutes,
    pub(super) resolver: Arc<Resolver>,
    pub(super) reconciler: Reconciler,
    pub(super) _listeners: JoinSet<()>,
}

/// The fast path, attached.
pub(super) struct Attached {
    pub(super) fast_path: FastPath,
    pub(super) interfaces: Interfaces,
}

impl Serving {
    pub(super) async fn serve(&mut self) -> Result<&'static str> {
        let source_changes = self.reconciler.source_changes();
        let mut source_status = tokio::time::interval(SOURCE_STATUS);
        let mut retry = tokio::time::interval(RETRY_INTERFACES);
        loop {
            let retry_at = self.reconciler.retry_at();
            let routes_due = self.pod_routes.due();
            let why = tokio::select! {
                signal = self.signals.next() => match signal {
                    Caught::Shutdown(name) => return Ok(name),
                    Caught::Hangup => "SIGHUP",
                },
                result = self.changes.next() => {
                    result?;
                    "file changed"
                }
                () = source_changes.notified() => "a source changed",
                _ = source_status.tick() => {
                    self.reconciler.refresh_sources();
                    if let Some(attached) = self.fast_path.as_mut() {
                        attached.interfaces.save_status();
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(retry_at.unwrap_or_else(tokio::time::Instant::now)), if retry_at.is_some() => "retrying the fast path update",
                event = self.events.next() => {
                    let event = match event {
                        Ok(event) => event,
                        Err(error) => {
                            tracing::error!(%error, "reading rtnetlink's announcements; listing the interfaces again in a second");
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            netif::LinkEvent::Lost
                        }
                    };
                    // A pod's interface and its route come and go together.
                    self.pod_routes.changed();
                    if let Some(attached) = self.fast_path.as_mut() {
                        attached.interfaces.follow(&mut attached.fast_path, event);
                    }
                    continue;
                }
                _ = retry.tick(), if self.fast_path.is_some() => {
                    if let Some(attached) = self.fast_path.as_mut() {
                        attached.interfaces.retry(&mut attached.fast_path);
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(routes_due.unwrap_or_else(tokio::time::Instant::now)), if routes_due.is_some() => {
                    let _ = self.pod_routes.refresh(&self.resolver);
                    // The default allow_from follows the routes.
                    if let Some(attached) = self.fast_path.as_mut() {
                        self.reconciler.sync_scope(&mut attached.fast_path);
                    }
                    continue;
                }
            };
            let fast_path = self.fast_path.as_mut().map(|a| &mut a.fast_path);
            self.reconciler.reload(why, fast_path);
            if self.changes.watch(&self.reconciler.watch_paths()) {
                let fast_path = self.fast_path.as_mut().map(|a| &mut a.fast_path);
                self.reconciler
                    .reload("a source's folder now watched", fast_path);
            }
        }
    }

    pub(super) fn exit(&mut self, signal: &str) -> Result<()> {
        let Some(Attached {
            mut fast_path,
            interfaces,
            ..
        }) = self.fast_path.take()
        else {
            tracing::info!("{signal}: exiting");
            return Ok(());
        };
        let counters = fast_path
            .counters()
            .map_err(FastPathStep::Counters.failed())?;
        let attached: Vec<String> = interfaces.attached().map(str::to_string).collect();
        let ifaces = shown(&attached);
        if self.options.detach_on_exit {
            // Every pin is tried; the first error is what the exit says.
            let detached = fast_path.detach().map_err(FastPathStep::Detach.failed());
            let mut removed = Ok(());
            for iface in &attached {
                if let Err(error) = fastpath::remove_pins(&self.options.pins, iface) {
                    tracing::warn!(iface, %error, "removing the pins");
                    if removed.is_ok() {
                        removed = Err(FastPathStep::remove_pins(iface).failed()(error));
                    }
                }
            }
            detached.and(removed)?;
            tracing::info!(%counters, "{signal}: detached from {ifaces}");
        } else {
            tracing::info!(
                %counters,
                "{signal}: exiting; the fast path stays attached to {ifaces} (pinned in {}; `meshdns detach` removes it)",
                self.options.pins.dir.display()
            );
        }
        Ok(())
    }
}

/// Interfaces for a log line: their names, or how many past a few.
fn shown(ifaces: &[String]) -> String {
    match ifaces.len() {
        0 => "no interface".to_string(),
        1..=8 => ifaces.join(", "),
        n => format!("{n} interfaces"),
    }
}

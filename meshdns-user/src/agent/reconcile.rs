//! Keeping what serves in step with the services file: on every change
//! (or SIGHUP), the resolver gets the new table and settings and the
//! kernel's scope and table are updated; a failed kernel update is tried
//! again until it succeeds, while the program answers from what it has.

use std::{sync::Arc, sync::atomic::Ordering, time::Duration};

use tokio::time::Instant;

use super::scope::ScopeSource;
use crate::{
    fastpath::FastPath,
    metrics::AgentState,
    registry::{Registry, Reload},
    resolver::Resolver,
    table::Table,
};

/// How long after a failed update of the kernel's table it is tried again.
pub const SYNC_RETRY: Duration = Duration::from_secs(5);

/// The reload loop's state: the services file, who serves from it, and a
/// kernel update that is owed.
pub struct Reconciler {
    registry: Registry,
    resolver: Arc<Resolver>,
    agent: Arc<AgentState>,
    /// A table the kernel's map failed to take, tried again until it does.
    unsynced: Option<Arc<Table>>,
    /// What the fast path's scope is made of, and whether the program
    /// failed to take it (tried again as a table is).
    scope: ScopeSource,
    scope_owed: bool,
    /// When to try it again: a deadline, not a sleep started anew each time
    /// something else wakes the loop.
    retry_at: Instant,
}

impl Reconciler {
    /// `registry` has been read once already: `resolver` serves its table,
    /// and the fast path, if any, has it too.
    pub fn new(registry: Registry, resolver: Arc<Resolver>, agent: Arc<AgentState>) -> Self {
        Self {
            registry,
            resolver,
            agent,
            unsynced: None,
            scope: ScopeSource::default(),
            scope_owed: false,
            retry_at: Instant::now(),
        }
    }

    /// The fast path's scope is made of `scope` (and the resolver's
    /// clients), and the program has it.
    pub fn with_scope(self, scope: ScopeSource) -> Self {
        Self { scope, ..self }
    }

    /// Refreshes what `/metrics` says of the sources: a polled source's
    /// health changes between reloads (each good poll is a success, even
    /// one that changes nothing).
    pub fn refresh_sources(&mut self) {
        *self.agent.sources.lock().unwrap_or_else(|e| e.into_inner()) =
            self.registry.source_status();
    }

    /// Notified when a polled source has news.
    pub fn source_changes(&self) -> Arc<tokio::sync::Notify> {
        self.registry.source_changes()
    }

    /// What to watch for the sources' changes, as of the last reload.
    pub fn watch_paths(&self) -> Vec<std::path::PathBuf> {
        self.registry.watch_paths()
    }

    /// When a failed kernel update is due again, if one is owed.
    pub fn retry_at(&self) -> Option<Instant> {
        (self.unsynced.is_some() || self.scope_owed).then_some(self.retry_at)
    }

    /// Gives the fast path the scope it should answer now: after a reload,
    /// and when the resolver's default clients (the pods' routes) change.
    /// A failure is logged and owed.
    pub fn sync_scope(&mut self, fast_path: &mut FastPath) {
        match self.scope.apply(&self.resolver, fast_path) {
            Ok(()) => {
                self.scope_owed = false;
                if self.unsynced.is_none() {
                    self.agent.out_of_step.store(false, Ordering::Relaxed);
                }
            }
            Err(error) => {
                tracing::error!(
                    "updating the fast path's scope: {error}; not ready; trying again in {SYNC_RETRY:?}"
                );
                self.agent.out_of_step.store(true, Ordering::Relaxed);
                self.scope_owed = true;
                self.retry_at = Instant::now() + SYNC_RETRY;
            }
        }
    }

    /// Reads the services file again (`why` says what woke the loop) and
    /// applies what changed. A broken file is logged and counted and
    /// changes nothing; a table the kernel did not take is owed.
    pub fn reload(&mut self, why: &str, fast_path: Option<&mut FastPath>) {
        let reloaded = self.registry.reload();
        *self.agent.sources.lock().unwrap_or_else(|e| e.into_inner()) =
            self.registry.source_status();
        let table = match reloaded {
            Ok(Reload::Changed { table, settings }) => {
                tracing::info!(why, names = table.len(), "table reloaded");
                self.agent.reloads.fetch_add(1, Ordering::Relaxed);
                self.agent
                    .names
                    .store(table.len() as u64, Ordering::Relaxed);
                self.resolver.set_table(table.clone(), &settings);
                save_forwarding(&self.resolver, self.registry.state_dir());
                self.scope.set_settings(&settings);
                Some(table)
            }
            Ok(Reload::Unchanged) => {
                tracing::debug!(why, "services file unchanged");
                self.unsynced.take()
            }
            Err(error) => {
                self.agent.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(why, "{error}; the table that was serving keeps serving");
                self.unsynced.take()
            }
        };
        let Some(fast_path) = fast_path else {
            return;
        };
        // The scope before the table: whom a new file refuses is not
        // answered from the table it brings.
        if self.scope_owed || table.is_some() {
            self.sync_scope(fast_path);
        }
        let Some(table) = table else {
            return;
        };
        match fast_path.sync(table.clone()) {
            Ok(report) => {
                tracing::info!(
                    why,
                    added = report.added,
                    updated = report.updated,
                    removed = report.removed,
                    "fast path table updated"
                );
                self.agent
                    .out_of_step
                    .store(self.scope_owed, Ordering::Relaxed);
            }
            Err(error) => {
                // Not the end of the agent: the program keeps answering
                // (from a partly updated table), the resolver from the new
                // one, and /readyz says not ready until an update succeeds.
                tracing::error!(
                    "updating the fast path's table: {error}; not ready; trying again in {SYNC_RETRY:?}"
                );
                self.agent.out_of_step.store(true, Ordering::Relaxed);
                self.unsynced = Some(table);
                self.retry_at = Instant::now() + SYNC_RETRY;
            }
        }
    }
}

/// Writes where the resolver forwards, by zone, to the state folder for
/// `meshdns lookup`; a failure is logged (it serves nothing).
pub fn save_forwarding(resolver: &Resolver, state_dir: &std::path::Path) {
    let path = state_dir.join(crate::resolver::forwarding::VIEW_FILE);
    let written = serde_json::to_vec(&resolver.forwarding().view())
        .map_err(std::io::Error::other)
        .and_then(|bytes| crate::atomic_file::write(&path, &bytes));
    if let Err(error) = written {
        tracing::debug!(path = %path.display(), %error, "cannot write the forwarding; lookup will not name a zone");
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use meshdns_common::NameKey;

    use super::*;
    use crate::{
        config::ResolverSettings,
        dns_name,
        resolver::cache::{Cache, Limits},
    };

    /// A services file and a state folder of their own, removed on drop.
    struct Files(PathBuf);

    impl Files {
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("meshdns-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn write(&self, text: &str) {
            std::fs::write(self.0.join("services.yaml"), text).unwrap();
        }
    }

    impl Drop for Files {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn has(resolver: &Resolver, name: &str) -> bool {
        let key = NameKey::from_wire(&dns_name::to_wire(name, "mesh").unwrap()).unwrap();
        resolver.table().get(&key).is_some()
    }

    #[tokio::test]
    async fn a_reload_serves_the_new_file_and_a_broken_one_keeps_the_old() {
        let files = Files::new("reconcile");
        files.write("services:\n  - name: a\n    vips: [240.0.0.1]\n");
        let mut registry = Registry::new(&files.0.join("services.yaml"), &files.0);
        let Ok(Reload::Changed { table, settings }) = registry.reload() else {
            panic!("the first read is a change");
        };
        let resolver = Arc::new(Resolver::new(
            table,
            &settings,
            Vec::new(),
            &[],
            Cache::new(Limits::default()),
        ));
        let agent = Arc::new(AgentState::default());
        let mut reconciler = Reconciler::new(registry, resolver.clone(), agent.clone());

        files.write("services:\n  - name: b\n    vips: [240.0.0.2]\n");
        reconciler.reload("file changed", None);
        assert!(has(&resolver, "b") && !has(&resolver, "a"));
        assert_eq!(agent.reloads.load(Ordering::Relaxed), 1);

        // The same text again is no reload.
        reconciler.reload("SIGHUP", None);
        assert_eq!(agent.reloads.load(Ordering::Relaxed), 1);

        files.write("services:\n  - name: [\n");
        reconciler.reload("file changed", None);
        assert!(has(&resolver, "b"), "the old table keeps serving");
        assert_eq!(agent.reload_errors.load(Ordering::Relaxed), 1);
        assert_eq!(
            reconciler.retry_at(),
            None,
            "nothing is owed to a fast path"
        );
    }

    #[tokio::test]
    async fn a_reload_applies_the_files_resolver_settings() {
        let files = Files::new("reconcile-settings");
        files.write("services: []\n");
        let mut registry = Registry::new(&files.0.join("services.yaml"), &files.0);
        let Ok(Reload::Changed { table, .. }) = registry.reload() else {
            panic!("the first read is a change");
        };
        let resolver = Arc::new(Resolver::new(
            table,
            &ResolverSettings::default(),
            vec!["127.0.0.0/8".parse().unwrap()],
            &[],
            Cache::new(Limits::default()),
        ));
        let mut reconciler =
            Reconciler::new(registry, resolver.clone(), Arc::new(AgentState::default()));
        files.write("allow_from: [198.18.0.0/15]\nservices: []\n");
        reconciler.reload("file changed", None);
        let allowed: Vec<String> = resolver
            .allow_from()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(allowed, ["198.18.0.0/15"]);
    }
}

//! The registry of services: the services file, the sources it lists and
//! the VIP state, read into a table whenever the file or a source changes.
//! The only code that reads them.

use std::{
    hash::{DefaultHasher, Hash as _, Hasher as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    config::{ConfigError, ConfigErrorKind, ResolverSettings, Services, located},
    source::{ReadContext, Source, SourceState, SourceStatus, provenance::Provenance},
    table::{SourceNames, Table},
    vip::State,
};

/// Name of the VIP state file in the state folder.
pub const STATE_FILE: &str = "vips.json";

pub struct Registry {
    config: PathBuf,
    state_path: PathBuf,
    state: State,
    /// A hash of the text the current table came from and of the names its
    /// sources gave: a file saved unchanged is not reloaded, and a
    /// million-name file is not kept.
    loaded: Option<u64>,
    /// The file as last parsed, with the hash of its text, while it lists
    /// sources: a source's change is applied without parsing it again.
    parsed: Option<(u64, Services)>,
    /// The sources of the file last read, in its order, with what each
    /// last gave and how its reads went.
    sources: Vec<(Source, SourceState, SourceStatus)>,
    /// What the sources may need: the state folder, and the wake-up of a
    /// polled source's change.
    context: ReadContext,
    /// What the state folder says of the sources, as last written.
    provenance: Provenance,
    /// Where meshdns itself listens: never an upstream of a `forward:`
    /// zone (a loop).
    own: Vec<std::net::SocketAddr>,
}

/// What a reload found.
pub enum Reload {
    /// The file is as it was: nothing to do.
    Unchanged,
    /// A new table, whose VIP state is saved, and the resolver's settings
    /// from the same file.
    Changed {
        table: Arc<Table>,
        settings: ResolverSettings,
    },
}

impl Registry {
    /// Opens the registry; the VIP state comes from `state_dir` (a missing
    /// or corrupt state file is reported and rebuilt).
    pub fn new(config: &Path, state_dir: &Path) -> Self {
        let state_path = state_dir.join(STATE_FILE);
        Self {
            config: config.to_path_buf(),
            state: State::load(&state_path),
            state_path,
            loaded: None,
            parsed: None,
            sources: Vec::new(),
            context: ReadContext {
                state_dir: state_dir.to_path_buf(),
                changed: Arc::new(tokio::sync::Notify::new()),
            },
            provenance: Provenance::default(),
            own: Vec::new(),
        }
    }

    /// Notified when a polled source has something new (names, or news of
    /// its health): the caller reloads then.
    pub fn source_changes(&self) -> Arc<tokio::sync::Notify> {
        self.context.changed.clone()
    }

    /// How each source of the file last read is doing, in its order.
    pub fn source_status(&self) -> Vec<SourceStatus> {
        self.sources
            .iter()
            .map(|(_, _, status)| status.clone())
            .collect()
    }

    /// What to watch for the sources' changes.
    pub fn watch_paths(&self) -> Vec<PathBuf> {
        self.sources
            .iter()
            .filter_map(|(source, _, _)| source.watch_path())
            .collect()
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// The agent's state folder.
    pub fn state_dir(&self) -> &Path {
        &self.context.state_dir
    }

    /// Where meshdns listens, once known (after the first read): `settings`,
    /// the first read's, and every later read, are refused if a
    /// `forward:` zone lists one of them as an upstream.
    pub fn set_own_addresses(
        &mut self,
        own: &[std::net::SocketAddr],
        settings: &ResolverSettings,
    ) -> Result<(), ConfigError> {
        self.own = own.to_vec();
        crate::config::forward::refuse_own(&settings.forward, own).map_err(|kind| {
            let text = std::fs::read_to_string(&self.config).unwrap_or_default();
            let (line, kind) = located(&text, kind);
            ConfigError {
                path: self.config.clone(),
                line,
                kind,
            }
        })
    }

    /// Reads the services file and its sources. A file that does not parse
    /// or validate is an error with its line, and changes nothing: the
    /// caller keeps serving the table it has. A source that fails keeps
    /// what it gave last (see [`SourceState::read`]) and is reported in
    /// [`Registry::source_status`], not here.
    pub fn reload(&mut self) -> Result<Reload, ConfigError> {
        let text = std::fs::read_to_string(&self.config).map_err(|e| ConfigError {
            path: self.config.clone(),
            line: None,
            kind: e.into(),
        })?;
        let text_hash = hash_of(&text);
        let path = self.config.clone();
        let error = |(line, kind)| ConfigError {
            path: path.clone(),
            line,
            kind,
        };
        let services = match &self.parsed {
            Some((hash, services)) if *hash == text_hash => services.clone(),
            // Without sources, the same text is the same table.
            _ if self.loaded == Some(text_hash) && self.sources.is_empty() => {
                return Ok(Reload::Unchanged);
            }
            _ => Services::parse(&text).map_err(error)?,
        };
        crate::config::forward::refuse_own(&services.resolver.forward, &self.own)
            .map_err(|kind| error(located(&text, kind)))?;
        self.read_sources(&services.sources);
        let mut hasher = DefaultHasher::new();
        text_hash.hash(&mut hasher);
        // Each source's names framed by its place and count: the same
        // names moved from one source to another are another table.
        for (index, (_, state, _)) in self.sources.iter().enumerate() {
            index.hash(&mut hasher);
            state.names().count().hash(&mut hasher);
            state.names().for_each(|name| name.hash(&mut hasher));
        }
        let hash = if self.sources.is_empty() {
            text_hash
        } else {
            hasher.finish()
        };
        if self.loaded == Some(hash) {
            self.write_provenance(None);
            return Ok(Reload::Unchanged);
        }

        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let settings = services.resolver.clone();
        // Kept for the sources' next change, unless kept already.
        let cached = matches!(&self.parsed, Some((hash, _)) if *hash == text_hash);
        let parsed =
            (!cached && !services.sources.is_empty()).then(|| (text_hash, services.clone()));
        let names: Vec<SourceNames<'_>> = self
            .sources
            .iter()
            .map(|(source, state, status)| SourceNames {
                id: &status.id,
                ttl: source.ttl(),
                names: state.names().collect(),
            })
            .collect();
        let (table, merged) = Table::build_with_sources(services, &names, &mut self.state, now)
            .map_err(|alloc| error(located(&text, ConfigErrorKind::Vip(alloc))))?;
        drop(names);
        for ((_, _, status), merged) in self.sources.iter_mut().zip(merged) {
            status.merged = merged;
        }
        // Serving matters more than persisting: a state file that cannot be
        // written is an error in the log, not a reason to refuse the table.
        if let Err(error) = self.state.save(&self.state_path) {
            tracing::error!(path = %self.state_path.display(), %error, "cannot save the VIP state; VIPs may change on restart");
        }
        self.loaded = Some(hash);
        if !cached {
            self.parsed = parsed;
        }
        self.write_provenance(Some(&table));
        Ok(Reload::Changed {
            table: Arc::new(table),
            settings,
        })
    }

    /// Writes which source each name of `table` (or, without one, of the
    /// table last built) came from, and how the sources are, if that
    /// changed; removes the file when the services file lists no sources.
    fn write_provenance(&mut self, table: Option<&Table>) {
        let state_dir = &self.context.state_dir;
        if self.sources.is_empty() {
            if self.provenance != Provenance::default() || Provenance::path(state_dir).exists() {
                let _ = std::fs::remove_file(Provenance::path(state_dir));
                self.provenance = Provenance::default();
            }
            return;
        }
        let status = self.source_status();
        let next = match table {
            Some(table) => Provenance::of(table, &status),
            None => Provenance {
                sources: Provenance::summaries(&status),
                ..self.provenance.clone()
            },
        };
        let same = |a: &Provenance, b: &Provenance| a.sources == b.sources && a.names == b.names;
        if !same(&next, &self.provenance) {
            next.save(state_dir);
            self.provenance = next;
        }
    }

    /// Reads each of `sources` again, keeping what the ones still listed
    /// gave before (a source that fails now serves that), and logs each
    /// failure.
    fn read_sources(&mut self, sources: &[Source]) {
        let mut before = std::mem::take(&mut self.sources);
        for source in sources {
            let (mut state, mut status) = match before.iter().position(|(s, _, _)| s == source) {
                Some(i) => {
                    let (_, state, status) = before.swap_remove(i);
                    (state, status)
                }
                None => (SourceState::default(), SourceStatus::new(source.id())),
            };
            state.read(source, &self.context);
            status.record(&state);
            for failure in &state.errors {
                tracing::error!(
                    source = status.id,
                    "{failure}; its last good names keep serving"
                );
            }
            self.sources.push((source.clone(), state, status));
        }
    }
}

fn hash_of(text: &str) -> u64 {
    let mut hasher = DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use meshdns_common::NameKey;

    use super::*;
    use crate::{dns_name, source::testing::ConfigMapVolume};

    fn answer(table: &Table, name: &str) -> Option<(String, u32, Option<String>)> {
        let key = NameKey::from_wire(&dns_name::from_text(name).unwrap()).unwrap();
        let entry = table.get(&key)?;
        let record = entry.record;
        let address = if record.v4_count > 0 {
            std::net::Ipv4Addr::from(record.v4[0]).to_string()
        } else {
            std::net::Ipv6Addr::from(record.v6[0]).to_string()
        };
        Some((
            address,
            record.ttl,
            table.source_id(entry).map(str::to_string),
        ))
    }

    fn changed(registry: &mut Registry) -> Arc<Table> {
        match registry.reload() {
            Ok(Reload::Changed { table, .. }) => table,
            Ok(Reload::Unchanged) => panic!("unchanged"),
            Err(error) => panic!("{error}"),
        }
    }

    #[test]
    fn a_sources_names_join_the_files_which_win_and_its_changes_reload() {
        let mut volume = ConfigMapVolume::new("registry-sources");
        volume.publish(&[(
            "default",
            r#"{"redis":"240.0.0.9","backend_kuma-demo_svc_80":"240.0.0.2","outside.example":"240.0.0.3"}"#,
        )]);
        // The services file and the VIP state in a folder of their own: every
        // file of the volume is a VIP list.
        let files = ConfigMapVolume::new("registry-files");
        let config = files.dir.join("services.yaml");
        std::fs::write(
            &config,
            format!(
                "ttl: 60\nservices:\n  - name: redis\n    vips: [240.0.0.100]\nsources:\n  - kuma_vips: {}\n",
                volume.dir.display()
            ),
        )
        .unwrap();
        let mut registry = Registry::new(&config, &files.dir);
        let table = changed(&mut registry);
        let id = format!("kuma_vips:{}", volume.dir.display());
        // The file's redis wins over Kuma's; Kuma's names carry Kuma's TTL.
        assert_eq!(
            answer(&table, "redis.mesh"),
            Some(("240.0.0.100".into(), 60, None))
        );
        for name in [
            "backend_kuma-demo_svc_80.mesh",
            "backend.kuma-demo.svc.80.mesh",
        ] {
            assert_eq!(
                answer(&table, name),
                Some(("240.0.0.2".into(), 30, Some(id.clone()))),
                "{name}"
            );
        }
        let status = &registry.source_status()[0];
        assert!(status.up);
        // `outside.example` is a service entry, so `outside.example.mesh`:
        // in the zone, with the two of backend; Kuma's redis conflicts.
        assert_eq!((status.merged.names, status.merged.conflicts), (3, 1));
        assert_eq!(status.merged.outside_zone, 0);

        // Nothing changed: no reload.
        assert!(matches!(registry.reload(), Ok(Reload::Unchanged)));

        // A new version of the ConfigMap: the table follows.
        volume.publish(&[("default", r#"{"backend_kuma-demo_svc_80":"240.0.0.4"}"#)]);
        let table = changed(&mut registry);
        assert_eq!(
            answer(&table, "backend.kuma-demo.svc.80.mesh").unwrap().0,
            "240.0.0.4"
        );
        assert_eq!(answer(&table, "redis.mesh").unwrap().0, "240.0.0.100");

        // A broken version: its last good names keep serving, and it says so.
        volume.publish(&[("default", r#"{"backend_kuma-demo_svc_80": "#)]);
        assert!(matches!(registry.reload(), Ok(Reload::Unchanged)));
        let status = &registry.source_status()[0];
        assert!(!status.up);
        assert_eq!(status.failures, 1);
        assert_eq!(status.merged.names, 2);
    }
}

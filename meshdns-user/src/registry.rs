//! The registry of services: the services file and the VIP state, read
//! into a table whenever the file changes. The only code that reads the
//! file.

use std::{
    hash::{DefaultHasher, Hash as _, Hasher as _},
    path::{Path, PathBuf},
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use crate::{
    config::{ConfigError, ConfigErrorKind, ResolverSettings, Services, located},
    table::Table,
    vip::State,
};

/// Name of the VIP state file in the state folder.
pub const STATE_FILE: &str = "vips.json";

pub struct Registry {
    config: PathBuf,
    state_path: PathBuf,
    state: State,
    /// A hash of the text the current table came from: a file saved
    /// unchanged is not reloaded, and a million-name file is not kept.
    loaded: Option<u64>,
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
        }
    }

    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Reads the services file. A file that does not parse or validate is an
    /// error with its line, and changes nothing: the caller keeps serving
    /// the table it has.
    pub fn reload(&mut self) -> Result<Reload, ConfigError> {
        let text = std::fs::read_to_string(&self.config).map_err(|e| ConfigError {
            path: self.config.clone(),
            line: None,
            kind: e.into(),
        })?;
        let mut hasher = DefaultHasher::new();
        text.hash(&mut hasher);
        let hash = hasher.finish();
        if self.loaded == Some(hash) {
            return Ok(Reload::Unchanged);
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let error = |(line, kind)| ConfigError {
            path: self.config.clone(),
            line,
            kind,
        };
        let services = Services::parse(&text).map_err(error)?;
        let settings = services.resolver.clone();
        let table = Table::build(services, &mut self.state, now)
            .map_err(|alloc| error(located(&text, ConfigErrorKind::Vip(alloc))))?;
        // Serving matters more than persisting: a state file that cannot be
        // written is an error in the log, not a reason to refuse the table.
        if let Err(error) = self.state.save(&self.state_path) {
            tracing::error!(path = %self.state_path.display(), %error, "cannot save the VIP state; VIPs may change on restart");
        }
        self.loaded = Some(hash);
        Ok(Reload::Changed {
            table: Arc::new(table),
            settings,
        })
    }
}

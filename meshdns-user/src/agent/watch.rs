//! What wakes the agent besides its timers: signals, and changes to the
//! services file and to its sources' files.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use futures_util::StreamExt as _;
use inotify::{Inotify, WatchMask};
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::{AgentError, Result};

/// SIGINT, SIGTERM and SIGHUP, caught from creation on.
pub struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

/// A signal the agent acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caught {
    /// SIGINT or SIGTERM: stop.
    Shutdown(&'static str),
    /// SIGHUP: read the services file again.
    Hangup,
}

impl Signals {
    /// Must be called inside a tokio runtime.
    pub fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    pub async fn next(&mut self) -> Caught {
        tokio::select! {
            _ = self.interrupt.recv() => Caught::Shutdown("SIGINT"),
            _ = self.terminate.recv() => Caught::Shutdown("SIGTERM"),
            _ = self.hangup.recv() => Caught::Hangup,
        }
    }
}

/// Changes to the services file, seen through inotify on its folder: that
/// catches editors that write in place, tools that write a new file and
/// rename it over the old one, and Kubernetes ConfigMap volumes, which swap
/// a symlink (`..data`). The sources' folders are watched the same way
/// ([`ConfigWatch::watch`]). Whether anything really changed is the
/// registry's call.
pub struct ConfigWatch {
    events: inotify::EventStream<Vec<u8>>,
    /// The folders watched so far.
    watched: std::collections::HashSet<PathBuf>,
    /// An event was read and the folder is settling: `next` may be dropped
    /// then (it is one branch of a `select!`), and must not lose it.
    settling: bool,
}

/// How long to wait for more events after the first, so that a write in
/// several steps is read once, when done. Well inside the 100 ms budget.
const SETTLE: Duration = Duration::from_millis(10);

impl ConfigWatch {
    /// Must be called inside a tokio runtime.
    pub fn new(config: &Path) -> Result<Self> {
        let dir = match config.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let inotify = Inotify::init().map_err(AgentError::Inotify)?;
        let mut watch = Self {
            events: inotify
                .into_event_stream(vec![0; 4096])
                .map_err(AgentError::Inotify)?,
            watched: std::collections::HashSet::new(),
            settling: false,
        };
        watch.add(dir)?;
        watch.watched.insert(dir.to_path_buf());
        Ok(watch)
    }

    /// Watches `dirs` too (the sources' folders), and the folder each is
    /// in (the nearest that exists), so that a folder made, removed or
    /// made again is seen. Returns whether a watch was added: the caller
    /// reads the sources again then, since a change made before the watch
    /// would not be seen.
    pub fn watch(&mut self, dirs: &[PathBuf]) -> bool {
        let mut added = false;
        for dir in dirs {
            let ancestor = dir
                .ancestors()
                .skip(1)
                .find(|a| a.is_dir())
                .map(Path::to_path_buf);
            for dir in std::iter::once(dir.clone()).chain(ancestor) {
                if self.watched.contains(&dir) || !dir.is_dir() {
                    continue;
                }
                match self.add(&dir) {
                    Ok(()) => {
                        self.watched.insert(dir);
                        added = true;
                    }
                    Err(error) => {
                        tracing::warn!("{error}; its changes are read at the next reload");
                    }
                }
            }
        }
        added
    }

    fn add(&self, dir: &Path) -> Result<()> {
        self.events
            .watches()
            .add(
                dir,
                WatchMask::CLOSE_WRITE
                    | WatchMask::MOVED_TO
                    | WatchMask::MOVED_FROM
                    | WatchMask::CREATE
                    | WatchMask::DELETE
                    | WatchMask::DELETE_SELF,
            )
            .map(|_| ())
            .map_err(|source| AgentError::Watch {
                dir: dir.to_path_buf(),
                source,
            })
    }

    /// Waits for a change, then for the folder to settle.
    /// Cancel-safe: dropped while settling, the next call settles and
    /// returns the change.
    pub async fn next(&mut self) -> Result<()> {
        if !self.settling {
            match self.events.next().await {
                Some(event) => {
                    event.map_err(AgentError::Inotify)?;
                }
                None => return Err(AgentError::InotifyEnded),
            }
            self.settling = true;
        }
        while let Ok(Some(event)) = tokio::time::timeout(SETTLE, self.events.next()).await {
            event.map_err(AgentError::Inotify)?;
        }
        self.settling = false;
        Ok(())
    }
}

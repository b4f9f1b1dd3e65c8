//! The interfaces the fast path serves: every interface whose name one of
//! `--iface`'s values matches, attached as it appears and forgotten as it
//! goes (rtnetlink's announcements, not polling), with what became of each
//! counted by value for `/metrics` and `/readyz`, without a label per pod.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use super::{FastPathStep, Result};
use crate::{
    fastpath::{self, AttachMode, FastPath, FastPathError, Pins},
    netif::{self, IfacePattern, Link, LinkEvent, XdpAttachMode},
};

/// What became of an interface one of the values matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The program runs there.
    Attached,
    /// Another XDP program runs there, which is not ours to replace.
    Skipped,
    /// Attaching failed; tried again when the kernel next announces it.
    Failed,
}

/// The interfaces of one `--iface` value, by what became of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PatternStatus {
    pub pattern: String,
    pub attached: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// The counts `/metrics` and `/readyz` show, shared with them.
pub type SharedStatus = Arc<Mutex<Vec<PatternStatus>>>;

/// Where in the state folder the agent writes the counts, for `meshdns
/// status` (which reads the pins, not the agent).
pub const STATUS_FILE: &str = "interfaces.json";

/// The counts the agent last wrote to `state_dir`, if any.
pub fn load_status(state_dir: &Path) -> Vec<PatternStatus> {
    std::fs::read(state_dir.join(STATUS_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

struct Seen {
    name: String,
    mac: Option<[u8; 6]>,
    /// The first value that matches it, by position.
    pattern: usize,
    state: State,
}

/// The interfaces matched, attached, skipped or failed.
pub struct Interfaces {
    patterns: Vec<IfacePattern>,
    mode: AttachMode,
    pins: Pins,
    /// Where the counts are written for `meshdns status`, and what was
    /// written last.
    state_dir: PathBuf,
    written: Option<Vec<PatternStatus>>,
    /// Each interface a value matches, by index.
    seen: BTreeMap<u32, Seen>,
    /// Interfaces named outright that went away, to say when they are back.
    returning: BTreeSet<String>,
    status: SharedStatus,
}

impl Interfaces {
    pub fn new(patterns: &[IfacePattern], mode: AttachMode, pins: &Pins, state_dir: &Path) -> Self {
        let interfaces = Self {
            patterns: patterns.to_vec(),
            mode,
            pins: pins.clone(),
            state_dir: state_dir.to_path_buf(),
            written: None,
            seen: BTreeMap::new(),
            returning: BTreeSet::new(),
            status: SharedStatus::default(),
        };
        interfaces.publish();
        interfaces
    }

    /// The counts, as `/metrics` reads them.
    pub fn status(&self) -> SharedStatus {
        self.status.clone()
    }

    /// The interfaces the program runs on.
    pub fn attached(&self) -> impl Iterator<Item = &str> {
        self.seen
            .values()
            .filter(|seen| seen.state == State::Attached)
            .map(|seen| seen.name.as_str())
    }

    /// Attaches to every interface of `links` (all there are) that a value
    /// matches, taking over the links a previous agent pinned, and removes
    /// the pins of the others: interfaces gone while no agent ran, or no
    /// longer named. An interface named outright (not by a pattern) that
    /// cannot be attached fails the start; one of a pattern is counted.
    pub fn start(&mut self, fast_path: &mut FastPath, links: &[Link]) -> Result<()> {
        for link in links {
            if let Err(error) = self.present(fast_path, link, true)
                && self.is_named(&link.name)
            {
                return Err(FastPathStep::attach(&link.name).failed()(error));
            }
        }
        self.remove_other_pins();
        self.publish();
        self.save_status();
        Ok(())
    }

    /// Follows one announcement of the kernel's.
    pub fn follow(&mut self, fast_path: &mut FastPath, event: LinkEvent) {
        match event {
            LinkEvent::Present(link) => {
                // Its failure is logged and counted there.
                let _ = self.present(fast_path, &link, false);
            }
            LinkEvent::Gone { index, .. } => self.gone(fast_path, index),
            LinkEvent::Routes => return,
            LinkEvent::Lost => {
                tracing::warn!("rtnetlink announcements were lost: listing the interfaces again");
                match netif::links() {
                    Ok(links) => self.resync(fast_path, &links),
                    Err(error) => tracing::error!(%error, "listing the interfaces"),
                }
            }
        }
        self.publish();
    }

    /// Brings what is seen in step with `links`, all there are.
    fn resync(&mut self, fast_path: &mut FastPath, links: &[Link]) {
        let gone: Vec<u32> = self
            .seen
            .keys()
            .filter(|index| !links.iter().any(|link| link.index == **index))
            .copied()
            .collect();
        for index in gone {
            self.gone(fast_path, index);
        }
        for link in links {
            let _ = self.present(fast_path, link, true);
        }
    }

    /// An interface exists as `link` says: attached if a value matches it
    /// and it is not already; forgotten under its old name if renamed; its
    /// MAC listed again if it changed. `fresh`: `link` comes from a dump
    /// just taken; else from an announcement, which may have been queued
    /// before a dump and be out of date (the interface gone since, or
    /// renamed, or a namesake in its place), so the kernel is asked again
    /// before anything is attached.
    fn present(
        &mut self,
        fast_path: &mut FastPath,
        link: &Link,
        fresh: bool,
    ) -> Result<(), FastPathError> {
        if let Some(seen) = self.seen.get_mut(&link.index) {
            let renamed = seen.name != link.name;
            if !renamed && seen.state == State::Attached {
                // Up, down, or another change that leaves the link as it
                // is; a new MAC is what the program checks frames against.
                if seen.mac != link.mac {
                    seen.mac = link.mac;
                    if let Err(error) = fast_path.relist(link) {
                        tracing::warn!(iface = %link.name, %error, "listing the interface's new MAC");
                    }
                }
                return Ok(());
            }
            if renamed {
                self.gone(fast_path, link.index);
            }
        }
        if netif::first_match(&self.patterns, &link.name).is_none() {
            return Ok(());
        }
        if fresh {
            return self.attach(fast_path, link);
        }
        match netif::link(link.index) {
            Ok(now) if now.name == link.name => self.attach(fast_path, &now),
            // Gone or renamed since: its own announcement follows.
            _ => Ok(()),
        }
    }

    /// Attaches to `link`, which a value matches, and records how that went.
    fn attach(&mut self, fast_path: &mut FastPath, link: &Link) -> Result<(), FastPathError> {
        let Some(pattern) = netif::first_match(&self.patterns, &link.name) else {
            return Ok(());
        };
        let before = self.seen.get(&link.index).map(|seen| seen.state);
        let (state, result) = match fast_path.attach_link_pinned(link, self.mode, &self.pins) {
            Ok(attachment) => {
                if self.returning.remove(&link.name) {
                    tracing::info!(iface = %link.name, mode = XdpAttachMode::name_of(attachment.mode), "fast path attached again: the interface is back");
                } else {
                    log_attached(&link.name, attachment.mode, attachment.took_over);
                }
                // A link keeps the mode it was created with.
                if let Some(running) = attachment.mode
                    && !self.mode.allows(running)
                {
                    tracing::warn!(
                        iface = %link.name,
                        mode = running.name(),
                        asked = ?self.mode,
                        "the pinned link keeps its mode; to change it, `meshdns detach --iface {}` and start again (the fast path is off there in between)",
                        link.name
                    );
                }
                (State::Attached, Ok(()))
            }
            Err(error @ FastPathError::HookTaken { .. }) => {
                if before != Some(State::Skipped) {
                    tracing::warn!(iface = %link.name, "{error}; the interface is skipped");
                }
                (State::Skipped, Err(error))
            }
            Err(error) => {
                if before != Some(State::Failed) {
                    tracing::error!(iface = %link.name, "attaching the fast path: {error}");
                }
                (State::Failed, Err(error))
            }
        };
        self.seen.insert(
            link.index,
            Seen {
                name: link.name.clone(),
                mac: link.mac,
                pattern,
                state,
            },
        );
        result
    }

    /// Tries again the interfaces that failed or were skipped: an error
    /// that passed, a map that was full and has room since, another
    /// program that has left the interface. Attaching and detaching
    /// through a link announces nothing, so this is asked for on a timer.
    pub fn retry(&mut self, fast_path: &mut FastPath) {
        let again: Vec<(u32, String)> = self
            .seen
            .iter()
            .filter(|(_, seen)| seen.state != State::Attached)
            .map(|(index, seen)| (*index, seen.name.clone()))
            .collect();
        if again.is_empty() {
            return;
        }
        for (index, name) in again {
            match netif::link(index) {
                Ok(link) if link.name == name => {
                    let _ = self.attach(fast_path, &link);
                }
                _ => {
                    self.seen.remove(&index);
                }
            }
        }
        self.publish();
    }

    /// Interface `index` is gone: its pin and its entry go too.
    fn gone(&mut self, fast_path: &mut FastPath, index: u32) {
        let Some(seen) = self.seen.remove(&index) else {
            return;
        };
        if seen.state != State::Attached {
            // Its entry in the program's interfaces, if attaching failed
            // after listing it.
            if let Err(error) = fast_path.release(index) {
                tracing::warn!(iface = %seen.name, %error, "forgetting an interface that is gone");
            }
            return;
        }
        if self.is_named(&seen.name) {
            tracing::warn!(
                iface = %seen.name,
                "the interface is gone; the fast path attaches again when it is back"
            );
            self.returning.insert(seen.name.clone());
        }
        match fast_path.release(index) {
            Ok(_) => tracing::info!(
                iface = %seen.name,
                "interface gone: its link and pin removed"
            ),
            Err(error) => {
                tracing::warn!(iface = %seen.name, %error, "removing the pin of an interface that is gone")
            }
        }
    }

    /// Removes the pinned links of interfaces not attached now.
    fn remove_other_pins(&self) {
        let attached: Vec<&str> = self.attached().collect();
        for iface in self.pins.linked_interfaces() {
            if attached.contains(&iface.as_str()) {
                continue;
            }
            match fastpath::remove_link_pin(&self.pins.link(&iface)) {
                Ok(()) => tracing::info!(
                    iface,
                    "removed the pinned link of an interface that is gone or no longer named"
                ),
                Err(error) => tracing::warn!(iface, %error, "cannot remove a stale pinned link"),
            }
        }
    }

    fn is_named(&self, iface: &str) -> bool {
        self.patterns.iter().any(|p| p.name() == Some(iface))
    }

    /// Counts by value, for `/metrics` and `/readyz`.
    fn publish(&self) {
        let mut status: Vec<PatternStatus> = self
            .patterns
            .iter()
            .map(|pattern| PatternStatus {
                pattern: pattern.to_string(),
                ..PatternStatus::default()
            })
            .collect();
        for seen in self.seen.values() {
            let counts = &mut status[seen.pattern];
            match seen.state {
                State::Attached => counts.attached += 1,
                State::Skipped => counts.skipped += 1,
                State::Failed => counts.failed += 1,
            }
        }
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = status;
    }

    /// Writes the counts to the state folder for `meshdns status` if they
    /// changed since last written: at most once a tick, not once an
    /// interface (a thousand pods starting at once would be a thousand
    /// synced writes).
    pub fn save_status(&mut self) {
        let status = self
            .status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let path = self.state_dir.join(STATUS_FILE);
        let written = serde_json::to_vec(&status)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::atomic_file::write(&path, &bytes));
        match written {
            Ok(()) => self.written = Some(status),
            Err(error) => {
                tracing::debug!(path = %path.display(), %error, "cannot write the interfaces' counts; status will not show them")
            }
        }
    }
}

fn log_attached(iface: &str, mode: Option<XdpAttachMode>, took_over: bool) {
    let mode = XdpAttachMode::name_of(mode);
    if took_over {
        tracing::info!(
            iface,
            mode,
            "fast path attached: took over the pinned link, program replaced in place"
        );
    } else {
        tracing::info!(iface, mode, "fast path attached");
    }
}

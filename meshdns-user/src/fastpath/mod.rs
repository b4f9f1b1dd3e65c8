//! The XDP program in the kernel, one module per kernel object or concern,
//! along aya's own lines:
//!
//! - [`pins`]: where its maps and links live in bpffs (the only code that
//!   knows the layout);
//! - this module: loading the program, with pinned maps or maps of its own;
//! - [`attach`]: attaching it to interfaces, pinned links, taking one over;
//! - [`names`]: the names maps, one per length class, as one table;
//! - [`scope`]: whom and for which destinations it answers;
//! - [`slot`]: a map replaced whole, in the slot of an array of maps;
//! - [`sync`]: keeping its table in step with the services;
//! - [`link`]: what a pinned link runs and where, asked of the kernel;
//! - [`counters`]: its per-CPU counters, summed;
//! - [`logs`]: its log of what should never happen, read into the agent's;
//! - [`test_run`]: running it on one frame (BPF_PROG_TEST_RUN), for
//!   `meshdns lookup` and the tests.

pub mod attach;
pub mod counters;
mod error;
pub mod link;
pub mod logs;
pub mod names;
pub mod pins;
pub mod scope;
pub mod slot;
pub mod sync;
pub mod test_run;

use std::{path::PathBuf, sync::Arc};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, MapData, ProgramArray},
    programs::Xdp,
};
use meshdns_common::{
    ANSWER_PROGRAM, NAMES_MAPS, SCOPE_MAP, SEARCH_MAP, SEARCH_PROGRAM, SEARCH_PROGRAM_MAP,
    ScopeTable, SearchPattern, ZONE_MAP, ZoneConfig,
};

pub use attach::{AttachMode, Attachment, remove_link_pin};
pub use counters::Counters;
pub(crate) use error::map_error;
pub use error::{FastPathError, Result};
pub use link::{
    LinkInfo, NotServing, check_pinned_serving, check_serving, detach_link, pinned_link_info,
};
pub use logs::ProgramLog;
pub use names::NameMaps;
pub use pins::{Pins, remove_pins};
pub use scope::{Scope, ScopeRanges};
pub use slot::{Role, Slot};
pub use sync::SyncReport;
pub use test_run::{XDP_DROP, XDP_PASS, XDP_TX};

use crate::{EBPF_OBJECT, table::Table};
/// The loaded XDP program and its maps. One program serves any number of
/// interfaces, each through a link of its own.
pub struct FastPath {
    ebpf: Ebpf,
    /// The names maps, taken out of `ebpf` (the program keeps them).
    names: NameMaps,
    attachments: Vec<Attachment>,
    /// The table the kernel's map holds, as of the last sync that
    /// succeeded; `None` until the first, and after a failed one: the
    /// next sync then reads the map itself.
    in_kernel: Option<Arc<Table>>,
    /// The zone's array of maps, and the one-entry array in its slot, if
    /// known (see [`FastPath::set_zone`]).
    zone: Slot,
    zone_map: Option<Array<MapData, ZoneConfig>>,
    /// The search expansions' array of maps, and the array in its slot, if
    /// known (see [`FastPath::set_search`]).
    search: Slot,
    search_map: Option<Array<MapData, SearchPattern>>,
    /// The scope's array of maps, and the array in its slot, if known.
    scope: Slot,
    scope_map: Option<Array<MapData, ScopeTable>>,
}

impl FastPath {
    /// Loads the embedded object and its answer program into the kernel
    /// (this runs the verifier) with maps of its own, attached nowhere yet,
    /// for tests and tools: it answers every client and destination until
    /// [`FastPath::set_scope`] says otherwise.
    pub fn load() -> Result<Self> {
        let mut fast_path = Self::load_with(&mut EbpfLoader::new(), None, Role::Serving)?;
        fast_path.set_scope(&Scope::any())?;
        Ok(fast_path)
    }

    /// Loads the program with the pinned maps of `pins`, created and pinned
    /// if there are none yet: a restarted agent keeps serving the table,
    /// scope and counters its predecessor left. New maps answer no query
    /// until the scope is set ([`FastPath::set_scope`]).
    pub fn load_pinned(pins: &Pins) -> Result<Self> {
        pins.create()?;
        let paths: Vec<(&str, PathBuf)> = pins::SHARED_MAPS
            .iter()
            .map(|name| (*name, pins.map(name)))
            .collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        Self::load_with(&mut loader, Some(pins), Role::Serving)
    }

    /// Loads the program with the table that serves (the pinned names and
    /// zone maps, which must exist) but counters of its own, attached
    /// nowhere: `meshdns lookup` runs queries through it without moving
    /// the counters of the program that serves. Its scope is its own too,
    /// and any: it answers as for a client and a destination in scope.
    pub fn load_beside(pins: &Pins) -> Result<Self> {
        let mut loader = EbpfLoader::new();
        for name in NAMES_MAPS.into_iter().chain([ZONE_MAP, SEARCH_MAP]) {
            let path = pins.map(name);
            if !path.exists() {
                // map_pin_path would create and pin an empty map there.
                return Err(FastPathError::Io {
                    path,
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            loader.map_pin_path(name, path);
        }
        let mut fast_path = Self::load_with(&mut loader, Some(pins), Role::Reading)?;
        fast_path.set_scope(&Scope::any())?;
        Ok(fast_path)
    }

    fn load_with(loader: &mut EbpfLoader<'_>, pins: Option<&Pins>, role: Role) -> Result<Self> {
        let mut ebpf = loader.load(EBPF_OBJECT)?;
        load_program(Self::xdp(&mut ebpf)?)?;
        link_search_program(&mut ebpf)?;
        let [short, medium, long, full] =
            NAMES_MAPS.map(|name| ebpf.take_map(name).ok_or(FastPathError::Missing(name)));
        let names = NameMaps::new(
            [short?, medium?, long?, full?],
            pins.map(Pins::slot_maps),
            role,
        )?;
        // A one-slot array of maps and, when pinned, the map in its slot.
        let mut slot = |name| {
            let map = ebpf.take_map(name).ok_or(FastPathError::Missing(name))?;
            Slot::open(map, name, pins.map(|pins| pins.slot_map(name)))
        };
        let zone = slot(ZONE_MAP)?;
        let search = slot(SEARCH_MAP)?;
        let zone_map = sync::zone_array(&zone, role)?;
        let search_map = sync::search_array(&search, role)?;
        let scope = slot(SCOPE_MAP)?;
        let scope_map = sync::slot_array(&scope, role, SCOPE_MAP)?;
        Ok(Self {
            ebpf,
            names,
            attachments: Vec::new(),
            in_kernel: None,
            zone,
            zone_map,
            search,
            search_map,
            scope,
            scope_map,
        })
    }

    pub(crate) fn xdp(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
        xdp_named(ebpf, ANSWER_PROGRAM)
    }

    /// The answer program, e.g. to run it on test frames.
    pub fn program(&mut self) -> Result<&mut Xdp> {
        Self::xdp(&mut self.ebpf)
    }

    /// The names maps, as one table.
    pub fn names(&self) -> &NameMaps {
        &self.names
    }

    /// The object's other programs and maps, for tests and tools.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// Loads the search program and puts it in the answer program's program
/// array, which the answer program tail-calls for names in no zone. The
/// array stays in `ebpf` (and, for the agent, pinned): the kernel empties
/// a program array that no process holds.
fn link_search_program(ebpf: &mut Ebpf) -> Result<()> {
    let program = xdp_named(ebpf, SEARCH_PROGRAM)?;
    load_program(program)?;
    let fd = program
        .fd()
        .map_err(FastPathError::Program)?
        .try_clone()
        .map_err(|source| FastPathError::Io {
            path: SEARCH_PROGRAM.into(),
            source,
        })?;
    let map = ebpf
        .map_mut(SEARCH_PROGRAM_MAP)
        .ok_or(FastPathError::Missing(SEARCH_PROGRAM_MAP))?;
    let mut array = ProgramArray::try_from(map).map_err(map_error(SEARCH_PROGRAM_MAP))?;
    array
        .set(0, &fd, 0)
        .map_err(map_error(SEARCH_PROGRAM_MAP))?;
    Ok(())
}

impl FastPath {
    /// The search program, e.g. for its instruction counts.
    pub fn search_program(&mut self) -> Result<&mut Xdp> {
        xdp_named(&mut self.ebpf, SEARCH_PROGRAM)
    }
}

/// The object's XDP program `name`.
fn xdp_named<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp> {
    ebpf.program_mut(name)
        .ok_or(FastPathError::Missing(name))?
        .try_into()
        .map_err(FastPathError::Program)
}

/// How long the verifier is asked again while signals interrupt it.
const LOAD_RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(5);

/// Loads `program` into the kernel. The verifier stops with EAGAIN when a
/// signal arrives for the loading thread while it works (a fraction of a
/// second at this program's size): a SIGHUP or SIGCHLD at the wrong moment
/// would otherwise fail the agent's start. It is asked again, for a while.
fn load_program(program: &mut Xdp) -> Result<()> {
    let start = std::time::Instant::now();
    loop {
        match program.load() {
            Err(aya::programs::ProgramError::LoadError { io_error, .. })
                if io_error.raw_os_error() == Some(libc::EAGAIN)
                    && start.elapsed() < LOAD_RETRY_FOR =>
            {
                tracing::debug!("the verifier was interrupted by a signal; loading again");
            }
            result => return result.map_err(FastPathError::Program),
        }
    }
}

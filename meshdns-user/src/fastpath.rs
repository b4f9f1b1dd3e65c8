//! The XDP program in the kernel: loading it, attaching it to an interface,
//! keeping its table in step, and reading its counters.

use std::{
    borrow::Borrow,
    fmt, fs,
    os::fd::{AsFd as _, AsRawFd as _},
    path::{Path, PathBuf},
    sync::Arc,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, MapError, PerCpuArray},
    pin::PinError,
    programs::{
        ProgramError, Xdp, XdpMode,
        links::{FdLink, LinkError, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use meshdns_common::{
    ANSWER_PROGRAM, COUNTERS_MAP, Counter, INTERFACES_MAP, InterfaceMac, Interfaces,
    LAYOUT_FINGERPRINT, LAYOUT_VERSION, MAX_INTERFACES, NAMES_MAP, NameKey, ServiceRecord,
    ZONE_KEY, ZONE_MAP, ZoneConfig,
};

use crate::{
    EBPF_OBJECT,
    netif::XdpAttachMode,
    table::{Change, Table},
};

/// How to attach the program to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Driver (native) mode if the driver supports it, else generic (SKB) mode.
    Auto,
    /// Driver (native) mode only: in the NIC driver, before any allocation.
    Driver,
    /// Generic (SKB) mode only: works everywhere, much slower.
    Skb,
    /// No XDP at all: the resolver answers everything (for hosts without
    /// XDP, and to measure what the fast path buys).
    Off,
}

#[derive(Debug, thiserror::Error)]
pub enum FastPathError {
    #[error("loading the XDP object: {0}")]
    Object(#[from] aya::EbpfError),
    #[error("the XDP object has no {0}")]
    Missing(&'static str),
    #[error("program {ANSWER_PROGRAM}: {0}")]
    Program(#[source] ProgramError),
    #[error("attaching to {iface} in {mode:?} mode: {source}")]
    Attach {
        iface: String,
        mode: XdpMode,
        #[source]
        source: ProgramError,
    },
    #[error("map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: MapError,
    },
    #[error("pinning in {path}: {source}")]
    Pin {
        path: PathBuf,
        #[source]
        source: PinError,
    },
    #[error("pinned link {path}: {source}")]
    Link {
        path: PathBuf,
        #[source]
        source: LinkError,
    },
    #[error("one program serves at most {0} interfaces")]
    TooManyInterfaces(usize),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T, E = FastPathError> = std::result::Result<T, E>;

fn map_error(map: &'static str) -> impl Fn(MapError) -> FastPathError {
    move |source| FastPathError::Map { map, source }
}

/// The maps the program and agent share, pinned so they outlive the agent.
const SHARED_MAPS: [&str; 3] = [NAMES_MAP, ZONE_MAP, COUNTERS_MAP];

/// Where a fast path's objects live in bpffs, so that the program keeps
/// serving while no agent runs and the next agent takes it over:
///
/// - `<dir>/maps-v<layout>-<fingerprint>/{NAMES,ZONE,COUNTERS}`: the maps,
///   in a folder named by their layout, so an agent never reads maps of
///   another layout;
/// - `<dir>/links/<iface>`: the XDP link of each interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pins {
    pub dir: PathBuf,
}

impl Pins {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The folder of this build's maps.
    pub fn maps_dir(&self) -> PathBuf {
        self.dir
            .join(format!("maps-v{LAYOUT_VERSION}-{LAYOUT_FINGERPRINT:08x}"))
    }

    /// The pinned link of `iface`.
    pub fn link(&self, iface: &str) -> PathBuf {
        self.dir.join("links").join(iface)
    }

    /// The interfaces that have a pinned link, in name order.
    pub fn linked_interfaces(&self) -> Vec<String> {
        let mut ifaces: Vec<String> = fs::read_dir(self.dir.join("links"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect();
        ifaces.sort();
        ifaces
    }

    /// Map folders of other layouts, left by older or newer agents.
    pub fn stale_maps_dirs(&self) -> Vec<PathBuf> {
        let current = self.maps_dir();
        fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                path != &current
                    && path
                        .file_name()
                        .is_some_and(|name| name.to_string_lossy().starts_with("maps-"))
            })
            .collect()
    }

    fn create(&self) -> Result<()> {
        for dir in [self.maps_dir(), self.dir.join("links")] {
            fs::create_dir_all(&dir).map_err(|source| FastPathError::Io { path: dir, source })?;
        }
        Ok(())
    }
}

/// The loaded XDP program and its maps. One program serves any number of
/// interfaces, each through a link of its own.
pub struct FastPath {
    ebpf: Ebpf,
    attachments: Vec<Attachment>,
    /// The table the kernel's map holds, as of the last sync that
    /// succeeded; `None` until the first, and after a failed one: the
    /// next sync then reads the map itself.
    in_kernel: Option<Arc<Table>>,
    /// Each listed interface's slot in the interfaces map, by name: an
    /// interface that comes back with another ifindex keeps its slot.
    slots: std::collections::HashMap<String, usize>,
}

/// Where the program is attached, and how it got there.
#[derive(Debug)]
pub struct Attachment {
    pub iface: String,
    pub mode: XdpMode,
    /// True if this agent took over a link a previous agent pinned.
    pub took_over: bool,
    link: AttachedLink,
}

#[derive(Debug)]
enum AttachedLink {
    /// Owned by the program: detached when the agent exits.
    Owned(XdpLinkId),
    /// Pinned in bpffs: outlives the agent.
    Pinned { path: PathBuf },
}

/// What [`FastPath::sync`] changed in the kernel's table.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
}

impl FastPath {
    /// Loads the embedded object and its answer program into the kernel
    /// (this runs the verifier) with maps of its own, attached nowhere yet.
    pub fn load() -> Result<Self> {
        Self::load_with(&mut EbpfLoader::new())
    }

    /// Loads the program with the pinned maps of `pins`, created and pinned
    /// if there are none yet: a restarted agent keeps serving the table and
    /// counters its predecessor left.
    pub fn load_pinned(pins: &Pins) -> Result<Self> {
        pins.create()?;
        let dir = pins.maps_dir();
        let paths: Vec<(&str, PathBuf)> = SHARED_MAPS
            .iter()
            .map(|name| (*name, dir.join(name)))
            .collect();
        let mut loader = EbpfLoader::new();
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        Self::load_with(&mut loader)
    }

    /// Loads the program with the table that serves (the pinned names and
    /// zone maps, which must exist) but counters of its own, attached
    /// nowhere: `meshdns lookup` runs queries through it without moving
    /// the counters of the program that serves.
    pub fn load_beside(pins: &Pins) -> Result<Self> {
        let dir = pins.maps_dir();
        let mut loader = EbpfLoader::new();
        for name in [NAMES_MAP, ZONE_MAP] {
            let path = dir.join(name);
            if !path.exists() {
                // map_pin_path would create and pin an empty map there.
                return Err(FastPathError::Io {
                    path,
                    source: std::io::ErrorKind::NotFound.into(),
                });
            }
            loader.map_pin_path(name, path);
        }
        Self::load_with(&mut loader)
    }

    fn load_with(loader: &mut EbpfLoader<'_>) -> Result<Self> {
        let mut ebpf = loader.load(EBPF_OBJECT)?;
        Self::xdp(&mut ebpf)?
            .load()
            .map_err(FastPathError::Program)?;
        Ok(Self {
            ebpf,
            attachments: Vec::new(),
            in_kernel: None,
            slots: std::collections::HashMap::new(),
        })
    }

    fn xdp(ebpf: &mut Ebpf) -> Result<&mut Xdp> {
        ebpf.program_mut(ANSWER_PROGRAM)
            .ok_or(FastPathError::Missing(ANSWER_PROGRAM))?
            .try_into()
            .map_err(FastPathError::Program)
    }

    /// The answer program, e.g. to run it on test frames.
    pub fn program(&mut self) -> Result<&mut Xdp> {
        Self::xdp(&mut self.ebpf)
    }

    /// The object's other programs and maps, for tests and tools.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Attaches the program to `iface`, for as long as this value lives.
    /// In `Auto` mode a driver without native XDP gets the program in
    /// generic mode, with a warning.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<&Attachment> {
        let (id, mode) = self.attach_new(iface, mode)?;
        Ok(self.attached(Attachment {
            iface: iface.to_string(),
            mode,
            took_over: false,
            link: AttachedLink::Owned(id),
        }))
    }

    fn attached(&mut self, attachment: Attachment) -> &Attachment {
        // Attaching an interface again (it came back) replaces its entry.
        self.attachments.retain(|a| a.iface != attachment.iface);
        self.attachments.push(attachment);
        self.attachments.last().expect("just pushed")
    }

    fn attach_new(&mut self, iface: &str, mode: AttachMode) -> Result<(XdpLinkId, XdpMode)> {
        self.list_interface(iface)?;
        let xdp = Self::xdp(&mut self.ebpf)?;
        let attach = |xdp: &mut Xdp, mode: XdpMode| {
            xdp.attach(iface, mode)
                .map(|id| (id, mode))
                .map_err(|source| FastPathError::Attach {
                    iface: iface.to_string(),
                    mode,
                    source,
                })
        };
        match mode {
            AttachMode::Off => unreachable!("the agent attaches nothing in off mode"),
            AttachMode::Driver => attach(xdp, XdpMode::Driver),
            AttachMode::Skb => attach(xdp, XdpMode::Skb),
            AttachMode::Auto => attach(xdp, XdpMode::Driver).or_else(|error| {
                tracing::warn!(%error, "no driver-mode XDP here; falling back to generic (SKB) mode, which is much slower");
                attach(xdp, XdpMode::Skb)
            }),
        }
    }

    /// Attaches the program to `iface` through a link pinned in `pins`, so
    /// it keeps serving after the agent exits. If a previous agent left a
    /// pinned link there, the program in it is replaced atomically
    /// (`bpf_link_update`): the interface is never without a program.
    pub fn attach_pinned(
        &mut self,
        iface: &str,
        mode: AttachMode,
        pins: &Pins,
    ) -> Result<&Attachment> {
        pins.create()?;
        let path = pins.link(iface);
        if path.exists() {
            match self.take_over(iface, &path) {
                Ok(()) => {
                    return Ok(self.attached(Attachment {
                        iface: iface.to_string(),
                        // The link keeps the mode it was created with.
                        mode: XdpMode::Default,
                        took_over: true,
                        link: AttachedLink::Pinned { path },
                    }));
                }
                Err(error) => {
                    // A link whose interface went away, for example.
                    tracing::warn!(%error, path = %path.display(), "cannot take over the pinned link; attaching anew");
                    fs::remove_file(&path).map_err(|source| FastPathError::Io {
                        path: path.clone(),
                        source,
                    })?;
                }
            }
        }
        let (id, mode) = self.attach_new(iface, mode)?;
        let xdp = Self::xdp(&mut self.ebpf)?;
        let link = xdp.take_link(id).map_err(FastPathError::Program)?;
        let link = FdLink::try_from(link).map_err(|source| FastPathError::Link {
            path: path.clone(),
            source,
        })?;
        link.pin(&path).map_err(|source| FastPathError::Pin {
            path: path.clone(),
            source,
        })?;
        Ok(self.attached(Attachment {
            iface: iface.to_string(),
            mode,
            took_over: false,
            link: AttachedLink::Pinned { path },
        }))
    }

    fn take_over(&mut self, iface: &str, path: &Path) -> Result<()> {
        self.list_interface(iface)?;
        let link_error = |source| FastPathError::Link {
            path: path.to_path_buf(),
            source,
        };
        let pinned = PinnedLink::from_pin(path).map_err(link_error)?;
        let link = XdpLink::try_from(FdLink::from(pinned)).map_err(link_error)?;
        Self::xdp(&mut self.ebpf)?
            .attach_to_link(link)
            .map_err(FastPathError::Program)?;
        Ok(())
    }

    /// Adds `iface` and its MAC to the program's interfaces, before the
    /// program runs there: from then on it answers only frames sent to that
    /// MAC (see `Interfaces`). An interface without one is not listed, and
    /// not checked.
    fn list_interface(&mut self, iface: &str) -> Result<()> {
        let io = |source| FastPathError::Io {
            path: PathBuf::from(format!("interface {iface}")),
            source,
        };
        let Some(mac) = crate::netif::mac(iface).map_err(io)? else {
            return Ok(());
        };
        let ifindex =
            crate::netif::index(iface).ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
        let map = self
            .ebpf
            .map_mut(INTERFACES_MAP)
            .ok_or(FastPathError::Missing(INTERFACES_MAP))?;
        let mut interfaces: Array<_, Interfaces> =
            Array::try_from(map).map_err(map_error(INTERFACES_MAP))?;
        let mut listed = interfaces.get(&0, 0).map_err(map_error(INTERFACES_MAP))?;
        let count = listed.count as usize;
        let known = self.slots.get(iface).copied().or_else(|| {
            listed.entries[..count]
                .iter()
                .position(|e| e.ifindex == ifindex)
        });
        let slot = match known {
            Some(slot) => slot,
            None if count < MAX_INTERFACES => {
                listed.count += 1;
                count
            }
            None => return Err(FastPathError::TooManyInterfaces(MAX_INTERFACES)),
        };
        self.slots.insert(iface.to_string(), slot);
        listed.entries[slot] = InterfaceMac {
            ifindex,
            mac,
            _pad: [0; 2],
        };
        interfaces
            .set(0, listed, 0)
            .map_err(map_error(INTERFACES_MAP))
    }

    /// Removes pinned maps of other layouts. Call it once the program is
    /// attached: the old program, and with it its maps, is gone by then.
    pub fn remove_stale_maps(pins: &Pins) {
        for dir in pins.stale_maps_dirs() {
            match fs::remove_dir_all(&dir) {
                Ok(()) => tracing::info!(path = %dir.display(), "removed maps of another layout"),
                Err(error) => {
                    tracing::warn!(path = %dir.display(), %error, "cannot remove maps of another layout")
                }
            }
        }
    }

    /// Where the program is attached.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Detaches the program from every interface it is attached to, and
    /// removes their pinned links.
    pub fn detach(&mut self) -> Result<()> {
        for attachment in std::mem::take(&mut self.attachments) {
            match attachment.link {
                AttachedLink::Owned(id) => Self::xdp(&mut self.ebpf)?
                    .detach(id)
                    .map_err(FastPathError::Program)?,
                AttachedLink::Pinned { path } => {
                    detach_link(&path)?;
                }
            }
        }
        Ok(())
    }

    /// Makes the kernel's table equal to `table`, touching only names that
    /// differ: a name whose record did not change is never removed and
    /// re-added, and a changed one is replaced in a single update.
    ///
    /// The first sync compares with what the map holds (a previous agent's
    /// table, say); later ones with the table of the last sync, in memory,
    /// so that a one-name change to a million names costs one update, not
    /// a million reads.
    pub fn sync(&mut self, table: impl Into<Arc<Table>>) -> Result<SyncReport> {
        let table = table.into();
        let previous = self.in_kernel.take();
        // A zone (its apex, or whether it is authoritative) and its names
        // cannot change in one step. Meanwhile the program passes every
        // query to the resolver, which has the new table already, rather
        // than answer from the new zone's rules with the old names (a name
        // about to be added would be NXDOMAIN). A failed sync leaves it so.
        let zone_changes = self.zone()?.as_ref() != Some(table.zone());
        if zone_changes {
            self.set_zone(&ZoneConfig::NONE)?;
        }

        let map = self
            .ebpf
            .map_mut(NAMES_MAP)
            .ok_or(FastPathError::Missing(NAMES_MAP))?;
        let mut names: HashMap<_, NameKey, ServiceRecord> =
            HashMap::try_from(map).map_err(map_error(NAMES_MAP))?;

        // Without the last table synced, what the map holds is read: a
        // previous agent's table, or what a failed sync left.
        let read = match previous {
            Some(_) => None,
            None => Some(
                names
                    .iter()
                    .collect::<Result<std::collections::HashMap<NameKey, ServiceRecord>, _>>()
                    .map_err(map_error(NAMES_MAP))?,
            ),
        };
        let changes: Box<dyn Iterator<Item = Change<'_>>> = match (&previous, &read) {
            (Some(previous), _) => Box::new(previous.changes(&table)),
            (None, read) => {
                let read = read.as_ref().expect("read when there is no previous table");
                let removed = read
                    .keys()
                    .filter(|key| table.get(key).is_none())
                    .map(Change::Removed);
                let rest = table.iter().map(|(key, entry)| match read.get(key) {
                    Some(record) if *record == entry.record => Change::Unchanged,
                    Some(_) => Change::Updated(key, entry),
                    None => Change::Added(key, entry),
                });
                Box::new(removed.chain(rest))
            }
        };
        let mut report = SyncReport::default();
        for change in changes {
            match change {
                Change::Unchanged => report.unchanged += 1,
                Change::Removed(key) => {
                    names.remove(key).map_err(map_error(NAMES_MAP))?;
                    report.removed += 1;
                }
                Change::Added(key, entry) => {
                    names
                        .insert(key, entry.record, 0)
                        .map_err(map_error(NAMES_MAP))?;
                    report.added += 1;
                }
                Change::Updated(key, entry) => {
                    names
                        .insert(key, entry.record, 0)
                        .map_err(map_error(NAMES_MAP))?;
                    report.updated += 1;
                }
            }
        }
        if zone_changes {
            self.set_zone(table.zone())?;
        }
        self.in_kernel = Some(table);
        Ok(report)
    }

    fn zone_map(&mut self) -> Result<HashMap<&mut MapData, u32, ZoneConfig>> {
        let map = self
            .ebpf
            .map_mut(ZONE_MAP)
            .ok_or(FastPathError::Missing(ZONE_MAP))?;
        HashMap::try_from(map).map_err(map_error(ZONE_MAP))
    }

    /// The zone the program uses now, if any.
    fn zone(&mut self) -> Result<Option<ZoneConfig>> {
        Ok(self.zone_map()?.get(&ZONE_KEY, 0).ok())
    }

    /// Replaces the zone the program uses, in one update.
    pub fn set_zone(&mut self, zone: &ZoneConfig) -> Result<()> {
        self.zone_map()?
            .insert(ZONE_KEY, zone, 0)
            .map_err(map_error(ZONE_MAP))
    }

    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let map = self
            .ebpf
            .map(COUNTERS_MAP)
            .ok_or(FastPathError::Missing(COUNTERS_MAP))?;
        let counters = PerCpuArray::try_from(map).map_err(map_error(COUNTERS_MAP))?;
        Counters::read(&counters).map_err(map_error(COUNTERS_MAP))
    }
}

/// Detaches the XDP link pinned at `path` and removes the pin. The link
/// goes at once, even while another process holds it open (an agent that
/// is still running), because it is detached, not just closed. Returns
/// false if nothing was pinned there.
pub fn detach_link(path: &Path) -> Result<bool> {
    if !path.exists() {
        return Ok(false);
    }
    let io = |source| FastPathError::Io {
        path: path.to_path_buf(),
        source,
    };
    let link = bpf::obj_get(path).map_err(io)?;
    bpf::link_detach(link.as_fd().as_raw_fd()).map_err(io)?;
    fs::remove_file(path).map_err(io)?;
    Ok(true)
}

/// What a pinned XDP link says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkInfo {
    pub link_id: u32,
    /// The program the link runs now.
    pub program_id: u32,
    /// The interface it is attached to; 0 once that interface is gone.
    pub ifindex: u32,
}

/// Reads the XDP link pinned at `path`.
pub fn pinned_link_info(path: &Path) -> Result<LinkInfo> {
    let io = |source| FastPathError::Io {
        path: path.to_path_buf(),
        source,
    };
    let link = bpf::obj_get(path).map_err(io)?;
    bpf::xdp_link_info(link.as_fd().as_raw_fd()).map_err(io)
}

/// Why a link does not serve.
#[derive(Debug, thiserror::Error)]
pub enum NotServing {
    #[error("no pinned link: {0}")]
    NoLink(#[source] FastPathError),
    #[error("the interface is gone; the link is defunct")]
    InterfaceGone,
    #[error("no XDP program on the interface")]
    NoProgram,
    #[error("the interface runs program {0}, not the link's")]
    OtherProgram(u32),
    #[error("asking the kernel about the interface: {0}")]
    Netlink(#[source] std::io::Error),
}

/// Whether the interface of `link` runs the link's program, as the kernel
/// says (the link outlives its interface, and `ip link set xdp off` can
/// replace what runs); how it is attached if so.
pub fn check_serving(link: &LinkInfo) -> std::result::Result<XdpAttachMode, NotServing> {
    if link.ifindex == 0 {
        return Err(NotServing::InterfaceGone);
    }
    match crate::netif::xdp_attached(link.ifindex) {
        Ok(Some((mode, program))) if program == link.program_id => Ok(mode),
        Ok(Some((_, program))) => Err(NotServing::OtherProgram(program)),
        Ok(None) => Err(NotServing::NoProgram),
        Err(error) => Err(NotServing::Netlink(error)),
    }
}

/// [`check_serving`] for the link pinned at `path`.
pub fn check_pinned_serving(path: &Path) -> std::result::Result<XdpAttachMode, NotServing> {
    check_serving(&pinned_link_info(path).map_err(NotServing::NoLink)?)
}

/// The bpf(2) commands aya has no public call for.
mod bpf {
    use std::{
        ffi::CString,
        os::{
            fd::{FromRawFd as _, OwnedFd, RawFd},
            unix::ffi::OsStrExt as _,
        },
        path::Path,
    };

    const BPF_OBJ_GET: libc::c_long = 7;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_LINK_DETACH: libc::c_long = 34;
    const BPF_LINK_TYPE_XDP: u32 = 6;

    fn bpf<T>(cmd: libc::c_long, attr: &T) -> std::io::Result<libc::c_long> {
        // SAFETY: `attr` is a valid `union bpf_attr` prefix of the size passed.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *const T,
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }

    /// BPF_OBJ_GET: opens a pinned object.
    pub fn obj_get(path: &Path) -> std::io::Result<OwnedFd> {
        #[repr(C)]
        struct ObjGetAttr {
            pathname: u64,
            bpf_fd: u32,
            file_flags: u32,
        }
        let path = CString::new(path.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
        let attr = ObjGetAttr {
            pathname: path.as_ptr() as u64,
            bpf_fd: 0,
            file_flags: 0,
        };
        let fd = bpf(BPF_OBJ_GET, &attr)?;
        // SAFETY: the kernel just gave us this fd.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// BPF_OBJ_GET_INFO_BY_FD on an XDP link: its id, its program's and
    /// its interface's index. aya's `LinkInfo` does not expose the last.
    pub fn xdp_link_info(link_fd: RawFd) -> std::io::Result<super::LinkInfo> {
        /// `struct bpf_link_info`, as far as an XDP link needs: the
        /// common head, then the `xdp` member of the union (at 16, the
        /// union being 8-aligned); the rest of the union is padding.
        #[repr(C)]
        #[derive(Default)]
        struct BpfLinkInfo {
            type_: u32,
            id: u32,
            prog_id: u32,
            _pad: u32,
            xdp_ifindex: u32,
            _union_rest: [u32; 11],
        }
        #[repr(C)]
        struct InfoAttr {
            bpf_fd: u32,
            info_len: u32,
            info: u64,
        }
        let mut info = BpfLinkInfo::default();
        let attr = InfoAttr {
            bpf_fd: link_fd as u32,
            info_len: std::mem::size_of::<BpfLinkInfo>() as u32,
            info: &mut info as *mut BpfLinkInfo as u64,
        };
        bpf(BPF_OBJ_GET_INFO_BY_FD, &attr)?;
        if info.type_ != BPF_LINK_TYPE_XDP {
            return Err(std::io::Error::other(format!(
                "link {} is of type {}, not XDP",
                info.id, info.type_
            )));
        }
        Ok(super::LinkInfo {
            link_id: info.id,
            program_id: info.prog_id,
            ifindex: info.xdp_ifindex,
        })
    }

    /// BPF_LINK_DETACH (kernel 5.9): detaches a link whoever holds it.
    pub fn link_detach(link_fd: RawFd) -> std::io::Result<()> {
        #[repr(C)]
        struct LinkDetachAttr {
            link_fd: u32,
        }
        bpf(
            BPF_LINK_DETACH,
            &LinkDetachAttr {
                link_fd: link_fd as u32,
            },
        )
        .map(|_| ())
    }
}

/// Removes everything the fast path pinned for `iface` under `pins`: its
/// link (which detaches the program) and, once no interface's link is left,
/// the maps of every layout and the folders. Returns whether a link was
/// there.
pub fn remove_pins(pins: &Pins, iface: &str) -> Result<bool> {
    let detached = detach_link(&pins.link(iface))?;
    let links = pins.dir.join("links");
    let others = fs::read_dir(&links).map(|d| d.count()).unwrap_or(0);
    if others == 0 && pins.dir.exists() {
        fs::remove_dir_all(&pins.dir).map_err(|source| FastPathError::Io {
            path: pins.dir.clone(),
            source,
        })?;
    }
    Ok(detached)
}

/// A snapshot of the program's counters, summed over CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters([u64; Counter::COUNT as usize]);

impl Counters {
    /// Reads the counters map, wherever it came from (this agent's object, or
    /// another program's map found by id).
    pub fn read<T: Borrow<MapData>>(map: &PerCpuArray<T, u64>) -> Result<Self, MapError> {
        let mut counters = Self::default();
        for counter in Counter::ALL {
            counters.0[counter as usize] = map.get(&(counter as u32), 0)?.iter().sum();
        }
        Ok(counters)
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// Packets answered on the fast path.
    pub fn answered(&self) -> u64 {
        Counter::ALL
            .iter()
            .filter(|c| c.is_answer())
            .map(|c| self.get(*c))
            .sum()
    }

    /// Packets passed to the kernel.
    pub fn passed(&self) -> u64 {
        Counter::ALL
            .iter()
            .filter(|c| !c.is_answer())
            .map(|c| self.get(*c))
            .sum()
    }

    /// How much each counter grew since `earlier`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut delta = Counters::default();
        for (i, d) in delta.0.iter_mut().enumerate() {
            *d = self.0[i].saturating_sub(earlier.0[i]);
        }
        delta
    }
}

impl fmt::Display for Counters {
    /// The non-zero counters, as `name=value` pairs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for counter in Counter::ALL.iter().filter(|c| self.get(**c) != 0) {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", counter.name(), self.get(*counter))?;
            first = false;
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

//! The XDP program in the kernel: loading it, attaching it to an interface,
//! keeping its table in step, and reading its counters.

use std::{borrow::Borrow, collections::HashSet, fmt};

use aya::{
    Ebpf,
    maps::{HashMap, MapData, MapError, PerCpuArray},
    programs::{ProgramError, Xdp, XdpMode, xdp::XdpLinkId},
};
use meshdns_common::{
    ANSWER_PROGRAM, COUNTERS_MAP, Counter, NAMES_MAP, NameKey, ServiceRecord, ZONE_KEY, ZONE_MAP,
    ZoneConfig,
};

use crate::{EBPF_OBJECT, table::Table};

/// How to attach the program to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttachMode {
    /// Driver (native) mode if the driver supports it, else generic (SKB) mode.
    Auto,
    /// Driver (native) mode only: in the NIC driver, before any allocation.
    Driver,
    /// Generic (SKB) mode only: works everywhere, much slower.
    Skb,
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
}

type Result<T, E = FastPathError> = std::result::Result<T, E>;

fn map_error(map: &'static str) -> impl Fn(MapError) -> FastPathError {
    move |source| FastPathError::Map { map, source }
}

/// The loaded XDP program and its maps.
pub struct FastPath {
    ebpf: Ebpf,
    attachment: Option<Attachment>,
}

/// Where the program is attached.
#[derive(Debug)]
pub struct Attachment {
    pub iface: String,
    pub mode: XdpMode,
    link: XdpLinkId,
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
    /// (this runs the verifier), attached nowhere yet.
    pub fn load() -> Result<Self> {
        let mut ebpf = Ebpf::load(EBPF_OBJECT)?;
        Self::xdp(&mut ebpf)?
            .load()
            .map_err(FastPathError::Program)?;
        Ok(Self {
            ebpf,
            attachment: None,
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

    /// Attaches the program to `iface`. In `Auto` mode a driver without
    /// native XDP gets the program in generic mode, with a warning.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<&Attachment> {
        let xdp = Self::xdp(&mut self.ebpf)?;
        let attach = |xdp: &mut Xdp, mode: XdpMode| {
            xdp.attach(iface, mode)
                .map(|link| Attachment {
                    iface: iface.to_string(),
                    mode,
                    link,
                })
                .map_err(|source| FastPathError::Attach {
                    iface: iface.to_string(),
                    mode,
                    source,
                })
        };
        let attachment = match mode {
            AttachMode::Driver => attach(xdp, XdpMode::Driver)?,
            AttachMode::Skb => attach(xdp, XdpMode::Skb)?,
            AttachMode::Auto => match attach(xdp, XdpMode::Driver) {
                Ok(attachment) => attachment,
                Err(error) => {
                    tracing::warn!(%error, "no driver-mode XDP here; falling back to generic (SKB) mode, which is much slower");
                    attach(xdp, XdpMode::Skb)?
                }
            },
        };
        Ok(self.attachment.insert(attachment))
    }

    /// Where the program is attached, if it is.
    pub fn attachment(&self) -> Option<&Attachment> {
        self.attachment.as_ref()
    }

    /// Detaches the program from its interface, if attached.
    pub fn detach(&mut self) -> Result<()> {
        if let Some(attachment) = self.attachment.take() {
            Self::xdp(&mut self.ebpf)?
                .detach(attachment.link)
                .map_err(FastPathError::Program)?;
        }
        Ok(())
    }

    /// Makes the kernel's table equal to `table`, touching only names that
    /// differ: a name whose record did not change is never removed and
    /// re-added, and a changed one is replaced in a single update.
    pub fn sync(&mut self, table: &Table) -> Result<SyncReport> {
        let map = self
            .ebpf
            .map_mut(ZONE_MAP)
            .ok_or(FastPathError::Missing(ZONE_MAP))?;
        let mut zone: HashMap<_, u32, ZoneConfig> =
            HashMap::try_from(map).map_err(map_error(ZONE_MAP))?;
        if zone.get(&ZONE_KEY, 0).ok().as_ref() != Some(table.zone()) {
            zone.insert(ZONE_KEY, table.zone(), 0)
                .map_err(map_error(ZONE_MAP))?;
        }

        let map = self
            .ebpf
            .map_mut(NAMES_MAP)
            .ok_or(FastPathError::Missing(NAMES_MAP))?;
        let mut names: HashMap<_, NameKey, ServiceRecord> =
            HashMap::try_from(map).map_err(map_error(NAMES_MAP))?;

        let mut report = SyncReport::default();
        let in_kernel: HashSet<NameKey> = names
            .keys()
            .collect::<Result<_, _>>()
            .map_err(map_error(NAMES_MAP))?;
        for key in in_kernel.iter().filter(|key| table.get(key).is_none()) {
            names.remove(key).map_err(map_error(NAMES_MAP))?;
            report.removed += 1;
        }
        for (key, entry) in table.iter() {
            if in_kernel.contains(key) {
                if names.get(key, 0).ok() == Some(entry.record) {
                    report.unchanged += 1;
                    continue;
                }
                report.updated += 1;
            } else {
                report.added += 1;
            }
            names
                .insert(key, entry.record, 0)
                .map_err(map_error(NAMES_MAP))?;
        }
        Ok(report)
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

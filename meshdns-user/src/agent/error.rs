//! What can stop the agent, typed: each variant says what failed, and the
//! error beneath it is its source, so that the binary prints the whole
//! chain (`Error: ...`, then `Caused by: ...`).

use std::{fmt, io, net::SocketAddr, path::PathBuf};

use crate::{config::ConfigError, fastpath::FastPathError, resolver::server::ListenError};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The services file does not read, parse or validate; the error names
    /// the file and the line at fault.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The fast path could not be loaded, filled, attached or detached.
    #[error("{step}")]
    FastPath {
        step: FastPathStep,
        /// Boxed: aya's errors are large, and every agent function returns
        /// this type.
        #[source]
        source: Box<FastPathError>,
    },
    /// The pin folder is on no bpffs, and it is not under /sys/fs/bpf,
    /// where the agent would mount one.
    #[error(
        "{} is not on a bpffs: pin under /sys/fs/bpf, or mount one (`mount -t bpf bpf DIR`)",
        pin_dir.display()
    )]
    NotOnBpffs { pin_dir: PathBuf },
    /// The pin folder is under /sys/fs/bpf, where nothing is mounted, and
    /// mounting bpffs there failed (it takes CAP_SYS_ADMIN).
    #[error("mounting bpffs at /sys/fs/bpf")]
    MountBpffs(#[source] io::Error),
    #[error("binding the metrics listener {addr}")]
    MetricsListener {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The resolver's UDP or TCP listener on an address.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// No `--listen`, and the interfaces have no address to default to.
    #[error("no address to listen on: the interfaces of --iface {ifaces} have none; give --listen")]
    NoListenAddress { ifaces: String },
    /// An interface's addresses, read for the default `--listen` and
    /// `allow_from`.
    #[error("reading the addresses of {ifaces}")]
    Addresses {
        ifaces: String,
        #[source]
        source: io::Error,
    },
    /// Subscribing to rtnetlink's announcements of interfaces.
    #[error("subscribing to the kernel's announcements of interfaces")]
    LinkEvents(#[source] io::Error),
    /// Listing the interfaces over rtnetlink.
    #[error("listing the interfaces")]
    Links(#[source] io::Error),
    /// Setting up inotify, or reading its events.
    #[error("inotify")]
    Inotify(#[source] io::Error),
    /// Watching the services file's folder.
    #[error("watching {}", dir.display())]
    Watch {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The inotify event stream ended: no more changes would be seen.
    #[error("inotify stream ended")]
    InotifyEnded,
    #[error("starting the async runtime")]
    Runtime(#[source] io::Error),
    #[error("catching SIGINT, SIGTERM and SIGHUP")]
    Signals(#[source] io::Error),
    /// Dropping capabilities once attached and listening.
    #[error("dropping capabilities")]
    Capabilities(#[source] io::Error),
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// What the agent was doing with the fast path when it failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FastPathStep {
    /// Loading the program with its pinned maps.
    Load,
    /// Setting whom and for which addresses it answers.
    Scope,
    /// Filling the names map.
    Fill,
    /// Attaching the program to an interface.
    Attach { iface: String },
    /// Reading the program's counters, on exit.
    Counters,
    /// Detaching the program, on exit.
    Detach,
    /// Removing an interface's pins, on exit.
    RemovePins { iface: String },
}

impl FastPathStep {
    pub(super) fn attach(iface: &str) -> Self {
        Self::Attach {
            iface: iface.to_string(),
        }
    }

    pub(super) fn remove_pins(iface: &str) -> Self {
        Self::RemovePins {
            iface: iface.to_string(),
        }
    }

    /// The error of this step failing with `source`.
    pub(super) fn failed(self) -> impl FnOnce(FastPathError) -> AgentError {
        move |source| AgentError::FastPath {
            step: self,
            source: Box::new(source),
        }
    }
}

impl fmt::Display for FastPathStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load => f.write_str("loading the XDP program"),
            Self::Scope => f.write_str("setting the fast path's scope"),
            Self::Fill => f.write_str("filling the names map"),
            Self::Attach { iface } => write!(f, "attaching the fast path to {iface}"),
            Self::Counters => f.write_str("reading the fast path's counters"),
            Self::Detach => f.write_str("detaching the fast path"),
            Self::RemovePins { iface } => write!(f, "removing the pins of {iface}"),
        }
    }
}

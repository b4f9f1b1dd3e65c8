//! Attaching the program to interfaces and detaching it: links owned by
//! the agent, links pinned so they outlive it, and links taken over from a
//! previous agent without a moment with no program.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    maps::{HashMap, MapData},
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use meshdns_common::{INTERFACES_MAP, InterfaceMac, MAX_INTERFACES};

use super::{FastPath, FastPathError, Pins, Result, map_error};
use crate::netif::{self, Link, XdpAttachMode};

/// How to ask for the program to be attached to an interface. What the
/// kernel then says it runs is an [`XdpAttachMode`]; an agent without a
/// fast path has no `FastPath` at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachMode {
    /// Driver (native) mode if the driver supports it, else generic (SKB)
    /// mode; generic mode on a veth (see [`FastPath::attach`]).
    Auto,
    /// Driver (native) mode only: in the NIC driver, before any allocation.
    Driver,
    /// Generic (SKB) mode only: works everywhere, much slower.
    Generic,
}

impl AttachMode {
    /// Whether a program found running in `mode` is what was asked for.
    pub fn allows(self, mode: XdpAttachMode) -> bool {
        match self {
            AttachMode::Auto => true,
            AttachMode::Driver => mode == XdpAttachMode::Driver,
            AttachMode::Generic => mode == XdpAttachMode::Generic,
        }
    }
}

/// Where the program is attached, and how it got there.
#[derive(Debug)]
pub struct Attachment {
    pub iface: String,
    /// The interface's index when attached: the key of its entry in the
    /// program's interfaces, removed when it goes.
    pub ifindex: u32,
    /// How the interface runs the program, as the kernel says; `None` if
    /// it could not be asked. A link taken over keeps the mode it was
    /// created in, whatever was asked now.
    pub mode: Option<XdpAttachMode>,
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

impl FastPath {
    /// Attaches the program to `iface`, for as long as this value lives.
    /// In `Auto` mode a driver without native XDP gets the program in
    /// generic mode, with a warning; so does a veth, without one: a pod's
    /// host-side end on a routed CNI. Driver-mode `XDP_TX` on a veth needs
    /// NAPI on the other end, inside the pod, which is not the agent's to
    /// turn on, and without it the replies are dropped; in generic mode
    /// `XDP_TX` leaves through the veth's own transmit, and is answered.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<&Attachment> {
        let link = lookup(iface)?;
        let (id, mode) = self.attach_new(&link, mode)?;
        Ok(self.attached(Attachment {
            iface: link.name,
            ifindex: link.index,
            mode: Some(mode),
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

    fn attach_new(&mut self, link: &Link, mode: AttachMode) -> Result<(XdpLinkId, XdpAttachMode)> {
        // Never in place of a program that is not ours: the kernel would
        // refuse a link beside it anyway, and an XDP program of the CNI's
        // (or of the operator's) is not ours to displace. Ours, seen in a
        // description from before it was detached (an interface renamed),
        // is no obstacle.
        let ours = Self::xdp(&mut self.ebpf)?
            .info()
            .map_err(FastPathError::Program)?
            .id();
        if let Some(&(_, program)) = link.xdp.iter().find(|(_, id)| *id != ours) {
            return Err(FastPathError::HookTaken {
                iface: link.name.clone(),
                program,
            });
        }
        self.list_interface(link)?;
        let xdp = Self::xdp(&mut self.ebpf)?;
        let (iface, index) = (link.name.as_str(), link.index);
        let attach = |xdp: &mut Xdp, mode: XdpAttachMode| {
            let flags = match mode {
                XdpAttachMode::Generic => XdpMode::Skb,
                _ => XdpMode::Driver,
            };
            // By index: the name may already be another interface's.
            xdp.attach_to_if_index(index, flags)
                .map(|id| (id, mode))
                .map_err(|source| FastPathError::Attach {
                    iface: iface.to_string(),
                    mode,
                    source,
                })
        };
        let attached = match mode {
            AttachMode::Driver => attach(xdp, XdpAttachMode::Driver),
            AttachMode::Generic => attach(xdp, XdpAttachMode::Generic),
            AttachMode::Auto if link.veth => {
                tracing::debug!(iface, "a veth: generic (SKB) mode, whose XDP_TX needs nothing of the other end (--xdp-mode driver if it has NAPI)");
                attach(xdp, XdpAttachMode::Generic)
            }
            AttachMode::Auto => attach(xdp, XdpAttachMode::Driver).or_else(|error| {
                tracing::warn!(iface, %error, "no driver-mode XDP here; falling back to generic (SKB) mode, which is much slower");
                attach(xdp, XdpAttachMode::Generic)
            }),
        };
        if attached.is_err() {
            // Not attached: its entry would only wait for its index to be
            // given to another interface.
            self.unlist_interface(link.index)?;
        }
        attached
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
        let link = lookup(iface)?;
        self.attach_link_pinned(&link, mode, pins)
    }

    /// [`FastPath::attach_pinned`] for an interface as rtnetlink described
    /// it (from a dump of them all, or as it appeared).
    pub fn attach_link_pinned(
        &mut self,
        link: &Link,
        mode: AttachMode,
        pins: &Pins,
    ) -> Result<&Attachment> {
        pins.create()?;
        let iface = link.name.as_str();
        let path = pins.link(iface);
        if path.exists() {
            match self.take_over(link, &path) {
                Ok(()) => {
                    return Ok(self.attached(Attachment {
                        iface: iface.to_string(),
                        ifindex: link.index,
                        // The link keeps the mode it was created with.
                        mode: super::link::check_pinned_serving(&path).ok(),
                        took_over: true,
                        link: AttachedLink::Pinned { path },
                    }));
                }
                Err(error) => {
                    // A link whose interface went away (a pod's veth of the
                    // same name before this one), for example.
                    tracing::info!(%error, path = %path.display(), "the pinned link is not this interface's; attaching anew");
                    remove_link_pin(&path)?;
                }
            }
        }
        let (id, mode) = self.attach_new(link, mode)?;
        let xdp = Self::xdp(&mut self.ebpf)?;
        let owned = xdp.take_link(id).map_err(FastPathError::Program)?;
        let owned = FdLink::try_from(owned).map_err(|source| FastPathError::Link {
            path: path.clone(),
            source,
        })?;
        owned.pin(&path).map_err(|source| FastPathError::Pin {
            path: path.clone(),
            source,
        })?;
        Ok(self.attached(Attachment {
            iface: iface.to_string(),
            ifindex: link.index,
            mode: Some(mode),
            took_over: false,
            link: AttachedLink::Pinned { path },
        }))
    }

    /// Takes over the link pinned at `path` if it is attached to `link`'s
    /// interface (the same index: not a namesake that came before it).
    fn take_over(&mut self, link: &Link, path: &Path) -> Result<()> {
        let info = super::link::pinned_link_info(path)?;
        if info.ifindex != link.index {
            return Err(FastPathError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other(match info.ifindex {
                    0 => "its interface is gone".to_string(),
                    other => format!("it is attached to interface {other}"),
                }),
            });
        }
        self.list_interface(link)?;
        let link_error = |source| FastPathError::Link {
            path: path.to_path_buf(),
            source,
        };
        let pinned = PinnedLink::from_pin(path).map_err(link_error)?;
        let pinned = XdpLink::try_from(FdLink::from(pinned)).map_err(link_error)?;
        Self::xdp(&mut self.ebpf)?
            .attach_to_link(pinned)
            .map_err(FastPathError::Program)?;
        Ok(())
    }

    /// Forgets interface `ifindex`, which is gone (or no longer to be
    /// served): its entry in the program's interfaces removed (the kernel
    /// gives its index to a later interface), its link detached if it
    /// still runs, its pin removed. Returns false if it was not attached.
    pub fn release(&mut self, ifindex: u32) -> Result<bool> {
        // Listed even if attaching failed after (its pin, say).
        let unlisted = self.unlist_interface(ifindex);
        let Some(at) = self.attachments.iter().position(|a| a.ifindex == ifindex) else {
            return unlisted.map(|()| false);
        };
        let attachment = self.attachments.swap_remove(at);
        match attachment.link {
            AttachedLink::Owned(id) => {
                // A link whose interface is gone detaches with an error
                // that says so; it is gone either way.
                if let Err(error) = Self::xdp(&mut self.ebpf)?.detach(id) {
                    tracing::debug!(iface = attachment.iface, %error, "detaching the link of a removed interface");
                }
            }
            AttachedLink::Pinned { path } => remove_link_pin(&path)?,
        }
        unlisted.map(|()| true)
    }

    /// Lists `link`'s MAC again for the program: it changed.
    pub fn relist(&mut self, link: &Link) -> Result<()> {
        self.list_interface(link)
    }

    /// Adds `iface` and its MAC to the program's interfaces, before the
    /// program runs there: from then on it answers only frames sent to that
    /// MAC (see `InterfaceMac`). An interface without one is not listed,
    /// and not checked.
    fn list_interface(&mut self, link: &Link) -> Result<()> {
        let Some(mac) = link.mac else {
            return Ok(());
        };
        self.interfaces_map()?
            .insert(link.index, InterfaceMac::new(mac), 0)
            .map_err(|error| match error {
                aya::maps::MapError::SyscallError(ref call)
                    if call.io_error.raw_os_error() == Some(libc::E2BIG) =>
                {
                    FastPathError::TooManyInterfaces(MAX_INTERFACES)
                }
                error => map_error(INTERFACES_MAP)(error),
            })
    }

    /// Removes interface `ifindex` from the program's interfaces, once the
    /// program no longer runs there: an interface that is gone, whose index
    /// the kernel may give to the next one.
    fn unlist_interface(&mut self, ifindex: u32) -> Result<()> {
        match self.interfaces_map()?.remove(&ifindex) {
            Err(aya::maps::MapError::KeyNotFound) | Ok(()) => Ok(()),
            Err(error) => Err(map_error(INTERFACES_MAP)(error)),
        }
    }

    fn interfaces_map(&mut self) -> Result<HashMap<&mut MapData, u32, InterfaceMac>> {
        let map = self
            .ebpf
            .map_mut(INTERFACES_MAP)
            .ok_or(FastPathError::Missing(INTERFACES_MAP))?;
        HashMap::try_from(map).map_err(map_error(INTERFACES_MAP))
    }

    /// Where the program is attached.
    pub fn attachments(&self) -> &[Attachment] {
        &self.attachments
    }

    /// Detaches the program from every interface it is attached to, and
    /// removes their pinned links.
    /// Each is tried: the first error is returned once all were.
    pub fn detach(&mut self) -> Result<()> {
        let mut first = Ok(());
        for attachment in std::mem::take(&mut self.attachments) {
            let detached = match attachment.link {
                AttachedLink::Owned(id) => Self::xdp(&mut self.ebpf)
                    .and_then(|xdp| xdp.detach(id).map_err(FastPathError::Program)),
                AttachedLink::Pinned { path } => super::link::detach_link(&path).map(|_| ()),
            };
            if let Err(error) = detached {
                tracing::warn!(iface = attachment.iface, %error, "detaching");
                if first.is_ok() {
                    first = Err(error);
                }
            }
        }
        first
    }
}

/// The interface called `iface`, as rtnetlink describes it.
fn lookup(iface: &str) -> Result<Link> {
    let io = |source| FastPathError::Io {
        path: PathBuf::from(format!("interface {iface}")),
        source,
    };
    netif::link_by_name(iface)
        .map_err(io)?
        .ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))
}

/// Removes the pinned link at `path`: detached if it still runs (whoever
/// holds it), the pin gone; nothing if there is none.
pub fn remove_link_pin(path: &Path) -> Result<()> {
    match super::link::detach_link(path) {
        Ok(_) => Ok(()),
        // A defunct link (its interface gone) may refuse to be detached;
        // removing the pin is what is left to do, and it ends the link.
        Err(_) if path.exists() => fs::remove_file(path).map_err(|source| FastPathError::Io {
            path: path.to_path_buf(),
            source,
        }),
        Err(error) => Err(error),
    }
}

//! Attaching the program to interfaces and detaching it: links owned by
//! the agent, links pinned so they outlive it, and links taken over from a
//! previous agent without a moment with no program.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aya::{
    maps::Array,
    programs::{
        Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::{XdpLink, XdpLinkId},
    },
};
use meshdns_common::{INTERFACES_MAP, InterfaceMac, Interfaces, MAX_INTERFACES};

use super::{FastPath, FastPathError, Pins, Result, map_error};
use crate::netif::{self, XdpAttachMode};

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
        let (id, mode) = self.attach_new(iface, mode)?;
        Ok(self.attached(Attachment {
            iface: iface.to_string(),
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

    fn attach_new(&mut self, iface: &str, mode: AttachMode) -> Result<(XdpLinkId, XdpAttachMode)> {
        self.list_interface(iface)?;
        let xdp = Self::xdp(&mut self.ebpf)?;
        let attach = |xdp: &mut Xdp, mode: XdpAttachMode| {
            let flags = match mode {
                XdpAttachMode::Generic => XdpMode::Skb,
                _ => XdpMode::Driver,
            };
            xdp.attach(iface, flags)
                .map(|id| (id, mode))
                .map_err(|source| FastPathError::Attach {
                    iface: iface.to_string(),
                    mode,
                    source,
                })
        };
        match mode {
            AttachMode::Driver => attach(xdp, XdpAttachMode::Driver),
            AttachMode::Generic => attach(xdp, XdpAttachMode::Generic),
            AttachMode::Auto if netif::index(iface).is_some_and(|i| netif::is_veth(i).unwrap_or(false)) => {
                tracing::info!(iface, "a veth: generic (SKB) mode, whose XDP_TX needs nothing of the other end (--xdp-mode driver if it has NAPI)");
                attach(xdp, XdpAttachMode::Generic)
            }
            AttachMode::Auto => attach(xdp, XdpAttachMode::Driver).or_else(|error| {
                tracing::warn!(%error, "no driver-mode XDP here; falling back to generic (SKB) mode, which is much slower");
                attach(xdp, XdpAttachMode::Generic)
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
                        mode: super::link::check_pinned_serving(&path).ok(),
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
            mode: Some(mode),
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
        let Some(mac) = netif::mac(iface).map_err(io)? else {
            return Ok(());
        };
        let ifindex = netif::index(iface).ok_or_else(|| io(std::io::ErrorKind::NotFound.into()))?;
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
        listed.entries[slot] = InterfaceMac::new(ifindex, mac);
        interfaces
            .set(0, listed, 0)
            .map_err(map_error(INTERFACES_MAP))
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
                    super::link::detach_link(&path)?;
                }
            }
        }
        Ok(())
    }
}

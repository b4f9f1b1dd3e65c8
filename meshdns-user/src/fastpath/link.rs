//! Pinned XDP links as the kernel sees them: what a link runs and where,
//! whether its interface really runs it, and detaching one whoever holds
//! it. Through bpf(2) and rtnetlink where aya has no public call.

use std::{
    fs,
    os::fd::{AsFd as _, AsRawFd as _},
    path::Path,
};

use super::FastPathError;
use crate::netif::XdpAttachMode;

/// Detaches the XDP link pinned at `path` and removes the pin. The link
/// goes at once, even while another process holds it open (an agent that
/// is still running), because it is detached, not just closed. Returns
/// false if nothing was pinned there.
pub fn detach_link(path: &Path) -> super::Result<bool> {
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
pub fn pinned_link_info(path: &Path) -> super::Result<LinkInfo> {
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
pub fn check_serving(link: &LinkInfo) -> Result<XdpAttachMode, NotServing> {
    if link.ifindex == 0 {
        return Err(NotServing::InterfaceGone);
    }
    // Several programs if one is offloaded too; the link's may be any.
    let programs = crate::netif::xdp_attached(link.ifindex).map_err(NotServing::Netlink)?;
    if let Some(&(mode, _)) = programs.iter().find(|(_, id)| *id == link.program_id) {
        return Ok(mode);
    }
    Err(programs
        .first()
        .map_or(NotServing::NoProgram, |&(_, other)| {
            NotServing::OtherProgram(other)
        }))
}

/// [`check_serving`] for the link pinned at `path`.
pub fn check_pinned_serving(path: &Path) -> Result<XdpAttachMode, NotServing> {
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

//! bpffs, where the fast path's pins live: found, or mounted at
//! /sys/fs/bpf if nothing is there yet.

use std::{ffi::CString, os::unix::ffi::OsStrExt as _, path::Path};

use super::{AgentError, Result};

/// Makes sure `pin_dir` is on a bpffs, mounting one at /sys/fs/bpf if the
/// pin folder is under it and nothing is mounted there yet.
pub fn ensure_bpffs(pin_dir: &Path) -> Result<()> {
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    let is_bpffs = |path: &Path| -> bool {
        let Ok(path) = CString::new(path.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: a zeroed statfs filled by the kernel for a valid path.
        unsafe {
            let mut stat: libc::statfs = std::mem::zeroed();
            libc::statfs(path.as_ptr(), &mut stat) == 0 && stat.f_type as i64 == BPF_FS_MAGIC
        }
    };
    // The nearest folder that exists decides which filesystem it is on.
    let existing = pin_dir
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    if is_bpffs(existing) {
        return Ok(());
    }
    let bpffs = Path::new("/sys/fs/bpf");
    if pin_dir.starts_with(bpffs) && bpffs.is_dir() {
        tracing::info!("mounting bpffs at /sys/fs/bpf");
        let (source, target) = (c"bpf", c"/sys/fs/bpf");
        // SAFETY: valid C strings; no data argument.
        let ret = unsafe {
            libc::mount(
                source.as_ptr(),
                target.as_ptr(),
                source.as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if ret == 0 {
            return Ok(());
        }
        return Err(AgentError::MountBpffs(std::io::Error::last_os_error()));
    }
    Err(AgentError::NotOnBpffs {
        pin_dir: pin_dir.to_path_buf(),
    })
}

//! Giving up capabilities once the work that needs them is done.
//!
//! Starting takes several: loading and attaching XDP (CAP_BPF,
//! CAP_NET_ADMIN, maybe CAP_PERFMON), binding port 53
//! (CAP_NET_BIND_SERVICE), mounting bpffs (CAP_SYS_ADMIN). Running takes
//! one: the bpf(2) calls on maps the agent already holds (table updates,
//! the counters `/metrics` reads), which a kernel with
//! `kernel.unprivileged_bpf_disabled` set allows only with CAP_BPF; the
//! same goes for BPF_LINK_DETACH under `--detach-on-exit`.
//!
//! Capabilities belong to threads, not processes, and capset(2) changes
//! only the calling thread's: every thread must give its own up. The
//! agent's threads do ([`keep_only`] at their start), and the main thread
//! once it has attached and bound its sockets.

use std::io;

/// Capability numbers (linux/capability.h).
pub mod cap {
    pub const NET_BIND_SERVICE: u32 = 10;
    pub const NET_ADMIN: u32 = 12;
    pub const SYS_ADMIN: u32 = 21;
    pub const PERFMON: u32 = 38;
    pub const BPF: u32 = 39;
}

/// What the agent keeps once attached.
pub const RUNNING: &[u32] = &[cap::BPF];

/// A set of capabilities, as the kernel's 64-bit masks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CapSet(pub u64);

impl CapSet {
    pub fn of(caps: &[u32]) -> Self {
        Self(caps.iter().fold(0, |mask, cap| mask | 1u64 << cap))
    }

    pub fn contains(self, cap: u32) -> bool {
        self.0 & (1u64 << cap) != 0
    }
}

impl std::fmt::Display for CapSet {
    /// As capsh and systemd spell them: `cap_bpf,cap_net_admin`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = |cap: u32| match cap {
            cap::NET_BIND_SERVICE => "cap_net_bind_service".to_string(),
            cap::NET_ADMIN => "cap_net_admin".to_string(),
            cap::SYS_ADMIN => "cap_sys_admin".to_string(),
            cap::PERFMON => "cap_perfmon".to_string(),
            cap::BPF => "cap_bpf".to_string(),
            other => format!("cap_{other}"),
        };
        let names: Vec<String> = (0..64).filter(|c| self.contains(*c)).map(name).collect();
        if names.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

/// The calling thread's effective and permitted sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadCaps {
    pub effective: CapSet,
    pub permitted: CapSet,
}

/// `struct __user_cap_header_struct`, version 3 (64-bit sets in two halves).
#[repr(C)]
struct Header {
    version: u32,
    pid: i32,
}

/// `struct __user_cap_data_struct`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const VERSION_3: u32 = 0x2008_0522;

/// Reads the calling thread's capabilities.
pub fn current() -> io::Result<ThreadCaps> {
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget with a v3 header and the two data structs v3 needs.
    let ret = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    let join = |low: u32, high: u32| CapSet(u64::from(low) | u64::from(high) << 32);
    Ok(ThreadCaps {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
    })
}

/// Drops every capability of the calling thread but those of `keep` it
/// has, from its effective, permitted and inheritable sets, and clears its
/// ambient set: what is dropped cannot come back. Returns what is kept.
pub fn keep_only(keep: &[u32]) -> io::Result<CapSet> {
    let kept = CapSet(current()?.permitted.0 & CapSet::of(keep).0);
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| Data {
        effective: (kept.0 >> shift) as u32,
        permitted: (kept.0 >> shift) as u32,
        inheritable: 0,
    };
    let data = [half(0), half(32)];
    // SAFETY: capset with a v3 header and the two data structs v3 needs.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain prctl; fails only on kernels without ambient sets
    // (before 4.3), which have nothing to clear.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_of_capabilities_are_bit_masks() {
        let set = CapSet::of(&[cap::NET_ADMIN, cap::BPF]);
        assert_eq!(set.0, 1 << 12 | 1 << 39);
        assert!(set.contains(cap::BPF));
        assert!(!set.contains(cap::SYS_ADMIN));
        assert_eq!(set.to_string(), "cap_net_admin,cap_bpf");
        assert_eq!(CapSet::default().to_string(), "none");
    }

    #[test]
    fn a_thread_that_drops_capabilities_keeps_only_those_asked_for() {
        // In a thread of its own: what it drops is gone for good.
        std::thread::spawn(|| {
            let before = current().unwrap();
            let kept = keep_only(&[cap::BPF]).unwrap();
            let after = current().unwrap();
            assert_eq!(kept.0, before.permitted.0 & CapSet::of(&[cap::BPF]).0);
            assert_eq!(after.effective, kept);
            assert_eq!(after.permitted, kept);
            assert!(!after.effective.contains(cap::NET_ADMIN));
        })
        .join()
        .unwrap();
    }
}

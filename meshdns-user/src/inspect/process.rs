//! Which process runs the attached program: the agent that loaded it holds
//! it open for as long as it lives, and `/proc/<pid>/fdinfo` names the
//! program behind each BPF file descriptor. Once the agent is gone only the
//! pinned link holds the program, and no process is found.

use std::fs;

use serde::Serialize;

/// A process holding one of the programs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Agent {
    pub pid: u32,
    pub command: String,
}

/// The first process (other than this one) with one of `programs` open.
pub fn running_program(programs: &[u32]) -> Option<Agent> {
    if programs.is_empty() {
        return None;
    }
    let me = std::process::id();
    let pids = fs::read_dir("/proc").ok()?.filter_map(|entry| {
        let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
        (pid != me).then_some(pid)
    });
    for pid in pids {
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.filter_map(Result::ok) {
            let is_program = fs::read_link(fd.path())
                .is_ok_and(|target| target.as_os_str() == "anon_inode:bpf-prog");
            if !is_program {
                continue;
            }
            let info = format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy());
            let held = fs::read_to_string(info)
                .ok()
                .and_then(|text| program_id(&text))
                .is_some_and(|id| programs.contains(&id));
            if held {
                let command = fs::read_to_string(format!("/proc/{pid}/comm"))
                    .map(|c| c.trim().to_string())
                    .unwrap_or_default();
                return Some(Agent { pid, command });
            }
        }
    }
    None
}

/// The `prog_id:` line of a BPF program's fdinfo.
fn program_id(fdinfo: &str) -> Option<u32> {
    fdinfo
        .lines()
        .find_map(|line| line.strip_prefix("prog_id:"))
        .and_then(|id| id.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_id_from_fdinfo() {
        let fdinfo = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2082\nprog_type:\t6\nprog_jited:\t1\nprog_tag:\t7a1f2a5ae3b9dd5d\nmemlock:\t12288\nprog_id:\t345\nrun_time_ns:\t0\n";
        assert_eq!(program_id(fdinfo), Some(345));
        assert_eq!(program_id("pos:\t0\n"), None);
    }
}

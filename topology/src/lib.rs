//! The topology the lab, the bench and the tests run in: network namespaces
//! and veth pairs, each owned by a value and removed on drop, under names
//! the caller chooses (fixed for the lab and the bench, unique per test).
//!
//! Everything here drives `ip` (iproute2) and `nsenter` (util-linux), and
//! needs root.

mod netns;
pub mod routed;
mod veth;
mod xdp;

use std::process::Command;

use anyhow::{Context as _, ensure};

pub use netns::Netns;
pub use veth::{End, Veth};
pub use xdp::{XdpHelper, clear_xdp};

/// Runs a command and returns its standard output; fails with its output
/// unless it succeeds.
pub fn run(program: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    ensure!(
        output.status.success(),
        "{program} {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `ip ARGS` in `netns` (`ip -n NETNS ARGS`), or in this process's
/// namespace for `None`.
fn ip(netns: Option<&str>, args: &[&str]) -> anyhow::Result<String> {
    let mut all = Vec::with_capacity(args.len() + 2);
    if let Some(netns) = netns {
        all.extend(["-n", netns]);
    }
    all.extend_from_slice(args);
    run("ip", &all)
}

/// `ip ARGS` in `netns` (or this process's namespace), its failure ignored:
/// for removals of what may already be gone.
fn ip_quietly(netns: Option<&str>, args: &[&str]) {
    let mut command = Command::new("ip");
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    let _ = command
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

//! `cargo xtask run` with no arguments: a self-contained lab.
//!
//! A client network namespace joined to this host by a veth pair: host side
//! `meshdns0` (198.18.0.1/24, 2001:db8::1/64), client side `meshdns0c`
//! (198.18.0.2/24, 2001:db8::2/64) in namespace `meshdns-lab`. The agent
//! serves examples/services.yaml on the host side until Ctrl-C; then the lab
//! is removed.

use std::{
    path::Path,
    process::{Child, Command},
};

use anyhow::Context as _;
use meshdns_topology::{End, Netns, Veth, XdpHelper};

const NETNS: &str = "meshdns-lab";
const HOST_IF: &str = "meshdns0";
const CLIENT_IF: &str = "meshdns0c";
const HOST_V4: &str = "198.18.0.1";
const PIN_DIR: &str = "/sys/fs/bpf/meshdns-lab";
const STATE_DIR: &str = "/run/meshdns-lab";

/// The namespace and veth pair, and the agent's pin and state folders;
/// removed on drop.
struct Lab {
    // Dropped in this order: the veth, then the namespace.
    _veth: Veth,
    netns: Netns,
}

impl Lab {
    fn create() -> anyhow::Result<Self> {
        // A lab left over by a run that was killed goes first.
        Veth::delete_leftover(HOST_IF);
        Netns::delete_leftover(NETNS);
        remove_folders();
        let netns = Netns::create(NETNS)?;
        let veth = Veth::create(
            None,
            End {
                iface: HOST_IF,
                addresses: &["198.18.0.1/24", "2001:db8::1/64"],
            },
            &netns,
            End {
                iface: CLIENT_IF,
                addresses: &["198.18.0.2/24", "2001:db8::2/64"],
            },
        )?;
        Ok(Self { _veth: veth, netns })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        remove_folders();
        eprintln!("xtask: lab removed");
    }
}

fn remove_folders() {
    for dir in [PIN_DIR, STATE_DIR] {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A child process, sent SIGTERM and reaped on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        }
        let _ = self.0.wait();
    }
}

pub fn run(root: &Path, target: &Path) -> anyhow::Result<()> {
    let config = root.join("examples/services.yaml");
    let lab = Lab::create()?;
    // veth delivers XDP_TX frames only to a peer with NAPI on; an XDP_PASS
    // program on the client end turns it on.
    let peer = XdpHelper::attach(target, &lab.netns, CLIENT_IF, "pass")?;

    let meshdns = target.join("meshdns");
    let meshdns = meshdns.display();
    eprintln!(
        "\nxtask: lab ready. In another terminal, try:\n\n\
         \x20   ip netns exec {NETNS} dig @{HOST_V4} redis.mesh\n\
         \x20   ip netns exec {NETNS} dig @{HOST_V4} redis.mesh AAAA\n\
         \x20   ip netns exec {NETNS} dig @{HOST_V4} web.mesh +short\n\
         \x20   ip netns exec {NETNS} dig @{HOST_V4} echo-server.echo-example.svc.1010.mesh\n\n\
         Answers come from the XDP program. What it is doing, and why:\n\n\
         \x20   {meshdns} status --pin-dir {PIN_DIR}\n\
         \x20   {meshdns} lookup redis.mesh AAAA --pin-dir {PIN_DIR}\n\
         \x20   {meshdns} dump --pin-dir {PIN_DIR}\n\
         \x20   curl -s 127.0.0.1:9153/metrics\n\n\
         Ctrl-C stops the agent and removes the lab.\n"
    );
    let mut agent = Command::new(target.join("meshdns"));
    agent
        .args([
            "run",
            "--iface",
            HOST_IF,
            "--xdp-mode",
            "driver",
            "--config",
        ])
        .arg(&config)
        // The lab's own pins and VIP state, removed with it.
        .args([
            "--pin-dir",
            PIN_DIR,
            "--state-dir",
            STATE_DIR,
            "--detach-on-exit",
        ]);
    let agent = agent.spawn().context("starting meshdns")?;
    let mut agent = Reaped(agent);
    // Ctrl-C reaches the whole process group: the children stop on it, and
    // this process stays to clean up. (Ignoring it before spawning would
    // have made the children ignore it too.)
    // SAFETY: setting a signal disposition to SIG_IGN.
    unsafe { libc::signal(libc::SIGINT, libc::SIG_IGN) };
    let status = agent.0.wait()?;
    drop(peer);
    drop(lab);
    if !status.success() && status.code() != Some(130) {
        anyhow::bail!("meshdns exited with {status}");
    }
    Ok(())
}

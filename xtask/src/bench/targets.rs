//! Each target's start-up: its processes in the server namespace, their
//! configurations written inline, and the wait until it answers.

use std::{
    fs,
    path::Path,
    process::{Child, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{bail, ensure};
use meshdns_topology::{Netns, XdpHelper, clear_xdp};

use super::{Network, PIN_DIR, SERVER_IF, Target, tools, workload::Workload};

/// A target's processes, killed on drop. Every one runs under nsenter, not
/// `ip netns exec`: the host's bpffs stays visible.
pub struct Server<'a> {
    pub network: &'a Network,
    pub children: Vec<Child>,
    /// The floor's XDP program, for the floor.
    floor: Option<XdpHelper>,
}

impl Drop for Server<'_> {
    fn drop(&mut self) {
        for child in &mut self.children {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        self.floor = None;
        let _ = fs::remove_dir_all(PIN_DIR);
        // Knot leaves its XDP program attached when it exits; the next
        // target must start from a bare interface.
        clear_xdp(&self.network.server, SERVER_IF);
    }
}

impl<'a> Server<'a> {
    pub fn start(
        target: Target,
        network: &'a Network,
        bin: &Path,
        work: &Path,
        workload: &Workload,
    ) -> anyhow::Result<Self> {
        if matches!(target, Target::MeshdnsUserspace | Target::Unbound) {
            ensure!(
                tools::xdp_prog_stats(network)?.is_none(),
                "an XDP program is still attached before {}",
                target.name()
            );
        }
        // Each target's output, stdout and stderr, in the work folder.
        let log = fs::File::create(work.join(format!("{target:?}.log")))?;
        let (out, err): (Stdio, Stdio) = (log.try_clone()?.into(), log.into());
        let netns = &network.server;
        let mut server = Server {
            network,
            children: Vec::new(),
            floor: None,
        };
        if target.forwards() {
            // The upstream both cache targets forward to, on loopback.
            let mut data = String::from("  local-zone: \"test.\" static\n");
            data.push_str(&workload.upstream_data);
            server.children.push(unbound(
                netns,
                work,
                "upstream",
                "127.0.0.2@5353",
                "127.0.0.0/8",
                &data,
            )?);
        }
        match target {
            Target::MeshdnsXdp | Target::MeshdnsUserspace | Target::MeshdnsCache => {
                let mode = if target == Target::MeshdnsUserspace {
                    "off"
                } else {
                    "driver"
                };
                let upstream = if target.forwards() {
                    "127.0.0.2:5353"
                } else {
                    "127.0.0.1:54"
                };
                let child = netns
                    .nsenter(bin.join("meshdns"))
                    .args(["run", "--iface", SERVER_IF, "--xdp-mode", mode, "--config"])
                    .arg(&workload.services)
                    .args(["--listen", "198.18.0.1:53", "--upstream", upstream])
                    .args(["--pin-dir", PIN_DIR, "--detach-on-exit", "--state-dir"])
                    .arg(work.join("state"))
                    .stdout(out)
                    .stderr(err)
                    .spawn()?;
                server.children.push(child);
            }
            Target::Unbound => {
                let mut data = String::from("  local-zone: \"mesh.\" static\n");
                data.push_str(&workload.unbound_data);
                let child = unbound(
                    netns,
                    work,
                    "unbound",
                    "198.18.0.1@53",
                    "198.18.0.0/15",
                    &data,
                )?;
                server.children.push(child);
            }
            Target::UnboundCache => server.children.push(unbound(
                netns,
                work,
                "forwarder",
                "198.18.0.1@53",
                "198.18.0.0/15",
                // Unbound serves test. itself (RFC 6761) unless told not to.
                "  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n\
                 forward-zone:\n  name: \"test.\"\n  forward-addr: 127.0.0.2@5353\n",
            )?),
            Target::KnotXdp => server.children.push(knot(netns, work, workload, out, err)?),
            Target::Floor => {
                server.floor = Some(XdpHelper::attach(bin, netns, SERVER_IF, "floor")?);
            }
        }
        if target.forwards() {
            server.wait_ready(&workload.forward_sample[0].0)?;
        } else if target.is_dns() {
            server.wait_ready(&workload.sample[0].0)?;
        } else {
            sleep(Duration::from_secs(1));
        }
        Ok(server)
    }

    /// Waits until the first sample name resolves to an address (over TCP,
    /// which needs no XDP on the client end; dig prints its errors on
    /// stdout too, so only an address counts).
    fn wait_ready(&self, name: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            let out = tools::dig(self.network, &["+tcp", name, "A", "+short"])?;
            if out
                .lines()
                .any(|l| l.trim().parse::<std::net::IpAddr>().is_ok())
            {
                return Ok(());
            }
            sleep(Duration::from_millis(200));
        }
        bail!("the server did not answer {name} in time")
    }
}

/// Starts Unbound in `netns` on `interface` (`ADDR@PORT`), with `extra` at
/// the end of its `server:` clause (or after it).
pub(super) fn unbound(
    netns: &Netns,
    work: &Path,
    name: &str,
    interface: &str,
    allow: &str,
    extra: &str,
) -> anyhow::Result<Child> {
    let conf = work.join(format!("{name}.conf"));
    let (addr, port) = interface.split_once('@').unwrap_or((interface, "53"));
    fs::write(
        &conf,
        format!(
            "server:\n  interface: {addr}\n  port: {port}\n  do-daemonize: no\n  username: \"\"\n  \
             chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  \
             verbosity: 0\n  num-threads: 2\n  do-ip6: no\n  access-control: {allow} allow\n  \
             module-config: \"iterator\"\n  msg-cache-size: 64m\n  rrset-cache-size: 64m\n{extra}\
             remote-control:\n  control-enable: no\n",
            dir = work.display()
        ),
    )?;
    let log = fs::File::create(work.join(format!("{name}.log")))?;
    Ok(netns
        .nsenter("unbound")
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?)
}

/// Starts Knot DNS in `netns` in XDP mode on the server end, serving the
/// workload's names as a `mesh.` zone.
fn knot(
    netns: &Netns,
    work: &Path,
    workload: &Workload,
    out: Stdio,
    err: Stdio,
) -> anyhow::Result<Child> {
    let dir = work.join("knot");
    fs::create_dir_all(&dir)?;
    let conf = dir.join("knot.conf");
    fs::write(
        &conf,
        format!(
            "server:\n    rundir: \"{dir}\"\n    listen: 198.18.0.1@53\n    udp-workers: 2\n    \
             tcp-workers: 1\n    background-workers: 1\nxdp:\n    listen: {SERVER_IF}@53\n    udp: on\n\
             database:\n    storage: \"{dir}\"\nlog:\n  - target: stderr\n    any: warning\n\
             zone:\n  - domain: mesh\n    file: \"{zone}\"\n    journal-content: none\n    \
             zonefile-sync: -1\n",
            dir = dir.display(),
            zone = workload.knot_zone.display()
        ),
    )?;
    Ok(netns
        .nsenter("knotd")
        .arg("-c")
        .arg(&conf)
        .stdout(out)
        .stderr(err)
        .spawn()?)
}

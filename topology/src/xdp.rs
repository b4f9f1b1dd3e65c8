//! XDP on the topology's interfaces: the helper programs that
//! `meshdns-lab-xdp` attaches, and clearing what a tool left behind.

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Child, Command, Stdio},
};

use anyhow::{Context as _, bail};

use crate::Netns;

/// One of the XDP object's helper programs (`pass` or `floor`), attached
/// to an interface by a `meshdns-lab-xdp` process (a meshdns-tests binary);
/// detached on drop, when the process is stopped.
///
/// `pass` is what a veth peer needs: veth delivers `XDP_TX` frames only to
/// a peer with NAPI on, and an XDP program is what turns it on.
pub struct XdpHelper(Child);

impl XdpHelper {
    /// Starts `meshdns-lab-xdp` from `bin_dir` with `program` on `iface` in
    /// `netns`, and waits until it says the program is attached.
    pub fn attach(
        bin_dir: &Path,
        netns: &Netns,
        iface: &str,
        program: &str,
    ) -> anyhow::Result<Self> {
        let binary = bin_dir.join("meshdns-lab-xdp");
        let mut child = Command::new(&binary)
            .args(["--netns", &netns.name, "--iface", iface])
            .args(["--program", program])
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        if !line.contains("attached") {
            let _ = child.wait();
            bail!("meshdns-lab-xdp could not attach {program} to {iface}");
        }
        Ok(Self(child))
    }
}

impl Drop for XdpHelper {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Detaches whatever XDP program a tool left on `iface` in `netns`.
pub fn clear_xdp(netns: &Netns, iface: &str) {
    crate::ip_quietly(
        Some(&netns.name),
        &["link", "set", "dev", iface, "xdp", "off"],
    );
}

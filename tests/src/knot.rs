//! Knot DNS from Debian as an authoritative server for the tests: a zone
//! signed by Knot itself (automatic DNSSEC signing, keys of its own
//! making), in a namespace of the test's. Killed on drop.

use std::{
    fs,
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::lab::Netns;

pub struct Knot {
    dir: PathBuf,
    child: Child,
}

impl Knot {
    /// Starts knotd in `netns` on `listen`, serving `zone` (with a trailing
    /// dot) from `records` (zone file lines, the SOA first), signed; ready
    /// once it answers with signatures.
    pub fn start_signed(
        netns: &Netns,
        listen: SocketAddr,
        zone: &str,
        records: &[String],
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("meshdns-knot-{}-{listen}", netns.name));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let zone_file = dir.join("zone");
        fs::write(
            &zone_file,
            format!("$ORIGIN {zone}\n{}\n", records.join("\n")),
        )?;
        let conf = dir.join("knot.conf");
        fs::write(
            &conf,
            format!(
                "server:\n    rundir: \"{dir}\"\n    listen: {ip}@{port}\n    udp-workers: 1\n    \
                 tcp-workers: 1\n    background-workers: 1\ndatabase:\n    storage: \"{dir}\"\n\
                 log:\n  - target: stderr\n    any: warning\n\
                 zone:\n  - domain: {zone}\n    file: \"{file}\"\n    dnssec-signing: on\n    \
                 journal-content: none\n    zonefile-sync: -1\n",
                dir = dir.display(),
                ip = listen.ip(),
                port = listen.port(),
                file = zone_file.display(),
            ),
        )?;
        let child = netns
            .nsenter("knotd")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting knotd (apt-get install knot)")?;
        let knot = Self { dir, child };
        // Ready when the apex's SOA comes with its signature.
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            let out = netns.dig(
                &listen.ip().to_string(),
                &[
                    "-p",
                    &listen.port().to_string(),
                    zone,
                    "SOA",
                    "+dnssec",
                    "+time=1",
                ],
            );
            if out.contains("RRSIG") {
                return Ok(knot);
            }
            sleep(Duration::from_millis(100));
        }
        bail!("knotd did not serve {zone} signed within 15 s")
    }
}

impl Drop for Knot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

//! Unbound from Debian as a real upstream for the resolver's tests: it runs
//! in a namespace of the test's, on that namespace's loopback, and serves a
//! small `test.` zone. Killed on drop.

use std::{
    fs,
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use crate::lab::Netns;

/// Where Unbound listens, inside the namespace.
pub const UNBOUND_ADDR: &str = "127.0.0.2:5353";

/// How many A records `big.test.` has: too many for 1232 bytes over UDP.
pub const BIG_RECORDS: u8 = 100;

pub struct Unbound {
    netns: String,
    conf: PathBuf,
    dir: PathBuf,
    addr: Ipv4Addr,
    /// A name it serves and its address, to tell it is up, and whether
    /// to ask it with CD (a validator's answers may be bogus).
    probe: (String, String),
    probe_cd: bool,
    child: Option<Child>,
}

impl Unbound {
    pub fn addr() -> SocketAddr {
        UNBOUND_ADDR.parse().expect("literal")
    }

    /// Writes the configuration and starts Unbound in `netns`, serving
    /// `test.` on [`UNBOUND_ADDR`].
    pub fn start(netns: &Netns) -> anyhow::Result<Self> {
        let mut data = vec![
            "test. 3600 IN SOA ns.test. hostmaster.test. 1 3600 600 86400 60".to_string(),
            "www.test. 300 IN A 198.18.5.1".to_string(),
            "short.test. 1 IN A 198.18.5.2".to_string(),
            "txt.test. 300 IN TXT \"hello\"".to_string(),
        ];
        for i in 1..=BIG_RECORDS {
            data.push(format!(
                "big.test. 300 IN A {}",
                Ipv4Addr::new(198, 18, 6, i)
            ));
        }
        Self::start_zone(
            netns,
            Ipv4Addr::new(127, 0, 0, 2),
            "test.",
            &data,
            ("www.test", "198.18.5.1"),
        )
    }

    /// Starts Unbound in `netns` on `addr`, port 5353, serving `zone` with
    /// the records `data`; ready once `probe`'s name resolves to its
    /// address there.
    pub fn start_zone(
        netns: &Netns,
        addr: Ipv4Addr,
        zone: &str,
        data: &[String],
        probe: (&str, &str),
    ) -> anyhow::Result<Self> {
        // Single quotes, so the TXT record's double quotes need no escaping.
        let local_data: String = data
            .iter()
            .map(|d| format!("  local-data: '{d}'\n"))
            .collect();
        let server =
            format!("  module-config: \"iterator\"\n  local-zone: \"{zone}\" static\n{local_data}");
        Self::start_with(netns, addr, &server, "", probe, false)
    }

    /// Starts Unbound in `netns` on `addr`, port 5353, as a validating
    /// resolver whose servers for `zone` are `stub` (an authoritative
    /// server of the test's, such as a signed Knot), with `trust_anchor`
    /// (a DS record) for it: one that the zone's keys do not match makes
    /// every answer of the zone bogus, SERVFAIL, and with CD the data
    /// unvalidated (RFC 4035 §3.2.2). Ready once `probe`'s name resolves,
    /// asked with CD.
    pub fn start_validating(
        netns: &Netns,
        addr: Ipv4Addr,
        zone: &str,
        stub: SocketAddr,
        trust_anchor: &str,
        probe: (&str, &str),
    ) -> anyhow::Result<Self> {
        let server = format!(
            "  module-config: \"validator iterator\"\n  do-not-query-localhost: no\n  \
             trust-anchor: \"{trust_anchor}\"\n"
        );
        let stub_zone = format!(
            "stub-zone:\n  name: \"{zone}\"\n  stub-addr: {}@{}\n",
            stub.ip(),
            stub.port()
        );
        Self::start_with(netns, addr, &server, &stub_zone, probe, true)
    }

    /// Writes the configuration (the common server settings, then
    /// `server`'s lines, then `clauses`) and starts Unbound.
    fn start_with(
        netns: &Netns,
        addr: Ipv4Addr,
        server: &str,
        clauses: &str,
        probe: (&str, &str),
        probe_cd: bool,
    ) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("meshdns-unbound-{}-{addr}", netns.name));
        fs::create_dir_all(&dir)?;
        let conf = dir.join("unbound.conf");
        fs::write(
            &conf,
            format!(
                "server:\n  interface: {addr}\n  port: 5353\n  do-daemonize: no\n  username: \"\"\n  \
                 chroot: \"\"\n  directory: \"{dir}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  \
                 verbosity: 0\n  num-threads: 1\n  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n\
                 {server}remote-control:\n  control-enable: no\n{clauses}",
                dir = dir.display()
            ),
        )?;
        let mut unbound = Self {
            netns: netns.name.clone(),
            conf,
            dir,
            addr,
            probe: (probe.0.to_string(), probe.1.to_string()),
            probe_cd,
            child: None,
        };
        unbound.spawn()?;
        Ok(unbound)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &self.netns, "unbound", "-d", "-c"])
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting unbound (apt-get install unbound)")?;
        self.child = Some(child);
        // Ready when it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = std::process::Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.netns,
                    "dig",
                    &format!("@{}", self.addr),
                    "-p",
                    "5353",
                ])
                .args([self.probe.0.as_str(), "+short", "+tries=1", "+time=1"])
                .args(self.probe_cd.then_some("+cd"))
                .output()?;
            if String::from_utf8_lossy(&out.stdout).contains(self.probe.1.as_str()) {
                return Ok(());
            }
            sleep(Duration::from_millis(50));
        }
        bail!("unbound did not come up")
    }

    /// Kills Unbound, as an upstream that dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again after `kill`.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

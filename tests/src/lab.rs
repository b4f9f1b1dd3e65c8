//! A lab: a server and a client network namespace joined by a veth pair,
//! addressed from the benchmarking range (RFC 2544) and removed on drop.

use std::{
    io::{BufRead, BufReader},
    ops::Deref,
    path::{Path, PathBuf},
    process::{Child, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        mpsc,
    },
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail, ensure};
use aya::{
    maps::{Map, MapData, MapInfo, PerCpuArray},
    programs::{ProgramInfo, Xdp, XdpMode, loaded_programs},
};
use meshdns::fastpath::{Counters, FastPath};
use meshdns_common::{COUNTERS_MAP, PASS_PROGRAM};
/// Runs a command and fails with its output unless it succeeds.
pub use meshdns_topology::run as sh;
use meshdns_topology::{End, Veth};

pub const SERVER_V4: &str = "198.18.0.1";
pub const CLIENT_V4: &str = "198.18.0.2";
pub const SERVER_V6: &str = "2001:db8::1";

/// The status (rcode) in dig's output, such as `NOERROR`, or `None` when
/// it shows no reply.
pub fn dig_status(out: &str) -> Option<String> {
    out.lines()
        .find_map(|line| line.split("status: ").nth(1))
        .map(|rest| rest.split(',').next().unwrap_or_default().to_string())
}

/// A network namespace, deleted on drop if this value created it: the
/// topology crate's (`ip`, `command`, `nsenter`, `run`, `spawn`), with what
/// the tests ask of one besides.
pub struct Netns(meshdns_topology::Netns);

impl Netns {
    /// `dig @server ARGS` run in this namespace: one try, 3 s (a SERVFAIL
    /// comes within about 2.5 s); its output. Later `ARGS` win over these.
    pub fn dig(&self, server: &str, args: &[&str]) -> String {
        let output = self
            .command("dig")
            .arg(format!("@{server}"))
            .args(["+tries=1", "+time=3"])
            .args(args)
            .output()
            .expect("running dig (apt-get install dnsutils)");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Adds `cidr` (an address and its prefix length) to `iface`, without
    /// duplicate address detection, so that it is usable at once.
    pub fn add_address(&self, iface: &str, cidr: &str) -> anyhow::Result<()> {
        self.ip(&["addr", "add", cidr, "dev", iface, "nodad"])
            .map(drop)
    }

    /// Creates a namespace, to be deleted on drop.
    pub fn new(name: String) -> anyhow::Result<Self> {
        Ok(Self(meshdns_topology::Netns::create(name)?))
    }

    /// An existing namespace, left alone on drop.
    pub fn existing(name: String) -> Self {
        Self(meshdns_topology::Netns::existing(name))
    }
}

impl Deref for Netns {
    type Target = meshdns_topology::Netns;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// Server and client namespaces joined by a veth pair: `server_if`
/// (198.18.0.1/24, 2001:db8::1/64) in `server`, `client_if` (198.18.0.2/24,
/// 2001:db8::2/64) in `client`; and the agent's pin and state folders.
/// Everything is removed on drop.
pub struct Lab {
    /// The veth pair, while connected; deleted before the namespaces.
    veth: Option<Veth>,
    pub server: Netns,
    pub client: Netns,
    pub server_if: String,
    pub client_if: String,
    /// `--pin-dir` for agents in this lab, on the host's bpffs.
    pub pin_dir: PathBuf,
    /// `--state-dir` for agents in this lab.
    pub state_dir: PathBuf,
    /// The XDP_PASS program on `client_if`, once attached.
    peer: Option<PeerNapi>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Unpinning the link detaches the program; the namespaces go after.
        let _ = std::fs::remove_dir_all(&self.pin_dir);
        let _ = std::fs::remove_dir_all(&self.state_dir);
        let _ = std::fs::remove_dir_all(self.config_dir());
    }
}

static LABS: AtomicU32 = AtomicU32::new(0);

impl Lab {
    pub fn new() -> anyhow::Result<Self> {
        crate::require_root();
        // Unique per process and lab, so tests run in parallel; at most 15
        // bytes for interface names.
        let id = format!(
            "{}x{}",
            std::process::id(),
            LABS.fetch_add(1, Ordering::Relaxed)
        );
        let server = Netns::new(format!("meshdns-{id}-s"))?;
        let client = Netns::new(format!("meshdns-{id}-c"))?;
        let (server_if, client_if) = (format!("md{id}s"), format!("md{id}c"));
        let mut lab = Self {
            veth: None,
            server,
            client,
            server_if,
            client_if,
            pin_dir: PathBuf::from(format!("/sys/fs/bpf/meshdns-test-{id}")),
            state_dir: std::env::temp_dir().join(format!("meshdns-test-{id}")),
            peer: None,
        };
        // The node's part, as systemd does at boot: the agents under test
        // may lack the CAP_SYS_ADMIN to mount it themselves.
        meshdns::agent::bpffs::ensure_bpffs(&lab.pin_dir)?;
        lab.connect()?;
        Ok(lab)
    }

    /// Creates the veth pair between the namespaces, addressed and up.
    pub fn connect(&mut self) -> anyhow::Result<()> {
        let (server_v4, client_v4) = (format!("{SERVER_V4}/24"), format!("{CLIENT_V4}/24"));
        self.veth = Some(Veth::create(
            Some(&self.server),
            End {
                iface: &self.server_if,
                addresses: &[&server_v4, "2001:db8::1/64"],
            },
            &self.client,
            End {
                iface: &self.client_if,
                addresses: &[&client_v4, "2001:db8::2/64"],
            },
        )?);
        Ok(())
    }

    /// Deletes the veth pair (and the client end's NAPI program with it).
    /// [`Lab::connect`] creates it again, as a CNI re-creates interfaces:
    /// same names, new ifindexes.
    pub fn disconnect(&mut self) -> anyhow::Result<()> {
        self.peer = None;
        if let Some(veth) = self.veth.take() {
            veth.delete()?;
        }
        Ok(())
    }

    /// The folder of the lab's services file: a folder of its own, as the
    /// agent watches the file's folder.
    fn config_dir(&self) -> PathBuf {
        self.state_dir.with_extension("config")
    }

    /// Where the lab's agents read their services file (removed with the lab).
    pub fn services_path(&self) -> PathBuf {
        std::fs::create_dir_all(self.config_dir()).expect("creating the lab's config folder");
        self.config_dir().join("services.yaml")
    }

    /// Writes `text` as the lab's services file, and returns its path.
    pub fn write_services(&self, text: &str) -> PathBuf {
        let path = self.services_path();
        std::fs::write(&path, text).expect("writing the services file");
        path
    }

    /// Attaches an XDP_PASS program to the client end: veth delivers
    /// `XDP_TX` frames only to a peer with NAPI on, and an XDP program is
    /// what turns it on.
    pub fn enable_peer_napi(&mut self) -> anyhow::Result<()> {
        let iface = self.client_if.clone();
        self.peer = Some(self.client.run(move || PeerNapi::attach(&iface))?);
        Ok(())
    }

    /// Starts `meshdns run` on the server end with `config`, in driver
    /// mode, with the lab's pin and state folders, and waits until it has
    /// attached.
    pub fn start_agent(&self, config: &Path, extra: &[&str]) -> anyhow::Result<Agent> {
        let mut agent = self.spawn_agent_on(&self.server_if, config, extra)?;
        agent.wait_for_log("fast path attached", Duration::from_secs(30))?;
        Ok(agent)
    }

    /// Starts `meshdns run` as [`Lab::start_agent`] does, but on `iface` of
    /// the server namespace, and does not wait for anything.
    pub fn spawn_agent_on(
        &self,
        iface: &str,
        config: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Agent> {
        let pin_dir = self.pin_dir.to_string_lossy().into_owned();
        let state_dir = self.state_dir.to_string_lossy().into_owned();
        let mut args = vec!["--xdp-mode", "driver"];
        args.extend(agent_args(&pin_dir, &state_dir, extra));
        Agent::spawn(&self.server, iface, config, &args)
    }

    /// Runs `meshdns ARGS` to completion in the server namespace.
    pub fn meshdns(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(self.server.nsenter(Agent::binary()?).args(args).output()?)
    }

    /// The fast path's counters, read from the kernel: the maps of the
    /// program attached to the server end, found by id. This does not ask
    /// the agent, so it cannot be fooled by it.
    pub fn fast_path_counters(&self) -> anyhow::Result<Counters> {
        let iface = self.server_if.clone();
        let prog_id = self.server.run(move || attached_program_id(&iface))?;
        counters_of_program(prog_id)
    }

    /// Whether any XDP program is attached to the server end.
    pub fn server_has_xdp(&self) -> anyhow::Result<bool> {
        let iface = self.server_if.clone();
        self.server.run(move || Ok(xdp_prog_id(&iface)?.is_some()))
    }

    /// `dig @server name qtype` from the client namespace: the header
    /// lines (status, flags), and the answer and authority records with
    /// their whitespace folded.
    pub fn dig_records(&self, server: &str, name: &str, qtype: &str) -> (String, Vec<String>) {
        let out = self.client.dig(
            server,
            &[
                name,
                qtype,
                "+time=2",
                "+noall",
                "+comments",
                "+answer",
                "+authority",
            ],
        );
        let header = out
            .lines()
            .find(|l| l.contains("status:"))
            .unwrap_or_default()
            .to_string();
        let flags = out
            .lines()
            .find(|l| l.contains(";; flags:"))
            .unwrap_or_default();
        let records = out
            .lines()
            .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        (format!("{header} {flags}"), records)
    }

    /// `dig @SERVER_V4 ARGS` from the client namespace (see [`Netns::dig`]).
    pub fn dig(&self, args: &[&str]) -> String {
        self.client.dig(SERVER_V4, args)
    }
}

/// An XDP_PASS program attached to an interface, detached on drop.
pub struct PeerNapi {
    _fast_path: FastPath,
}

impl PeerNapi {
    /// Attaches `meshdns_pass` to `iface` in the calling thread's namespace.
    pub fn attach(iface: &str) -> anyhow::Result<Self> {
        Ok(Self {
            _fast_path: attach_helper(iface, PASS_PROGRAM, XdpMode::Driver)?,
        })
    }
}

/// Attaches the object's helper program `name` (`meshdns_pass` or
/// `meshdns_floor`) to `iface` in `mode`, in the calling thread's
/// namespace; it stays attached while the returned value lives.
pub fn attach_helper(iface: &str, name: &str, mode: XdpMode) -> anyhow::Result<FastPath> {
    let mut fast_path = FastPath::load()?;
    let program: &mut Xdp = fast_path
        .ebpf_mut()
        .program_mut(name)
        .with_context(|| format!("no {name} program in the object"))?
        .try_into()?;
    program.load()?;
    program.attach(iface, mode)?;
    Ok(fast_path)
}

/// The id of the XDP program attached to `iface` in this thread's namespace.
fn xdp_prog_id(iface: &str) -> anyhow::Result<Option<u32>> {
    let json = sh("ip", &["-j", "-d", "link", "show", "dev", iface])?;
    let links: serde_json::Value = serde_json::from_str(&json)?;
    Ok(links[0]["xdp"]["prog"]["id"].as_u64().map(|id| id as u32))
}

fn attached_program_id(iface: &str) -> anyhow::Result<u32> {
    xdp_prog_id(iface)?.with_context(|| format!("no XDP program on {iface}"))
}

/// Reads the counters map of the loaded program with id `prog_id`.
pub fn counters_of_program(prog_id: u32) -> anyhow::Result<Counters> {
    let program: ProgramInfo = loaded_programs()
        .filter_map(Result::ok)
        .find(|p| p.id() == prog_id)
        .with_context(|| format!("no loaded program with id {prog_id}"))?;
    for map_id in program.map_ids()?.unwrap_or_default() {
        let info = MapInfo::from_id(map_id)?;
        if info.name_as_str() == Some(COUNTERS_MAP) {
            let map = Map::PerCpuArray(MapData::from_id(map_id)?);
            let counters: PerCpuArray<MapData, u64> = PerCpuArray::try_from(map)?;
            return Ok(Counters::read(&counters)?);
        }
    }
    bail!("program {prog_id} has no {COUNTERS_MAP} map")
}

/// The arguments a test's agent runs with, then `extra`: its pin and state
/// folders; the resolver off the veths unless `extra` says `--listen`, so
/// an answer on one can only come from XDP; and never forwarding beyond
/// the namespace (the host's resolv.conf is not a test's to use): unless
/// `extra` says `--upstream`, a closed port on the namespace's loopback.
pub fn agent_args<'a>(pin_dir: &'a str, state_dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--pin-dir", pin_dir, "--state-dir", state_dir];
    if !extra.contains(&"--listen") {
        args.extend(["--listen", "127.0.0.1:53"]);
    }
    if !extra.contains(&"--upstream") {
        args.extend(["--upstream", "127.0.0.1:54"]);
    }
    args.extend_from_slice(extra);
    args
}

/// `meshdns run`, as a child process in a namespace; stopped on drop.
pub struct Agent {
    child: Child,
    /// Everything the agent printed so far, one line each.
    log: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Agent {
    /// The `meshdns` binary beside the running executable: in
    /// target/<profile>/, the folder of a binary such as `meshdns-soak`
    /// and the one above a test executable's (`deps/`).
    pub fn binary() -> anyhow::Result<PathBuf> {
        let exe = std::env::current_exe()?;
        let folder = exe.parent().context("the executable has no folder")?;
        let dir = if folder.ends_with("deps") {
            folder.parent().context("deps/ has no folder")?
        } else {
            folder
        };
        let binary = dir.join("meshdns");
        ensure!(
            binary.exists(),
            "{} is missing: build it first (`cargo xtask test` does)",
            binary.display()
        );
        Ok(binary)
    }

    /// Starts `meshdns run --iface IFACE --config CONFIG ARGS` in `netns`
    /// and waits until it has attached.
    pub fn start(netns: &Netns, iface: &str, config: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let mut agent = Self::spawn(netns, iface, config, args)?;
        agent.wait_for_log("fast path attached", Duration::from_secs(30))?;
        Ok(agent)
    }

    /// Starts `meshdns run --iface IFACE --config CONFIG ARGS` in `netns`.
    pub fn spawn(netns: &Netns, iface: &str, config: &Path, args: &[&str]) -> anyhow::Result<Self> {
        let mut child = netns
            .nsenter(Self::binary()?)
            .args(["run", "--iface", iface, "--config"])
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting meshdns")?;
        let (sender, log) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let sender = sender.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let _ = sender.send(line);
                }
            });
        }
        Ok(Self {
            child,
            log,
            lines: Vec::new(),
        })
    }

    /// The agent's process id (nsenter execs the agent).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_for_log(&mut self, needle: &str, timeout: Duration) -> anyhow::Result<&str> {
        self.wait_for_logs(needle, 1, timeout)?;
        let line = self.lines.iter().find(|l| l.contains(needle));
        Ok(line.expect("waited for it"))
    }

    /// Waits until `count` log lines contain `needle`: the `count`-th
    /// reload, say.
    pub fn wait_for_logs(
        &mut self,
        needle: &str,
        count: usize,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + timeout;
        while self.lines.iter().filter(|l| l.contains(needle)).count() < count {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(_) => bail!(
                    "meshdns did not log {needle:?} {count} times within {timeout:?}; it logged:\n{}",
                    self.lines.join("\n")
                ),
            }
        }
        Ok(())
    }

    /// The lines read so far (by [`Agent::wait_for_log`]), for what must
    /// not have been logged.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// Sends SIGTERM and waits for the agent to exit; returns its status.
    pub fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.signal(libc::SIGTERM);
        Ok(self.child.wait()?)
    }

    /// Kills the agent with SIGKILL: no chance to clean anything up.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.signal(libc::SIGKILL);
        self.child.wait()?;
        Ok(())
    }

    /// Sends a signal to the agent.
    pub fn signal(&self, signal: libc::c_int) {
        // nsenter execs the agent, so the child's pid is the agent's.
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

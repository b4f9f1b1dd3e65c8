//! `meshdns`: the node-local DNS agent for service meshes.

use std::{
    ffi::CString,
    net::{IpAddr, SocketAddr},
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use futures_util::StreamExt as _;
use inotify::{Inotify, WatchMask};
use meshdns::{
    fastpath::{self, AttachMode, FastPath, Pins},
    inspect,
    metrics::{self, AgentState, Metrics, OnceLock},
    netif, privileges,
    registry::{Registry, Reload},
    resolver::{
        Resolver,
        cache::{Cache, Limits},
        server,
        upstream::{self, Upstreams},
    },
    table::Table,
    vip::Cidr,
};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Parser)]
#[command(version, about = "Node-local DNS for service meshes, answered in XDP")]
struct Cli {
    /// Log lines for people (text) or for log collectors (json).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Attach the fast path to an interface and keep its table in step with
    /// the services file until SIGINT or SIGTERM. The program stays
    /// attached after exit (pinned), so restarts and upgrades lose nothing.
    Run {
        /// Interface whose incoming DNS queries the fast path answers
        /// (repeatable: one program, a pinned link per interface).
        #[arg(long = "iface", value_name = "IF", required = true)]
        ifaces: Vec<String>,
        /// The services file (YAML); changes apply as they are saved, and on SIGHUP.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// How to attach the XDP program.
        #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
        xdp_mode: AttachMode,
        /// Where the VIP allocations are kept.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/meshdns")]
        state_dir: PathBuf,
        #[command(flatten)]
        pins: PinDir,
        /// Detach the program and remove its pins on exit.
        #[arg(long)]
        detach_on_exit: bool,
        /// Where the resolver listens, UDP and TCP (repeatable). Default: the
        /// interface's addresses, port 53.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Vec<SocketAddr>,
        /// Where names that are not the mesh's go (repeatable). Default: the
        /// nameservers of /etc/resolv.conf, less meshdns itself.
        #[arg(long, value_name = "ADDR:PORT")]
        upstream: Vec<SocketAddr>,
        /// Prometheus metrics (/metrics), /healthz and /readyz.
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9153")]
        metrics_addr: SocketAddr,
    },
    /// Detach the fast path from an interface and remove its pins.
    Detach {
        #[arg(long, value_name = "IF")]
        iface: String,
        #[command(flatten)]
        pins: PinDir,
    },
    /// Where the fast path is attached and how, whether an agent runs it,
    /// the table's size and the program's counters. Reads the pinned
    /// objects: works whether the agent runs or not (run it in the agent's
    /// network namespace).
    Status {
        #[command(flatten)]
        pins: PinArgs,
    },
    /// What the fast path answers for a query and why (it runs the query
    /// through the real program, on the table that serves); for a query it
    /// passes, what the agent does with it.
    Lookup {
        /// The name asked, e.g. redis.mesh.
        name: String,
        /// The type asked.
        #[arg(default_value = "A", value_name = "TYPE")]
        qtype: String,
        #[command(flatten)]
        pins: PinArgs,
    },
    /// Every name in the fast path's table, with its addresses.
    Dump {
        #[command(flatten)]
        pins: PinArgs,
    },
}

/// Where the program's link and maps are pinned: every command that
/// touches them takes the same flag, and the same environment variable, so
/// that commands run beside an agent (`kubectl exec`) find its pins.
#[derive(clap::Args)]
struct PinDir {
    /// Where the program's link and maps are pinned (on bpffs).
    #[arg(
        long = "pin-dir",
        value_name = "DIR",
        default_value = "/sys/fs/bpf/meshdns",
        env = "MESHDNS_PIN_DIR"
    )]
    dir: PathBuf,
}

impl PinDir {
    fn pins(&self) -> Pins {
        Pins::new(&self.dir)
    }
}

/// Where to find the pinned objects, and how to print what they say.
#[derive(clap::Args)]
struct PinArgs {
    #[command(flatten)]
    pin_dir: PinDir,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl PinArgs {
    /// Prints `value` as text or JSON.
    fn print<T: std::fmt::Display + serde::Serialize>(&self, value: &T) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{value}");
        }
        Ok(())
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    match cli.log_format {
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init(),
    }
    match cli.command {
        Command::Run {
            ifaces,
            config,
            xdp_mode,
            state_dir,
            pins,
            detach_on_exit,
            listen,
            upstream,
            metrics_addr,
        } => run(&Options {
            ifaces,
            config,
            xdp_mode,
            state_dir,
            pins: pins.pins(),
            detach_on_exit,
            listen,
            upstream,
            metrics_addr,
        }),
        Command::Detach { iface, pins } => {
            let pins = pins.pins();
            if fastpath::remove_pins(&pins, &iface)? {
                tracing::info!(iface, "detached; pins removed from {}", pins.dir.display());
            } else {
                tracing::info!(iface, "nothing was pinned in {}", pins.dir.display());
            }
            Ok(())
        }
        Command::Status { pins } => pins.print(&inspect::status(&pins.pin_dir.pins())?),
        Command::Lookup { name, qtype, pins } => {
            pins.print(&inspect::lookup(&pins.pin_dir.pins(), &name, &qtype)?)
        }
        Command::Dump { pins } => pins.print(&inspect::dump(&pins.pin_dir.pins())?),
    }
}

struct Options {
    ifaces: Vec<String>,
    config: PathBuf,
    xdp_mode: AttachMode,
    state_dir: PathBuf,
    pins: Pins,
    detach_on_exit: bool,
    listen: Vec<SocketAddr>,
    upstream: Vec<SocketAddr>,
    metrics_addr: SocketAddr,
}

fn run(options: &Options) -> anyhow::Result<()> {
    // What every thread keeps once the work that needs more is done: the
    // runtime's threads from their start (they attach nothing and bind
    // nothing), the main thread once attached and listening.
    let running: &'static [u32] = if options.xdp_mode == AttachMode::Off {
        &[]
    } else {
        privileges::RUNNING
    };
    let drop_privileges = move || {
        if let Err(error) = privileges::keep_only(running) {
            tracing::warn!(%error, "cannot drop capabilities");
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(drop_privileges)
        .build()?;
    // Catch the signals before attaching: a SIGTERM that comes right after
    // the attach must still end the agent cleanly, not kill it.
    let mut signals = runtime.block_on(async { Signals::new() })?;

    // Read the services first: a broken file fails the start before
    // anything changes, with the line at fault. A program a previous agent
    // left keeps serving meanwhile.
    let mut registry = Registry::new(&options.config, &options.state_dir);
    // Watch before the first read, so that a change saved while starting
    // is not missed.
    let mut changes = {
        let _context = runtime.enter();
        ConfigWatch::new(registry.config_path())?
    };
    let Reload::Changed(table) = registry.reload()? else {
        unreachable!("the first read is always a change");
    };
    // Up before the attach, so /readyz can say "not yet".
    let agent = Arc::new(AgentState::default());
    agent.names.store(table.len() as u64, Ordering::Relaxed);
    let metrics = Arc::new(Metrics {
        resolver: OnceLock::new(),
        agent: agent.clone(),
        counters_pin: (options.xdp_mode != AttachMode::Off)
            .then(|| metrics::counters_pin(&options.pins)),
        link_pins: if options.xdp_mode == AttachMode::Off {
            Vec::new()
        } else {
            options
                .ifaces
                .iter()
                .map(|i| options.pins.link(i))
                .collect()
        },
    });
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.metrics_addr))
        .with_context(|| format!("binding the metrics listener {}", options.metrics_addr))?;
    runtime.spawn(metrics::serve(listener, metrics.clone()));
    for iface in &options.ifaces {
        if let Some(signal) = runtime.block_on(wait_for_interface(iface, &mut signals)) {
            tracing::info!("{signal} while waiting for {iface}: exiting");
            return Ok(());
        }
    }
    let mut fast_path = if options.xdp_mode == AttachMode::Off {
        tracing::info!("--xdp-mode off: no fast path; the resolver answers everything");
        None
    } else {
        Some(attach_fast_path(options, &table)?)
    };

    // From here the resolver holds the table (and the kernel its copy).
    // Read once: where to listen by default, and whom to answer.
    let mut addresses = Vec::new();
    for iface in &options.ifaces {
        addresses.extend(netif::addresses(iface)?);
    }
    let listen = resolver_listen(options, &addresses)?;
    let resolver = Arc::new(resolver(options, table, &listen, &addresses)?);
    let _listeners = runtime.block_on(server::listen(
        resolver.clone(),
        &listen,
        Arc::new(drop_privileges),
    ))?;
    let kept = privileges::keep_only(running).context("dropping capabilities")?;
    tracing::info!(%kept, "capabilities dropped but for those the table updates need");
    let _ = metrics.resolver.set(resolver.clone());
    agent.ready.store(true, Ordering::Relaxed);

    let signal = runtime.block_on(serve(
        options,
        &resolver,
        fast_path.as_mut(),
        &mut registry,
        &agent,
        &mut signals,
        &mut changes,
    ))?;
    let Some(mut fast_path) = fast_path else {
        tracing::info!("{signal}: exiting");
        return Ok(());
    };
    let counters = fast_path.counters()?;
    let ifaces = options.ifaces.join(", ");
    if options.detach_on_exit {
        fast_path.detach()?;
        for iface in &options.ifaces {
            fastpath::remove_pins(&options.pins, iface)?;
        }
        tracing::info!(%counters, "{signal}: detached from {ifaces}");
    } else {
        tracing::info!(
            %counters,
            "{signal}: exiting; the fast path stays attached to {ifaces} (pinned in {}; `meshdns detach` removes it)",
            options.pins.dir.display()
        );
    }
    Ok(())
}

/// Waits until `iface` exists: on a node that is still coming up, or for a
/// bridge that the CNI creates with the first pod. Meanwhile /readyz says
/// not ready. Returns the signal if one ends the wait.
async fn wait_for_interface(iface: &str, signals: &mut Signals) -> Option<&'static str> {
    const POLL: Duration = Duration::from_millis(100);
    const REMIND: Duration = Duration::from_secs(30);
    let mut warned: Option<std::time::Instant> = None;
    while netif::index(iface).is_none() {
        if warned.is_none_or(|at| at.elapsed() >= REMIND) {
            tracing::warn!(
                iface,
                "waiting for the interface to appear; not ready until then"
            );
            warned = Some(std::time::Instant::now());
        }
        tokio::select! {
            signal = signals.next() => {
                if let Caught::Shutdown(name) = signal {
                    return Some(name);
                }
            }
            _ = tokio::time::sleep(POLL) => {}
        }
    }
    None
}

/// Loads the fast path with its pinned maps, fills its table and attaches
/// it (taking over a pinned link if there is one).
fn attach_fast_path(options: &Options, table: &Arc<Table>) -> anyhow::Result<FastPath> {
    ensure_bpffs(&options.pins.dir)?;
    let mut fast_path = FastPath::load_pinned(&options.pins).context("loading the XDP program")?;
    let report = fast_path
        .sync(table.clone())
        .context("filling the names map")?;
    tracing::info!(
        names = table.len(),
        added = report.added,
        updated = report.updated,
        removed = report.removed,
        unchanged = report.unchanged,
        "table loaded from {}",
        options.config.display()
    );
    for iface in &options.ifaces {
        let attachment = fast_path.attach_pinned(iface, options.xdp_mode, &options.pins)?;
        if attachment.took_over {
            // The link keeps the mode it was created with, whatever is
            // asked now.
            let mode = fastpath::check_pinned_serving(&options.pins.link(iface)).ok();
            tracing::info!(
                iface,
                ?mode,
                "fast path attached: took over the pinned link, program replaced in place"
            );
            let asked = match options.xdp_mode {
                AttachMode::Driver => Some(netif::XdpAttachMode::Driver),
                AttachMode::Skb => Some(netif::XdpAttachMode::Generic),
                AttachMode::Auto | AttachMode::Off => None,
            };
            if let (Some(asked), Some(mode)) = (asked, mode)
                && asked != mode
            {
                tracing::warn!(
                    iface,
                    ?mode,
                    ?asked,
                    "the pinned link keeps its mode; to change it, `meshdns detach --iface {iface}` and start again (the fast path is off in between)"
                );
            }
        } else {
            tracing::info!(iface, mode = ?attachment.mode, "fast path attached");
        }
    }
    FastPath::remove_stale_maps(&options.pins);

    Ok(fast_path)
}

/// How long after a failed update of the kernel's table it is tried again.
const SYNC_RETRY: Duration = Duration::from_secs(5);
/// How often the links are checked for an interface that went away and
/// came back.
const LINK_CHECK: Duration = Duration::from_secs(2);

/// Keeps the table in step with the services file until SIGINT or SIGTERM;
/// returns which came.
async fn serve(
    options: &Options,
    resolver: &Resolver,
    mut fast_path: Option<&mut FastPath>,
    registry: &mut Registry,
    agent: &AgentState,
    signals: &mut Signals,
    changes: &mut ConfigWatch,
) -> anyhow::Result<&'static str> {
    // A table the kernel's map failed to take, tried again until it does.
    let mut unsynced: Option<Arc<Table>> = None;
    // When to try it again: a deadline, not a sleep started anew each time
    // another branch wakes the loop.
    let mut retry_at = tokio::time::Instant::now();
    let mut links = tokio::time::interval(LINK_CHECK);
    let mut gone: Vec<String> = Vec::new();
    loop {
        let why = tokio::select! {
            signal = signals.next() => match signal {
                Caught::Shutdown(name) => return Ok(name),
                Caught::Hangup => "SIGHUP",
            },
            result = changes.next() => {
                result?;
                "file changed"
            }
            _ = tokio::time::sleep_until(retry_at), if unsynced.is_some() => "retrying the fast path update",
            _ = links.tick(), if fast_path.is_some() => {
                if let Some(fast_path) = fast_path.as_deref_mut() {
                    reattach_returned(options, fast_path, &mut gone);
                }
                continue;
            }
        };
        let table = match registry.reload() {
            Ok(Reload::Changed(new)) => {
                tracing::info!(why, names = new.len(), "table reloaded");
                agent.reloads.fetch_add(1, Ordering::Relaxed);
                agent.names.store(new.len() as u64, Ordering::Relaxed);
                resolver.set_table(new.clone());
                new
            }
            Ok(Reload::Unchanged) => {
                tracing::debug!(why, "services file unchanged");
                match unsynced.take() {
                    Some(table) => table,
                    None => continue,
                }
            }
            Err(error) => {
                agent.reload_errors.fetch_add(1, Ordering::Relaxed);
                tracing::error!(why, "{error}; the table that was serving keeps serving");
                match unsynced.take() {
                    Some(table) => table,
                    None => continue,
                }
            }
        };
        let Some(fast_path) = fast_path.as_deref_mut() else {
            continue;
        };
        match fast_path.sync(table.clone()) {
            Ok(report) => {
                tracing::info!(
                    why,
                    added = report.added,
                    updated = report.updated,
                    removed = report.removed,
                    "fast path table updated"
                );
                agent.out_of_step.store(false, Ordering::Relaxed);
            }
            Err(error) => {
                // Not the end of the agent: the program keeps answering
                // (from a partly updated table), the resolver from the new
                // one, and /readyz says not ready until an update succeeds.
                tracing::error!(
                    "updating the fast path's table: {error}; not ready; trying again in {SYNC_RETRY:?}"
                );
                agent.out_of_step.store(true, Ordering::Relaxed);
                unsynced = Some(table);
                retry_at = tokio::time::Instant::now() + SYNC_RETRY;
            }
        }
    }
}

/// Attaches the program again to each interface that went away (its link
/// is defunct) and has come back: a CNI bridge re-created, a veth replaced.
/// `gone` remembers which interfaces were reported missing, to say it once.
/// A link detached on purpose (`meshdns detach`), or an interface running
/// another program, is left alone.
fn reattach_returned(options: &Options, fast_path: &mut FastPath, gone: &mut Vec<String>) {
    for iface in &options.ifaces {
        let link = options.pins.link(iface);
        if !matches!(
            fastpath::check_pinned_serving(&link),
            Err(fastpath::NotServing::InterfaceGone)
        ) {
            continue;
        }
        if netif::index(iface).is_none() {
            if !gone.contains(iface) {
                tracing::warn!(
                    iface,
                    "the interface is gone; the fast path will attach again when it is back"
                );
                gone.push(iface.clone());
            }
            continue;
        }
        match fast_path.attach_pinned(iface, options.xdp_mode, &options.pins) {
            Ok(attachment) => {
                tracing::info!(iface, mode = ?attachment.mode, "fast path attached again: the interface is back");
                gone.retain(|g| g != iface);
            }
            Err(error) => tracing::error!(iface, "attaching again: {error}"),
        }
    }
}

/// The resolver, set up from the options and the services file.
/// `listen` is where it will listen: never its own upstream. `addresses`
/// are the interfaces' own, with their prefix lengths.
fn resolver(
    options: &Options,
    table: Arc<Table>,
    listen: &[SocketAddr],
    addresses: &[(IpAddr, u8)],
) -> anyhow::Result<Resolver> {
    let settings = table.settings().clone();
    // For when the services file has no allow_from (now or after a
    // reload): loopback and the interfaces' own subnets.
    let mut default_allow_from: Vec<Cidr> = vec!["127.0.0.0/8".parse()?, "::1/128".parse()?];
    default_allow_from.extend(
        addresses
            .iter()
            .map(|(addr, prefix)| netif::subnet(*addr, *prefix)),
    );
    let allow_from = settings
        .allow_from
        .clone()
        .unwrap_or_else(|| default_allow_from.clone());
    let upstreams: Vec<SocketAddr> = if options.upstream.is_empty() {
        netif::nameservers(Path::new("/etc/resolv.conf"))
            .into_iter()
            .filter(|server| !listen.contains(server))
            .collect()
    } else {
        options.upstream.clone()
    };
    if upstreams.is_empty() {
        tracing::warn!("no upstream resolver: names outside the mesh get SERVFAIL");
    }
    tracing::info!(?upstreams, allow_from = ?allow_from.iter().map(ToString::to_string).collect::<Vec<_>>(), "resolver ready");
    let limits = Limits {
        stale_max: Duration::from_secs(settings.stale_max),
        ..Limits::default()
    };
    Ok(Resolver::new(
        table,
        default_allow_from,
        Upstreams::new(&upstreams, upstream::Settings::default()),
        Cache::new(limits),
    ))
}

/// Where the resolver listens: `--listen`, or the interfaces' `addresses`
/// (not IPv6 link-local ones, which need a scope), port 53.
fn resolver_listen(
    options: &Options,
    addresses: &[(IpAddr, u8)],
) -> anyhow::Result<Vec<SocketAddr>> {
    if !options.listen.is_empty() {
        return Ok(options.listen.clone());
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for (addr, _) in addresses {
        let link_local = matches!(addr, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
        let addr = SocketAddr::new(*addr, 53);
        if !link_local && !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        bail!(
            "{} has no address to listen on; give --listen",
            options.ifaces.join(", ")
        );
    }
    Ok(addrs)
}

/// SIGINT, SIGTERM and SIGHUP, caught from creation on.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next signal.
    async fn next(&mut self) -> Caught {
        tokio::select! {
            _ = self.interrupt.recv() => Caught::Shutdown("SIGINT"),
            _ = self.terminate.recv() => Caught::Shutdown("SIGTERM"),
            _ = self.hangup.recv() => Caught::Hangup,
        }
    }
}

enum Caught {
    /// SIGINT or SIGTERM: stop.
    Shutdown(&'static str),
    /// SIGHUP: read the services file again.
    Hangup,
}

/// Changes to the services file, seen through inotify on its folder: that
/// catches editors that write in place, tools that write a new file and
/// rename it over the old one, and Kubernetes ConfigMap volumes, which swap
/// a symlink. Whether the file really changed is the registry's call.
struct ConfigWatch {
    events: inotify::EventStream<Vec<u8>>,
    /// An event was read and the folder is settling: `next` may be dropped
    /// then (it is one branch of a `select!`), and must not lose it.
    settling: bool,
}

/// How long to wait for more events after the first, so that a write in
/// several steps is read once, when done. Well inside the 100 ms budget.
const SETTLE: Duration = Duration::from_millis(10);

impl ConfigWatch {
    fn new(config: &Path) -> anyhow::Result<Self> {
        let dir = match config.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let inotify = Inotify::init().context("inotify")?;
        inotify
            .watches()
            .add(
                dir,
                WatchMask::CLOSE_WRITE
                    | WatchMask::MOVED_TO
                    | WatchMask::CREATE
                    | WatchMask::DELETE,
            )
            .with_context(|| format!("watching {}", dir.display()))?;
        Ok(Self {
            events: inotify.into_event_stream(vec![0; 4096])?,
            settling: false,
        })
    }

    /// Waits for a change, then for the folder to settle.
    /// Cancel-safe: dropped while settling, the next call settles and
    /// returns the change.
    async fn next(&mut self) -> anyhow::Result<()> {
        if !self.settling {
            match self.events.next().await {
                Some(event) => {
                    event?;
                }
                None => bail!("inotify stream ended"),
            }
            self.settling = true;
        }
        while let Ok(Some(event)) = tokio::time::timeout(SETTLE, self.events.next()).await {
            event?;
        }
        self.settling = false;
        Ok(())
    }
}

/// Makes sure `pin_dir` is on a bpffs, mounting one at /sys/fs/bpf if the
/// pin folder is under it and nothing is mounted there yet.
fn ensure_bpffs(pin_dir: &Path) -> anyhow::Result<()> {
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
        let source = CString::new("bpf")?;
        let target = CString::new("/sys/fs/bpf")?;
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
        bail!(
            "mounting bpffs at /sys/fs/bpf: {}",
            std::io::Error::last_os_error()
        );
    }
    bail!(
        "{} is not on a bpffs: pin under /sys/fs/bpf, or mount one (`mount -t bpf bpf DIR`)",
        pin_dir.display()
    )
}

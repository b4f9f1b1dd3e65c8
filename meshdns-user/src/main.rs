//! `meshdns`: the node-local DNS agent for service meshes.

//!
//! The command line only: every command is a call into the library
//! ([`meshdns::agent`] for `run`, [`meshdns::inspect`] for the rest).

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use meshdns::{
    agent::{Agent, Options},
    fastpath::{self, AttachMode, Pins},
    inspect,
    netif::IfacePattern,
    source::provenance::Provenance,
};

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

/// `--xdp-mode`: how to attach the fast path, or not at all.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum XdpModeArg {
    /// Driver (native) mode if the driver supports it, else generic (SKB) mode.
    Auto,
    /// Driver (native) mode only: in the NIC driver, before any allocation.
    Driver,
    /// Generic (SKB) mode only: works everywhere, much slower.
    Skb,
    /// No XDP at all: the resolver answers everything (for hosts without
    /// XDP, and to measure what the fast path buys).
    Off,
}

impl XdpModeArg {
    fn attach_mode(self) -> Option<AttachMode> {
        match self {
            XdpModeArg::Auto => Some(AttachMode::Auto),
            XdpModeArg::Driver => Some(AttachMode::Driver),
            XdpModeArg::Skb => Some(AttachMode::Generic),
            XdpModeArg::Off => None,
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Attach the fast path to an interface and keep its table in step with
    /// the services file until SIGINT or SIGTERM. The program stays
    /// attached after exit (pinned), so restarts and upgrades lose nothing.
    Run {
        /// Interface whose incoming DNS queries the fast path answers, or a
        /// glob pattern for interfaces that come and go, quoted (`'cali*'`,
        /// `'lxc*'`: a pod's veth each). Repeatable and mixed: one program,
        /// a pinned link per interface. A name is waited for at start; a
        /// pattern's interfaces are attached as they appear. Several may
        /// be given in one, separated by commas (`--iface 'cali*,eth0'`).
        #[arg(
            long = "iface",
            value_name = "IF|PATTERN",
            required = true,
            value_delimiter = ','
        )]
        ifaces: Vec<IfacePattern>,
        /// The services file (YAML); changes apply as they are saved, and on SIGHUP.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// How to attach the XDP program.
        #[arg(long, value_enum, default_value_t = XdpModeArg::Auto)]
        xdp_mode: XdpModeArg,
        /// Where the VIP allocations, kuma-cp's last names and which source
        /// each name came from are kept.
        #[arg(
            long,
            value_name = "DIR",
            default_value = "/var/lib/meshdns",
            env = "MESHDNS_STATE_DIR"
        )]
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
    /// Detach the fast path from an interface, or from every interface a
    /// pattern matches, and remove their pins.
    Detach {
        #[arg(long, value_name = "IF|PATTERN")]
        iface: IfacePattern,
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
    /// The agent's state folder, where it writes which source each name came
    /// from (shown when there).
    #[arg(
        long = "state-dir",
        value_name = "DIR",
        default_value = "/var/lib/meshdns",
        env = "MESHDNS_STATE_DIR"
    )]
    state_dir: PathBuf,
    /// JSON instead of text.
    #[arg(long)]
    json: bool,
}

impl PinArgs {
    /// Which source each name came from, if the agent wrote it.
    fn provenance(&self) -> Option<Provenance> {
        Provenance::load(&self.state_dir)
    }

    /// Where the agent forwards, by zone, if it wrote it.
    fn forwarding(&self) -> Vec<meshdns::resolver::forwarding::ZoneView> {
        std::fs::read(
            self.state_dir
                .join(meshdns::resolver::forwarding::VIEW_FILE),
        )
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
    }

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
        } => {
            let options = Options {
                ifaces,
                config,
                xdp_mode: xdp_mode.attach_mode(),
                state_dir,
                pins: pins.pins(),
                detach_on_exit,
                listen,
                upstream,
                metrics_addr,
            };
            if let Some(agent) = Agent::start(options)? {
                agent.run()?;
            }
            Ok(())
        }
        Command::Detach { iface, pins } => {
            let pins = pins.pins();
            let matched: Vec<String> = match iface.name() {
                Some(name) => vec![name.to_string()],
                None => pins
                    .linked_interfaces()
                    .into_iter()
                    .filter(|linked| iface.matches(linked))
                    .collect(),
            };
            let mut detached = 0;
            for name in &matched {
                if fastpath::remove_pins(&pins, name)? {
                    tracing::info!(
                        iface = name,
                        "detached; pins removed from {}",
                        pins.dir.display()
                    );
                    detached += 1;
                }
            }
            if detached == 0 {
                tracing::info!(%iface, "nothing was pinned in {}", pins.dir.display());
            }
            Ok(())
        }
        Command::Status { pins } => pins.print(&inspect::status(
            &pins.pin_dir.pins(),
            pins.provenance(),
            meshdns::agent::interfaces::load_status(&pins.state_dir),
        )?),
        Command::Lookup { name, qtype, pins } => pins.print(&inspect::lookup(
            &pins.pin_dir.pins(),
            &name,
            &qtype,
            pins.provenance().as_ref(),
            &pins.forwarding(),
        )?),
        Command::Dump { pins } => pins.print(&inspect::dump(
            &pins.pin_dir.pins(),
            pins.provenance().as_ref(),
        )?),
    }
}

//! `meshdns`: the node-local DNS agent for service meshes.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use meshdns::{
    fastpath::{AttachMode, FastPath},
    table::Table,
};
use tokio::signal::unix::{Signal, SignalKind, signal};

#[derive(Parser)]
#[command(version, about = "Node-local DNS for service meshes, answered in XDP")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Attach the fast path to an interface and serve the services file
    /// until SIGINT or SIGTERM, then detach.
    Run {
        /// Interface whose incoming DNS queries the fast path answers.
        #[arg(long, value_name = "IF")]
        iface: String,
        /// The services file (YAML).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// How to attach the XDP program.
        #[arg(long, value_enum, default_value_t = AttachMode::Auto)]
        xdp_mode: AttachMode,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Run {
            iface,
            config,
            xdp_mode,
        } => run(&iface, &config, xdp_mode),
    }
}

fn run(iface: &str, config: &Path, mode: AttachMode) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // Catch the signals before attaching: a SIGTERM that comes right after
    // the attach must still detach cleanly, not kill the process.
    let mut shutdown = runtime.block_on(async { Shutdown::new() })?;

    // Read the table first: a broken file should fail before anything is
    // attached, with the line at fault.
    let table = Table::load(config)?;
    let mut fast_path = FastPath::load().context("loading the XDP program")?;
    let report = fast_path.sync(&table).context("filling the names map")?;
    tracing::info!(
        names = table.len(),
        added = report.added,
        "table loaded from {}",
        config.display()
    );
    let attachment = fast_path.attach(iface, mode)?;
    tracing::info!(iface, mode = ?attachment.mode, "fast path attached");

    let signal = runtime.block_on(shutdown.wait());
    tracing::info!("{signal}: detaching");
    let counters = fast_path.counters()?;
    fast_path.detach()?;
    tracing::info!(%counters, "detached from {iface}");
    Ok(())
}

/// SIGINT and SIGTERM, caught from creation on.
struct Shutdown {
    interrupt: Signal,
    terminate: Signal,
}

impl Shutdown {
    fn new() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either signal and says which came.
    async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

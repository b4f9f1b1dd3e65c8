//! `cargo xtask`: the project's tasks.
//!
//! - `setup`: the toolchain parts a fresh machine lacks (nightly rust-src,
//!   bpf-linker); every other task runs it first.
//! - `run`: builds and runs meshdns, in a self-contained lab by default.
//! - `test`: every test, the privileged ones included.
//! - `bench`: meshdns against Knot DNS, Unbound and a floor.
//! - `soak`: the agent under a mixed load while faults come.
//! - `fuzz`: the agent's libFuzzer targets, each for a bounded time.

mod bench;
mod cmd;
mod fuzz;
mod lab;
mod report;
mod setup;
mod tally;

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "meshdns project tasks")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what building needs: rust-src for the nightly toolchain and a
    /// bpf-linker matching its LLVM, in the project's .tools folder.
    Setup,
    /// Build and run meshdns. With no arguments: a lab of a client network
    /// namespace and a veth pair, serving examples/services.yaml. With
    /// arguments after `--`: `meshdns run ARGS` on a real interface.
    Run {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Run every test, including those that load XDP programs and create
    /// network namespaces (needs root). Arguments after `--` go to cargo test.
    Test {
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Measure meshdns against Knot DNS, Unbound and a floor, in one run
    /// (needs root; installs dnsperf, knot-dnsutils, knot, unbound).
    Bench {
        /// Services in the workload.
        #[arg(long, default_value_t = 10_000)]
        names: usize,
        /// Seconds per measured run.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Measured runs per target and tool.
        #[arg(long, default_value_t = 3)]
        repetitions: usize,
        /// Also measure the fast path at 1k, 100k and 1M names.
        #[arg(long)]
        scale: bool,
        /// A smoke test in under three minutes (CI runs it): 1,000 names,
        /// one 1-second run per tool, no scale.
        #[arg(long, conflicts_with = "scale")]
        quick: bool,
    },
    /// Build the agent's libFuzzer targets (fuzz/, cargo-fuzz, installed
    /// into .tools) and run each for a bounded time; fails on a crash.
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// The agent in a lab under a steady mixed load (the fast path, the
    /// resolver forwarding to Unbound, TCP) while it is killed and
    /// restarted, the upstream dies and returns, the interface is deleted
    /// and created again and the services file changes every 100 ms;
    /// fails on a wrong or lost answer, growing memory or leaked
    /// descriptors (needs root; installs unbound).
    Soak {
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// The faults' random seed (default: from the clock; printed).
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() -> anyhow::Result<()> {
    let root = workspace_root()?;
    match Cli::parse().task {
        Task::Setup => setup::toolchain(&root),
        Task::Run { args } => {
            setup::toolchain(&root)?;
            require_root("cargo xtask run")?;
            let target = cmd::build_bins(&root, false)?;
            if args.is_empty() {
                lab::run(&root, &target)
            } else {
                let mut full = vec!["run".to_string()];
                full.extend(args);
                cmd::exec(&target.join("meshdns"), &full)
            }
        }
        Task::Bench {
            names,
            seconds,
            repetitions,
            scale,
            quick,
        } => {
            setup::toolchain(&root)?;
            require_root("cargo xtask bench")?;
            let args = if quick {
                bench::Args {
                    names: 1_000,
                    seconds: 1,
                    repetitions: 1,
                    scale: false,
                }
            } else {
                bench::Args {
                    names,
                    seconds,
                    repetitions,
                    scale,
                }
            };
            bench::run(&root, &args)
        }
        Task::Fuzz { seconds } => {
            setup::toolchain(&root)?;
            fuzz::run(&root, seconds)
        }
        Task::Soak { minutes, seed } => {
            setup::toolchain(&root)?;
            require_root("cargo xtask soak")?;
            setup::debian_packages(&setup::TEST_PACKAGES)?;
            // The agent as it is deployed, optimized; in CI also the bench's
            // build, so nothing is built again.
            let bin = cmd::build_bins(&root, true)?;
            let mut args = vec!["--minutes".to_string(), minutes.to_string()];
            if let Some(seed) = seed {
                args.extend(["--seed".to_string(), seed.to_string()]);
            }
            cmd::exec(&bin.join("meshdns-soak"), &args)
        }
        Task::Test { args } => {
            setup::toolchain(&root)?;
            require_root("cargo xtask test")?;
            setup::debian_packages(&setup::TEST_PACKAGES)?;
            // The end-to-end tests run the agent binary as a user would.
            cmd::cargo(&root, &["build", "-p", "meshdns-user", "--bins"])?;
            // Every binary runs even after one fails, so the total counts every test.
            let mut test = vec![
                "test",
                "--workspace",
                "--exclude",
                "meshdns-ebpf",
                "--no-fail-fast",
            ];
            test.extend(args.iter().map(String::as_str));
            tally::cargo_test(&root, &test)
        }
    }
}

fn workspace_root() -> anyhow::Result<PathBuf> {
    let manifest_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map(PathBuf::from)
        .context("xtask has no parent folder")
}

/// Fails with a clear message unless running as root.
fn require_root(task: &str) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "{task} loads XDP programs and creates network namespaces: run it as root \
             (e.g. `sudo -E cargo xtask ...`)"
        );
    }
    Ok(())
}

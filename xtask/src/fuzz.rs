//! `cargo xtask fuzz`: the agent's libFuzzer targets (`fuzz/`, cargo-fuzz
//! on the nightly), each run for a bounded time. A crash fails the run;
//! libFuzzer leaves the input that caused it in
//! `fuzz/artifacts/<target>/`, which becomes a test (README, "Fuzzing the
//! agent").

use std::{path::Path, process::Command};

use anyhow::Context as _;

use crate::{cmd, setup};

/// The targets, in `fuzz/Cargo.toml`'s order.
pub const TARGETS: [&str; 4] = [
    "services_file",
    "kuma_sources",
    "resolver_query",
    "tcp_framing",
];

/// Builds every target once, then runs each for `seconds`.
pub fn run(root: &Path, seconds: u64) -> anyhow::Result<()> {
    let cargo_fuzz = setup::cargo_fuzz(root)?;
    let fuzz = |args: &[&str]| {
        let mut command = Command::new(&cargo_fuzz);
        // Run as cargo runs a subcommand (`cargo fuzz ...`), with the
        // nightly, which libFuzzer's instrumentation needs.
        command
            .arg("fuzz")
            .args(args)
            .current_dir(root.join("fuzz"))
            .env("RUSTUP_TOOLCHAIN", "nightly");
        command
    };
    // Optimized, with debug assertions (cargo-fuzz's -O); AddressSanitizer
    // off: the agent is safe Rust, and the sanitizer's instrumentation of
    // every dependency is most of the build's time.
    let build = ["-O", "--sanitizer", "none"];
    cmd::run(&mut fuzz(&[&["build"][..], &build].concat())).context("building the fuzz targets")?;
    for target in TARGETS {
        eprintln!("xtask: fuzzing {target} for {seconds} s");
        let limit = format!("-max_total_time={seconds}");
        cmd::run(&mut fuzz(
            &[&["run"][..], &build, &[target, "--", &limit]].concat(),
        ))
        .with_context(|| {
            format!("fuzz target {target} failed: its input is in fuzz/artifacts/{target}/")
        })?;
    }
    Ok(())
}

//! Running commands, with their output shown as they go.

use std::{
    ffi::OsStr,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Command, ExitStatus},
};

use anyhow::{Context as _, bail};

/// Runs a command to completion, output to the terminal; fails unless it succeeds.
pub fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = status(command)?;
    if !status.success() {
        bail!("{} failed: {status}", describe(command));
    }
    Ok(())
}

pub fn status(command: &mut Command) -> anyhow::Result<ExitStatus> {
    command
        .status()
        .with_context(|| format!("cannot run {}", describe(command)))
}

/// Runs a command and returns its standard output; fails unless it succeeds.
pub fn output(command: &mut Command) -> anyhow::Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {}", describe(command)))?;
    if !output.status.success() {
        bail!(
            "{} failed: {}{}",
            describe(command),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `cargo ARGS` in the workspace, with the cargo that runs xtask.
pub fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(Command::new(cargo).args(args).current_dir(root))
}

/// Builds the agent and the lab's helper binaries (`meshdns`,
/// `meshdns-lab-xdp`, `meshdns-latency`, `meshdns-xdp-cost`, `meshdns-soak`); returns the
/// folder they are in.
pub fn build_bins(root: &Path, release: bool) -> anyhow::Result<std::path::PathBuf> {
    let mut args = vec![
        "build",
        "-p",
        "meshdns-user",
        "-p",
        "meshdns-tests",
        "--bins",
    ];
    if release {
        args.push("--release");
    }
    cargo(root, &args)?;
    Ok(root.join(if release {
        "target/release"
    } else {
        "target/debug"
    }))
}

/// Replaces this process with `program ARGS`.
pub fn exec(program: &Path, args: &[impl AsRef<OsStr>]) -> anyhow::Result<()> {
    let error = Command::new(program).args(args).exec();
    Err(error).with_context(|| format!("cannot run {}", program.display()))
}

fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

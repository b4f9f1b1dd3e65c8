//! What a fresh machine lacks for building and testing: rust-src for the
//! nightly toolchain, a bpf-linker built against the nightly's own LLVM, and
//! a few Debian packages. Every step checks before it acts, so a machine
//! that has everything is done in well under a second.

use std::{
    fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

use crate::cmd;

/// bpf-linker release known to build and link aya-ebpf programs here.
const BPF_LINKER_VERSION: &str = "0.13.0";
/// cargo-fuzz release the fuzz targets are built with.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Commands the tests run, and the Debian package of each.
pub const TEST_PACKAGES: [(&str, &str); 7] = [
    ("dig", "dnsutils"),
    ("ip", "iproute2"),
    ("ss", "iproute2"),
    ("nsenter", "util-linux"),
    ("setpriv", "util-linux"),
    ("unbound", "unbound"),
    ("knotd", "knot"),
];

/// The nightly toolchain, as its rustc describes itself.
struct Nightly {
    sysroot: PathBuf,
    llvm_major: u32,
}

impl Nightly {
    fn probe() -> anyhow::Result<Self> {
        let missing = "the nightly toolchain is missing: meshdns builds its XDP program with it \
                       (`rustup toolchain install nightly`)";
        let version = cmd::output(Command::new("rustup").args(["run", "nightly", "rustc", "-vV"]))
            .context(missing)?;
        let llvm = version
            .lines()
            .find_map(|line| line.strip_prefix("LLVM version: "))
            .context("nightly rustc does not say its LLVM version")?;
        let llvm_major = llvm
            .split('.')
            .next()
            .and_then(|major| major.parse().ok())
            .with_context(|| format!("cannot read LLVM version {llvm:?}"))?;
        let sysroot = cmd::output(
            Command::new("rustup").args(["run", "nightly", "rustc", "--print", "sysroot"]),
        )
        .context(missing)?;
        Ok(Self {
            sysroot: PathBuf::from(sysroot.trim()),
            llvm_major,
        })
    }

    /// The file name of the nightly's shared libLLVM, e.g.
    /// `libLLVM.so.22.1-rust-1.97.0-nightly`.
    fn libllvm(&self) -> anyhow::Result<String> {
        let lib = self.sysroot.join("lib");
        for entry in fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            if name.starts_with("libLLVM.so.")
                || (name.starts_with("libLLVM-") && name.ends_with(".so"))
            {
                return Ok(name);
            }
        }
        bail!(
            "no libLLVM in {}: bpf-linker links against the nightly's LLVM",
            lib.display()
        )
    }
}

/// Makes sure the nightly has rust-src and that `.tools/bin/bpf-linker`
/// exists and matches the nightly's LLVM.
pub fn toolchain(root: &Path) -> anyhow::Result<()> {
    let nightly = Nightly::probe()?;
    rust_src(&nightly)?;
    bpf_linker(root, &nightly)
}

fn rust_src(nightly: &Nightly) -> anyhow::Result<()> {
    if nightly
        .sysroot
        .join("lib/rustlib/src/rust/library/core")
        .is_dir()
    {
        return Ok(());
    }
    eprintln!("xtask: adding rust-src to the nightly toolchain (for -Z build-std=core)");
    cmd::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))
}

fn bpf_linker(root: &Path, nightly: &Nightly) -> anyhow::Result<()> {
    let tools = root.join(".tools");
    let linker = tools.join("bin/bpf-linker");
    let libllvm = nightly.libllvm()?;
    // Rebuild when the linker, the LLVM major or the nightly's libLLVM (its
    // file name carries the nightly version) changes.
    let stamp_path = tools.join("bpf-linker.stamp");
    let stamp = format!(
        "bpf-linker {BPF_LINKER_VERSION} llvm-{} {libllvm}\n",
        nightly.llvm_major
    );
    if linker.exists()
        && fs::read_to_string(&stamp_path).is_ok_and(|s| s == stamp)
        && Command::new(&linker)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }

    eprintln!(
        "xtask: building bpf-linker {BPF_LINKER_VERSION} against the nightly's LLVM {} \
         into {} (about a minute; cargo shows progress)",
        nightly.llvm_major,
        tools.display()
    );
    // bpf-linker finds LLVM through LLVM_PREFIX and keeps an rpath to
    // $LLVM_PREFIX/lib, so this folder must stay where it is.
    let prefix = tools.join("llvm");
    let prefix_lib = prefix.join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    let target = nightly.sysroot.join("lib").join(&libllvm);
    for name in ["libLLVM.so", libllvm.as_str()] {
        let link = prefix_lib.join(name);
        let _ = fs::remove_file(&link);
        symlink(&target, &link).with_context(|| format!("linking {}", link.display()))?;
    }
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    cmd::run(
        Command::new(cargo)
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--no-default-features",
            ])
            .args(["--version", BPF_LINKER_VERSION])
            .args(["--features", &format!("llvm-{}", nightly.llvm_major)])
            .arg("--root")
            .arg(&tools)
            .env("LLVM_PREFIX", &prefix),
    )
    .with_context(|| {
        format!(
            "building bpf-linker {BPF_LINKER_VERSION} with feature llvm-{}; if that LLVM is \
             newer than this bpf-linker knows, raise BPF_LINKER_VERSION in xtask/src/setup.rs",
            nightly.llvm_major
        )
    })?;
    fs::write(&stamp_path, stamp)?;
    Ok(())
}

/// cargo-fuzz in the project's `.tools` (installed there if it is not, or
/// not this version): where `cargo xtask fuzz` runs it from.
pub fn cargo_fuzz(root: &Path) -> anyhow::Result<PathBuf> {
    let tools = root.join(".tools");
    let cargo_fuzz = tools.join("bin/cargo-fuzz");
    let installed = Command::new(&cargo_fuzz)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_FUZZ_VERSION));
    if !installed {
        eprintln!(
            "xtask: installing cargo-fuzz {CARGO_FUZZ_VERSION} into {} (a few minutes; cargo shows progress)",
            tools.display()
        );
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        cmd::run(
            Command::new(cargo)
                .args(["install", "cargo-fuzz", "--locked", "--force"])
                .args(["--version", CARGO_FUZZ_VERSION])
                .arg("--root")
                .arg(&tools),
        )?;
    }
    Ok(cargo_fuzz)
}

/// Installs the Debian packages whose commands are missing.
pub fn debian_packages(needed: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut missing: Vec<&str> = needed
        .iter()
        .filter(|(command, _)| !on_path(command))
        .map(|(_, package)| *package)
        .collect();
    missing.dedup();
    if missing.is_empty() {
        return Ok(());
    }
    if !on_path("apt-get") {
        bail!("missing commands; install the packages {missing:?} (no apt-get here)");
    }
    eprintln!("xtask: installing Debian packages {missing:?}");
    cmd::run(Command::new("apt-get").args(["update", "-q"]))?;
    cmd::run(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

fn on_path(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

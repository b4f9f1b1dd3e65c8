//! Builds the XDP program (`meshdns-ebpf`) for `bpfel-unknown-none` with the
//! nightly toolchain and bpf-linker, so that a plain `cargo build` of the
//! agent embeds a fresh object. `cargo xtask setup` installs the toolchain
//! parts; this script only checks they are there and says what is missing.

use std::path::Path;

use anyhow::{Context as _, bail};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir
        .parent()
        .context("meshdns-user has no parent folder")?;

    // .cargo/config.toml points the bpfel target's linker at this path.
    let linker = workspace.join(".tools/bin/bpf-linker");
    println!("cargo:rerun-if-changed={}", linker.display());
    if !linker.exists() {
        bail!(
            "bpf-linker is missing at {}: run `cargo xtask setup` once \
             (it also adds rust-src to the nightly toolchain)",
            linker.display()
        );
    }

    let ebpf_dir = workspace.join("meshdns-ebpf");
    let ebpf_dir = ebpf_dir.to_str().context("workspace path is not UTF-8")?;
    aya_build::build_ebpf(
        [Package {
            name: "meshdns-ebpf",
            root_dir: ebpf_dir,
            ..Default::default()
        }],
        Toolchain::Nightly,
    )
}

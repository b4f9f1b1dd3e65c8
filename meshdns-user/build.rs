//! Builds the XDP program (`meshdns-ebpf`) for `bpfel-unknown-none` with the
//! nightly toolchain and bpf-linker, so that a plain `cargo build` of the
//! agent embeds a fresh object. `cargo xtask setup` installs the toolchain
//! parts; this script only checks they are there and says what is missing.

use std::{env, fs, io, os::unix::fs::symlink, path::Path};

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

    share_ebpf_target_dir(workspace)?;

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

/// aya-build builds in `OUT_DIR/aya-build/target/meshdns-ebpf`, and every
/// profile, feature set and flag set of this package (dev, test, release,
/// clippy, the fuzz targets' instrumented build) has an `OUT_DIR` of its own,
/// so each built the same object again, `core` included: about 50 s each, five
/// times in CI. The object does not depend on any of them (aya-build always
/// builds it in release, with its own flags), so that folder is made a link to
/// one shared target folder, `<target>/ebpf`; cargo's lock on a target folder
/// serializes builds that meet there, and aya-build still copies the object
/// into this `OUT_DIR`.
fn share_ebpf_target_dir(workspace: &Path) -> anyhow::Result<()> {
    let out_dir = env::var_os("OUT_DIR").context("OUT_DIR not set")?;
    let link = Path::new(&out_dir).join("aya-build/target/meshdns-ebpf");
    // A relative CARGO_TARGET_DIR is taken from the workspace's root, where
    // cargo is usually run.
    let target = env::var_os("CARGO_TARGET_DIR")
        .map(|dir| workspace.join(dir))
        .unwrap_or_else(|| workspace.join("target"));
    let shared = target.join("ebpf");
    fs::create_dir_all(&shared).with_context(|| format!("cannot create {}", shared.display()))?;
    if fs::read_link(&link).is_ok_and(|to| to == shared) {
        return Ok(());
    }
    match fs::symlink_metadata(&link) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(&link)?,
        Ok(_) => fs::remove_file(&link)?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    fs::create_dir_all(link.parent().context("the link has a parent")?)?;
    symlink(&shared, &link)
        .with_context(|| format!("cannot link {} to {}", link.display(), shared.display()))
}

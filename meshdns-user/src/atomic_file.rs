//! Files written so that a crash leaves the old one or the new one, never
//! half of either: the agent's state (VIPs, sources' last good names).

use std::{
    fs::{self, File},
    io::Write as _,
    path::{Path, PathBuf},
};

/// Writes `bytes` to `path` atomically: a temporary file beside it,
/// fsync, rename over, fsync of the folder (which it creates if missing).
pub fn write(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    fs::create_dir_all(dir)?;
    let tmp: PathBuf = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

//! A `kuma_vips` source's files: one file, or a folder of them laid out as
//! a ConfigMap volume is.

use std::path::{Path, PathBuf};

use super::{SourceError, SourceName, kuma_vips};

/// The VIP lists of a source: the file itself, or the files of the folder
/// in name order, without what a ConfigMap volume keeps beside them (its
/// `..data` symlink and timestamped folders start with dots).
pub(super) fn vip_files(path: &Path) -> std::io::Result<Vec<PathBuf>> {
    if !std::fs::metadata(path)?.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        // Following symlinks: a ConfigMap volume's files are links into
        // `..data`. A link left dangling while the kubelet swaps versions
        // is a key on its way out, not an error.
        let file = entry.path();
        match std::fs::metadata(&file) {
            Ok(metadata) if metadata.is_file() => files.push(file),
            Ok(_) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(error),
        }
    }
    files.sort();
    Ok(files)
}

pub(super) fn read_vip_file(path: &Path, domain: &str) -> Result<Vec<SourceName>, SourceError> {
    let text = std::fs::read_to_string(path).map_err(|source| SourceError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let list = kuma_vips::parse(&text, domain).map_err(|source| SourceError::KumaVips {
        path: path.to_path_buf(),
        source,
    })?;
    for skipped in &list.skipped {
        tracing::warn!(path = %path.display(), entry = skipped.entry, "VIP list entry skipped: {}", skipped.reason);
    }
    Ok(list
        .names
        .into_iter()
        .map(|name| SourceName {
            name: name.name,
            addresses: vec![name.address],
        })
        .collect())
}

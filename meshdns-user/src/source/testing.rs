//! What tests of sources need, here and in the tests crate (feature
//! `test-helpers`).

use std::{os::unix::fs::symlink, path::PathBuf};

/// A folder laid out as the kubelet lays out a ConfigMap volume: the data
/// in a timestamped folder, `..data` a symlink to it, and each key a
/// symlink through `..data`. Removed on drop.
pub struct ConfigMapVolume {
    pub dir: PathBuf,
    version: usize,
}

impl ConfigMapVolume {
    /// A fresh folder in the temp dir, named after `name` and the process.
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("meshdns-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self { dir, version: 0 }
    }

    /// Publishes `files` (key, text) as the kubelet does an update: a new
    /// timestamped folder, `..data` swapped to it by a rename, the old
    /// folder removed.
    pub fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let data = format!("..2026_12_01_00_00_00.{}", self.version);
        std::fs::create_dir(self.dir.join(&data)).unwrap();
        for (key, text) in files {
            std::fs::write(self.dir.join(&data).join(key), text).unwrap();
        }
        symlink(&data, self.dir.join("..data_tmp")).unwrap();
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).unwrap();
        for (key, _) in files {
            let link = self.dir.join(key);
            if std::fs::symlink_metadata(&link).is_err() {
                symlink(format!("..data/{key}"), link).unwrap();
            }
        }
        if self.version > 1 {
            let old = format!("..2026_12_01_00_00_00.{}", self.version - 1);
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }
}

impl Drop for ConfigMapVolume {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

//! The persisted allocations: the [`State`] file, read at start and
//! written after every allocation.

use std::{
    collections::BTreeMap,
    fs,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::Path,
};

use serde::{Deserialize, Serialize};

/// The allocations, as persisted in the state file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// Service name to its VIPs.
    pub allocations: BTreeMap<String, Allocation>,
    pub quarantine: Vec<Quarantined>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allocation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v4: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v6: Option<Ipv6Addr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quarantined {
    pub vip: IpAddr,
    /// The service that had it.
    pub service: String,
    /// Unix time in seconds when another service may have it.
    pub until: u64,
}

pub(super) const STATE_VERSION: u32 = 1;

impl State {
    /// Reads the state file. A missing file is a fresh start; an unreadable
    /// or corrupt one is reported and replaced by a fresh start, never fatal:
    /// allocation is deterministic, so most VIPs come back the same.
    pub fn load(path: &Path) -> State {
        match fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::info!(path = %path.display(), "no VIP state file yet; starting fresh");
                State::default()
            }
            Err(error) => {
                tracing::error!(path = %path.display(), %error, "cannot read the VIP state file; rebuilding it");
                State::default()
            }
            Ok(bytes) => match serde_json::from_slice::<State>(&bytes) {
                Ok(state) if state.version == STATE_VERSION => state,
                Ok(state) => {
                    tracing::error!(path = %path.display(), version = state.version, "VIP state file has an unknown version; rebuilding it");
                    State::default()
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "VIP state file is corrupt; rebuilding it");
                    State::default()
                }
            },
        }
    }

    /// Writes the state file atomically: a temporary file, fsync, rename,
    /// fsync of the folder. A crash leaves the old file or the new one.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        crate::atomic_file::write(path, &bytes)
    }
}

impl Allocation {
    pub(super) fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_file_round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("meshdns-vip-test-{}", std::process::id()));
        let path = dir.join("state.json");
        // One service with both families, and one VIP freed by another.
        let state = State {
            version: STATE_VERSION,
            allocations: [(
                "a".to_string(),
                Allocation {
                    v4: Some("240.0.0.1".parse().unwrap()),
                    v6: Some("fd00:fd00::1".parse().unwrap()),
                },
            )]
            .into(),
            quarantine: vec![Quarantined {
                vip: "240.0.0.2".parse().unwrap(),
                service: "b".to_string(),
                until: 605,
            }],
        };
        state.save(&path).unwrap();
        assert_eq!(State::load(&path), state);

        fs::write(&path, b"{ not json").unwrap();
        assert_eq!(State::load(&path), State::default());
        fs::write(
            &path,
            br#"{"version": 99, "allocations": {}, "quarantine": []}"#,
        )
        .unwrap();
        assert_eq!(State::load(&path), State::default());
        fs::remove_dir_all(&dir).unwrap();
        assert_eq!(State::load(&path), State::default());
    }
}

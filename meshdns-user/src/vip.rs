//! Stable virtual IPs for services that do not list their own.
//!
//! # The algorithm
//!
//! A service without `vips` gets one IPv4 VIP from `vip_cidr` and, unless
//! `vip6_cidr` is `none`, one IPv6 VIP from `vip6_cidr`. For each family:
//!
//! 1. If the state file says the service has a VIP in the pool, it keeps it
//!    (stability: nothing else moves a VIP once given).
//! 2. Else, if the service's own VIP is in quarantine (it was removed and
//!    came back within `vip_reuse_after`), it gets that VIP back.
//! 3. Else it takes the first free candidate `c(name, k)` for k = 0, 1, ...,
//!    where `c` maps FNV-1a of the name and k, mixed with the splitmix64
//!    finalizer, onto the pool's usable addresses. A candidate is free unless
//!    an explicit VIP, another service's VIP, or a quarantined VIP holds it.
//!
//! Services are allocated in name order, so nodes given the same services
//! compute the same VIPs without talking to each other: almost always each
//! service gets its k = 0 candidate. Only when two names' candidates
//! collide does history matter: the service a node saw first keeps the
//! contested VIP, and a node that saw the other one first gives them the
//! other way round. With the default /4 pool that takes roughly 10,000
//! services before one such collision is expected anywhere (birthday bound);
//! with a /64 for IPv6, never in practice. Stability wins over convergence
//! there: moving a VIP that clients may have cached is worse than two nodes
//! disagreeing about a new service, and the log says which VIP each
//! allocation took and at which k.
//!
//! A VIP freed by a removed service stays quarantined for `vip_reuse_after`
//! (at least twice the TTL), so no client with a cached answer reaches a new
//! service on it.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs::{self, File},
    io::Write as _,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

use crate::cidr::Cidr;

/// Candidate `k` for `name`: FNV-1a 64 over the name, a separator and k,
/// then the splitmix64 finalizer so that near names spread evenly.
pub fn candidate_hash(name: &str, k: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes().chain([0xff]).chain(k.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

/// How many candidates to try before calling the pool full.
const MAX_PROBES: u32 = 1024;

/// Where VIPs come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pools {
    pub v4: Cidr,
    /// `None`: no IPv6 VIPs, so AAAA queries get NODATA.
    pub v6: Option<Cidr>,
    /// Seconds a freed VIP waits before another service may have it.
    pub reuse_after: u64,
}

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

const STATE_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocError {
    #[error("services {first:?} and {second:?} both claim vip {vip}")]
    Collision {
        first: String,
        second: String,
        vip: IpAddr,
    },
    #[error("no free VIP for service {service:?} in {pool} after {MAX_PROBES} candidates")]
    PoolExhausted { service: String, pool: Cidr },
}

/// A service as the allocator sees it: its name and explicit VIPs.
pub struct Request<'a> {
    pub name: &'a str,
    pub vips: &'a [IpAddr],
}

impl State {
    /// Gives every service its VIPs, updating allocations and quarantine.
    /// Returns each service's VIPs (explicit or allocated), by name.
    pub fn allocate(
        &mut self,
        services: &[Request<'_>],
        pools: &Pools,
        now: u64,
    ) -> Result<BTreeMap<String, Vec<IpAddr>>, AllocError> {
        self.version = STATE_VERSION;
        self.quarantine.retain(|q| q.until > now);

        // Explicit VIPs belong to their service, whatever else happened.
        let mut owner: BTreeMap<IpAddr, &str> = BTreeMap::new();
        for service in services {
            for vip in service.vips {
                if let Some(first) = owner.insert(*vip, service.name)
                    && first != service.name
                {
                    return Err(AllocError::Collision {
                        first: first.to_string(),
                        second: service.name.to_string(),
                        vip: *vip,
                    });
                }
            }
        }

        // Services that no longer want allocated VIPs free theirs.
        let wanting: BTreeSet<&str> = services
            .iter()
            .filter(|s| s.vips.is_empty())
            .map(|s| s.name)
            .collect();
        let freed: Vec<String> = self
            .allocations
            .keys()
            .filter(|name| !wanting.contains(name.as_str()))
            .cloned()
            .collect();
        for name in freed {
            let allocation = self.allocations.remove(&name).unwrap_or_default();
            self.quarantine(&name, &allocation, pools.reuse_after, now);
        }

        // What an allocation must not take.
        let mut taken: BTreeSet<IpAddr> = owner.keys().copied().collect();
        for (name, allocation) in &self.allocations {
            for vip in allocation.addrs() {
                if let Some(explicit) = owner.get(&vip) {
                    return Err(AllocError::Collision {
                        first: name.clone(),
                        second: explicit.to_string(),
                        vip,
                    });
                }
                taken.insert(vip);
            }
        }

        let mut result = BTreeMap::new();
        for service in services {
            if !service.vips.is_empty() {
                result.insert(service.name.to_string(), service.vips.to_vec());
            }
        }
        for name in wanting {
            let mut allocation = self.allocations.get(name).cloned().unwrap_or_default();
            // Drop what the pools no longer cover (a changed vip_cidr), to quarantine.
            if allocation.v4.is_some_and(|a| !pools.v4.contains(a.into())) {
                let old = Allocation {
                    v4: allocation.v4.take(),
                    v6: None,
                };
                self.quarantine(name, &old, pools.reuse_after, now);
            }
            if allocation
                .v6
                .is_some_and(|a| !pools.v6.is_some_and(|p| p.contains(a.into())))
            {
                let old = Allocation {
                    v4: None,
                    v6: allocation.v6.take(),
                };
                self.quarantine(name, &old, pools.reuse_after, now);
            }
            if allocation.v4.is_none() {
                let vip = self.pick(name, &pools.v4, &taken)?;
                allocation.v4 = match vip {
                    IpAddr::V4(a) => Some(a),
                    IpAddr::V6(_) => unreachable!("an IPv4 pool gives IPv4"),
                };
                taken.insert(vip);
            }
            if let (None, Some(pool)) = (allocation.v6, &pools.v6) {
                let vip = self.pick(name, pool, &taken)?;
                allocation.v6 = match vip {
                    IpAddr::V6(a) => Some(a),
                    IpAddr::V4(_) => unreachable!("an IPv6 pool gives IPv6"),
                };
                taken.insert(vip);
            }
            result.insert(name.to_string(), allocation.addrs().collect());
            self.allocations.insert(name.to_string(), allocation);
        }
        Ok(result)
    }

    fn quarantine(&mut self, name: &str, allocation: &Allocation, reuse_after: u64, now: u64) {
        for vip in allocation.addrs() {
            tracing::info!(service = name, %vip, seconds = reuse_after, "VIP freed; quarantined");
            self.quarantine.push(Quarantined {
                vip,
                service: name.to_string(),
                until: now + reuse_after,
            });
        }
    }

    /// A VIP for `name` from `pool`: its own from quarantine, else the first
    /// free candidate.
    fn pick(
        &mut self,
        name: &str,
        pool: &Cidr,
        taken: &BTreeSet<IpAddr>,
    ) -> Result<IpAddr, AllocError> {
        if let Some(i) = self
            .quarantine
            .iter()
            .position(|q| q.service == name && pool.contains(q.vip) && !taken.contains(&q.vip))
        {
            let vip = self.quarantine.remove(i).vip;
            tracing::info!(service = name, %vip, "VIP given back from quarantine");
            return Ok(vip);
        }
        let held: BTreeSet<IpAddr> = self.quarantine.iter().map(|q| q.vip).collect();
        for k in 0..MAX_PROBES {
            let vip = pool.usable_nth(u128::from(candidate_hash(name, k)) % pool.usable());
            if !taken.contains(&vip) && !held.contains(&vip) {
                if k > 0 {
                    tracing::info!(service = name, %vip, k, "VIP candidate collided; took a later one");
                }
                return Ok(vip);
            }
        }
        Err(AllocError::PoolExhausted {
            service: name.to_string(),
            pool: *pool,
        })
    }

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
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let tmp: PathBuf = path.with_extension("tmp");
        let mut file = File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    }
}

impl Allocation {
    fn addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.v4
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.v6.map(IpAddr::V6))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pools() -> Pools {
        Pools {
            v4: "240.0.0.0/4".parse().unwrap(),
            v6: Some("fd00:fd00::/64".parse().unwrap()),
            reuse_after: 600,
        }
    }

    fn requests<'a>(names: &'a [&'a str]) -> Vec<Request<'a>> {
        names
            .iter()
            .map(|name| Request { name, vips: &[] })
            .collect()
    }

    #[test]
    fn deterministic_across_allocators_fed_in_any_order() {
        let names = ["redis", "web", "db", "cache", "queue", "auth"];
        let mut reversed = names;
        reversed.reverse();
        let (mut a, mut b) = (State::default(), State::default());
        let va = a.allocate(&requests(&names), &pools(), 0).unwrap();
        let vb = b.allocate(&requests(&reversed), &pools(), 0).unwrap();
        assert_eq!(va, vb);
        assert_eq!(a.allocations, b.allocations);
        // Each service has one IPv4 and one IPv6 VIP, all distinct.
        let all: BTreeSet<IpAddr> = va.values().flatten().copied().collect();
        assert_eq!(all.len(), 2 * names.len());
    }

    #[test]
    fn stable_when_others_are_added_or_removed() {
        let mut state = State::default();
        let before = state
            .allocate(&requests(&["redis", "web"]), &pools(), 0)
            .unwrap();
        let after = state
            .allocate(&requests(&["a", "redis", "web", "zzz"]), &pools(), 1)
            .unwrap();
        assert_eq!(before["redis"], after["redis"]);
        assert_eq!(before["web"], after["web"]);
        let after = state.allocate(&requests(&["redis"]), &pools(), 2).unwrap();
        assert_eq!(before["redis"], after["redis"]);
    }

    #[test]
    fn a_freed_vip_is_quarantined_then_reusable() {
        let mut state = State::default();
        let first = state.allocate(&requests(&["old"]), &pools(), 0).unwrap()["old"].clone();
        state.allocate(&requests(&[]), &pools(), 100).unwrap();
        assert_eq!(state.quarantine.len(), 2);
        assert!(
            state
                .quarantine
                .iter()
                .all(|q| q.until == 700 && q.service == "old")
        );

        // While quarantined, a service whose candidate is that VIP must not
        // get it: force it with a one-address pool.
        let v4 = first[0];
        let tiny = Pools {
            v4: format!("{v4}/32").parse().unwrap(),
            v6: None,
            reuse_after: 600,
        };
        assert!(matches!(
            state.clone().allocate(&requests(&["new"]), &tiny, 699),
            Err(AllocError::PoolExhausted { .. })
        ));
        // After the grace period it is free again.
        let later = state.allocate(&requests(&["new"]), &tiny, 700).unwrap();
        assert_eq!(later["new"], [v4]);
    }

    #[test]
    fn a_service_that_comes_back_gets_its_vip_back() {
        let mut state = State::default();
        let first = state.allocate(&requests(&["svc"]), &pools(), 0).unwrap();
        state.allocate(&requests(&[]), &pools(), 10).unwrap();
        let again = state.allocate(&requests(&["svc"]), &pools(), 20).unwrap();
        assert_eq!(first, again);
        assert!(state.quarantine.is_empty());
    }

    #[test]
    fn collisions_take_the_next_candidate_and_explicit_ones_are_errors() {
        // A one-address pool makes every candidate the same address.
        let tiny = Pools {
            v4: "240.0.0.8/31".parse().unwrap(),
            v6: None,
            reuse_after: 600,
        };
        let mut state = State::default();
        let got = state.allocate(&requests(&["a", "b"]), &tiny, 0).unwrap();
        assert_ne!(got["a"], got["b"]);
        assert!(matches!(
            state.allocate(&requests(&["a", "b", "c"]), &tiny, 0),
            Err(AllocError::PoolExhausted { .. })
        ));

        // Explicit VIPs that collide, with each other or with an allocation.
        let vip: IpAddr = "240.0.0.1".parse().unwrap();
        let both = [
            Request {
                name: "x",
                vips: &[vip],
            },
            Request {
                name: "y",
                vips: &[vip],
            },
        ];
        assert!(matches!(
            State::default().allocate(&both, &pools(), 0),
            Err(AllocError::Collision { .. })
        ));
        let mut state = State::default();
        let taken = state.allocate(&requests(&["auto"]), &pools(), 0).unwrap()["auto"][0];
        let clash = [
            Request {
                name: "auto",
                vips: &[],
            },
            Request {
                name: "manual",
                vips: &[taken],
            },
        ];
        let error = state.allocate(&clash, &pools(), 1).unwrap_err();
        assert_eq!(
            error,
            AllocError::Collision {
                first: "auto".into(),
                second: "manual".into(),
                vip: taken
            }
        );
    }

    #[test]
    fn no_ipv6_pool_means_no_ipv6_vips() {
        let pools = Pools {
            v6: None,
            ..pools()
        };
        let got = State::default()
            .allocate(&requests(&["svc"]), &pools, 0)
            .unwrap();
        assert_eq!(got["svc"].len(), 1);
        assert!(got["svc"][0].is_ipv4());
    }

    #[test]
    fn state_file_round_trip_and_corruption() {
        let dir = std::env::temp_dir().join(format!("meshdns-vip-test-{}", std::process::id()));
        let path = dir.join("state.json");
        let mut state = State::default();
        state.allocate(&requests(&["a", "b"]), &pools(), 0).unwrap();
        state.allocate(&requests(&["a"]), &pools(), 5).unwrap();
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

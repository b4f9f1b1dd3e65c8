//! The allocator: every service given its VIPs, explicit or from the
//! pools, with freed ones quarantined.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use super::{
    candidate_hash,
    state::{Allocation, Quarantined, STATE_VERSION, State},
};
// foldhash: the file's own addresses need no defence against flooding,
// and SipHash is a third of the allocator's time at a million services.
use foldhash::{HashMap, HashMapExt as _, HashSet, HashSetExt as _};

use crate::cidr::Cidr;

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
    /// Returns the VIPs of each service that lists none (allocated), by
    /// name; a service's explicit VIPs are its own list. At a million
    /// services with explicit VIPs, a copy of every list would be the
    /// biggest thing here.
    pub fn allocate(
        &mut self,
        services: &[Request<'_>],
        pools: &Pools,
        now: u64,
    ) -> Result<BTreeMap<String, Vec<IpAddr>>, AllocError> {
        self.version = STATE_VERSION;
        self.quarantine.retain(|q| q.until > now);

        // Explicit VIPs belong to their service, whatever else happened.
        let mut owner: HashMap<IpAddr, &str> =
            HashMap::with_capacity(services.iter().map(|s| s.vips.len()).sum());
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
        let mut taken = Taken {
            explicit: &owner,
            allocated: HashSet::new(),
        };
        for (name, allocation) in &self.allocations {
            for vip in allocation.addrs() {
                if let Some(explicit) = owner.get(&vip) {
                    return Err(AllocError::Collision {
                        first: name.clone(),
                        second: explicit.to_string(),
                        vip,
                    });
                }
                taken.allocated.insert(vip);
            }
        }

        let mut result = BTreeMap::new();
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
                taken.allocated.insert(vip);
            }
            if let (None, Some(pool)) = (allocation.v6, &pools.v6) {
                let vip = self.pick(name, pool, &taken)?;
                allocation.v6 = match vip {
                    IpAddr::V6(a) => Some(a),
                    IpAddr::V4(_) => unreachable!("an IPv6 pool gives IPv6"),
                };
                taken.allocated.insert(vip);
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
    fn pick(&mut self, name: &str, pool: &Cidr, taken: &Taken<'_>) -> Result<IpAddr, AllocError> {
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
}

/// The VIPs an allocation must not take: the explicit ones (a reference to
/// the map of their owners, not a copy: at a million services that is most
/// of the allocator's time) and those allocated already.
struct Taken<'a> {
    explicit: &'a HashMap<IpAddr, &'a str>,
    allocated: HashSet<IpAddr>,
}

impl Taken<'_> {
    fn contains(&self, vip: &IpAddr) -> bool {
        self.explicit.contains_key(vip) || self.allocated.contains(vip)
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
}

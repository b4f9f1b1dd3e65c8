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
//!
//! The parts, one file each: `allocate.rs` the allocator (the steps above),
//! `state.rs` the state file it keeps, `hash.rs` the candidate hash `c`.

mod allocate;
mod hash;
mod state;

pub use allocate::{AllocError, Pools, Request};
pub use hash::candidate_hash;
pub use state::{Allocation, Quarantined, State};

//! The meshdns agent as a library: the binary (`main.rs`) is a thin CLI over
//! these modules, and the tests drive them directly.
//!
//! - [`config`]: the services file (YAML), parsed and validated.
//! - [`dns_name`]: service names to DNS names in wire format.
//! - [`table`]: the fast path's table, built from a config.
//! - [`vip`]: stable VIPs for services that do not list their own.
//! - [`fastpath`]: loading and attaching the XDP program, filling its map,
//!   reading its counters, pinning it so it outlives the agent.
//! - [`registry`]: the services file, its sources and the VIP state,
//!   reloaded on change.
//! - [`source`]: where names come from besides the file (Kuma's VIP lists).
//! - [`resolver`]: the full resolver behind the fast path: misses, TCP,
//!   other types, and forwarding with a cache.
//! - [`netif`]: interface addresses and system nameservers, for defaults;
//!   how XDP is attached to an interface.
//! - [`metrics`]: `/metrics`, `/healthz` and `/readyz`.
//! - [`inspect`]: `meshdns status`, `lookup` and `dump`, from the pins.
//! - [`privileges`]: dropping capabilities once attached.

pub mod agent;
pub mod atomic_file;
pub mod cidr;
pub mod config;
pub mod dns_name;
pub mod fastpath;
pub mod inspect;
pub mod metrics;
pub mod netif;
pub mod privileges;
pub mod registry;
pub mod resolver;
pub mod source;
pub mod table;
pub mod vip;

/// The XDP program, built by build.rs from `meshdns-ebpf`.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/meshdns"));

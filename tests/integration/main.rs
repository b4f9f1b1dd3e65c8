//! meshdns's integration tests, one binary: the real compiled XDP program
//! in the kernel (fixtures through BPF_PROG_TEST_RUN, fuzzing, a million
//! names), the agent end to end in network namespaces, the resolver
//! against Unbound, and the deployment manifests against the binary. The
//! harness (labs, frames, fixtures, peers) is the `meshdns_tests` library
//! in `tests/src/`.
//!
//! Run them with `cargo xtask test` (as root); one module with
//! `cargo xtask test -- --test integration e2e_agent::`.

mod deploy_kuma;
mod deploy_manifests;
mod differential;
mod e2e_agent;
mod e2e_dnssec;
mod e2e_fastpath;
mod e2e_forward;
mod e2e_inspect;
mod e2e_metrics;
mod e2e_rate_limit;
mod e2e_resolver;
mod e2e_routed;
mod e2e_scope;
mod e2e_search;
mod e2e_sources;
mod resolver_coalescing;
mod xdp_fixtures;
mod xdp_fuzz;
mod xdp_million_names;

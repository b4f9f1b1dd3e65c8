//! Test support for meshdns: labs of network namespaces joined by veths,
//! the agent run as a user runs it, and DNS frames built and checked
//! independently of the code under test.

pub mod fixtures;
pub mod frame;
pub mod knot;
pub mod lab;
pub mod load;
pub mod routed;
pub mod tc;
pub mod unbound;
pub mod xdp;

/// Fails the test loudly unless it runs as root: the tests attach XDP
/// programs and create network namespaces, and a skipped privileged test
/// must never pass as green.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests load XDP programs and create network namespaces: run them as root \
         (`cargo xtask test` does, under sudo if needed)"
    );
}

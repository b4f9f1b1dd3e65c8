//! Whether this host is the one to answer a query whose answer is known:
//! the checks that take a map lookup, run last, so that the passes most of
//! a node's queries take (names outside the zones, other types) never pay
//! for them. They only read the frame.

use aya_ebpf::programs::XdpContext;
use meshdns_common::Counter;

use crate::maps::INTERFACES;
use crate::packet::{EthHdr, ptr_at};

/// Passes a frame sent to a MAC other than that of the interface it came in
/// on: in promiscuous mode, or on a bridge's port, frames for other hosts
/// reach the program too, and the reply would leave with that host's MAC as
/// its source. An interface the agent did not list (it has no MAC, or it is
/// BPF_PROG_TEST_RUN's loopback) is not checked.
#[inline(always)]
pub(crate) fn check_interface(ctx: &XdpContext) -> Result<(), Counter> {
    // SAFETY: reading a field of the context the kernel passed.
    let ifindex = unsafe { (*ctx.ctx).ingress_ifindex };
    // SAFETY: the value is read at once; the agent replaces entries whole.
    let Some(entry) = (unsafe { INTERFACES.get(ifindex) }) else {
        return Ok(());
    };
    let eth = ptr_at::<EthHdr>(ctx, 0).ok_or(Counter::PassMalformed)?;
    // SAFETY: ptr_at checked the header is inside the frame.
    let dst = unsafe { &(*eth).dst };
    if same_mac(&entry.mac, dst) {
        Ok(())
    } else {
        Err(Counter::PassNotUnicast)
    }
}

/// Compares two MAC addresses byte by byte (an array comparison would call
/// compiler-builtins' `bcmp`).
#[inline(always)]
fn same_mac(a: &[u8; 6], b: &[u8; 6]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5]
}

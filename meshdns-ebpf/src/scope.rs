//! Whether this host is the one to answer a query whose answer is known:
//! the checks that take a map lookup, run last, so that the passes most of
//! a node's queries take (names outside the zones, other types) never pay
//! for them. They only read the frame.
//!
//! Three questions: was the frame sent to this interface's MAC, is the
//! client one `allow_from` lets in, and is the destination address one the
//! program answers for (`fast_path_destinations`)? A query that fails one
//! goes to the kernel untouched, where the resolver (or the host it was
//! sent to) answers it by its own rules.

use aya_ebpf::programs::XdpContext;
use meshdns_common::{
    Counter, MAX_SCOPE_RANGES4, MAX_SCOPE_RANGES6, Range4, Range6, SCOPE_ANY_CLIENT,
    SCOPE_ANY_DESTINATION, ScopeTable,
};

use crate::maps::{INTERFACES, SCOPE, SCOPE_SLOT};
use crate::packet::{EthHdr, Ipv4Hdr, Ipv6Hdr, ipv6_halves, ptr_at};
use crate::parse::Transport;

/// Passes a query this host should not answer (see the module's doc);
/// returns the scope's table, whose rate limit the answer is asked last.
#[inline(always)]
pub(crate) fn check_scope(
    ctx: &XdpContext,
    transport: &Transport,
) -> Result<&'static ScopeTable, Counter> {
    check_interface(ctx)?;
    check_addresses(ctx, transport)
}

/// Passes a frame sent to a MAC other than that of the interface it came in
/// on: in promiscuous mode, or on a bridge's port, frames for other hosts
/// reach the program too, and the reply would leave with that host's MAC as
/// its source. An interface the agent did not list (it has no MAC, or it is
/// BPF_PROG_TEST_RUN's loopback) is not checked.
#[inline(always)]
fn check_interface(ctx: &XdpContext) -> Result<(), Counter> {
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

/// Passes a query from a client outside `allow_from`, or to an address
/// outside `fast_path_destinations`: answering the one would serve whom the
/// resolver refuses; the other would send a reply from another host's
/// address. A scope no agent has set (an empty slot) passes every query.
#[inline(always)]
fn check_addresses(
    ctx: &XdpContext,
    transport: &Transport,
) -> Result<&'static ScopeTable, Counter> {
    let scope = SCOPE
        .get_value(SCOPE_SLOT, &0)
        .ok_or(Counter::PassClientNotAllowed)?;
    let any_client = scope.flags & SCOPE_ANY_CLIENT != 0;
    let any_destination = scope.flags & SCOPE_ANY_DESTINATION != 0;
    if transport.ipv6 {
        let ip = ptr_at::<Ipv6Hdr>(ctx, transport.l3).ok_or(Counter::PassMalformed)?;
        // SAFETY: ptr_at checked the header is inside the frame.
        let ip = unsafe { &*ip };
        let list = &scope.clients6;
        if !any_client && !holds6(&list.ranges, list.first_step, &ip.src) {
            return Err(Counter::PassClientNotAllowed);
        }
        let list = &scope.destinations6;
        if !any_destination && !holds6(&list.ranges, list.first_step, &ip.dst) {
            return Err(Counter::PassOtherDestination);
        }
    } else {
        let ip = ptr_at::<Ipv4Hdr>(ctx, transport.l3).ok_or(Counter::PassMalformed)?;
        // SAFETY: ptr_at checked the header is inside the frame.
        let ip = unsafe { &*ip };
        let list = &scope.clients4;
        if !any_client && !holds4(&list.ranges, list.first_step, u32::from_be_bytes(ip.src)) {
            return Err(Counter::PassClientNotAllowed);
        }
        let list = &scope.destinations4;
        if !any_destination && !holds4(&list.ranges, list.first_step, u32::from_be_bytes(ip.dst)) {
            return Err(Counter::PassOtherDestination);
        }
    }
    Ok(scope)
}

/// Whether one of `ranges` (sorted, disjoint, the unused ones after them
/// starting past every address and ending before it) holds `address`: the
/// last range starting at or below it is found by halving, from
/// `first_step` (the largest power of two below the count of ranges in
/// use) down, then asked whether it reaches the address. An empty list's
/// first range is an unused one: nothing is held.
///
/// The indexes are masked, so the verifier knows each is in bounds; the
/// step loses a bit a halving, so it knows the loop ends. A loop, not
/// unrolled: the number of halvings is not known when compiling.
#[inline(always)]
fn holds4(ranges: &[Range4; MAX_SCOPE_RANGES4], first_step: u32, address: u32) -> bool {
    let mut at = 0;
    let mut step = first_step as usize & (MAX_SCOPE_RANGES4 - 1);
    while step != 0 {
        let probe = (at + step) & (MAX_SCOPE_RANGES4 - 1);
        if ranges[probe].first <= address {
            at = probe;
        }
        step >>= 1;
    }
    let range = &ranges[at & (MAX_SCOPE_RANGES4 - 1)];
    range.first <= address && address <= range.last
}

/// As [`holds4`], for an IPv6 address (its bytes in network order),
/// compared as two 64-bit halves.
#[inline(always)]
fn holds6(ranges: &[Range6; MAX_SCOPE_RANGES6], first_step: u32, address: &[u8; 16]) -> bool {
    let address = ipv6_halves(address);
    let mut at = 0;
    let mut step = first_step as usize & (MAX_SCOPE_RANGES6 - 1);
    while step != 0 {
        let probe = (at + step) & (MAX_SCOPE_RANGES6 - 1);
        if at_or_below(&ranges[probe].first, &address) {
            at = probe;
        }
        step >>= 1;
    }
    let range = &ranges[at & (MAX_SCOPE_RANGES6 - 1)];
    at_or_below(&range.first, &address) && at_or_below(&address, &range.last)
}

/// `a <= b`, for addresses as (high, low) halves.
#[inline(always)]
fn at_or_below(a: &[u64; 2], b: &[u64; 2]) -> bool {
    a[0] < b[0] || (a[0] == b[0] && a[1] <= b[1])
}

/// Compares two MAC addresses byte by byte (an array comparison would call
/// compiler-builtins' `bcmp`).
#[inline(always)]
fn same_mac(a: &[u8; 6], b: &[u8; 6]) -> bool {
    a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4] && a[5] == b[5]
}

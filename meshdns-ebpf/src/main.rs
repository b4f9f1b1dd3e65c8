//! The meshdns fast path: answers `<service>.<zone>` A and AAAA queries over
//! UDP, IPv4 or IPv6, with up to two VLAN tags, straight from the driver, by
//! rewriting the query into its reply and sending it back out of the same
//! interface (`XDP_TX`).
//!
//! The program works in phases, each in modules of its own (`parse`: 1, 2
//! and the key; `zone`, `search` and `answer`: 3; `reply`: 4; `send`: 5),
//! and only the last one writes to the frame:
//!
//! 1. `parse::parse_transport` checks Ethernet, VLAN, IP and UDP in the frame;
//! 2. `parse::parse_query` copies the DNS message into a per-CPU buffer and
//!    checks it there (no per-byte bounds checks against the frame), walking
//!    the name a label at a time;
//! 3. `zone::zone_of` passes every name outside the zones, comparing the
//!    name's last bytes with each apex, unless `search::expand` finds a
//!    mesh name at its start under a search suffix (most of a node's names
//!    leave here); `parse::build_name_key` builds the key a word at a
//!    time, and `answer::decide` looks it up: an answer, NODATA, NXDOMAIN,
//!    a search expansion's CNAME or NXDOMAIN, or a pass;
//!    `scope::check_scope` then passes a frame that was sent to another
//!    host's MAC, from a client outside `allow_from` or to an address
//!    outside `fast_path_destinations` (the checks with map lookups of
//!    their own come last), and once the answer is known
//!    `rate_limit::admit` asks the client prefix's bucket whether it goes
//!    out whole, truncated or not at all (`XDP_DROP`);
//! 4. `reply::build_reply` writes what the reply appends to the question
//!    (a CNAME, answers or SOA, and OPT) into a per-CPU section buffer,
//!    summing it (`reply::build_truncated` only the OPT);
//! 5. `send::send_reply` resizes the frame, rewrites the header's flags and
//!    counts in place, stores the section after the question, swaps
//!    addresses and writes the checksums, added up from their parts
//!    (`checksum` has the sums).
//!
//! Every reason not to answer is found before phase 5 and is an `XDP_PASS`
//! with the frame untouched, so the kernel and the agent see exactly what
//! the client sent; the one exception is an answer over the rate limit,
//! which nobody is to send: dropped.
//!
//! What should never happen (a helper failing where its inputs are
//! checked, a frame resized that cannot be finished) is logged with
//! aya-log from one place (`never`), which the agent reads into its own
//! log: only those cold branches write to the log ring, never a query's
//! path.
//!
//! Around them: `maps` holds the maps, the per-CPU scratch memory and the
//! counters; `dns` and `packet` the wire formats; `verifier` what keeps the
//! verifier's walk within its limit; `lab` the bodies of the
//! helper programs the lab and the benchmarks attach (`meshdns_pass`,
//! `meshdns_floor`). This file keeps the `#[xdp]` entries and `try_meshdns`,
//! which runs the phases in order.
#![no_std]
#![no_main]
// The rate limit's atomic add (see `rate_limit::atomic_add`).
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(target_arch = "bpf", allow(internal_features))]

mod answer;
mod checksum;
mod dns;
mod handover;
mod lab;
mod maps;
mod never;
mod packet;
mod parse;
mod rate_limit;
mod reply;
mod scope;
mod search;
mod send;
mod verifier;
mod zone;

use aya_ebpf::{
    bindings::xdp_action,
    macros::{classifier, xdp},
    programs::{TcContext, XdpContext},
};
use meshdns_common::{Counter, ScopeTable};

use crate::answer::{Decision, decide};
use crate::handover::hand_over;
use crate::maps::{Scratch, count, scratch};
use crate::packet::UDP_HDR_LEN;
use crate::parse::{Query, Transport, build_name_key, parse_query, parse_transport};
use crate::rate_limit::{Admitted, admit};
use crate::reply::{build_reply, build_truncated};
use crate::scope::check_scope;
use crate::send::send_reply;
use crate::zone::{InZone, zone_of};

const DNS_PORT: u16 = 53;
/// Room for every header before the DNS message: the UDP header's offset is
/// at most 127 (see `parse::parse_transport`), plus the UDP header.
const MAX_HEADERS_LEN: usize = 0x80 + UDP_HDR_LEN;

#[xdp]
pub fn meshdns(ctx: XdpContext) -> u32 {
    verdict(try_meshdns(&ctx))
}

/// The action for what a run came to, counted.
#[inline(always)]
fn verdict(result: Result<Counter, Outcome>) -> u32 {
    match result {
        Ok(answered) => {
            count(answered);
            xdp_action::XDP_TX
        }
        Err(Outcome::Pass(reason)) => {
            count(reason);
            xdp_action::XDP_PASS
        }
        Err(Outcome::Drop(reason)) => {
            count(reason);
            xdp_action::XDP_DROP
        }
        // Unreachable while the lengths computed before are right: the frame
        // is already resized, so passing it on would hand the kernel a
        // corrupt packet. Abort, which also shows in the xdp tracepoints.
        Err(Outcome::Broken) => xdp_action::XDP_ABORTED,
    }
}

/// Returns `XDP_PASS` and nothing else. Attached to the peer end of a veth,
/// it turns on NAPI there, which veth needs to deliver `XDP_TX` frames.
#[xdp]
pub fn meshdns_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The benchmark's floor: swaps MAC and IPv4 addresses and UDP ports, marks
/// the message a response (QR, so load generators count it) and sends it
/// back, doing no DNS work at all: the most any XDP answer can reach on a
/// given machine and load generator. Not for production.
#[xdp]
pub fn meshdns_floor(ctx: XdpContext) -> u32 {
    match lab::reflect(&ctx) {
        Some(()) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

/// For the tests: a TC classifier that counts the DNS queries it sees and
/// hands every packet on (`TC_ACT_UNSPEC`: to the next program with TCX),
/// as a CNI's program on a pod's interface would.
#[classifier]
pub fn meshdns_tc_count(ctx: TcContext) -> i32 {
    lab::count_dns(&ctx);
    TC_ACT_UNSPEC
}

/// The TC hook's floor, for the pod bench: swaps addresses, marks the
/// message a response and sends it back out of the interface it came in on
/// (`bpf_redirect`), doing no DNS work: what the fastest TC answer could
/// reach, to set beside `meshdns_floor` in generic mode. Not for
/// production.
#[classifier]
pub fn meshdns_tc_floor(ctx: TcContext) -> i32 {
    lab::tc_reflect(&ctx).unwrap_or(TC_ACT_UNSPEC)
}

/// `TC_ACT_UNSPEC`: no verdict; TCX runs the next program.
const TC_ACT_UNSPEC: i32 = -1;

enum Outcome {
    /// `XDP_PASS`, frame untouched, for this reason.
    Pass(Counter),
    /// `XDP_DROP`: an answer over the rate limit that does not slip.
    Drop(Counter),
    /// The frame was already changed when something failed: `XDP_ABORTED`.
    Broken,
}

impl From<Counter> for Outcome {
    fn from(reason: Counter) -> Self {
        Outcome::Pass(reason)
    }
}

#[inline(always)]
fn try_meshdns(ctx: &XdpContext) -> Result<Counter, Outcome> {
    let scratch = scratch(ctx)?;
    let transport = parse_transport(ctx, &mut scratch.laundry)?;
    let query = parse_query(ctx, &transport, scratch)?;
    let zone = match zone_of(scratch, &query)? {
        InZone::Zone(zone) => zone,
        InZone::Search => return Err(hand_over(ctx, scratch, &transport, &query).into()),
    };
    let query = build_name_key(scratch, query);
    let scope = check_scope(ctx, &transport)?;
    let decision = match decide(scratch, &query, zone) {
        // A name outside the zones that the table has no address of the
        // family for, or does not have: a search expansion, perhaps.
        Err(Counter::PassNotInZone)
            if zone.apex_len == 0 && search::may_expand(scratch, query.name_len) =>
        {
            return Err(hand_over(ctx, scratch, &transport, &query).into());
        }
        decided => decided?,
    };
    answer(ctx, &transport, scratch, &query, &decision, scope)
}

/// Phases 4 and 5 for an answer decided and in scope, either program's:
/// the rate limit, then the reply built and sent (truncated if the limit
/// lets it slip).
#[inline(always)]
fn answer(
    ctx: &XdpContext,
    transport: &Transport,
    scratch: &mut Scratch,
    query: &Query,
    decision: &Decision,
    scope: &ScopeTable,
) -> Result<Counter, Outcome> {
    let (reply, counter) = match admit(ctx, transport, &scope.rate_limit)? {
        Admitted::Whole => (build_reply(scratch, query, decision), decision.counter),
        Admitted::Truncated => (
            build_truncated(scratch, query, decision),
            Counter::RateLimitedTruncated,
        ),
    };
    send_reply(ctx, transport, scratch, query, &reply)?;
    Ok(counter)
}

// Only on the BPF target: a host build of this crate (clippy over the
// workspace) links std through feature unification, and std has its own.
#[cfg(target_arch = "bpf")]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";

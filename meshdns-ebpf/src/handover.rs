//! The search program, and the hand-over to it: a query for a name in no
//! zone (and not one of the table's names outside them that has an
//! address of the asked family) leaves the answer program, when there are
//! search patterns, by a tail call into `meshdns_search`, which looks for
//! a mesh name under a search suffix in it (`search::expand`) and answers
//! it (a CNAME to the mesh name, or NXDOMAIN) or passes it.
//!
//! Two programs, not one, so that each stays within the verifier's walk:
//! the expansion's replies (a CNAME before the records, at an offset that
//! depends on the mesh name's length) multiply every path through the
//! reply's building and sending, and together they passed the million
//! instructions the verifier walks at most. The answer program keeps its
//! own paths as they were; the search program has only the expansions'.
//!
//! What the first program learnt goes across in the per-CPU scratch
//! memory, which the tail call keeps (the same CPU, the same run): the
//! frame is still untouched, and read again only where the reply needs it.

use aya_ebpf::{
    macros::{map, xdp},
    maps::ProgramArray,
    programs::XdpContext,
};
use meshdns_common::{Counter, MAX_ZONES};

use crate::answer::decide;
use crate::maps::{Scratch, ZONE, ZONE_SLOT, scratch};
use crate::parse::{Query, Transport, build_name_key};
use crate::scope::check_scope;
use crate::search::expand;
use crate::verifier::forget_exact_value;
use crate::{Outcome, answer, verdict};

/// Slot 0: the search program, which the agent puts there after loading
/// both. Empty (a tail call that returns), a query for an expansion is
/// passed.
#[map]
pub(crate) static SEARCH_PROGRAM: ProgramArray = ProgramArray::with_max_entries(1, 0);

/// What the answer program hands the search program, in `Scratch` (with
/// the message and its label starts): the transport and the query, every
/// field a whole word.
#[repr(C)]
pub(crate) struct Handover {
    l3: u64,
    l4: u64,
    ipv6: u64,
    msg_len: u64,
    flags: u64,
    name_len: u64,
    qtype: u64,
    edns: u64,
}

/// Hands the query to the search program, which answers it and does not
/// return here; if it does (no program in the slot), the query is passed.
#[inline(always)]
pub(crate) fn hand_over(
    ctx: &XdpContext,
    scratch: &mut Scratch,
    transport: &Transport,
    query: &Query,
) -> Counter {
    scratch.handover = Handover {
        l3: transport.l3 as u64,
        l4: transport.l4 as u64,
        ipv6: transport.ipv6 as u64,
        msg_len: transport.msg_len() as u64,
        flags: query.flags,
        name_len: query.name_len as u64,
        qtype: query.qtype,
        edns: query.edns,
    };
    // SAFETY: a helper call on the program's own context; on success it
    // does not return.
    unsafe { SEARCH_PROGRAM.tail_call(ctx, 0) };
    Counter::PassNotInZone
}

/// Answers a search-list expansion that the answer program handed over.
#[xdp]
pub fn meshdns_search(ctx: XdpContext) -> u32 {
    verdict(try_search(&ctx))
}

#[inline(always)]
fn try_search(ctx: &XdpContext) -> Result<Counter, Outcome> {
    let scratch = scratch(ctx)?;
    let (transport, query) = take_over(scratch);
    let expansion = expand(scratch, query.name_len).ok_or(Counter::PassNotInZone)?;
    let index = expansion.zone & (MAX_ZONES as u32 - 1);
    let zone = ZONE
        .get_value(ZONE_SLOT, &index)
        .ok_or(Counter::PassNotInZone)?;
    let query = Query {
        key_len: forget_exact_value(&mut scratch.laundry, expansion.key_len, 0xff),
        expansion: forget_exact_value(&mut scratch.laundry, expansion.answer as usize, 0x3) as u64,
        ..query
    };
    let query = build_name_key(scratch, query);
    let scope = check_scope(ctx, &transport)?;
    let decision = decide(scratch, &query, zone)?;
    // The apex and the empty non-terminals exist, but no client means one
    // by a search expansion: `mesh.<ns>.svc.cluster.local` is a cluster's
    // own Service named `mesh`, the upstreams'. Asked here, not in
    // `decide`, which the answer program shares: there the branch doubled
    // the verifier's walk.
    if decision.addresses.is_empty() {
        return Err(Counter::PassNotInZone.into());
    }
    answer(ctx, &transport, scratch, &query, &decision, scope)
}

/// The transport and query the answer program handed over, each bounded
/// as the answer program had bounded it (map memory: the verifier knows
/// nothing of what it holds).
#[inline(always)]
fn take_over(scratch: &Scratch) -> (Transport, Query) {
    let handed = &scratch.handover;
    let transport = Transport::new(
        handed.l3 as usize & 0x1f,
        handed.ipv6 != 0,
        handed.l4 as usize & 0x7f,
        handed.msg_len as usize & 0x3ff,
    );
    let name_len = handed.name_len as usize & 0xff;
    let query = Query {
        flags: handed.flags & 0xffff,
        name_len,
        qtype: handed.qtype & 0xffff,
        edns: handed.edns & 0x3,
        key_len: 0,
        expansion: 0,
    };
    (transport, query)
}

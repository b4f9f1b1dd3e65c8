//! Response rate limiting (see `meshdns_common::rate_limit`): asked last,
//! of an answer that is known and in scope, so that only answers that
//! would go out count against their client's prefix. Off (the scope
//! table's limit all zeros), it costs one compare.

use aya_ebpf::{
    bindings::BPF_NOEXIST, helpers::generated::bpf_ktime_get_coarse_ns, programs::XdpContext,
};
use meshdns_common::{Counter, Due, RateBucket, RateKey, RateLimit};

use crate::Outcome;
use crate::maps::RATE_BUCKETS;
use crate::packet::{Ipv4Hdr, Ipv6Hdr, ipv6_halves, ptr_at};
use crate::parse::Transport;

/// How an answer the limit lets out goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admitted {
    /// As decided.
    Whole,
    /// Truncated: over the limit, and one of the answers that slip.
    Truncated,
}

/// Whether the answer to this query goes out whole, truncated, or not at
/// all (`Outcome::Drop`), by its client prefix's bucket, which it debits.
///
/// The clock is the coarse one (a tick's resolution, read without the
/// clock source): a bucket's burst is a second, so a few milliseconds do
/// not matter, and it is the cheapest the kernel has.
#[inline(always)]
// By reference, not by value: the key copied again for each call made the
// verifier walk what follows twice (282k -> 445k instructions).
#[allow(clippy::needless_borrows_for_generic_args)]
pub(crate) fn admit(
    ctx: &XdpContext,
    transport: &Transport,
    limit: &RateLimit,
) -> Result<Admitted, Outcome> {
    if !limit.is_on() {
        return Ok(Admitted::Whole);
    }
    let key = client_key(ctx, transport, limit).ok_or(Counter::PassMalformed)?;
    // SAFETY: a helper that takes no arguments.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let Some(bucket) = RATE_BUCKETS.get_ptr_mut(&key) else {
        // A prefix with no bucket (new, or evicted: not limited lately):
        // a whole bucket, this answer taken. Two CPUs making it at once:
        // one's is kept, the other's answer goes uncounted.
        let bucket = RateBucket {
            due_ns: now + limit.cost_ns,
            limited: 0,
        };
        let _ = RATE_BUCKETS.insert(&key, &bucket, BPF_NOEXIST as u64);
        return Ok(Admitted::Whole);
    };
    // A map value, valid for the whole run (RCU), its fields 8-byte
    // aligned, which other CPUs change at the same time: read and written
    // whole (an aligned 8-byte load or store is one instruction), and
    // added to atomically.
    // SAFETY: as above.
    let (due, limited) = unsafe { (&raw mut (*bucket).due_ns, &raw mut (*bucket).limited) };
    // SAFETY: as above.
    let debit = limit.debit(unsafe { due.read_volatile() }, now);
    match debit.due {
        // A store: CPUs that restart a bucket at once lose one another's
        // cost, a few answers at most, once a burst.
        // SAFETY: as above.
        Due::Restart(at) => unsafe { due.write_volatile(at) },
        // SAFETY: as above.
        Due::Advance => unsafe { atomic_add(due, limit.cost_ns) },
        Due::Keep => {}
    }
    if !debit.over {
        return Ok(Admitted::Whole);
    }
    // SAFETY: as above.
    let before = unsafe { limited.read_volatile() };
    // SAFETY: as above.
    unsafe { atomic_add(limited, 1) };
    if limit.slips(before) {
        Ok(Admitted::Truncated)
    } else {
        Err(Outcome::Drop(Counter::RateLimitedDropped))
    }
}

/// `*counter += value`, atomically, its result unused: BPF's atomic add
/// (`BPF_ATOMIC | BPF_ADD`, no fetch, in every BPF version), which every
/// CPU may run on the same word at once. The BPF target has no atomic
/// types' read-modify-write methods (and the linker's CPU, `generic`, no
/// atomic loads), hence the intrinsic; the host build of this crate
/// (clippy) has the method.
///
/// # Safety
/// `counter` is valid and 8-byte aligned, and changed only atomically.
#[inline(always)]
unsafe fn atomic_add(counter: *mut u64, value: u64) {
    #[cfg(target_arch = "bpf")]
    // SAFETY: as the caller promises.
    unsafe {
        core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
            counter, value,
        );
    }
    #[cfg(not(target_arch = "bpf"))]
    // SAFETY: as the caller promises.
    unsafe {
        core::sync::atomic::AtomicU64::from_ptr(counter)
            .fetch_add(value, core::sync::atomic::Ordering::Relaxed);
    }
}

/// The bucket of the frame's client (its source address).
#[inline(always)]
fn client_key(ctx: &XdpContext, transport: &Transport, limit: &RateLimit) -> Option<RateKey> {
    if transport.ipv6 {
        let ip = ptr_at::<Ipv6Hdr>(ctx, transport.l3)?;
        // SAFETY: ptr_at checked the header is inside the frame.
        Some(limit.key6(ipv6_halves(unsafe { &(*ip).src })))
    } else {
        let ip = ptr_at::<Ipv4Hdr>(ctx, transport.l3)?;
        // SAFETY: as above.
        Some(limit.key4(u32::from_be_bytes(unsafe { (*ip).src })))
    }
}

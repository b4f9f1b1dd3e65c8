//! What should never happen, said once: the events a correct program on a
//! correct kernel does not meet (a helper failing on inputs checked just
//! before, a resized frame that cannot be finished). Each is logged through
//! aya-log, which the agent reads into its own log.
//!
//! One log site, not one per event: a log statement is a few hundred
//! instructions, and the verifier walks every copy. `happened` is a BPF
//! subprogram (`inline(never)`), so its body is in the program once and
//! no query's path runs it.

use aya_ebpf::programs::XdpContext;
use aya_log_ebpf::error;

/// The events, each with what it means for the frame.
#[derive(Clone, Copy)]
pub(crate) enum Never {
    NoScratch,
    ChecksumFailed,
    HeadersLost,
    ReplyNotWritten,
}

impl Never {
    #[inline(always)]
    fn what(self) -> &'static str {
        match self {
            Never::NoScratch => "no per-CPU scratch buffer; passed",
            Never::ChecksumFailed => "the reply's UDP checksum failed; passed",
            Never::HeadersLost => "the frame grew but its headers could not be put back; aborted",
            Never::ReplyNotWritten => {
                "the reply could not be written into the resized frame; aborted"
            }
        }
    }
}

/// Logs `event`.
#[inline(never)]
pub(crate) fn happened(ctx: &XdpContext, event: Never) {
    error!(ctx, "fast path: {}", event.what());
}

//! The real program run on one frame by the kernel (BPF_PROG_TEST_RUN).

use meshdns::fastpath::FastPath;
pub use meshdns::fastpath::{XDP_DROP, XDP_PASS, XDP_TX};

/// Runs `input` through the answer program; returns its action and the
/// frame as it left it.
pub fn run(fast_path: &mut FastPath, input: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
    Ok(fast_path.test_run(input)?)
}

//! The real program run on one frame by the kernel (BPF_PROG_TEST_RUN).

use aya::programs::{TestRun, TestRunOptions};
use meshdns::fastpath::FastPath;

pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// Runs `input` through the answer program; returns its action and the
/// frame as it left it.
pub fn run(fast_path: &mut FastPath, input: &[u8]) -> anyhow::Result<(u32, Vec<u8>)> {
    // A page: the most a frame can grow to in BPF_PROG_TEST_RUN.
    let mut output = vec![0u8; 4096];
    let result = fast_path.program()?.test_run(TestRunOptions {
        data_in: Some(input),
        data_out: Some(&mut output),
        ..TestRunOptions::default()
    })?;
    output.truncate(result.data_size_out as usize);
    Ok((result.return_value, output))
}

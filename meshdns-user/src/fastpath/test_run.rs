//! The answer program run on one frame by the kernel (BPF_PROG_TEST_RUN):
//! what it does with the frame and what the frame becomes. `meshdns
//! lookup` and the tests use it, so both see exactly what the interface
//! would.

use aya::programs::{TestRun as _, TestRunOptions};

use super::{FastPath, FastPathError, Result};

/// The program's return values that it uses (`enum xdp_action` in
/// `linux/bpf.h`): it answers (`XDP_TX`), passes (`XDP_PASS`), or drops
/// an answer over the rate limit (`XDP_DROP`), nothing else.
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// The largest frame a test run gives back: a page, the most a frame can
/// grow to in BPF_PROG_TEST_RUN.
const MAX_OUTPUT: usize = 4096;

impl FastPath {
    /// Runs `frame` through the answer program once; returns what the
    /// program returned and the frame as it left it.
    pub fn test_run(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>)> {
        let mut output = vec![0u8; MAX_OUTPUT];
        let run = self
            .program()?
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut output),
                ..TestRunOptions::default()
            })
            .map_err(FastPathError::Program)?;
        output.truncate(run.data_size_out as usize);
        Ok((run.return_value, output))
    }
}

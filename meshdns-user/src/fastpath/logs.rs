//! The program's log: what should never happen in it (see
//! `meshdns-ebpf/src/never.rs`) is written with aya-log to a ring buffer
//! of its own, and read here into the agent's log (`log` records, which
//! the agent's tracing subscriber takes in).

use aya_log::EbpfLogger;
use tokio::io::{Interest, unix::AsyncFd};

use super::{FastPath, FastPathError, Result};

/// The program's log ring, taken from its object.
pub struct ProgramLog(EbpfLogger<&'static dyn log::Log>);

impl FastPath {
    /// Takes the program's log ring, to be read with [`ProgramLog::forward`].
    /// The program writes to it whether or not anyone reads.
    pub fn take_log(&mut self) -> Result<ProgramLog> {
        EbpfLogger::init(self.ebpf_mut())
            .map(ProgramLog)
            .map_err(FastPathError::Log)
    }
}

impl ProgramLog {
    /// Copies each record the program logs into the agent's log, as it
    /// comes, until the runtime stops. Must run inside a tokio runtime.
    pub async fn forward(self) {
        // SAFETY: the logger owns the ring buffer's map, and with it the
        // one fd `as_raw_fd` returns, until the AsyncFd drops it.
        let registered = unsafe { AsyncFd::register_with_interest(self.0, Interest::READABLE) };
        let mut ring = match registered {
            Ok(ring) => ring,
            Err(error) => {
                tracing::warn!(%error, "cannot read the fast path's log");
                return;
            }
        };
        loop {
            let Ok(mut ready) = ring.readable_mut().await else {
                return;
            };
            ready.get_inner_mut().flush();
            ready.clear_ready();
        }
    }
}

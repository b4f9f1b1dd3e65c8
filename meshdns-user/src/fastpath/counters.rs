//! The program's counters: one per outcome (`Counter`), per CPU, summed.

use std::{borrow::Borrow, fmt};

use aya::maps::{MapData, MapError, PerCpuArray};
use meshdns_common::{COUNTERS_MAP, Counter};

use super::{FastPath, FastPathError, Result, map_error};

impl FastPath {
    /// The program's counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters> {
        let map = self
            .ebpf
            .map(COUNTERS_MAP)
            .ok_or(FastPathError::Missing(COUNTERS_MAP))?;
        let counters = PerCpuArray::try_from(map).map_err(map_error(COUNTERS_MAP))?;
        Counters::read(&counters).map_err(map_error(COUNTERS_MAP))
    }
}

/// A snapshot of the program's counters, summed over CPUs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters([u64; Counter::COUNT as usize]);

impl Counters {
    /// Reads the counters map, wherever it came from (this agent's object, or
    /// another program's map found by id).
    pub fn read<T: Borrow<MapData>>(
        map: &PerCpuArray<T, u64>,
    ) -> std::result::Result<Self, MapError> {
        let mut counters = Self::default();
        for counter in Counter::ALL {
            counters.0[counter as usize] = map.get(&(counter as u32), 0)?.iter().sum();
        }
        Ok(counters)
    }

    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// Packets answered on the fast path.
    pub fn answered(&self) -> u64 {
        Counter::ALL
            .iter()
            .filter(|c| c.is_answer())
            .map(|c| self.get(*c))
            .sum()
    }

    /// Packets passed to the kernel.
    pub fn passed(&self) -> u64 {
        Counter::ALL
            .iter()
            .filter(|c| !c.is_answer() && !c.is_drop())
            .map(|c| self.get(*c))
            .sum()
    }

    /// Packets dropped: answers over the rate limit that did not slip.
    pub fn dropped(&self) -> u64 {
        Counter::ALL
            .iter()
            .filter(|c| c.is_drop())
            .map(|c| self.get(*c))
            .sum()
    }

    /// How much each counter grew since `earlier`.
    pub fn since(&self, earlier: &Counters) -> Counters {
        let mut delta = Counters::default();
        for (i, d) in delta.0.iter_mut().enumerate() {
            *d = self.0[i].saturating_sub(earlier.0[i]);
        }
        delta
    }
}

impl fmt::Display for Counters {
    /// The non-zero counters, as `name=value` pairs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for counter in Counter::ALL.iter().filter(|c| self.get(**c) != 0) {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{}={}", counter.name(), self.get(*counter))?;
            first = false;
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

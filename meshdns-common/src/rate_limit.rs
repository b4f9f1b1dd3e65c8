//! Response rate limiting (RRL), as BIND and Knot define it: each client
//! prefix may have `responses_per_second` answers a second, in bursts of up
//! to a second's worth; over that, every `slip`-th answer goes out
//! truncated (TC, no records: a real client asks again over TCP, which no
//! spoofer can) and the rest are dropped. A flood is remembered for
//! `window` seconds: a prefix that kept asking over the limit is limited
//! until it has asked no more than its rate for that long.
//!
//! The program and the resolver each keep their own buckets, by the same
//! rule (this module's). A bucket is one time, GCRA's "theoretical arrival
//! time": when the prefix's credit is whole again. An answer moves it a
//! second over the rate later; an answer that would move it more than a
//! second ahead of now is over the limit; it goes no further ahead than
//! the second and the window (BIND's balance, which stops at minus the
//! window's worth). One number a bucket: the program moves it with an
//! atomic add, so that CPUs answering the same prefix at once take no lock
//! and lose no answer's cost.

use bytemuck::{Pod, Zeroable};

/// How many client prefixes the program keeps buckets for (an LRU hash
/// map's `max_entries`: the least recently limited go first).
pub const MAX_RATE_BUCKETS: u32 = 1 << 16;

/// A bucket's burst: a second of answers at the rate, in nanoseconds.
pub const RATE_BURST_NS: u64 = 1_000_000_000;

/// The limit as the program reads it (in the scope table, which the
/// program has looked up when it asks): all zeros is off.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Pod, Zeroable)]
pub struct RateLimit {
    /// What one answer costs, in nanoseconds of its bucket's time: a
    /// second over `responses_per_second`. 0: no limit.
    pub cost_ns: u64,
    /// How far ahead of now a bucket's time goes at most: the burst's
    /// second and the window.
    pub max_ahead_ns: u64,
    /// The bits of an IPv6 client's address that make its prefix, as the
    /// high and the low 64 bits.
    pub mask6: [u64; 2],
    /// The bits of an IPv4 client's address that make its prefix.
    pub mask4: u32,
    /// Every `slip`-th answer over the limit goes out truncated, the rest
    /// are dropped; 0: all are dropped, 1: none is.
    pub slip: u32,
    /// The rate and the window as the agent was given them, for `status`
    /// (the program reads the cost and the reach above).
    pub responses_per_second: u32,
    pub window_seconds: u32,
}

const _: () = assert!(core::mem::size_of::<RateLimit>() == 48);

/// A bucket's key: its client's prefix, as an IPv6 address (high and low
/// 64 bits) with the host's bits cleared; an IPv4 prefix as an
/// IPv4-mapped one (`::ffff:a.b.c.d`), which no IPv6 client sends from.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default, Pod, Zeroable)]
pub struct RateKey {
    pub prefix: [u64; 2],
}

/// A client prefix's bucket.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Pod, Zeroable)]
pub struct RateBucket {
    /// When the prefix's credit is whole again, in nanoseconds of the
    /// clock its keeper reads.
    pub due_ns: u64,
    /// How many of its answers were over the limit: which of them slip.
    pub limited: u64,
}

/// What an answer does to its bucket's time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Due {
    /// The bucket was whole: its time starts again from now, this
    /// answer's cost taken.
    Restart(u64),
    /// Moves on by `cost_ns`.
    Advance,
    /// Stays: it is as far ahead as it goes.
    Keep,
}

/// An answer's effect on its bucket, and whether it is over the limit.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Debit {
    pub due: Due,
    pub over: bool,
}

impl RateLimit {
    /// No limit: what the program reads unless the services file sets one.
    pub const OFF: Self = Self {
        cost_ns: 0,
        max_ahead_ns: 0,
        mask6: [0; 2],
        mask4: 0,
        slip: 0,
        responses_per_second: 0,
        window_seconds: 0,
    };

    /// `responses_per_second` (at least 1) answers a second for each
    /// `ipv4_prefix` (0 to 32) or `ipv6_prefix` (0 to 128) of clients,
    /// remembered for `window_seconds`; every `slip`-th over the limit
    /// truncated.
    pub const fn new(
        responses_per_second: u32,
        window_seconds: u32,
        slip: u32,
        ipv4_prefix: u8,
        ipv6_prefix: u8,
    ) -> Self {
        let mask6 = if ipv6_prefix == 0 {
            0
        } else {
            u128::MAX << (128 - ipv6_prefix as u32)
        };
        Self {
            cost_ns: RATE_BURST_NS / responses_per_second as u64,
            max_ahead_ns: RATE_BURST_NS + window_seconds as u64 * RATE_BURST_NS,
            mask6: [(mask6 >> 64) as u64, mask6 as u64],
            mask4: if ipv4_prefix == 0 {
                0
            } else {
                u32::MAX << (32 - ipv4_prefix as u32)
            },
            slip,
            responses_per_second,
            window_seconds,
        }
    }

    /// The prefix lengths that share a bucket: IPv4's, IPv6's.
    pub const fn prefixes(&self) -> (u8, u8) {
        (
            self.mask4.count_ones() as u8,
            (self.mask6[0].count_ones() + self.mask6[1].count_ones()) as u8,
        )
    }

    pub const fn is_on(&self) -> bool {
        self.cost_ns != 0
    }

    /// The bucket of an IPv4 client (its address as a number).
    #[inline(always)]
    pub const fn key4(&self, address: u32) -> RateKey {
        RateKey {
            prefix: [0, 0xffff_0000_0000 | (address & self.mask4) as u64],
        }
    }

    /// The bucket of an IPv6 client (its address as the high and low 64
    /// bits).
    #[inline(always)]
    pub const fn key6(&self, address: [u64; 2]) -> RateKey {
        RateKey {
            prefix: [address[0] & self.mask6[0], address[1] & self.mask6[1]],
        }
    }

    /// What one more answer does to a bucket whose time is `due_ns`, at
    /// `now_ns`.
    #[inline(always)]
    pub const fn debit(&self, due_ns: u64, now_ns: u64) -> Debit {
        if due_ns <= now_ns {
            // A burst's first answer is never over: the cost is a second
            // at most.
            return Debit {
                due: Due::Restart(now_ns + self.cost_ns),
                over: false,
            };
        }
        let ahead = due_ns - now_ns + self.cost_ns;
        Debit {
            due: if ahead <= self.max_ahead_ns {
                Due::Advance
            } else {
                Due::Keep
            },
            over: ahead > RATE_BURST_NS,
        }
    }

    /// Whether the answer over the limit after `limited_before` others of
    /// its bucket goes out truncated (BIND's: the `slip`-th, and every
    /// `slip`-th after it) rather than dropped.
    #[inline(always)]
    pub const fn slips(&self, limited_before: u64) -> bool {
        self.slip != 0 && (limited_before + 1).is_multiple_of(self.slip as u64)
    }
}

#[cfg(feature = "user")]
aya_pod!(RateKey);
#[cfg(feature = "user")]
aya_pod!(RateBucket);

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = RATE_BURST_NS;

    /// Answers `n` times at `now`, as a keeper applies each debit; returns
    /// how many were over the limit, and the bucket's time after.
    fn answer(limit: &RateLimit, due: &mut u64, now: u64, n: u32) -> u32 {
        let mut over = 0;
        for _ in 0..n {
            let debit = limit.debit(*due, now);
            match debit.due {
                Due::Restart(at) => *due = at,
                Due::Advance => *due += limit.cost_ns,
                Due::Keep => {}
            }
            over += debit.over as u32;
        }
        over
    }

    #[test]
    fn a_burst_of_a_seconds_worth_then_limited() {
        let limit = RateLimit::new(5, 15, 2, 24, 56);
        let mut due = 0;
        assert_eq!(answer(&limit, &mut due, 10 * SECOND, 5), 0);
        assert_eq!(answer(&limit, &mut due, 10 * SECOND, 3), 3);
    }

    #[test]
    fn the_rate_is_allowed_for_ever() {
        let limit = RateLimit::new(10, 15, 2, 24, 56);
        let mut due = 0;
        // Ten a second, one every 100 ms, for a minute.
        for tick in 0..600 {
            assert_eq!(
                answer(&limit, &mut due, 5 * SECOND + tick * SECOND / 10, 1),
                0
            );
        }
    }

    #[test]
    fn a_flood_is_remembered_for_the_window() {
        let limit = RateLimit::new(10, 15, 2, 24, 56);
        let mut due = 0;
        let start = 100 * SECOND;
        // A thousand a second for 20 seconds: the bucket goes a second and
        // the window ahead, no further.
        for s in 0..20 {
            answer(&limit, &mut due, start + s * SECOND, 1000);
        }
        assert_eq!(due, start + 19 * SECOND + 16 * SECOND);
        // Still limited 14 s after it stopped; free again after 15.
        assert_eq!(answer(&limit, &mut due, start + 33 * SECOND, 1), 1);
        assert_eq!(answer(&limit, &mut due, start + 35 * SECOND, 5), 0);
    }

    #[test]
    fn every_slip_th_over_the_limit_is_truncated() {
        let limit = RateLimit::new(1, 15, 3, 24, 56);
        let slipped: [bool; 7] = core::array::from_fn(|n| limit.slips(n as u64));
        assert_eq!(slipped, [false, false, true, false, false, true, false]);
        assert!((0..5).all(|n| RateLimit::new(1, 15, 1, 24, 56).slips(n)));
        assert!((0..5).all(|n| !RateLimit::new(1, 15, 0, 24, 56).slips(n)));
    }

    #[test]
    fn clients_of_one_prefix_share_a_bucket() {
        let limit = RateLimit::new(1, 15, 2, 24, 56);
        let v4 = |a: [u8; 4]| limit.key4(u32::from_be_bytes(a));
        assert_eq!(v4([198, 18, 0, 1]), v4([198, 18, 0, 254]));
        assert_ne!(v4([198, 18, 0, 1]), v4([198, 18, 1, 1]));
        assert_eq!(v4([198, 18, 0, 1]).prefix, [0, 0xffff_c612_0000]);
        let v6 = |hi: u64, lo: u64| limit.key6([hi, lo]);
        assert_eq!(v6(0x2001_0db8_0000_0001, 5), v6(0x2001_0db8_0000_00ff, 9));
        assert_ne!(v6(0x2001_0db8_0000_0001, 5), v6(0x2001_0db8_0000_0101, 5));
        let whole = RateLimit::new(1, 15, 2, 32, 128);
        assert_ne!(whole.key6([1, 2]), whole.key6([1, 3]));
        let none = RateLimit::new(1, 15, 2, 0, 0);
        assert_eq!(none.key4(1), none.key4(u32::MAX));
        assert_eq!(none.key6([1, 2]), none.key6([3, 4]));
    }

    #[test]
    fn off_is_all_zeros() {
        assert!(!RateLimit::OFF.is_on());
        assert_eq!(RateLimit::OFF, bytemuck::Zeroable::zeroed());
        assert!(RateLimit::new(1, 1, 0, 24, 56).is_on());
    }
}

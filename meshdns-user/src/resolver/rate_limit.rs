//! The resolver's rate limit: the fast path's rule
//! (`meshdns_common::rate_limit`) over buckets of its own, for the replies
//! it sends over UDP, answered or forwarded alike. TCP is not limited: its
//! handshake proves the client's address, which is all the limit is
//! about. I/O-free: the server asks it of each reply before sending.

use std::{
    net::IpAddr,
    num::NonZeroUsize,
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Instant,
};

use hickory_proto::op::Message;
use lru::LruCache;
use meshdns_common::{Due, MAX_RATE_BUCKETS, RateBucket, RateKey, RateLimit};

use crate::config::rate_limit::RateLimitSettings;

/// What becomes of a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Whole,
    /// Over the limit, and one that slips: sent truncated.
    Truncated,
    /// Over the limit: not sent.
    Dropped,
}

/// The limit and each client prefix's bucket.
pub struct RateLimiter {
    /// Whether there is a limit: when there is none, no reply takes the
    /// lock.
    on: AtomicBool,
    state: Mutex<State>,
    /// Where the buckets' clock starts.
    epoch: Instant,
}

struct State {
    limit: RateLimit,
    /// As many as the program keeps, the least recently used going first.
    buckets: LruCache<RateKey, RateBucket>,
}

impl Default for RateLimiter {
    /// No limit.
    fn default() -> Self {
        let capacity = NonZeroUsize::new(MAX_RATE_BUCKETS as usize).expect("not zero");
        Self {
            on: AtomicBool::new(false),
            state: Mutex::new(State {
                limit: RateLimit::OFF,
                buckets: LruCache::new(capacity),
            }),
            epoch: Instant::now(),
        }
    }
}

impl RateLimiter {
    /// Limits by `settings` from now on (`None`: no limit). A limit that
    /// changes starts every bucket again.
    pub fn set(&self, settings: Option<RateLimitSettings>) {
        let limit = settings.map_or(RateLimit::OFF, |s| s.limit());
        let mut state = self.state.lock().expect("rate limit lock");
        if state.limit != limit {
            state.limit = limit;
            state.buckets.clear();
        }
        self.on.store(limit.is_on(), Ordering::Relaxed);
    }

    /// Debits `client`'s bucket for one reply at `now`; says how it goes.
    pub fn admit(&self, client: IpAddr, now: Instant) -> Admission {
        if !self.on.load(Ordering::Relaxed) {
            return Admission::Whole;
        }
        let now_ns =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let mut state = self.state.lock().expect("rate limit lock");
        let limit = state.limit;
        if !limit.is_on() {
            return Admission::Whole;
        }
        let key = match client {
            IpAddr::V4(v4) => limit.key4(u32::from(v4)),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6);
                limit.key6([(bits >> 64) as u64, bits as u64])
            }
        };
        let bucket = state.buckets.get_or_insert_mut(key, RateBucket::default);
        let debit = limit.debit(bucket.due_ns, now_ns);
        match debit.due {
            Due::Restart(at) => bucket.due_ns = at,
            Due::Advance => bucket.due_ns += limit.cost_ns,
            Due::Keep => {}
        }
        if !debit.over {
            return Admission::Whole;
        }
        let before = bucket.limited;
        bucket.limited += 1;
        if limit.slips(before) {
            Admission::Truncated
        } else {
            Admission::Dropped
        }
    }
}

/// `reply` (a message as encoded) truncated: its header with TC set, its
/// question and its OPT record, no other record; `None` if it does not
/// parse (it then is not sent: it was ours, and is over the limit).
pub fn truncated(reply: &[u8]) -> Option<Vec<u8>> {
    let mut message = Message::from_vec(reply).ok()?;
    truncate(&mut message);
    message.to_vec().ok()
}

/// Empties `message`'s answer, authority and additional sections (its OPT
/// record, kept apart, stays) and sets TC: what a client that gets it asks
/// again over TCP.
pub(super) fn truncate(message: &mut Message) {
    message.answers.clear();
    message.authorities.clear();
    message.additionals.clear();
    message.metadata.truncation = true;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hickory_proto::{
        op::{Edns, MessageType, OpCode, Query},
        rr::{Name, RData, Record, RecordType, rdata},
    };

    use super::*;
    use Admission::{Dropped, Truncated, Whole};

    fn limiter(responses_per_second: u32, slip: u32) -> RateLimiter {
        let limiter = RateLimiter::default();
        limiter.set(Some(RateLimitSettings {
            responses_per_second,
            window_seconds: 15,
            slip,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }));
        limiter
    }

    fn admissions(limiter: &RateLimiter, client: &str, now: Instant, n: usize) -> Vec<Admission> {
        let client: IpAddr = client.parse().unwrap();
        (0..n).map(|_| limiter.admit(client, now)).collect()
    }

    #[test]
    fn a_prefix_gets_its_rate_then_every_slip_th_truncated() {
        let limiter = limiter(3, 2);
        let now = Instant::now();
        assert_eq!(
            admissions(&limiter, "198.18.0.2", now, 7),
            [Whole, Whole, Whole, Dropped, Truncated, Dropped, Truncated]
        );
        // The same /24 shares it; another /24, and IPv6, have their own.
        assert_eq!(admissions(&limiter, "198.18.0.99", now, 1), [Dropped]);
        assert_eq!(admissions(&limiter, "198.18.1.2", now, 1), [Whole]);
        assert_eq!(admissions(&limiter, "2001:db8::2", now, 1), [Whole]);
        // A second on, the prefix has its rate again, less what it owes.
        let later = now + Duration::from_millis(2500);
        assert_eq!(admissions(&limiter, "198.18.0.2", later, 1), [Whole]);
    }

    #[test]
    fn no_limit_lets_everything_out_and_a_new_limit_starts_the_buckets_again() {
        let limiter = RateLimiter::default();
        let now = Instant::now();
        assert!(
            admissions(&limiter, "198.18.0.2", now, 100)
                .iter()
                .all(|a| *a == Whole)
        );
        let limiter = self::limiter(1, 0);
        assert_eq!(
            admissions(&limiter, "198.18.0.2", now, 3),
            [Whole, Dropped, Dropped]
        );
        limiter.set(Some(RateLimitSettings {
            responses_per_second: 2,
            window_seconds: 15,
            slip: 0,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
        }));
        assert_eq!(
            admissions(&limiter, "198.18.0.2", now, 3),
            [Whole, Whole, Dropped]
        );
        limiter.set(None);
        assert_eq!(admissions(&limiter, "198.18.0.2", now, 2), [Whole, Whole]);
    }

    /// RFC 1035 §4.1.1 (TC) and RFC 6891 §7 (the OPT record stays): a
    /// truncated reply keeps its header's other flags, its rcode and its
    /// question.
    #[test]
    fn rfc1035_4_1_1_a_truncated_reply_keeps_header_question_and_opt() {
        let name = Name::from_ascii("www.example.com.").unwrap();
        let mut reply = Message::new(7, MessageType::Response, OpCode::Query);
        reply.metadata.recursion_desired = true;
        reply.metadata.recursion_available = true;
        reply.add_query(Query::query(name.clone(), RecordType::A));
        reply.add_answer(Record::from_rdata(
            name,
            60,
            RData::A(rdata::A::new(192, 0, 2, 1)),
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        reply.set_edns(edns);
        let truncated = Message::from_vec(&truncated(&reply.to_vec().unwrap()).unwrap()).unwrap();
        assert!(truncated.metadata.truncation);
        assert_eq!(truncated.metadata.id, 7);
        assert!(truncated.metadata.recursion_desired && truncated.metadata.recursion_available);
        assert_eq!(truncated.queries, reply.queries);
        assert!(truncated.answers.is_empty() && truncated.authorities.is_empty());
        assert_eq!(truncated.edns.map(|e| e.max_payload()), Some(1232));
        assert_eq!(super::truncated(b"\x00\x07"), None);
    }
}

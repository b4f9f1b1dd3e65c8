//! What the resolver counts, for logs and `/metrics`: plain counters, the
//! replies by transport, query type and rcode, and upstream latency.
//!
//! Everything here is updated on the query path, which answers from the
//! table or the cache in about a microsecond: so no locks, no allocation
//! and no map lookups, only `Relaxed` increments of atomics at indexes
//! computed with a `match`. Labels come from small fixed sets (anything
//! else is "other"), which also keeps the number of series bounded.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use hickory_proto::{op::ResponseCode, rr::RecordType};

use super::Transport;

/// What the resolver has done, for logs and metrics.
#[derive(Debug, Default)]
pub struct Stats {
    /// Messages received, by [`Transport::index`]: replies or not.
    pub queries: [AtomicU64; Transport::ALL.len()],
    pub refused: AtomicU64,
    pub mesh_answers: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
    pub stale_answers: AtomicU64,
    pub servfail: AtomicU64,
    pub truncated: AtomicU64,
    /// UDP replies over the rate limit: sent truncated, and not sent.
    pub rate_limited_truncated: AtomicU64,
    pub rate_limited_dropped: AtomicU64,
    /// Replies made, by transport, type and rcode (before the rate limit
    /// decides whether a UDP reply is sent).
    pub responses: Responses,
}

impl Stats {
    pub fn queries(&self, transport: Transport) -> u64 {
        self.queries[transport.index()].load(Ordering::Relaxed)
    }
}

/// The query types counted on their own; every other type is "other".
pub const QUERY_TYPES: [&str; 13] = [
    "A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT", "HTTPS", "SVCB", "ANY", "other",
];

/// The index in [`QUERY_TYPES`] of a question's type; `None` (a reply
/// without a question, such as FORMERR for what does not parse) is "other".
pub fn query_type_index(qtype: Option<RecordType>) -> usize {
    match qtype {
        Some(RecordType::A) => 0,
        Some(RecordType::AAAA) => 1,
        Some(RecordType::CNAME) => 2,
        Some(RecordType::MX) => 3,
        Some(RecordType::NS) => 4,
        Some(RecordType::PTR) => 5,
        Some(RecordType::SOA) => 6,
        Some(RecordType::SRV) => 7,
        Some(RecordType::TXT) => 8,
        Some(RecordType::HTTPS) => 9,
        Some(RecordType::SVCB) => 10,
        Some(RecordType::ANY) => 11,
        _ => 12,
    }
}

/// The rcodes counted on their own (RFC 1035, 2136, 6891, 7873), by their
/// IANA mnemonics; an upstream's unusual rcode is "other".
pub const RCODES: [&str; 14] = [
    "NOERROR",
    "FORMERR",
    "SERVFAIL",
    "NXDOMAIN",
    "NOTIMP",
    "REFUSED",
    "YXDOMAIN",
    "YXRRSET",
    "NXRRSET",
    "NOTAUTH",
    "NOTZONE",
    "BADVERS",
    "BADCOOKIE",
    "other",
];

/// The index in [`RCODES`] of a reply's (extended, 12-bit) rcode.
pub fn rcode_index(rcode: ResponseCode) -> usize {
    match u16::from(rcode) {
        code @ 0..=10 => usize::from(code),
        // BADVERS and BADSIG share 16; only BADVERS is an answer of ours
        // (we do no TSIG), and an upstream's BADSIG never reaches a client.
        16 => 11,
        23 => 12,
        _ => 13,
    }
}

const RESPONSE_SLOTS: usize = Transport::ALL.len() * QUERY_TYPES.len() * RCODES.len();

/// Replies by transport, query type and rcode: one counter per
/// combination in a flat array (364 of them, under 3 KiB).
#[derive(Debug)]
pub struct Responses {
    counts: [AtomicU64; RESPONSE_SLOTS],
}

impl Default for Responses {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// One series of [`Responses`]: its labels and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseCount {
    pub transport: Transport,
    pub qtype: &'static str,
    pub rcode: &'static str,
    pub count: u64,
}

#[cfg(test)]
impl ResponseCount {
    pub fn new(transport: Transport, qtype: &'static str, rcode: &'static str, count: u64) -> Self {
        Self {
            transport,
            qtype,
            rcode,
            count,
        }
    }
}

impl Responses {
    fn slot(transport: Transport, qtype: usize, rcode: usize) -> usize {
        (transport.index() * QUERY_TYPES.len() + qtype) * RCODES.len() + rcode
    }

    /// Counts one reply.
    pub fn count(&self, transport: Transport, qtype: Option<RecordType>, rcode: ResponseCode) {
        let slot = Self::slot(transport, query_type_index(qtype), rcode_index(rcode));
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// The combinations counted at least once, in a fixed order.
    pub fn nonzero(&self) -> impl Iterator<Item = ResponseCount> + '_ {
        Transport::ALL.into_iter().flat_map(move |transport| {
            (0..QUERY_TYPES.len()).flat_map(move |qtype| {
                (0..RCODES.len()).filter_map(move |rcode| {
                    let count =
                        self.counts[Self::slot(transport, qtype, rcode)].load(Ordering::Relaxed);
                    (count > 0).then_some(ResponseCount {
                        transport,
                        qtype: QUERY_TYPES[qtype],
                        rcode: RCODES[rcode],
                        count,
                    })
                })
            })
        })
    }
}

/// Upper bounds of the latency buckets: as Prometheus's `le` label (in
/// seconds), and in nanoseconds. From half a millisecond (an upstream on
/// the node) to five seconds (past any attempt's timeout).
pub const LATENCY_BUCKETS: [(&str, u64); 13] = [
    ("0.0005", 500_000),
    ("0.001", 1_000_000),
    ("0.0025", 2_500_000),
    ("0.005", 5_000_000),
    ("0.01", 10_000_000),
    ("0.025", 25_000_000),
    ("0.05", 50_000_000),
    ("0.1", 100_000_000),
    ("0.25", 250_000_000),
    ("0.5", 500_000_000),
    ("1", 1_000_000_000),
    ("2.5", 2_500_000_000),
    ("5", 5_000_000_000),
];

/// A latency histogram over [`LATENCY_BUCKETS`], lock-free. Each
/// observation adds to one bucket only (the last one is "above every
/// bound"); the cumulative counts Prometheus wants, and the total, are
/// summed when read, so a scrape always sees `+Inf` equal to the count.
#[derive(Debug)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    /// In nanoseconds, an integer, so it can be an atomic: 584 years of
    /// latency before it wraps.
    sum_nanos: AtomicU64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// `le` label and how many observations were at most that; the last is
    /// `+Inf`, equal to `count`.
    pub cumulative: Vec<(&'static str, u64)>,
    pub count: u64,
    pub sum_nanos: u64,
}

impl HistogramSnapshot {
    /// Each bucket's own count under its upper bound in seconds, the last
    /// (`+Inf`) as `f64::MAX`: what `prometheus-client` encodes, summing
    /// them again into cumulative counts.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let bounds = LATENCY_BUCKETS
            .iter()
            .map(|&(_, nanos)| nanos as f64 / 1e9)
            .chain([f64::MAX]);
        let mut below = 0;
        bounds
            .zip(&self.cumulative)
            .map(|(bound, &(_, cumulative))| {
                let own = cumulative - below;
                below = cumulative;
                (bound, own)
            })
            .collect()
    }
}

impl LatencyHistogram {
    pub fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS.partition_point(|&(_, bound)| bound < nanos);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let labels = LATENCY_BUCKETS.iter().map(|&(le, _)| le).chain(["+Inf"]);
        let mut total = 0;
        let cumulative: Vec<(&'static str, u64)> = labels
            .zip(&self.buckets)
            .map(|(le, bucket)| {
                total += bucket.load(Ordering::Relaxed);
                (le, total)
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            count: total,
            sum_nanos: self.sum_nanos.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_and_rcode_has_its_own_index_and_the_rest_are_other() {
        let types = [
            RecordType::A,
            RecordType::AAAA,
            RecordType::CNAME,
            RecordType::MX,
            RecordType::NS,
            RecordType::PTR,
            RecordType::SOA,
            RecordType::SRV,
            RecordType::TXT,
            RecordType::HTTPS,
            RecordType::SVCB,
            RecordType::ANY,
        ];
        for (i, qtype) in types.into_iter().enumerate() {
            assert_eq!(query_type_index(Some(qtype)), i);
            assert_eq!(QUERY_TYPES[i], qtype.to_string());
        }
        for other in [
            Some(RecordType::CAA),
            Some(RecordType::Unknown(65_000)),
            None,
        ] {
            assert_eq!(QUERY_TYPES[query_type_index(other)], "other");
        }

        let rcodes = [
            (ResponseCode::NoError, "NOERROR"),
            (ResponseCode::FormErr, "FORMERR"),
            (ResponseCode::ServFail, "SERVFAIL"),
            (ResponseCode::NXDomain, "NXDOMAIN"),
            (ResponseCode::NotImp, "NOTIMP"),
            (ResponseCode::Refused, "REFUSED"),
            (ResponseCode::YXDomain, "YXDOMAIN"),
            (ResponseCode::YXRRSet, "YXRRSET"),
            (ResponseCode::NXRRSet, "NXRRSET"),
            (ResponseCode::NotAuth, "NOTAUTH"),
            (ResponseCode::NotZone, "NOTZONE"),
            (ResponseCode::BADVERS, "BADVERS"),
            (ResponseCode::BADCOOKIE, "BADCOOKIE"),
            (ResponseCode::BADKEY, "other"),
            (ResponseCode::Unknown(3_000), "other"),
        ];
        for (rcode, name) in rcodes {
            assert_eq!(RCODES[rcode_index(rcode)], name, "{rcode:?}");
        }
    }

    #[test]
    fn responses_are_counted_in_their_own_slot_and_only_nonzero_ones_listed() {
        let responses = Responses::default();
        assert_eq!(responses.nonzero().count(), 0);
        responses.count(Transport::Udp, Some(RecordType::A), ResponseCode::NoError);
        responses.count(Transport::Udp, Some(RecordType::A), ResponseCode::NoError);
        responses.count(Transport::Tcp, None, ResponseCode::FormErr);
        responses.count(
            Transport::Tcp,
            Some(RecordType::SVCB),
            ResponseCode::BADVERS,
        );
        let listed: Vec<ResponseCount> = responses.nonzero().collect();
        let expect = ResponseCount::new;
        assert_eq!(
            listed,
            [
                expect(Transport::Udp, "A", "NOERROR", 2),
                expect(Transport::Tcp, "SVCB", "BADVERS", 1),
                expect(Transport::Tcp, "other", "FORMERR", 1),
            ]
        );
        // The corners of the array: no two combinations share a slot.
        let last = Responses::slot(Transport::Tcp, QUERY_TYPES.len() - 1, RCODES.len() - 1);
        assert_eq!(last, RESPONSE_SLOTS - 1);
    }

    #[test]
    fn bucket_labels_are_their_bounds_in_seconds_in_increasing_order() {
        for pair in LATENCY_BUCKETS.windows(2) {
            assert!(pair[0].1 < pair[1].1);
        }
        for (le, nanos) in LATENCY_BUCKETS {
            let seconds: f64 = le.parse().unwrap();
            assert_eq!((seconds * 1e9).round() as u64, nanos, "{le}");
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_is_the_count() {
        let histogram = LatencyHistogram::default();
        for micros in [100, 500, 501, 3_000, 800_000, 7_000_000] {
            histogram.observe(Duration::from_micros(micros));
        }
        let snapshot = histogram.snapshot();
        let at = |le: &str| {
            snapshot
                .cumulative
                .iter()
                .find(|(l, _)| *l == le)
                .unwrap()
                .1
        };
        // A bound is inclusive (`le`): 500 µs falls in the 0.0005 bucket.
        assert_eq!(at("0.0005"), 2);
        assert_eq!(at("0.001"), 3);
        assert_eq!(at("0.0025"), 3);
        assert_eq!(at("0.005"), 4);
        assert_eq!(at("0.5"), 4);
        assert_eq!(at("1"), 5);
        assert_eq!(at("5"), 5);
        assert_eq!(at("+Inf"), 6);
        assert_eq!(snapshot.count, 6);
        assert_eq!(snapshot.cumulative.len(), LATENCY_BUCKETS.len() + 1);
        assert!(snapshot.cumulative.windows(2).all(|p| p[0].1 <= p[1].1));
        assert_eq!(
            snapshot.sum_nanos,
            (100 + 500 + 501 + 3_000 + 800_000 + 7_000_000) * 1_000
        );
    }
}

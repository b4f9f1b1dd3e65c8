//! A steady stream of DNS queries from a namespace, one at a time, as fast
//! as answers come, with every outcome recorded per name: what an operator
//! would see from clients while the agent reloads or restarts.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::{Ipv4Addr, SocketAddr, UdpSocket},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};

use crate::lab::Netns;

/// What one query got.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// NOERROR with these A records, in order.
    Answer(Vec<Ipv4Addr>),
    /// Another rcode, or NOERROR without A records.
    Rcode(String),
    /// No reply within the timeout.
    Timeout,
}

/// Everything the load saw, per name.
#[derive(Debug, Default)]
pub struct Report {
    pub sent: u64,
    /// Name to each outcome seen and how often, with when it was first seen.
    pub outcomes: BTreeMap<String, BTreeMap<Outcome, (u64, Instant)>>,
}

impl Report {
    /// The distinct outcomes for `name`.
    /// Asserts that `name` got exactly the outcomes `want` (each at least
    /// once, and nothing else); `why` says what that means.
    #[track_caller]
    pub fn assert_seen(&self, name: &str, want: &[Outcome], why: &str) {
        let want: BTreeSet<Outcome> = want.iter().cloned().collect();
        assert_eq!(self.seen(name), want, "{name}: {why}: {self:?}");
    }

    pub fn seen(&self, name: &str) -> BTreeSet<Outcome> {
        self.outcomes
            .get(name)
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// When `outcome` was first seen for `name`.
    pub fn first_seen(&self, name: &str, outcome: &Outcome) -> Option<Instant> {
        self.outcomes.get(name)?.get(outcome).map(|(_, at)| *at)
    }
}

/// A query load running in a thread; `stop` ends it and returns the report.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<anyhow::Result<Report>>,
}

/// How long a query may take before it counts as lost.
const TIMEOUT: Duration = Duration::from_millis(500);

impl Load {
    /// Queries `names` (type A) round robin at `server` from `netns`.
    pub fn start(netns: &Netns, server: SocketAddr, names: &[&str]) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let flag = stop.clone();
        let thread = netns.spawn(move || {
            let socket = UdpSocket::bind("0.0.0.0:0")?;
            socket.connect(server)?;
            socket.set_read_timeout(Some(Duration::from_millis(50)))?;
            let mut report = Report::default();
            let mut id: u16 = 1;
            let mut buf = [0u8; 1500];
            while !flag.load(Ordering::Relaxed) {
                for name in &names {
                    id = id.wrapping_add(1);
                    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
                    query.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
                    socket.send(&query.to_vec()?)?;
                    report.sent += 1;
                    let deadline = Instant::now() + TIMEOUT;
                    let outcome = loop {
                        if Instant::now() > deadline {
                            break Outcome::Timeout;
                        }
                        let Ok(len) = socket.recv(&mut buf) else {
                            continue;
                        };
                        let Ok(reply) = Message::from_vec(&buf[..len]) else {
                            continue;
                        };
                        // Replies to queries that timed out earlier are skipped.
                        if reply.metadata.id != id {
                            continue;
                        }
                        let addrs: Vec<Ipv4Addr> = reply
                            .answers
                            .iter()
                            .filter_map(|r| match &r.data {
                                RData::A(a) => Some(a.0),
                                _ => None,
                            })
                            .collect();
                        break if reply.metadata.response_code == ResponseCode::NoError
                            && !addrs.is_empty()
                        {
                            Outcome::Answer(addrs)
                        } else {
                            Outcome::Rcode(format!("{:?}", reply.metadata.response_code))
                        };
                    };
                    let entry = report
                        .outcomes
                        .entry(name.clone())
                        .or_default()
                        .entry(outcome)
                        .or_insert((0, Instant::now()));
                    entry.0 += 1;
                }
            }
            Ok(report)
        });
        Self { stop, thread }
    }

    pub fn stop(self) -> anyhow::Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .map_err(|_| anyhow::anyhow!("load thread panicked"))?
    }
}

/// What came back of a burst of queries (see [`burst`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Burst {
    /// Replies with records or without, TC clear.
    pub whole: u64,
    /// Replies with TC set and no records: a real client would ask again
    /// over TCP.
    pub truncated: u64,
    /// Queries no reply came to.
    pub missing: u64,
}

/// Sends `count` queries for `name` type `qtype` to `server` from
/// `source` in `netns` back to back, as a flood does, then takes what
/// comes back for `TIMEOUT`; each reply is matched to its query by ID.
pub fn burst(
    netns: &Netns,
    source: SocketAddr,
    server: SocketAddr,
    name: &str,
    qtype: RecordType,
    count: u16,
) -> anyhow::Result<Burst> {
    let name = Name::from_ascii(name)?;
    netns.run(move || {
        let socket = UdpSocket::bind(source)?;
        socket.connect(server)?;
        for id in 0..count {
            let mut query = Message::new(id, MessageType::Query, OpCode::Query);
            query.metadata.recursion_desired = true;
            query.add_query(Query::query(name.clone(), qtype));
            socket.send(&query.to_vec()?)?;
        }
        let mut replied = BTreeSet::new();
        let mut result = Burst::default();
        let deadline = Instant::now() + TIMEOUT;
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            socket.set_read_timeout(Some(
                deadline
                    .saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1)),
            ))?;
            let Ok(len) = socket.recv(&mut buf) else {
                break;
            };
            let reply = Message::from_vec(&buf[..len])?;
            anyhow::ensure!(
                reply.metadata.id < count && replied.insert(reply.metadata.id),
                "a reply to no query of the burst, or a second one: {reply:?}"
            );
            if reply.metadata.truncation {
                anyhow::ensure!(reply.answers.is_empty(), "TC with records: {reply:?}");
                result.truncated += 1;
            } else {
                result.whole += 1;
            }
        }
        result.missing = u64::from(count) - result.whole - result.truncated;
        Ok(result)
    })
}

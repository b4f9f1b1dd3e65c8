//! Forwarding to upstream resolvers: UDP with EDNS first, TCP when the
//! answer is truncated; a timeout per attempt, retries across upstreams
//! with backoff, and upstreams that keep failing skipped for a while.

use std::{
    net::SocketAddr,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_proto::op::{Message, MessageType};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    time::timeout,
};

use crate::resolver::{
    authority::our_edns,
    stats::{HistogramSnapshot, LatencyHistogram},
};

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream configured")]
    None,
    #[error("every upstream failed; last: {0}")]
    AllFailed(String),
}

pub struct Settings {
    /// How long one attempt may take.
    pub attempt_timeout: Duration,
    /// Attempts in all, spread over the upstreams.
    pub attempts: usize,
    /// Consecutive failures after which an upstream is skipped...
    pub failures_to_down: u32,
    /// ...for this long (unless every upstream is down).
    pub down_for: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_millis(800),
            attempts: 3,
            failures_to_down: 3,
            down_for: Duration::from_secs(5),
        }
    }
}

pub struct Upstreams {
    servers: Vec<Upstream>,
    settings: Settings,
    /// Ask over TCP from the first attempt.
    tcp_first: bool,
}

struct Upstream {
    addr: SocketAddr,
    health: Mutex<Health>,
    /// How long each exchange with it took, failed ones included (a
    /// timeout shows as the attempt's limit).
    latency: LatencyHistogram,
    /// Exchanges that failed: timeout, error, or no answer matching the query.
    failures: AtomicU64,
}

/// One upstream's exchanges so far, for metrics.
pub struct ExchangeStats {
    pub addr: SocketAddr,
    pub latency: HistogramSnapshot,
    pub failures: u64,
}

#[derive(Default)]
struct Health {
    failures: u32,
    down_until: Option<Instant>,
}

impl Upstreams {
    pub fn new(addrs: &[SocketAddr], settings: Settings) -> Self {
        Self {
            servers: addrs
                .iter()
                .map(|addr| Upstream {
                    addr: *addr,
                    health: Mutex::default(),
                    latency: LatencyHistogram::default(),
                    failures: AtomicU64::new(0),
                })
                .collect(),
            settings,
            tcp_first: false,
        }
    }

    /// The same, asking over TCP from the first attempt (as NodeLocal
    /// DNSCache asks the cluster DNS) if `tcp_first`.
    pub fn with_tcp_first(mut self, tcp_first: bool) -> Self {
        self.tcp_first = tcp_first;
        self
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.servers.iter().map(|s| s.addr).collect()
    }

    /// Whether each upstream is up (not skipped for failing), by address.
    pub fn health(&self) -> Vec<(SocketAddr, bool)> {
        let now = Instant::now();
        self.servers
            .iter()
            .map(|s| (s.addr, !s.is_down(now)))
            .collect()
    }

    /// Each upstream's exchange latency and failures, in configured order.
    pub fn exchange_stats(&self) -> Vec<ExchangeStats> {
        self.servers
            .iter()
            .map(|s| ExchangeStats {
                addr: s.addr,
                latency: s.latency.snapshot(),
                failures: s.failures.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Sends `query`'s question upstream and returns the answer. The
    /// caller's ID and flags do not matter: each attempt uses a fresh ID.
    pub async fn resolve(&self, query: &Message) -> Result<Message, UpstreamError> {
        if self.servers.is_empty() {
            return Err(UpstreamError::None);
        }
        let now = Instant::now();
        // Healthy upstreams first, in configured order; the down ones last.
        let mut order: Vec<&Upstream> = self.servers.iter().filter(|s| !s.is_down(now)).collect();
        order.extend(self.servers.iter().filter(|s| s.is_down(now)));
        let mut last_error = String::new();
        for attempt in 0..self.settings.attempts {
            let upstream = order[attempt % order.len()];
            if attempt > 0 {
                // Back off a little more each time round.
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(4))).await;
            }
            // The exchange timed whole, failed or not (a timeout shows as
            // the attempt's limit); the backoff above is not part of it.
            let started = Instant::now();
            let result = upstream
                .exchange(query, self.settings.attempt_timeout, self.tcp_first)
                .await;
            upstream.latency.observe(started.elapsed());
            match result {
                Ok(answer) => {
                    upstream.succeeded();
                    return Ok(answer);
                }
                Err(error) => {
                    tracing::debug!(upstream = %upstream.addr, %error, "upstream attempt failed");
                    upstream.failed(&self.settings);
                    last_error = format!("{}: {error}", upstream.addr);
                }
            }
        }
        Err(UpstreamError::AllFailed(last_error))
    }
}

impl Upstream {
    fn is_down(&self, now: Instant) -> bool {
        let health = self.health.lock().expect("health lock");
        health.down_until.is_some_and(|until| until > now)
    }

    fn succeeded(&self) {
        *self.health.lock().expect("health lock") = Health::default();
    }

    fn failed(&self, settings: &Settings) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mut health = self.health.lock().expect("health lock");
        health.failures += 1;
        if health.failures >= settings.failures_to_down {
            if health.down_until.is_none() {
                tracing::warn!(upstream = %self.addr, "upstream keeps failing; skipping it for {:?}", settings.down_for);
            }
            health.down_until = Some(Instant::now() + settings.down_for);
        }
    }

    /// One attempt: UDP, then TCP if the answer came truncated; TCP alone
    /// if `tcp_first`.
    async fn exchange(
        &self,
        query: &Message,
        limit: Duration,
        tcp_first: bool,
    ) -> std::io::Result<Message> {
        let mut upstream_query = Message::query();
        upstream_query.metadata.id = random_id();
        upstream_query.metadata.recursion_desired = true;
        upstream_query.metadata.checking_disabled = query.metadata.checking_disabled;
        upstream_query.add_queries(query.queries.iter().cloned());
        let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
        upstream_query.set_edns(our_edns(dnssec_ok));
        let bytes = upstream_query.to_vec().map_err(std::io::Error::other)?;
        if tcp_first {
            return timeout(limit, self.tcp(&bytes, &upstream_query))
                .await
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TCP timeout"))?;
        }

        let answer = timeout(limit, self.udp(&bytes, &upstream_query))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "UDP timeout"))??;
        if !answer.metadata.truncation {
            return Ok(answer);
        }
        timeout(limit, self.tcp(&bytes, &upstream_query))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TCP timeout"))?
    }

    async fn udp(&self, bytes: &[u8], query: &Message) -> std::io::Result<Message> {
        // A fresh socket per query: a random source port, as well as the
        // random ID, for spoofing resistance (RFC 5452).
        let bind: SocketAddr = if self.addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        }
        .parse()
        .expect("literal");
        let socket = UdpSocket::bind(bind).await?;
        socket.connect(self.addr).await?;
        socket.send(bytes).await?;
        let mut buf = vec![0u8; 65_535];
        loop {
            let len = socket.recv(&mut buf).await?;
            if let Some(answer) = matching_answer(&buf[..len], query) {
                return Ok(answer);
            }
        }
    }

    async fn tcp(&self, bytes: &[u8], query: &Message) -> std::io::Result<Message> {
        let mut stream = TcpStream::connect(self.addr).await?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        stream.write_all(&framed).await?;
        let len = stream.read_u16().await? as usize;
        let mut buf = vec![0u8; len];
        stream.read_exact(&mut buf).await?;
        matching_answer(&buf, query).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "answer does not match the query",
            )
        })
    }
}

/// `bytes` decoded, if it is a response to `query`: same ID and question.
fn matching_answer(bytes: &[u8], query: &Message) -> Option<Message> {
    let answer = Message::from_vec(bytes).ok()?;
    (answer.metadata.message_type == MessageType::Response
        && answer.metadata.id == query.metadata.id
        && answer.queries.len() == 1
        && answer.queries[0].name() == query.queries[0].name()
        && answer.queries[0].query_type() == query.queries[0].query_type()
        && answer.queries[0].query_class() == query.queries[0].query_class())
    .then_some(answer)
}

/// A random 16-bit ID from the kernel's generator.
fn random_id() -> u16 {
    let mut id = [0u8; 2];
    // SAFETY: a valid 2-byte buffer.
    let got = unsafe { libc::getrandom(id.as_mut_ptr().cast(), id.len(), 0) };
    if got != 2 {
        // getrandom does not fail for 2 bytes once booted; be safe anyway.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        return (nanos ^ (nanos >> 16)) as u16;
    }
    u16::from_ne_bytes(id)
}

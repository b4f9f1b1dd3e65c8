//! `meshdns-soak --minutes N`: the agent in a lab under a steady mixed
//! load while faults come at random intervals, one at a time: the agent
//! killed with SIGKILL and started again, the upstream (Unbound) killed
//! and started again, the attached interface deleted and created again;
//! and all the while the services file changes every 100 ms.
//!
//! The load, from the lab's client, each stream one query at a time:
//! mesh names over UDP (the fast path: `redis.mesh` never changes,
//! `churn.mesh` changes its address with every file), a forwarded name
//! over UDP (the resolver, its cache and the upstream: `www.test`, and
//! `short.test`, whose 1 s TTL makes it stale while the upstream is down),
//! and a mesh name over TCP (the resolver).
//!
//! It fails on: a wrong answer (not what the table or the upstream's zone
//! says); a fast-path answer lost while no agent runs (the pinned program
//! serves on); any other query lost or failed outside a fault that
//! explains it (the resolver gone with the agent, the link gone with the
//! interface, each with a few seconds' grace to come back); resident
//! memory that keeps growing or file descriptors that leak in the agent
//! that runs the last part of the soak, which no fault interrupts. The
//! totals are the last line.

use std::{
    collections::BTreeMap,
    fs,
    io::{Read as _, Write as _},
    net::{IpAddr, SocketAddr, TcpStream, UdpSocket},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RData, RecordType},
};
use meshdns_tests::{
    fixtures::LAB_SERVICES,
    lab::{Lab, Netns},
    unbound::{UNBOUND_ADDR, Unbound},
};
use rand::{RngExt as _, SeedableRng as _, rngs::StdRng};

#[derive(Parser)]
struct Args {
    /// How long to soak.
    #[arg(long, default_value_t = 1.0)]
    minutes: f64,
    /// The faults' random seed (default: from the clock; printed).
    #[arg(long)]
    seed: Option<u64>,
}

const SERVER: &str = "198.18.0.1:53";
/// How long a query may take before it counts as lost: room for a stale
/// answer, which comes once every upstream has failed.
const TIMEOUT: Duration = Duration::from_secs(2);
/// How long after a fault ends its failures are still excused: the agent
/// starting (the resolver's sockets come after the fast path), the agent
/// finding the interface again.
const GRACE: Duration = Duration::from_secs(3);
/// The addresses `churn.mesh` takes, one per services file in turn.
const CHURN: [&str; 2] = ["240.0.3.1", "240.0.3.2"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    KillAgent,
    Upstream,
    Interface,
}

/// The faults so far, each with when it began and ended.
#[derive(Default)]
struct Faults {
    spans: Mutex<Vec<(Fault, Instant, Option<Instant>)>>,
}

impl Faults {
    fn begin(&self, fault: Fault) {
        self.spans
            .lock()
            .unwrap()
            .push((fault, Instant::now(), None));
    }

    fn end(&self) {
        if let Some(last) = self.spans.lock().unwrap().last_mut() {
            last.2 = Some(Instant::now());
        }
    }

    /// Whether a fault of `kinds` was under way between `from` and now, or
    /// ended less than `GRACE` before.
    fn excuses(&self, kinds: &[Fault], from: Instant) -> bool {
        let now = Instant::now();
        self.spans
            .lock()
            .unwrap()
            .iter()
            .any(|(fault, start, end)| {
                kinds.contains(fault) && *start <= now && end.is_none_or(|end| end + GRACE >= from)
            })
    }

    fn count(&self) -> BTreeMap<Fault, usize> {
        let mut counts = BTreeMap::new();
        for (fault, _, _) in self.spans.lock().unwrap().iter() {
            *counts.entry(*fault).or_default() += 1;
        }
        counts
    }
}

/// What one stream asks and what it must get.
struct Stream {
    label: &'static str,
    name: &'static str,
    tcp: bool,
    /// The answers it may get (A records: exactly one of these).
    answers: &'static [&'static str],
    /// The faults that excuse a lost or failed query.
    excused_by: &'static [Fault],
}

const STREAMS: [Stream; 5] = [
    Stream {
        label: "fast path",
        name: "redis.mesh",
        tcp: false,
        answers: &["240.0.0.100"],
        // The pinned program answers with no agent: only the link's loss
        // excuses it.
        excused_by: &[Fault::Interface],
    },
    Stream {
        label: "fast path, changing",
        name: "churn.mesh",
        tcp: false,
        answers: &CHURN,
        excused_by: &[Fault::Interface],
    },
    Stream {
        label: "resolver",
        name: "www.test",
        tcp: false,
        answers: &["198.18.5.1"],
        excused_by: &[Fault::KillAgent, Fault::Interface],
    },
    Stream {
        label: "resolver, stale",
        name: "short.test",
        tcp: false,
        answers: &["198.18.5.2"],
        excused_by: &[Fault::KillAgent, Fault::Interface],
    },
    Stream {
        label: "resolver, TCP",
        name: "redis.mesh",
        tcp: true,
        answers: &["240.0.0.100"],
        excused_by: &[Fault::KillAgent, Fault::Interface],
    },
];

/// What a stream saw.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    right: AtomicU64,
    excused: AtomicU64,
    /// Each failure that no fault excuses, described (the first few).
    failures: Mutex<Vec<String>>,
    failed: AtomicU64,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut failures = self.failures.lock().unwrap();
        if failures.len() < 10 {
            failures.push(what);
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let mut rng = StdRng::seed_from_u64(seed);
    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let start = Instant::now();

    let mut lab = Lab::new()?;
    lab.enable_peer_napi()?;
    let mut unbound = Unbound::start(&lab.server)?;
    let config = lab.write_services(&services(0));
    let agent_args = ["--listen", SERVER, "--upstream", UNBOUND_ADDR];
    let mut agent = lab.start_agent(&config, &agent_args)?;

    let stop = Arc::new(AtomicBool::new(false));
    let faults = Arc::new(Faults::default());
    let tallies: Vec<Arc<Tally>> = STREAMS.iter().map(|_| Arc::default()).collect();
    let streams: Vec<JoinHandle<anyhow::Result<()>>> = STREAMS
        .iter()
        .zip(&tallies)
        .map(|(stream, tally)| {
            spawn_stream(
                &lab.client,
                stream,
                tally.clone(),
                faults.clone(),
                stop.clone(),
                start,
            )
        })
        .collect();
    let file_changes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (stop, changes, path) = (stop.clone(), file_changes.clone(), lab.services_path());
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                thread::sleep(Duration::from_millis(100));
                let n = changes.fetch_add(1, Ordering::Relaxed) + 1;
                meshdns::atomic_file::write(&path, services(n).as_bytes())
                    .expect("writing the services file");
            }
        })
    };

    // Faults in the first 60% of the soak, each kind in turn in an order
    // drawn anew each round; the rest is a steady run for the memory and
    // descriptor checks.
    let faults_until = start + total.mul_f64(0.6);
    let mut round: Vec<Fault> = Vec::new();
    while Instant::now() < faults_until {
        thread::sleep(Duration::from_secs_f64(rng.random_range(1.0..4.0)));
        if round.is_empty() {
            round = vec![Fault::KillAgent, Fault::Upstream, Fault::Interface];
            for i in (1..round.len()).rev() {
                round.swap(i, rng.random_range(0..=i));
            }
        }
        let fault = round.pop().expect("not empty");
        faults.begin(fault);
        let outage = Duration::from_secs_f64(rng.random_range(0.5..2.0));
        match fault {
            Fault::KillAgent => {
                agent.kill()?;
                thread::sleep(outage);
                agent = lab.start_agent(&config, &agent_args)?;
            }
            Fault::Upstream => {
                unbound.kill();
                thread::sleep(outage);
                unbound.restart()?;
            }
            Fault::Interface => {
                lab.disconnect()?;
                thread::sleep(outage);
                lab.connect()?;
                lab.enable_peer_napi()?;
            }
        }
        faults.end();
    }

    // The steady part: the agent's memory and descriptors, once it has
    // settled (a few seconds), then every second to the end.
    let settle = (start + total).min(Instant::now() + Duration::from_secs(5));
    thread::sleep(settle.saturating_duration_since(Instant::now()));
    let first = usage(agent.pid())?;
    let mut last = first;
    while Instant::now() < start + total {
        thread::sleep(Duration::from_secs(1));
        last = usage(agent.pid())?;
    }
    stop.store(true, Ordering::Relaxed);
    for stream in streams {
        stream
            .join()
            .map_err(|_| anyhow::anyhow!("a load stream panicked"))??;
    }
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("the file writer panicked"))?;

    let mut problems = Vec::new();
    for (stream, tally) in STREAMS.iter().zip(&tallies) {
        let failures = tally.failures.lock().unwrap();
        if !failures.is_empty() {
            problems.push(format!(
                "{} ({} {}): {} failed, the first: {}",
                stream.label,
                stream.name,
                if stream.tcp { "TCP" } else { "UDP" },
                tally.failed.load(Ordering::Relaxed),
                failures.join("; ")
            ));
        }
        if tally.right.load(Ordering::Relaxed) == 0 {
            problems.push(format!("{}: no answer at all", stream.label));
        }
    }
    // Memory a steady load does not grow: a quarter and 8 MiB of slack
    // for the allocator's own ways.
    if last.rss_kib > first.rss_kib + first.rss_kib / 4 + 8 * 1024 {
        problems.push(format!(
            "resident memory grew from {} to {} KiB under a steady load",
            first.rss_kib, last.rss_kib
        ));
    }
    // A TCP connection or two in flight at either reading.
    if last.fds > first.fds + 2 {
        problems.push(format!(
            "file descriptors went from {} to {} under a steady load",
            first.fds, last.fds
        ));
    }
    let faults_seen = faults.count();
    let sum = |f: fn(&Tally) -> &AtomicU64| -> u64 {
        tallies.iter().map(|t| f(t).load(Ordering::Relaxed)).sum()
    };
    let per_stream: Vec<String> = STREAMS
        .iter()
        .zip(&tallies)
        .map(|(s, t)| format!("{} {}", s.label, t.sent.load(Ordering::Relaxed)))
        .collect();
    for problem in &problems {
        eprintln!("soak: FAILED: {problem}");
    }
    println!(
        "soak: {:.1} min (seed {seed}): {} queries ({}), {} right, {} excused by faults, {} failed; \
         {} agent kills, {} upstream outages, {} interface re-creations, {} file changes; \
         agent rss {} -> {} KiB, fds {} -> {}: {}",
        start.elapsed().as_secs_f64() / 60.0,
        sum(|t| &t.sent),
        per_stream.join(", "),
        sum(|t| &t.right),
        sum(|t| &t.excused),
        sum(|t| &t.failed),
        faults_seen.get(&Fault::KillAgent).unwrap_or(&0),
        faults_seen.get(&Fault::Upstream).unwrap_or(&0),
        faults_seen.get(&Fault::Interface).unwrap_or(&0),
        file_changes.load(Ordering::Relaxed),
        first.rss_kib,
        last.rss_kib,
        first.fds,
        last.fds,
        if problems.is_empty() { "ok" } else { "FAILED" }
    );
    drop(agent);
    if !problems.is_empty() {
        // The lab's namespaces and pins go on drop; the totals stay the
        // last line.
        drop((unbound, lab));
        std::process::exit(1);
    }
    Ok(())
}

/// The `n`-th services file: the lab's names, and `churn` at the address
/// of `n`'s turn.
fn services(n: u64) -> String {
    format!(
        "{LAB_SERVICES}  - name: churn\n    vips: [{}]\n",
        CHURN[(n % 2) as usize]
    )
}

/// A process's resident memory and open descriptors.
#[derive(Clone, Copy)]
struct Usage {
    rss_kib: u64,
    fds: usize,
}

fn usage(pid: u32) -> anyhow::Result<Usage> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd"))?.count();
    Ok(Usage { rss_kib, fds })
}

/// Runs `stream` in the client's namespace until `stop`, a query every
/// few milliseconds.
fn spawn_stream(
    client: &Netns,
    stream: &'static Stream,
    tally: Arc<Tally>,
    faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
    soak_start: Instant,
) -> JoinHandle<anyhow::Result<()>> {
    client.spawn(move || {
        let server: SocketAddr = SERVER.parse()?;
        let name = Name::from_ascii(stream.name)?;
        let mut id: u16 = 0;
        while !stop.load(Ordering::Relaxed) {
            id = id.wrapping_add(1);
            let mut query = Message::new(id, MessageType::Query, OpCode::Query);
            query.metadata.recursion_desired = true;
            query.add_query(Query::query(name.clone(), RecordType::A));
            let sent = Instant::now();
            tally.sent.fetch_add(1, Ordering::Relaxed);
            let reply = if stream.tcp {
                ask_tcp(server, &query.to_vec()?)
            } else {
                ask_udp(server, &query.to_vec()?, id)
            };
            match verdict(stream, reply) {
                Ok(()) => {
                    tally.right.fetch_add(1, Ordering::Relaxed);
                }
                Err(Failure::Wrong(what)) => tally.fail(format!("wrong: {what}")),
                Err(Failure::Lost(_)) if faults.excuses(stream.excused_by, sent) => {
                    tally.excused.fetch_add(1, Ordering::Relaxed);
                }
                Err(Failure::Lost(what)) => tally.fail(format!(
                    "{what}, asked {:.1} s into the soak, with no fault to excuse it",
                    sent.duration_since(soak_start).as_secs_f64()
                )),
            }
            thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    })
}

enum Failure {
    /// An answer that is not the table's or the upstream's.
    Wrong(String),
    /// No answer, or an error such as SERVFAIL.
    Lost(String),
}

/// Whether `reply` is one of `stream`'s answers.
fn verdict(stream: &Stream, reply: anyhow::Result<Message>) -> Result<(), Failure> {
    let reply = reply.map_err(|e| Failure::Lost(format!("{e:#}")))?;
    if reply.metadata.response_code != ResponseCode::NoError {
        return Err(Failure::Lost(format!("{}", reply.metadata.response_code)));
    }
    let addresses: Vec<IpAddr> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    match addresses[..] {
        [one] if stream.answers.iter().any(|a| a.parse() == Ok(one)) => Ok(()),
        _ => Err(Failure::Wrong(format!(
            "{} A got {addresses:?}, want one of {:?}",
            stream.name, stream.answers
        ))),
    }
}

fn ask_udp(server: SocketAddr, query: &[u8], id: u16) -> anyhow::Result<Message> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(TIMEOUT))?;
    socket.send(query)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut buf = [0u8; 1500];
    loop {
        let len = socket.recv(&mut buf).context("no UDP reply")?;
        let reply = Message::from_vec(&buf[..len])?;
        if reply.metadata.id == id {
            return Ok(reply);
        }
        if Instant::now() > deadline {
            bail!("no UDP reply to this query");
        }
    }
}

fn ask_tcp(server: SocketAddr, query: &[u8]) -> anyhow::Result<Message> {
    let mut stream = TcpStream::connect_timeout(&server, TIMEOUT).context("TCP connect")?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed)?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).context("no TCP reply")?;
    let mut reply = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut reply)?;
    Ok(Message::from_vec(&reply)?)
}

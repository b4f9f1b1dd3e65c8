//! `meshdns-latency --netns NS --server ADDR:PORT --queries FILE --rate QPS
//! --seconds S`: sends the queries (`name TYPE` lines) round robin at a fixed
//! rate over UDP from a namespace, times every reply, and prints
//! `sent=N answered=N p50_us=X p90_us=X p99_us=X max_us=X`.
//!
//! dnsperf 2.10 reports only a mean, and only at saturation; at a fixed rate
//! below a server's capacity the percentiles show its service time rather
//! than its queueing. `cargo xtask bench` runs it for every DNS target.

use std::{
    net::{SocketAddr, UdpSocket},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use clap::Parser;
use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RecordType},
};
use meshdns_tests::lab::Netns;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    netns: String,
    #[arg(long)]
    server: SocketAddr,
    #[arg(long)]
    queries: std::path::PathBuf,
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    #[arg(long, default_value_t = 5)]
    seconds: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut queries = Vec::new();
    for line in std::fs::read_to_string(&args.queries)?.lines() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(qtype)) = (fields.next(), fields.next()) else {
            continue;
        };
        let qtype: RecordType = qtype.parse()?;
        let mut query = Message::new(0, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(Name::from_ascii(name)?, qtype));
        queries.push(query.to_vec()?);
    }
    anyhow::ensure!(
        !queries.is_empty(),
        "no queries in {}",
        args.queries.display()
    );
    let netns = Netns::existing(args.netns.clone());
    let (rate, seconds, server) = (args.rate, args.seconds, args.server);
    let (sent, mut latencies) = netns.run(move || probe(&queries, server, rate, seconds))?;
    latencies.sort_unstable();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    println!(
        "sent={sent} answered={} p50_us={:.1} p90_us={:.1} p99_us={:.1} max_us={:.1}",
        latencies.len(),
        at(0.50),
        at(0.90),
        at(0.99),
        latencies.last().map_or(0.0, |d| d.as_secs_f64() * 1e6)
    );
    Ok(())
}

/// Sends at `rate` for `seconds`, receiving on another thread; returns how
/// many were sent and each answered query's round trip.
fn probe(
    queries: &[Vec<u8>],
    server: SocketAddr,
    rate: u32,
    seconds: u64,
) -> anyhow::Result<(u64, Vec<Duration>)> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.connect(server)?;
    socket.set_read_timeout(Some(Duration::from_millis(100)))?;
    let receiver = socket.try_clone()?;
    // Send time by ID; IDs wrap after 65,536 queries, far longer than a reply takes.
    let sent_at: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; 65_536]));
    let table = sent_at.clone();
    let end = Instant::now() + Duration::from_secs(seconds);
    let receive = std::thread::spawn(move || {
        let mut latencies = Vec::new();
        let mut buf = [0u8; 4096];
        while Instant::now() < end + Duration::from_millis(500) {
            let Ok(len) = receiver.recv(&mut buf) else {
                continue;
            };
            if len < 2 {
                continue;
            }
            let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
            if let Some(at) = table.lock().expect("lock")[id].take() {
                latencies.push(at.elapsed());
            }
        }
        latencies
    });
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let start = Instant::now();
    let mut sent: u64 = 0;
    while Instant::now() < end {
        // Keep to the schedule: send what is due, then sleep a little.
        let due = (start.elapsed().as_secs_f64() / interval.as_secs_f64()) as u64;
        while sent < due {
            let mut query = queries[(sent % queries.len() as u64) as usize].clone();
            let id = (sent % 65_536) as u16;
            query[..2].copy_from_slice(&id.to_be_bytes());
            sent_at.lock().expect("lock")[usize::from(id)] = Some(Instant::now());
            socket.send(&query)?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    let latencies = receive
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))?;
    Ok((sent, latencies))
}

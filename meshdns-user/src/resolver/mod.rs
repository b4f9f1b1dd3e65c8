//! The resolver behind the fast path: every query the XDP program passes
//! (and every TCP query) ends here.
//!
//! [`Resolver::handle`] is the protocol: bytes in, bytes out, no sockets.
//! In order: refuse clients outside `allow_from`; FORMERR for what does not
//! parse, NOTIMP for other opcodes, BADVERS for EDNS versions above 0;
//! answer mesh names from the table ([`authority`]); forward everything
//! else through the [`cache`] to the [`upstream`]s, one upstream query for
//! identical questions in flight, serving stale answers when every
//! upstream fails; truncate what does not fit the client's UDP size.
//! [`server`] is the I/O: UDP and TCP listeners.

pub mod authority;
pub mod cache;
pub mod server;
pub mod stats;
pub mod upstream;

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex, RwLock, atomic::Ordering},
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::RecordType,
};
use tokio::sync::watch;

use crate::{cidr::Cidr, config::ResolverSettings, table::Table};
use authority::{Verdict, Zone, our_edns, reply_to};
use cache::{Cache, Key, Lookup};
pub use stats::Stats;
use upstream::Upstreams;

/// How a query came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub const ALL: [Transport; 2] = [Transport::Udp, Transport::Tcp];

    /// Its place in [`Transport::ALL`], for counters kept in arrays.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Its name as a metric label.
    pub const fn name(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// Largest UDP reply we send, whatever the client offers: the DNS Flag Day
/// 2020 size, which avoids IP fragmentation.
const MAX_UDP_REPLY: usize = meshdns_common::EDNS_UDP_PAYLOAD_SIZE as usize;
/// A client without EDNS gets at most this (RFC 1035 §4.2.1).
const PLAIN_UDP_REPLY: usize = 512;

/// What comes from the services file, swapped whole on reload: the table,
/// the zone view of it, and who may ask.
pub struct Mesh {
    pub table: Arc<Table>,
    zone: Zone,
    allow_from: Vec<Cidr>,
}

impl Mesh {
    /// `default_allow_from` applies if the file says nothing.
    pub fn new(
        table: Arc<Table>,
        settings: &ResolverSettings,
        default_allow_from: &[Cidr],
    ) -> Self {
        let zone = Zone::of(&table);
        let allow_from = settings
            .allow_from
            .clone()
            .unwrap_or_else(|| default_allow_from.to_vec());
        Self {
            table,
            zone,
            allow_from,
        }
    }

    fn allows(&self, client: IpAddr) -> bool {
        // An IPv4 client on an IPv6 socket arrives as ::ffff:a.b.c.d.
        let client = match client {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
            v4 => v4,
        };
        self.allow_from.iter().any(|cidr| cidr.contains(client))
    }
}

type Inflight = watch::Receiver<Option<Result<Arc<Message>, String>>>;

/// What [`Resolver::handle_now`] did.
pub enum Step {
    /// Answered (or nothing to answer).
    Done(Option<Vec<u8>>),
    /// Needs an upstream: finish it with [`Resolver::finish`].
    Forward(Box<Pending>),
}

/// A query that needs an upstream.
pub struct Pending {
    query: Message,
    key: Key,
    /// The cache's expired answer, if any, for when every upstream fails.
    stale: Option<Message>,
    /// How it came, which also sets the longest reply the client takes.
    transport: Transport,
    limit: usize,
}

pub struct Resolver {
    mesh: RwLock<Arc<Mesh>>,
    /// Who may ask when the services file does not say.
    default_allow_from: Vec<Cidr>,
    upstreams: Upstreams,
    cache: Cache,
    /// Questions being forwarded now, so the same one is not sent twice.
    inflight: Mutex<HashMap<Key, Inflight>>,
    pub stats: Stats,
}

impl Resolver {
    /// A resolver for `table`, answering the clients the file's
    /// `allow_from` names (`settings`), or `default_allow_from` if it names
    /// none.
    pub fn new(
        table: Arc<Table>,
        settings: &ResolverSettings,
        default_allow_from: Vec<Cidr>,
        upstreams: Upstreams,
        cache: Cache,
    ) -> Self {
        cache.set_stale_max(Duration::from_secs(settings.stale_max));
        Self {
            mesh: RwLock::new(Arc::new(Mesh::new(table, settings, &default_allow_from))),
            default_allow_from,
            upstreams,
            cache,
            inflight: Mutex::default(),
            stats: Stats::default(),
        }
    }

    /// Serves `table`, and its file's `allow_from` and `stale_max`
    /// (`settings`), from now on.
    pub fn set_table(&self, table: Arc<Table>, settings: &ResolverSettings) {
        self.cache
            .set_stale_max(Duration::from_secs(settings.stale_max));
        let mesh = Arc::new(Mesh::new(table, settings, &self.default_allow_from));
        *self.mesh.write().expect("mesh lock") = mesh;
    }

    /// The table it answers from now.
    pub fn table(&self) -> Arc<Table> {
        self.mesh.read().expect("mesh lock").table.clone()
    }

    /// Whom it answers now: the file's `allow_from`, or the default.
    pub fn allow_from(&self) -> Vec<Cidr> {
        self.mesh.read().expect("mesh lock").allow_from.clone()
    }

    pub fn upstreams(&self) -> &Upstreams {
        &self.upstreams
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Answers one DNS message from `client`; `None` if it deserves no
    /// answer at all (too short to carry an ID, or itself a response).
    pub async fn handle(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        match self.handle_now(request, client, transport) {
            Step::Done(reply) => reply,
            Step::Forward(pending) => Some(self.finish(pending).await),
        }
    }

    /// Everything that needs no upstream, done at once: refusals, errors,
    /// mesh answers, cache hits. What needs an upstream comes back as a
    /// [`Pending`] for [`Resolver::finish`], so the socket loop can answer
    /// the rest inline and spawn only for this.
    pub fn handle_now(&self, request: &[u8], client: SocketAddr, transport: Transport) -> Step {
        self.stats.queries[transport.index()].fetch_add(1, Ordering::Relaxed);
        let query = match Message::from_vec(request) {
            Ok(query) => query,
            Err(_) => {
                let reply = formerr(request);
                if reply.is_some() {
                    // Not parsed, so no question to label it with.
                    self.stats
                        .responses
                        .count(transport, None, ResponseCode::FormErr);
                }
                return Step::Done(reply);
            }
        };
        if query.metadata.message_type != MessageType::Query {
            return Step::Done(None);
        }
        let limit = match transport {
            Transport::Tcp => usize::from(u16::MAX),
            Transport::Udp => query.edns.as_ref().map_or(PLAIN_UDP_REPLY, |edns| {
                usize::from(edns.max_payload()).clamp(PLAIN_UDP_REPLY, MAX_UDP_REPLY)
            }),
        };
        match self.reply_now(query, client.ip()) {
            Ok(reply) => Step::Done(Some(self.encode(reply, transport, limit))),
            Err(mut pending) => {
                pending.transport = transport;
                pending.limit = limit;
                Step::Forward(pending)
            }
        }
    }

    /// Forwards what `handle_now` could not answer, and encodes the reply.
    pub async fn finish(&self, pending: Box<Pending>) -> Vec<u8> {
        let (transport, limit) = (pending.transport, pending.limit);
        let reply = self.forward(pending).await;
        self.encode(reply, transport, limit)
    }

    fn reply_now(&self, query: Message, client: IpAddr) -> Result<Message, Box<Pending>> {
        let mesh = self.mesh.read().expect("mesh lock").clone();
        if !mesh.allows(client) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(error_reply(&query, ResponseCode::Refused));
        }
        if query.metadata.op_code != OpCode::Query {
            return Ok(error_reply(&query, ResponseCode::NotImp));
        }
        if query.queries.len() != 1 {
            return Ok(error_reply(&query, ResponseCode::FormErr));
        }
        if let Some(edns) = &query.edns
            && edns.version() > 0
        {
            // RFC 6891 §6.1.3: BADVERS, with our OPT saying version 0.
            return Ok(error_reply(&query, ResponseCode::BADVERS));
        }

        if let Verdict::Answer(reply) = authority::answer(&mesh.table, &mesh.zone, &query) {
            self.stats.mesh_answers.fetch_add(1, Ordering::Relaxed);
            return Ok(reply);
        }

        let question = &query.queries[0];
        let key = Key {
            name: question.name().to_lowercase(),
            qtype: question.query_type(),
            qclass: u16::from(question.query_class()),
            dnssec_ok: query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
        };
        let stale = match self.cache.get(&key, Instant::now()) {
            Lookup::Fresh(answer) => {
                self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
                return Ok(answer_for(&query, &answer));
            }
            Lookup::Stale(answer) => Some(answer),
            Lookup::Miss => None,
        };
        self.stats.cache_misses.fetch_add(1, Ordering::Relaxed);
        Err(Box::new(Pending {
            query,
            key,
            stale,
            // Set by handle_now, which knows them.
            transport: Transport::Udp,
            limit: 0,
        }))
    }

    /// Answers from upstream, through the cache; stale or SERVFAIL if every
    /// upstream fails.
    async fn forward(&self, pending: Box<Pending>) -> Message {
        let Pending {
            query, key, stale, ..
        } = *pending;
        match self.resolve_once(&key, &query).await {
            Ok(answer) => answer_for(&query, &answer),
            Err(error) => match stale {
                Some(answer) => {
                    self.stats.stale_answers.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, name = %key.name, "upstreams failed; serving stale");
                    answer_for(&query, &answer)
                }
                None => {
                    self.stats.servfail.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, name = %key.name, "upstreams failed");
                    error_reply(&query, ResponseCode::ServFail)
                }
            },
        }
    }

    /// Forwards the question, unless the same one is in flight already, in
    /// which case this waits for that answer; caches what comes back.
    async fn resolve_once(&self, key: &Key, query: &Message) -> Result<Arc<Message>, String> {
        let (sender, mut receiver) = {
            let mut inflight = self.inflight.lock().expect("inflight lock");
            match inflight.get(key) {
                Some(receiver) => (None, receiver.clone()),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    inflight.insert(key.clone(), receiver.clone());
                    (Some(sender), receiver)
                }
            }
        };
        let Some(sender) = sender else {
            // A follower: wait for the leader's answer.
            return match receiver.wait_for(Option::is_some).await {
                Ok(result) => result.clone().expect("waited for Some"),
                Err(_) => Err("the query in flight was dropped".to_string()),
            };
        };
        // The leader: whatever happens, take the entry out when done.
        struct Done<'a>(&'a Mutex<HashMap<Key, Inflight>>, &'a Key);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.lock().expect("inflight lock").remove(self.1);
            }
        }
        let _done = Done(&self.inflight, key);
        let result = match self.upstreams.resolve(query).await {
            Ok(answer) => {
                let bytes = answer.to_vec().map(|b| b.len()).unwrap_or(0);
                self.cache
                    .insert(key.clone(), &answer, bytes, Instant::now());
                Ok(Arc::new(answer))
            }
            Err(error) => Err(error.to_string()),
        };
        let _ = sender.send(Some(result.clone()));
        result
    }

    /// Encodes `reply`; if it is longer than `limit`, sends instead the
    /// header, question and OPT with TC set, so the client retries over TCP.
    /// Every reply to a parsed query passes here once, as it will be sent:
    /// the place to count replies by type and rcode.
    fn encode(&self, mut reply: Message, transport: Transport, limit: usize) -> Vec<u8> {
        let bytes = match reply.to_vec() {
            Ok(bytes) if bytes.len() <= limit => bytes,
            Ok(_) => {
                self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                reply.answers.clear();
                reply.authorities.clear();
                reply.additionals.clear();
                reply.metadata.truncation = true;
                reply.to_vec().unwrap_or_default()
            }
            Err(error) => {
                tracing::warn!(%error, "cannot encode a reply; sending SERVFAIL");
                reply.answers.clear();
                reply.authorities.clear();
                reply.additionals.clear();
                reply.metadata.response_code = ResponseCode::ServFail;
                reply.to_vec().unwrap_or_default()
            }
        };
        self.stats.responses.count(
            transport,
            reply.queries.first().map(|q| q.query_type()),
            reply.metadata.response_code,
        );
        bytes
    }
}

/// An upstream's (or the cache's) answer, as a reply to the client's query:
/// the client's ID, question bytes (case, as sent) and RD; our OPT record if
/// the client sent one.
fn answer_for(query: &Message, answer: &Message) -> Message {
    let mut reply = answer.clone();
    reply.metadata.id = query.metadata.id;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.authoritative = false;
    reply.queries = query.queries.clone();
    reply
        .additionals
        .retain(|r| r.record_type() != RecordType::OPT);
    reply.edns = query
        .edns
        .as_ref()
        .map(|edns| our_edns(edns.flags().dnssec_ok));
    reply
}

/// A reply with `rcode` and no records.
fn error_reply(query: &Message, rcode: ResponseCode) -> Message {
    let mut reply = reply_to(query);
    reply.metadata.authoritative = false;
    reply.metadata.op_code = query.metadata.op_code;
    reply.metadata.response_code = rcode;
    if rcode == ResponseCode::BADVERS {
        // BADVERS needs an OPT record to carry its high bits.
        reply.set_edns(our_edns(false));
    }
    reply
}

/// FORMERR for a message that does not parse, if it has a header at all
/// (RFC 1035 §4.1.1): its ID and opcode, QR set, nothing else.
fn formerr(request: &[u8]) -> Option<Vec<u8>> {
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return None;
    }
    let mut reply = request[..12].to_vec();
    reply[2] = 0x80 | (request[2] & 0x78);
    reply[3] = ResponseCode::FormErr.low();
    reply[4..12].fill(0);
    Some(reply)
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::Query,
        rr::{Name, RecordType},
    };

    use super::*;
    use crate::resolver::{
        cache::Limits,
        stats::ResponseCount,
        upstream::{Settings, Upstreams},
    };

    fn query(name: &str, qtype: RecordType) -> Vec<u8> {
        let mut query = Message::new(7, MessageType::Query, OpCode::Query);
        query.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
        query.to_vec().unwrap()
    }

    /// Every message handled once: the replies counted are exactly the
    /// replies produced, each under its transport, type and rcode.
    #[test]
    fn each_reply_is_counted_once_by_transport_type_and_rcode() {
        let table = Table::parse(
            "zone: mesh\nauthoritative: true\nservices:\n  - name: redis\n    vips: [240.0.0.100]\n",
        )
        .unwrap();
        // No upstream: forwarded names get SERVFAIL without a network.
        let resolver = Resolver::new(
            Arc::new(table),
            &ResolverSettings::default(),
            vec!["127.0.0.0/8".parse().unwrap()],
            Upstreams::new(&[], Settings::default()),
            Cache::new(Limits::default()),
        );
        let local: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let outside: SocketAddr = "198.18.0.2:40000".parse().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut replies = 0;
        let mut send = |bytes: &[u8], client, transport| {
            let reply = runtime.block_on(resolver.handle(bytes, client, transport));
            replies += usize::from(reply.is_some());
        };
        let mut response = Message::from_vec(&query("redis.mesh.", RecordType::A)).unwrap();
        response.metadata.message_type = MessageType::Response;

        send(
            &query("redis.mesh.", RecordType::TXT),
            local,
            Transport::Udp,
        );
        send(
            &query("redis.mesh.", RecordType::TXT),
            local,
            Transport::Udp,
        );
        send(&query("redis.mesh.", RecordType::A), local, Transport::Tcp);
        send(
            &query("nope.mesh.", RecordType::AAAA),
            local,
            Transport::Udp,
        );
        send(
            &query("www.example.", RecordType::MX),
            local,
            Transport::Tcp,
        );
        send(
            &query("www.example.", RecordType::A),
            outside,
            Transport::Udp,
        );
        send(
            &query("redis.mesh.", RecordType::CAA),
            local,
            Transport::Udp,
        );
        // A header and garbage: FORMERR, with no question to label.
        send(
            &[0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff],
            local,
            Transport::Udp,
        );
        // No reply at all: a response, and less than a header.
        send(&response.to_vec().unwrap(), local, Transport::Udp);
        send(&[0, 7, 1], local, Transport::Tcp);

        let counted: Vec<ResponseCount> = resolver.stats.responses.nonzero().collect();
        let expect = ResponseCount::new;
        assert_eq!(
            counted,
            [
                expect(Transport::Udp, "A", "REFUSED", 1),
                expect(Transport::Udp, "AAAA", "NXDOMAIN", 1),
                expect(Transport::Udp, "TXT", "NOERROR", 2),
                expect(Transport::Udp, "other", "NOERROR", 1),
                expect(Transport::Udp, "other", "FORMERR", 1),
                expect(Transport::Tcp, "A", "NOERROR", 1),
                expect(Transport::Tcp, "MX", "SERVFAIL", 1),
            ]
        );
        assert_eq!(counted.iter().map(|c| c.count).sum::<u64>(), replies as u64);
        assert_eq!(resolver.stats.queries(Transport::Udp), 7);
        assert_eq!(resolver.stats.queries(Transport::Tcp), 3);
    }
}

//! The resolver behind the fast path: every query the XDP program passes
//! (and every TCP query) ends here.
//!
//! [`Resolver::handle`] is the protocol: bytes in, bytes out, no sockets.
//! In order: refuse clients outside `allow_from`; FORMERR for what does not
//! parse, NOTIMP for other opcodes, BADVERS for EDNS versions above 0;
//! answer mesh names from the table ([`authority`]); forward everything
//! else through the [`cache`] to the [`upstream`]s of its zone
//! ([`forwarding`]), one upstream query for identical questions in flight, serving stale answers when every
//! upstream fails; truncate what does not fit the client's UDP size; and,
//! over UDP, hold each client prefix to the [`rate_limit`].
//! [`server`] is the I/O: UDP and TCP listeners.
//!
//! The parts, one file each: `pipeline.rs` takes a query through those
//! steps ([`Resolver::handle_now`], then [`Resolver::finish`] for what
//! needs an upstream); `mesh.rs` holds what comes from the services file
//! ([`Mesh`]); `forward.rs` the forwarding, coalescing and stale answers;
//! `reply.rs` the replies built and encoded to the client's size.

pub mod authority;
pub mod cache;
#[cfg(test)]
mod conformance;
mod forward;
pub mod forwarding;
mod mesh;
mod pipeline;
pub mod rate_limit;
mod reply;
pub mod server;
pub mod stats;
pub mod upstream;
mod wire;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock, atomic::Ordering},
    time::{Duration, Instant},
};

use crate::{
    cidr::Cidr,
    config::{ResolverSettings, forward::ForwardZone},
    table::Table,
};
use cache::{Cache, Key};
use forward::Inflight;
use forwarding::Forwarding;
pub use mesh::{DefaultClients, Mesh};
pub use pipeline::{Pending, Step};
use rate_limit::{Admission, RateLimiter};
pub use stats::Stats;

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

pub struct Resolver {
    mesh: RwLock<Arc<Mesh>>,
    /// Who may ask when the services file does not say.
    defaults: RwLock<DefaultClients>,
    /// Where names outside the mesh go, by zone; replaced when the file's
    /// `forward:` changes.
    forwarding: RwLock<Arc<Forwarding>>,
    /// The root zone's upstreams when the file does not list `.`
    /// (`--upstream`, or resolv.conf's), and resolv.conf's nameservers for
    /// a zone that names them.
    root: Vec<SocketAddr>,
    resolv_conf: Vec<SocketAddr>,
    cache: Cache,
    /// Questions being forwarded now, so the same one is not sent twice.
    inflight: Mutex<HashMap<Key, Inflight>>,
    /// The services file's `rate_limit`, for what goes out over UDP.
    rate_limiter: RateLimiter,
    pub stats: Stats,
}

impl Resolver {
    /// A resolver for `table`, answering the clients the file's
    /// `allow_from` names (`settings`), or if it names none loopback and
    /// the interfaces' subnets (`default_allow_from`) and the pods (see
    /// [`DefaultClients`]; none routed until [`Resolver::set_routed_pods`]).
    pub fn new(
        table: Arc<Table>,
        settings: &ResolverSettings,
        default_allow_from: Vec<Cidr>,
        root: &[SocketAddr],
        cache: Cache,
    ) -> Self {
        cache.set_stale_max(Duration::from_secs(settings.stale_max));
        let rate_limiter = RateLimiter::default();
        rate_limiter.set(settings.rate_limit);
        let defaults = DefaultClients {
            local: default_allow_from,
            routed_pods: Vec::new(),
        };
        Self {
            mesh: RwLock::new(Arc::new(Mesh::new(table, settings, &defaults))),
            defaults: RwLock::new(defaults),
            forwarding: RwLock::new(Arc::new(Forwarding::new(
                &settings.forward,
                root,
                &[],
                None,
            ))),
            root: root.to_vec(),
            resolv_conf: Vec::new(),
            cache,
            inflight: Mutex::default(),
            rate_limiter,
            stats: Stats::default(),
        }
    }

    /// Serves `table`, and its file's `allow_from`, `stale_max` and
    /// `rate_limit` (`settings`), from now on.
    pub fn set_table(&self, table: Arc<Table>, settings: &ResolverSettings) {
        self.cache
            .set_stale_max(Duration::from_secs(settings.stale_max));
        self.rate_limiter.set(settings.rate_limit);
        let defaults = self.defaults.read().expect("defaults lock");
        let mesh = Arc::new(Mesh::new(table, settings, &defaults));
        *self.mesh.write().expect("mesh lock") = mesh;
        self.set_forwarding(&settings.forward);
    }

    /// Forwards by the file's `zones` from now on, keeping the zones that
    /// did not change (and their upstreams' health).
    fn set_forwarding(&self, zones: &[ForwardZone]) {
        let mut forwarding = self.forwarding.write().expect("forwarding lock");
        *forwarding = Arc::new(Forwarding::new(
            zones,
            &self.root,
            &self.resolv_conf,
            Some(&forwarding),
        ));
    }

    /// The node's resolv.conf nameservers (less meshdns itself), for a
    /// `forward:` zone that names `resolv.conf`.
    pub fn with_resolv_conf(
        mut self,
        nameservers: Vec<SocketAddr>,
        settings: &ResolverSettings,
    ) -> Self {
        self.resolv_conf = nameservers;
        self.set_forwarding(&settings.forward);
        self
    }

    /// The pods' addresses as the node's routes give them, for when the
    /// file gives no `pod_cidrs`. Returns whether whom it answers changed.
    pub fn set_routed_pods(&self, pods: Vec<Cidr>) -> bool {
        let mut defaults = self.defaults.write().expect("defaults lock");
        if defaults.routed_pods == pods {
            return false;
        }
        defaults.routed_pods = pods;
        let mut mesh = self.mesh.write().expect("mesh lock");
        match mesh.with_defaults(&defaults) {
            Some(changed) => {
                *mesh = Arc::new(changed);
                true
            }
            None => false,
        }
    }

    /// The table it answers from now.
    pub fn table(&self) -> Arc<Table> {
        self.mesh.read().expect("mesh lock").table.clone()
    }

    /// Whom it answers now: the file's `allow_from`, or the default.
    pub fn allow_from(&self) -> Vec<Cidr> {
        self.mesh.read().expect("mesh lock").allow_from.clone()
    }

    /// Where names outside the mesh go now, by zone.
    pub fn forwarding(&self) -> Arc<Forwarding> {
        self.forwarding.read().expect("forwarding lock").clone()
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// `reply` as it goes to `client` over UDP by the rate limit: whole,
    /// truncated, or (`None`) not at all.
    pub fn rate_limited(&self, reply: Vec<u8>, client: SocketAddr) -> Option<Vec<u8>> {
        match self.rate_limiter.admit(client.ip(), Instant::now()) {
            Admission::Whole => Some(reply),
            Admission::Truncated => {
                self.stats
                    .rate_limited_truncated
                    .fetch_add(1, Ordering::Relaxed);
                rate_limit::truncated(&reply)
            }
            Admission::Dropped => {
                self.stats
                    .rate_limited_dropped
                    .fetch_add(1, Ordering::Relaxed);
                None
            }
        }
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
}

#[cfg(test)]
mod tests {
    use hickory_proto::{
        op::{Message, MessageType, OpCode, Query},
        rr::{Name, RecordType},
    };

    use super::*;
    use crate::resolver::{cache::Limits, stats::ResponseCount};

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
            &[],
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

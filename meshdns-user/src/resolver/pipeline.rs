//! One query's way through the resolver, in two steps: what needs no
//! upstream ([`Resolver::handle_now`]), then what does
//! ([`Resolver::finish`]), so that the socket loop answers the first inline
//! and spawns only for the second.

use std::{
    net::{IpAddr, SocketAddr},
    sync::atomic::Ordering,
    time::Instant,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, ResponseCode},
    rr::RecordType,
    serialize::binary::BinEncodable as _,
};

use super::{
    Resolver, Transport,
    authority::{self, Verdict},
    cache::{Key, Lookup},
    reply::{
        PLAIN_UDP_REPLY, answer_for, client_limit, error_reply, formerr, not_implemented,
        reply_limit,
    },
    wire::QueryView,
};

/// What [`Resolver::handle_now`] did.
pub enum Step {
    /// Answered (or nothing to answer).
    Done(Option<Vec<u8>>),
    /// Needs an upstream: finish it with [`Resolver::finish`].
    Forward(Box<Pending>),
}

/// A query that needs an upstream.
pub struct Pending {
    pub(super) query: Message,
    pub(super) key: Key,
    /// The cache's expired answer, if any, for when every upstream fails.
    pub(super) stale: Option<Message>,
    /// How it came, which also sets the longest reply the client takes.
    transport: Transport,
    limit: usize,
}

impl Resolver {
    /// Everything that needs no upstream, done at once: refusals, errors,
    /// mesh answers, cache hits. What needs an upstream comes back as a
    /// [`Pending`] for [`Resolver::finish`], so the socket loop can answer
    /// the rest inline and spawn only for this.
    pub fn handle_now(&self, request: &[u8], client: SocketAddr, transport: Transport) -> Step {
        self.stats.queries[transport.index()].fetch_add(1, Ordering::Relaxed);
        if let Some(reply) = self.reply_from_template(request, client, transport) {
            return Step::Done(Some(reply));
        }
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
        let limit = reply_limit(&query, transport);
        match self.reply_now(query, client.ip()) {
            Ok(reply) => Step::Done(Some(self.encode(reply, transport, limit))),
            Err(mut pending) => {
                pending.transport = transport;
                pending.limit = limit;
                Step::Forward(pending)
            }
        }
    }

    /// The fast lane (`wire`): a plain query answered from reply bytes kept
    /// for its question, without building a `Message`: the zone's own reply
    /// if the name is in the zone, else a fresh answer in the cache. `None` sends it the whole way, which
    /// gives the same bytes (a test checks it).
    fn reply_from_template(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let query = QueryView::parse(request)?;
        let mesh = self.mesh.read().expect("mesh lock").clone();
        if !mesh.allows(client.ip()) {
            return None;
        }
        let name = query.lowercase_name();
        let ours = mesh.table.answers_for(&name);
        let key = Key {
            name,
            qtype: RecordType::from(query.qtype),
            qclass: query.qclass,
            dnssec_ok: query.edns.is_some_and(|edns| edns.dnssec_ok),
            // As the whole way keys them: the mesh's own answers alike
            // for both.
            checking_disabled: !ours && query.checking_disabled(),
        };
        let limit = client_limit(query.edns.map(|edns| edns.payload), transport);
        let mut reply = Vec::with_capacity(PLAIN_UDP_REPLY);
        // The zone's names from its own replies, the rest from the cache.
        let (replies, counter) = if ours {
            (&*mesh.replies, &self.stats.mesh_answers)
        } else {
            (&self.cache, &self.stats.cache_hits)
        };
        let rcode = replies.reply_from_template(&key, &query, limit, Instant::now(), &mut reply)?;
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats
            .responses
            .count(transport, Some(key.qtype), rcode);
        Some(reply)
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
            return Ok(not_implemented(&query));
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

        let question = &query.queries[0];
        if matches!(question.query_type(), RecordType::AXFR | RecordType::IXFR) {
            // No zone is transferred, ours or another's (RFC 5936 §2.2.1:
            // REFUSED, not an answer that is not a transfer).
            return Ok(error_reply(&query, ResponseCode::Refused));
        }
        let Ok(name) = question.name().to_lowercase().to_bytes() else {
            return Ok(error_reply(&query, ResponseCode::FormErr));
        };
        let key = Key {
            name: name.into(),
            qtype: question.query_type(),
            qclass: u16::from(question.query_class()),
            dnssec_ok: query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
            checking_disabled: query.metadata.checking_disabled,
        };

        if let Verdict::Answer(reply) = authority::answer(&mesh.table, &mesh.zones, &query) {
            self.stats.mesh_answers.fetch_add(1, Ordering::Relaxed);
            // The mesh's own answers are the same whatever CD says.
            mesh.remember(Key {
                checking_disabled: false,
                ..key
            });
            return Ok(reply);
        }
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
}

#[cfg(test)]
impl Resolver {
    /// The whole way's reply to `request` (hickory's `Message`, never the
    /// fast lane), for the tests that hold the two to the same bytes.
    pub(super) fn whole_way(
        &self,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Vec<u8> {
        let query = Message::from_vec(request).unwrap();
        let limit = reply_limit(&query, transport);
        let reply = self
            .reply_now(query, client.ip())
            .ok()
            .expect("answered now");
        self.encode(reply, transport, limit)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        net::Ipv4Addr,
        sync::Arc,
        time::{Duration, Instant},
    };

    use hickory_proto::{
        op::{Edns, Query},
        rr::{
            DNSClass, Name, RData, Record,
            rdata::{A, SOA},
        },
    };

    use super::*;
    use crate::{
        config::ResolverSettings,
        resolver::cache::{Cache, Limits},
        table::Table,
    };

    fn resolver() -> Resolver {
        let table = Table::parse(
            "zone: mesh\nauthoritative: true\nservices:\n  - name: redis\n    vips: [240.0.0.100]\n",
        )
        .unwrap();
        Resolver::new(
            Arc::new(table),
            &ResolverSettings::default(),
            vec!["127.0.0.0/8".parse().unwrap()],
            &[],
            Cache::new(Limits::default()),
        )
    }

    /// An upstream's answer for `name`: two A records (TTL 300 and 60), or
    /// NXDOMAIN with the zone's SOA.
    fn upstream_answer(name: &str, qtype: RecordType, nxdomain: bool) -> Message {
        let name = Name::from_ascii(name).unwrap();
        let mut answer = Message::new(99, MessageType::Response, OpCode::Query);
        answer.metadata.recursion_available = true;
        answer.add_query(Query::query(name.clone(), qtype));
        if nxdomain {
            answer.metadata.response_code = ResponseCode::NXDomain;
            let apex = name.base_name();
            let soa = SOA::new(apex.clone(), apex.clone(), 1, 7200, 900, 86400, 120);
            answer.add_authority(Record::from_rdata(apex, 3600, RData::SOA(soa)));
        } else {
            for (ttl, last) in [(300, 1), (60, 2)] {
                let a = A(Ipv4Addr::new(192, 0, 2, last));
                answer.add_answer(Record::from_rdata(name.clone(), ttl, RData::A(a)));
            }
        }
        answer
    }

    fn cache_answer(
        resolver: &Resolver,
        name: &str,
        qtype: RecordType,
        dnssec_ok: bool,
        answer: &Message,
        age: Duration,
    ) {
        let key = Key {
            name: Name::from_ascii(name)
                .unwrap()
                .to_lowercase()
                .to_bytes()
                .unwrap()
                .into(),
            qtype,
            qclass: 1,
            dnssec_ok,
            checking_disabled: false,
        };
        let stored = Instant::now().checked_sub(age).unwrap();
        resolver.remember(key, answer, stored);
    }

    fn query(name: &str, qtype: RecordType, id: u16, rd: bool, edns: Option<bool>) -> Vec<u8> {
        let mut query = Message::new(id, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = rd;
        let mut question = Query::query(Name::from_ascii(name).unwrap(), qtype);
        question.set_query_class(DNSClass::IN);
        query.add_query(question);
        if let Some(dnssec_ok) = edns {
            let mut opt = Edns::new();
            opt.set_max_payload(4096);
            opt.set_dnssec_ok(dnssec_ok);
            query.set_edns(opt);
        }
        query.to_vec().unwrap()
    }

    /// What the whole way (hickory's `Message`) replies to `request`.
    fn whole_way(
        resolver: &Resolver,
        request: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Vec<u8> {
        resolver.whole_way(request, client, transport)
    }

    /// The fast lane gives what the whole way gives: the client's ID, RD
    /// and name case (RFC 1035 §4.1.1, §7.3; DNS 0x20), byte for byte, TTLs
    /// counted down by the answer's age (§7.4), our OPT record or none
    /// (RFC 6891 §7), for positive and negative answers (RFC 2308 §5).
    #[test]
    fn rfc1035_7_4_the_fast_lane_replies_as_the_whole_way() {
        let resolver = resolver();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        // Half a second into a second of age, so that both ways count the
        // same whole seconds.
        let age = Duration::from_millis(10_500);
        for (name, qtype, nxdomain) in [
            ("www.example.", RecordType::A, false),
            ("gone.example.", RecordType::AAAA, true),
        ] {
            for dnssec_ok in [false, true] {
                let answer = upstream_answer(name, qtype, nxdomain);
                cache_answer(&resolver, name, qtype, dnssec_ok, &answer, age);
            }
            let asked = name.to_uppercase().replacen('W', "w", 1);
            for (id, rd, edns, transport) in [
                (1, true, None, Transport::Udp),
                (2, false, Some(false), Transport::Udp),
                (3, true, Some(true), Transport::Udp),
                (4, true, Some(false), Transport::Tcp),
            ] {
                let request = query(&asked, qtype, id, rd, edns);
                let fast = resolver
                    .reply_from_template(&request, client, transport)
                    .expect("the fast lane answers");
                let whole = whole_way(&resolver, &request, client, transport);
                // The same message; names compare without case (RFC 4343
                // §3): the whole way writes an answer's owner as the
                // upstream had it, the lane points to the question.
                assert_eq!(
                    Message::from_vec(&fast).unwrap(),
                    Message::from_vec(&whole).unwrap(),
                    "{asked} {qtype} id {id}"
                );
                // And byte for byte the client's ID, RD and question (its
                // name as sent).
                let question_end = 12 + asked.len() + 1 + 4;
                assert_eq!(fast[..2], request[..2]);
                assert_eq!(fast[2] & 1, request[2] & 1);
                assert_eq!(fast[12..question_end], request[12..question_end]);
            }
        }
    }

    /// What the fast lane leaves to the whole way: a client outside
    /// allow_from (REFUSED), a name of the zone it has not answered yet, an
    /// expired answer (served
    /// stale only when upstreams fail, RFC 8767), and a reply that would
    /// need TC (RFC 1035 §4.2.1).
    #[test]
    fn rfc8767_4_the_fast_lane_leaves_the_rest_to_the_whole_way() {
        let resolver = resolver();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let fresh = Duration::from_secs(1);
        let answer = upstream_answer("www.example.", RecordType::A, false);
        cache_answer(
            &resolver,
            "www.example.",
            RecordType::A,
            false,
            &answer,
            fresh,
        );
        let request = query("www.example.", RecordType::A, 1, true, None);
        assert!(
            resolver
                .reply_from_template(&request, client, Transport::Udp)
                .is_some()
        );
        let outside: SocketAddr = "198.18.0.2:40000".parse().unwrap();
        assert!(
            resolver
                .reply_from_template(&request, outside, Transport::Udp)
                .is_none()
        );

        // A name of the zone is not answered from the forwarding cache.
        let answer = upstream_answer("cached.mesh.", RecordType::A, false);
        cache_answer(
            &resolver,
            "cached.mesh.",
            RecordType::A,
            false,
            &answer,
            fresh,
        );
        let request = query("cached.mesh.", RecordType::A, 1, true, None);
        assert!(
            resolver
                .reply_from_template(&request, client, Transport::Udp)
                .is_none()
        );

        let answer = upstream_answer("old.example.", RecordType::A, false);
        cache_answer(
            &resolver,
            "old.example.",
            RecordType::A,
            false,
            &answer,
            Duration::from_secs(61),
        );
        let request = query("old.example.", RecordType::A, 1, true, None);
        assert!(
            resolver
                .reply_from_template(&request, client, Transport::Udp)
                .is_none()
        );

        let mut big = upstream_answer("big.example.", RecordType::A, false);
        for i in 0..40 {
            let a = A(Ipv4Addr::new(192, 0, 2, i));
            big.add_answer(Record::from_rdata(
                Name::from_ascii("big.example.").unwrap(),
                300,
                RData::A(a),
            ));
        }
        cache_answer(&resolver, "big.example.", RecordType::A, false, &big, fresh);
        let request = query("big.example.", RecordType::A, 1, true, None);
        assert!(
            resolver
                .reply_from_template(&request, client, Transport::Udp)
                .is_none()
        );
        assert!(
            resolver
                .reply_from_template(&request, client, Transport::Tcp)
                .is_some()
        );
    }

    /// Near the client's size the lane takes only what the whole way would
    /// not truncate (RFC 1035 §4.2.1): the whole way writes the client's
    /// spelling of the name, so an answer owned by it in another case is
    /// not compressed there and takes more bytes.
    #[test]
    fn rfc1035_4_2_1_the_lane_never_sends_in_full_what_the_whole_way_truncates() {
        let resolver = resolver();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let name = "www.example.";
        let mut answer = upstream_answer(name, RecordType::A, false);
        answer.answers.clear();
        for i in 0..30 {
            let a = A(Ipv4Addr::new(192, 0, 2, i));
            answer.add_answer(Record::from_rdata(
                Name::from_ascii(name).unwrap(),
                300,
                RData::A(a),
            ));
        }
        cache_answer(
            &resolver,
            name,
            RecordType::A,
            false,
            &answer,
            Duration::from_millis(500),
        );
        // Asked as cached: 509 bytes both ways, the same bytes.
        let request = query(name, RecordType::A, 1, true, None);
        let fast = resolver
            .reply_from_template(&request, client, Transport::Udp)
            .expect("the lane answers");
        assert_eq!(fast.len(), 509);
        assert_eq!(fast, whole_way(&resolver, &request, client, Transport::Udp));
        // Asked in upper case: the whole way needs 520 bytes and sends TC,
        // so the lane leaves it.
        let request = query("WWW.EXAMPLE.", RecordType::A, 2, true, None);
        assert!(
            resolver
                .reply_from_template(&request, client, Transport::Udp)
                .is_none()
        );
        let whole =
            Message::from_vec(&whole_way(&resolver, &request, client, Transport::Udp)).unwrap();
        assert!(whole.metadata.truncation);
    }

    /// The zone's own answers (RFC 1035 §6.2), after the whole way gave them
    /// once, come from the lane with the same message: an address, NODATA
    /// and NXDOMAIN with the SOA (RFC 2308 §2.1, §2.2), RD and CD copied
    /// (RFC 4035 §3.1.6), TTLs as the table has them.
    #[test]
    fn rfc2308_2_the_zone_answers_from_the_lane_as_the_whole_way() {
        let resolver = resolver();
        let client: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        for (name, qtype) in [
            ("Redis.Mesh.", RecordType::A),
            ("Redis.Mesh.", RecordType::AAAA),
            ("NoSuch.Mesh.", RecordType::A),
        ] {
            for (id, rd, cd, edns) in [(1, true, false, None), (2, false, true, Some(true))] {
                let mut request = query(name, qtype, id, rd, edns);
                if cd {
                    request[3] |= 0x10;
                }
                let whole = whole_way(&resolver, &request, client, Transport::Udp);
                // Now it has been answered once, the lane has it.
                let fast = resolver
                    .reply_from_template(&request, client, Transport::Udp)
                    .expect("the lane answers what the zone answered");
                assert_eq!(
                    Message::from_vec(&fast).unwrap(),
                    Message::from_vec(&whole).unwrap(),
                    "{name} {qtype} id {id}"
                );
                // Byte for byte up to the question's end: the client's
                // ID, its RD and CD, and its name as sent (RFC 4343 lets
                // later names differ in case: compression points at the
                // question where the case allows).
                let question_end = 12 + name.len() + 1 + 4;
                assert_eq!(fast[..question_end], whole[..question_end]);
            }
        }
    }
}

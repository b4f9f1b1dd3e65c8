//! One query's way through the resolver, in two steps: what needs no
//! upstream ([`Resolver::handle_now`]), then what does
//! ([`Resolver::finish`]), so that the socket loop answers the first inline
//! and spawns only for the second.

use std::{
    net::{IpAddr, SocketAddr},
    sync::atomic::Ordering,
    time::Instant,
};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};

use super::{
    Resolver, Transport,
    authority::{self, Verdict},
    cache::{Key, Lookup},
    reply::{answer_for, error_reply, formerr, reply_limit},
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
}

//! What goes back to the client: upstream answers and errors made into
//! replies to its query, and every reply encoded to fit the size the
//! client takes (truncated, with TC set, when it does not).

use std::sync::atomic::Ordering;

use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::RecordType,
};

use super::{
    Resolver, Transport,
    authority::{our_edns, reply_to},
};

/// Largest UDP reply we send, whatever the client offers: the DNS Flag Day
/// 2020 size, which avoids IP fragmentation.
const MAX_UDP_REPLY: usize = meshdns_common::EDNS_UDP_PAYLOAD_SIZE as usize;
/// A client without EDNS gets at most this (RFC 1035 §4.2.1).
pub(super) const PLAIN_UDP_REPLY: usize = 512;

/// The longest reply the client of `query` takes over `transport`.
pub(super) fn reply_limit(query: &Message, transport: Transport) -> usize {
    client_limit(
        query.edns.as_ref().map(|edns| edns.max_payload()),
        transport,
    )
}

/// The longest reply a client takes over `transport`, given its EDNS UDP
/// payload size if it sent an OPT record.
pub(super) fn client_limit(edns_payload: Option<u16>, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => edns_payload.map_or(PLAIN_UDP_REPLY, |payload| {
            usize::from(payload).clamp(PLAIN_UDP_REPLY, MAX_UDP_REPLY)
        }),
    }
}

impl Resolver {
    /// Encodes `reply`; if it is longer than `limit`, sends instead the
    /// header, question and OPT with TC set, so the client retries over TCP.
    /// Every reply to a parsed query passes here once, as it will be sent:
    /// the place to count replies by type and rcode.
    pub(super) fn encode(&self, mut reply: Message, transport: Transport, limit: usize) -> Vec<u8> {
        let bytes = match reply.to_vec() {
            Ok(bytes) if bytes.len() <= limit => bytes,
            Ok(_) => {
                self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                super::rate_limit::truncate(&mut reply);
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
/// the client's ID, question bytes (case, as sent), RD and CD (the cached
/// answer's header is another client's: RFC 4035 §3.2.2); our OPT record
/// if the client sent one.
pub(super) fn answer_for(query: &Message, answer: &Message) -> Message {
    let mut reply = answer.clone();
    reply.metadata.id = query.metadata.id;
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.checking_disabled = query.metadata.checking_disabled;
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
pub(super) fn error_reply(query: &Message, rcode: ResponseCode) -> Message {
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

/// NOTIMP for an opcode we do not implement: the ID, the opcode and QR,
/// nothing else (RFC 1035 §4.1.1 defines RD, RA and CD for queries only;
/// an unknown opcode's sections may not even be a question), and our OPT
/// record if the request had one (RFC 6891 §6.1.1).
pub(super) fn not_implemented(query: &Message) -> Message {
    let mut reply = Message::new(
        query.metadata.id,
        MessageType::Response,
        query.metadata.op_code,
    );
    reply.metadata.response_code = ResponseCode::NotImp;
    if query.edns.is_some() {
        reply.set_edns(our_edns(false));
    }
    reply
}

/// FORMERR for a message that does not parse, if it has a header at all
/// (RFC 1035 §4.1.1): its ID and opcode, QR set, nothing else.
pub(super) fn formerr(request: &[u8]) -> Option<Vec<u8>> {
    if request.len() < 12 || request[2] & 0x80 != 0 {
        return None;
    }
    let mut reply = request[..12].to_vec();
    reply[2] = 0x80 | (request[2] & 0x78);
    reply[3] = ResponseCode::FormErr.low();
    reply[4..12].fill(0);
    Some(reply)
}

//! `meshdns lookup NAME [TYPE]`: what the fast path answers for a query,
//! and why; and, for a query it passes, what the agent does with it.
//!
//! The answer is not worked out again here: the query runs, in a frame,
//! through the very program the kernel serves with (BPF_PROG_TEST_RUN), on
//! the table that serves (the pinned maps), with counters of its own, so
//! the one counter that moves says why. A passed query goes through the
//! resolver's own rules for the zone ([`authority::answer`]) on the same
//! table.

use std::fmt;

use hickory_proto::{
    op::{Edns, Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, Record, RecordType},
};
use meshdns_common::{Counter, EDNS_UDP_PAYLOAD_SIZE, NameKey};
use serde::Serialize;

use super::{InspectError, Pinned, Result, frame};
use crate::{
    fastpath::{FastPath, Pins, XDP_PASS, XDP_TX},
    resolver::{
        authority::{self, Verdict, Zones},
        forwarding::{self, ZoneView},
        stats,
    },
    source::provenance::Provenance,
};

/// What became of one query.
#[derive(Debug, Serialize)]
pub struct Lookup {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub fast_path: FastPathVerdict,
    /// For a passed query: what the agent does with it.
    pub agent: Option<AgentVerdict>,
    /// The source the name came from, if not the services file (and the
    /// agent's state folder says).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct FastPathVerdict {
    /// `answered` (XDP_TX) or `passed` (XDP_PASS, to the kernel and the agent).
    pub action: &'static str,
    /// The counter that moved, as in `/metrics` (`answered_a`, `pass_not_in_zone`, ...).
    pub outcome: &'static str,
    pub reason: &'static str,
    /// The reply, if the fast path answered.
    pub reply: Option<Reply>,
}

#[derive(Debug, Serialize)]
pub struct AgentVerdict {
    /// `answers` (from the mesh table) or `forwards` (to the upstreams).
    pub action: &'static str,
    pub reply: Option<Reply>,
    /// For a forwarded name: the zone that forwards it and its upstreams,
    /// as the agent last wrote them to its state folder.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forwarded_by: Option<ZoneView>,
}

#[derive(Debug, Serialize)]
pub struct Reply {
    pub rcode: String,
    pub authoritative: bool,
    pub answers: Vec<Rr>,
    pub authority: Vec<Rr>,
}

/// One resource record, presented as in zone files.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Rr {
    pub name: String,
    pub ttl: u32,
    #[serde(rename = "type")]
    pub rtype: String,
    pub data: String,
}

pub fn lookup(
    pins: &Pins,
    name: &str,
    qtype: &str,
    provenance: Option<&Provenance>,
    forwarding: &[ZoneView],
) -> Result<Lookup> {
    let query = query(name, qtype)?;
    let pinned = Pinned::open(pins)?;
    let mut fast_path = FastPath::load_beside(pins)?;
    let message = query
        .to_vec()
        .map_err(|e| InspectError::Query(format!("encoding the query: {e}")))?;
    let input = frame::query_frame(&message);
    let (action, output) = fast_path
        .test_run(&input)
        .map_err(|e| InspectError::Query(format!("running the program on the query: {e}")))?;
    let counters = fast_path.counters()?;
    let moved: Vec<Counter> = Counter::ALL
        .into_iter()
        .filter(|c| counters.get(*c) != 0)
        .collect();
    let [outcome] = moved[..] else {
        return Err(InspectError::Query(format!(
            "the program moved {} counters for one query ({moved:?})",
            moved.len()
        )));
    };
    let question = &query.queries[0];
    let mut lookup = Lookup {
        name: question.name().to_string(),
        qtype: question.query_type().to_string(),
        fast_path: FastPathVerdict {
            action: if outcome.is_answer() {
                "answered"
            } else {
                "passed"
            },
            outcome: outcome.name(),
            reason: outcome.description(),
            reply: None,
        },
        agent: None,
        source: provenance
            .and_then(|p| p.source_of(&question.name().to_string()))
            .map(str::to_string),
    };
    match action {
        XDP_TX if outcome.is_answer() => {
            let reply = frame::dns_message(&output)
                .and_then(|bytes| Message::from_vec(bytes).ok())
                .ok_or_else(|| InspectError::Query("the program's reply does not parse".into()))?;
            lookup.fast_path.reply = Some(Reply::of(&reply));
        }
        XDP_PASS if !outcome.is_answer() => {
            // A name that makes no key is forwarded on the zone alone.
            let key = authority::key_of(question.name()).unwrap_or(NameKey::ZERO);
            let table = pinned.table_for(&key)?;
            let zone = Zones::of(&table);
            lookup.agent = Some(match authority::answer(&table, &zone, &query) {
                Verdict::Answer(reply) => AgentVerdict {
                    action: "answers",
                    reply: Some(Reply::of(&reply)),
                    forwarded_by: None,
                },
                Verdict::Forward => AgentVerdict {
                    action: "forwards",
                    reply: None,
                    forwarded_by: forwarding::zone_of(forwarding, &question.name().to_string())
                        .cloned(),
                },
            });
        }
        action => {
            return Err(InspectError::Query(format!(
                "the program returned action {action} with outcome {}",
                outcome.name()
            )));
        }
    }
    Ok(lookup)
}

/// The query a resolver such as dig sends: RD, EDNS(0) with our payload
/// size.
fn query(name: &str, qtype: &str) -> Result<Message> {
    let mut name = Name::from_ascii(name)
        .map_err(|e| InspectError::Query(format!("{name:?} is not a DNS name: {e}")))?;
    name.set_fqdn(true);
    let qtype: RecordType = qtype
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| InspectError::Query(format!("{qtype:?} is not a record type")))?;
    let mut message = Message::new(0x6d64, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(name, qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_UDP_PAYLOAD_SIZE).set_version(0);
    message.set_edns(edns);
    Ok(message)
}

impl Reply {
    fn of(message: &Message) -> Self {
        Self {
            rcode: rcode_name(message.metadata.response_code),
            authoritative: message.metadata.authoritative,
            answers: message.answers.iter().map(Rr::of).collect(),
            authority: message.authorities.iter().map(Rr::of).collect(),
        }
    }
}

impl Rr {
    fn of(record: &Record) -> Self {
        Self {
            name: record.name.to_string(),
            ttl: record.ttl,
            rtype: record.record_type().to_string(),
            data: record.data.to_string(),
        }
    }
}

/// The mnemonic dig prints, as `/metrics` labels it.
fn rcode_name(rcode: ResponseCode) -> String {
    match stats::RCODES[stats::rcode_index(rcode)] {
        "other" => format!("RCODE{}", u16::from(rcode)),
        name => name.to_string(),
    }
}

impl fmt::Display for Rr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} IN {} {}",
            self.name, self.ttl, self.rtype, self.data
        )
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "  {}", self.rcode)?;
        if self.authoritative {
            write!(f, ", authoritative")?;
        }
        writeln!(f)?;
        for rr in &self.answers {
            writeln!(f, "  answer     {rr}")?;
        }
        for rr in &self.authority {
            writeln!(f, "  authority  {rr}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "query:      {} {}", self.name, self.qtype)?;
        if let Some(source) = &self.source {
            writeln!(f, "name from:  {source}")?;
        }
        writeln!(
            f,
            "fast path:  {} ({}): {}",
            self.fast_path.action, self.fast_path.outcome, self.fast_path.reason
        )?;
        if let Some(reply) = &self.fast_path.reply {
            write!(f, "{reply}")?;
        }
        match &self.agent {
            None => {}
            Some(AgentVerdict {
                reply: Some(reply), ..
            }) => {
                writeln!(f, "agent:      answers from the mesh table")?;
                write!(f, "{reply}")?;
            }
            Some(AgentVerdict {
                reply: None,
                forwarded_by,
                ..
            }) => {
                let to = match forwarded_by {
                    Some(zone) => format!(
                        "zone {}'s upstreams, {}",
                        zone.zone,
                        zone.upstreams
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    None => "the upstreams".to_string(),
                };
                writeln!(
                    f,
                    "agent:      forwards it to {to} (from its cache while fresh; stale if they all fail)"
                )?
            }
        }
        Ok(())
    }
}

//! The cache of forwarded answers: TTLs honoured (RFC 1035 §7.4), negative
//! answers cached for the SOA's say (RFC 2308 §5), memory bounded by entries
//! and bytes with least-recently-used eviction, and expired answers kept a
//! while longer to serve when every upstream fails (RFC 8767).

use std::{
    num::NonZeroUsize,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, ResponseCode},
    rr::{RData, RecordType},
};
use lru::LruCache;

use super::wire::{QueryView, Template};

/// What a cached answer is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The question's name, lowercased, in wire format: what a query's
    /// bytes give without building a `Name` (see `wire`).
    pub name: Box<[u8]>,
    pub qtype: RecordType,
    pub qclass: u16,
    /// Whether the query asked for DNSSEC records (DO).
    pub dnssec_ok: bool,
    /// Whether the query asked for no validation (CD): an answer fetched
    /// so is not one for a client that wants it validated (RFC 4035
    /// §3.2.2, RFC 6840 §5.9).
    pub checking_disabled: bool,
}

impl Key {
    /// The query a reply template is made from (`wire::Template`): this
    /// question, ID 0, RD and CD clear, and our OPT record if `edns`.
    /// `None` if the name does not decode (never for a key made from a
    /// query).
    pub fn template_query(&self, edns: bool) -> Option<Message> {
        use hickory_proto::{
            op::{MessageType, OpCode, Query},
            rr::{DNSClass, Name},
            serialize::binary::BinDecodable as _,
        };
        let mut query = Message::new(0, MessageType::Query, OpCode::Query);
        let mut question = Query::query(Name::from_bytes(&self.name).ok()?, self.qtype);
        question.set_query_class(DNSClass::from(self.qclass));
        query.add_query(question);
        if edns {
            query.set_edns(super::authority::our_edns(self.dnssec_ok));
        }
        Some(query)
    }

    /// The name as text, for the log.
    pub fn display_name(&self) -> String {
        use hickory_proto::serialize::binary::BinDecodable as _;
        hickory_proto::rr::Name::from_bytes(&self.name)
            .map_or_else(|_| format!("{:?}", self.name), |name| name.to_string())
    }
}

/// TTL of an answer served stale (RFC 8767 §4 recommends 30 seconds).
pub const STALE_TTL: u32 = 30;

/// Longest a positive answer is cached, whatever its TTL says.
const MAX_TTL: u32 = 86_400;

pub struct Limits {
    pub max_entries: usize,
    pub max_bytes: usize,
    /// How long past its expiry an answer may still be served stale.
    pub stale_max: Duration,
    /// Independent parts, each with its own lock and a share of the
    /// limits, so threads rarely wait for each other.
    pub shards: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 64 << 20,
            stale_max: Duration::from_secs(86_400),
            shards: 16,
        }
    }
}

struct Entry {
    /// The answer, for the whole way; `None` where only the fast lane reads
    /// the entry (`insert_lasting`).
    message: Option<Message>,
    rcode: ResponseCode,
    /// The answer as reply bytes, for queries without EDNS and with it.
    templates: Templates,
    stored: Instant,
    ttl: u32,
    bytes: usize,
}

/// A cached answer as the bytes of a reply (see `wire::Template`): one
/// for a query without an OPT record, one for a query with one.
#[derive(Default)]
pub struct Templates {
    pub plain: Option<Template>,
    pub edns: Option<Template>,
}

pub enum Lookup {
    /// An answer within its TTL, TTLs already reduced by its age.
    Fresh(Message),
    /// Expired, but within `stale_max`: only for when upstreams fail.
    Stale(Message),
    Miss,
}

pub struct Cache {
    /// Seconds an expired answer may be served stale; the services file
    /// sets it, and a reload may change it.
    stale_max_secs: AtomicU64,
    /// Bytes each shard may hold.
    shard_bytes: usize,
    shards: Vec<Mutex<Inner>>,
    hasher: std::collections::hash_map::RandomState,
}

struct Inner {
    entries: LruCache<Key, Entry>,
    bytes: usize,
    evictions: u64,
}

impl Cache {
    pub fn new(limits: Limits) -> Self {
        let shards = limits.shards.max(1);
        let cap = NonZeroUsize::new((limits.max_entries / shards).max(1)).expect("at least one");
        Self {
            stale_max_secs: AtomicU64::new(limits.stale_max.as_secs()),
            shard_bytes: limits.max_bytes / shards,
            shards: (0..shards)
                .map(|_| {
                    Mutex::new(Inner {
                        entries: LruCache::new(cap),
                        bytes: 0,
                        evictions: 0,
                    })
                })
                .collect(),
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &Key) -> &Mutex<Inner> {
        use std::hash::BuildHasher as _;
        let hash = self.hasher.hash_one(key);
        &self.shards[(hash % self.shards.len() as u64) as usize]
    }

    /// How long past their TTL answers may be served stale, from now on.
    pub fn set_stale_max(&self, stale_max: Duration) {
        self.stale_max_secs
            .store(stale_max.as_secs(), Ordering::Relaxed);
    }

    pub fn get(&self, key: &Key, now: Instant) -> Lookup {
        let mut inner = self.shard(key).lock().expect("cache lock");
        let Some(entry) = inner.entries.get(key) else {
            return Lookup::Miss;
        };
        let age = now.saturating_duration_since(entry.stored);
        let ttl = Duration::from_secs(u64::from(entry.ttl));
        if age < ttl {
            let left = (ttl - age).as_secs() as u32;
            let Some(message) = &entry.message else {
                return Lookup::Miss;
            };
            return Lookup::Fresh(with_ttls(message, |t| t.min(left)));
        }
        let stale_max = Duration::from_secs(self.stale_max_secs.load(Ordering::Relaxed));
        if age < ttl + stale_max
            && let Some(message) = &entry.message
        {
            return Lookup::Stale(with_ttls(message, |_| STALE_TTL));
        }
        if let Some(gone) = inner.entries.pop(key) {
            inner.bytes -= gone.bytes;
        }
        Lookup::Miss
    }

    /// The reply to `query` (whose key is `key`) from a fresh answer's
    /// template, into `out`, if there is one for it and it is at most
    /// `limit` bytes; its rcode. Stale answers and replies to truncate go
    /// the whole way.
    pub fn reply_from_template(
        &self,
        key: &Key,
        query: &QueryView,
        limit: usize,
        now: Instant,
        out: &mut Vec<u8>,
    ) -> Option<ResponseCode> {
        let mut inner = self.shard(key).lock().expect("cache lock");
        let entry = inner.entries.get(key)?;
        let age = now.saturating_duration_since(entry.stored);
        let ttl = Duration::from_secs(u64::from(entry.ttl));
        if age >= ttl {
            return None;
        }
        let template = match query.edns {
            Some(_) => entry.templates.edns.as_ref(),
            None => entry.templates.plain.as_ref(),
        }?;
        if template.len() + template.case_slack(query) > limit {
            return None;
        }
        template.reply_to(query, (ttl - age).as_secs() as u32, out);
        Some(entry.rcode)
    }

    /// Whether an entry for `key` is here (it does not count as a use).
    pub fn contains(&self, key: &Key) -> bool {
        self.shard(key)
            .lock()
            .expect("cache lock")
            .entries
            .contains(key)
    }

    /// Stores, for the fast lane only, replies that stay as they are while
    /// this cache lives (the mesh's own, in a cache that lives as long as
    /// its table): fresh forever, TTLs as they are, no `Message` kept.
    pub fn insert_lasting(&self, key: Key, rcode: ResponseCode, templates: Templates) {
        let entry = Entry {
            message: None,
            rcode,
            templates,
            stored: Instant::now(),
            ttl: u32::MAX,
            bytes: key.name.len(),
        };
        self.store(key, entry);
    }

    /// Stores an upstream's answer, if it may be cached: `bytes` is its
    /// encoded size, for the memory bound; `templates` its replies as bytes.
    pub fn insert(
        &self,
        key: Key,
        message: &Message,
        templates: Templates,
        bytes: usize,
        now: Instant,
    ) {
        let Some(ttl) = cache_ttl(message) else {
            return;
        };
        let entry = Entry {
            message: Some(message.clone()),
            rcode: message.metadata.response_code,
            templates,
            stored: now,
            ttl,
            bytes,
        };
        self.store(key, entry);
    }

    /// Puts `entry` in, counting the templates' bytes to its size, and
    /// evicts what the bounds want out.
    fn store(&self, key: Key, mut entry: Entry) {
        entry.bytes += entry.templates.plain.as_ref().map_or(0, Template::len)
            + entry.templates.edns.as_ref().map_or(0, Template::len);
        let bytes = entry.bytes;
        let mut inner = self.shard(&key).lock().expect("cache lock");
        inner.bytes += bytes;
        let replacing = inner.entries.contains(&key);
        if let Some((_, old)) = inner.entries.push(key, entry) {
            // The same key's old entry, or the least recently used one.
            inner.bytes -= old.bytes;
            if !replacing {
                inner.evictions += 1;
            }
        }
        while inner.bytes > self.shard_bytes {
            match inner.entries.pop_lru() {
                Some((_, old)) => {
                    inner.bytes -= old.bytes;
                    inner.evictions += 1;
                }
                None => break,
            }
        }
    }

    /// Entries, bytes, and evictions so far.
    pub fn stats(&self) -> (usize, usize, u64) {
        self.shards
            .iter()
            .fold((0, 0, 0), |(entries, bytes, evictions), shard| {
                let inner = shard.lock().expect("cache lock");
                (
                    entries + inner.entries.len(),
                    bytes + inner.bytes,
                    evictions + inner.evictions,
                )
            })
    }
}

/// How long `message` may be cached, if at all: the smallest TTL of its
/// records for an answer; for NXDOMAIN and NODATA the smaller of the SOA's
/// TTL and MINIMUM (RFC 2308 §5), and not at all without an SOA; never
/// for SERVFAIL and the like, nor for truncated messages.
pub fn cache_ttl(message: &Message) -> Option<u32> {
    if message.metadata.truncation {
        return None;
    }
    let negative = match message.metadata.response_code {
        ResponseCode::NoError => message.answers.is_empty(),
        ResponseCode::NXDomain => true,
        _ => return None,
    };
    let ttl = if negative {
        message.authorities.iter().find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })?
    } else {
        message
            .answers
            .iter()
            .chain(&message.authorities)
            .chain(
                message
                    .additionals
                    .iter()
                    .filter(|r| r.record_type() != RecordType::OPT),
            )
            .map(|r| r.ttl)
            .min()?
            .min(MAX_TTL)
    };
    (ttl > 0).then_some(ttl)
}

fn with_ttls(message: &Message, ttl: impl Fn(u32) -> u32) -> Message {
    let mut message = message.clone();
    for record in message
        .answers
        .iter_mut()
        .chain(message.authorities.iter_mut())
        .chain(message.additionals.iter_mut())
    {
        record.ttl = ttl(record.ttl);
    }
    message
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::{
        op::{MessageType, OpCode},
        rr::{
            Name, Record,
            rdata::{A, SOA},
        },
        serialize::binary::BinEncodable as _,
    };

    use super::*;

    fn key(name: &str) -> Key {
        Key {
            name: Name::from_ascii(name).unwrap().to_bytes().unwrap().into(),
            qtype: RecordType::A,
            qclass: 1,
            dnssec_ok: false,
            checking_disabled: false,
        }
    }

    fn answer(ttl: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.add_answer(Record::from_rdata(
            Name::from_ascii("a.test.").unwrap(),
            ttl,
            RData::A(A(Ipv4Addr::new(198, 18, 5, 1))),
        ));
        m
    }

    fn negative(rcode: ResponseCode, soa_ttl: u32, minimum: u32) -> Message {
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.metadata.response_code = rcode;
        let apex = Name::from_ascii("test.").unwrap();
        let soa = SOA::new(apex.clone(), apex.clone(), 1, 3600, 600, 86400, minimum);
        m.add_authority(Record::from_rdata(apex, soa_ttl, RData::SOA(soa)));
        m
    }

    #[test]
    fn rfc1035_7_4_ttls_count_down_then_expire() {
        let cache = Cache::new(Limits::default());
        let now = Instant::now();
        cache.insert(key("a.test."), &answer(300), Templates::default(), 100, now);
        match cache.get(&key("a.test."), now + Duration::from_secs(100)) {
            Lookup::Fresh(m) => assert_eq!(m.answers[0].ttl, 200),
            _ => panic!("want a fresh answer"),
        }
        assert!(matches!(cache.get(&key("b.test."), now), Lookup::Miss));
    }

    #[test]
    fn rfc8767_expired_answers_are_stale_with_a_30s_ttl_until_stale_max() {
        let limits = Limits {
            stale_max: Duration::from_secs(1000),
            shards: 1,
            ..Limits::default()
        };
        let cache = Cache::new(limits);
        let now = Instant::now();
        cache.insert(key("a.test."), &answer(60), Templates::default(), 100, now);
        match cache.get(&key("a.test."), now + Duration::from_secs(61)) {
            Lookup::Stale(m) => assert_eq!(m.answers[0].ttl, STALE_TTL),
            _ => panic!("want a stale answer"),
        }
        assert!(matches!(
            cache.get(&key("a.test."), now + Duration::from_secs(1061)),
            Lookup::Miss
        ));
        assert_eq!(cache.stats().0, 0, "a too-old entry is dropped");
    }

    #[test]
    fn a_new_stale_max_applies_to_what_is_cached_already() {
        let cache = Cache::new(Limits {
            stale_max: Duration::from_secs(1000),
            shards: 1,
            ..Limits::default()
        });
        let now = Instant::now();
        cache.insert(key("a.test."), &answer(60), Templates::default(), 100, now);
        let later = now + Duration::from_secs(120);
        assert!(matches!(
            cache.get(&key("a.test."), later),
            Lookup::Stale(_)
        ));
        cache.set_stale_max(Duration::from_secs(30));
        assert!(matches!(cache.get(&key("a.test."), later), Lookup::Miss));
    }

    #[test]
    fn rfc2308_5_negative_answers_live_for_the_soa_minimum() {
        assert_eq!(
            cache_ttl(&negative(ResponseCode::NXDomain, 3600, 30)),
            Some(30)
        );
        assert_eq!(
            cache_ttl(&negative(ResponseCode::NoError, 20, 30)),
            Some(20)
        );
        let mut no_soa = negative(ResponseCode::NXDomain, 3600, 30);
        no_soa.authorities.clear();
        assert_eq!(cache_ttl(&no_soa), None, "no SOA, no negative caching");
        assert_eq!(cache_ttl(&negative(ResponseCode::ServFail, 3600, 30)), None);
        let mut truncated = answer(60);
        truncated.metadata.truncation = true;
        assert_eq!(cache_ttl(&truncated), None);
        assert_eq!(cache_ttl(&answer(0)), None);
    }

    #[test]
    fn shards_share_the_limits() {
        let cache = Cache::new(Limits {
            max_entries: 1600,
            max_bytes: 16 * 1000,
            shards: 16,
            ..Limits::default()
        });
        let now = Instant::now();
        for i in 0..5000 {
            cache.insert(
                key(&format!("n{i}.test.")),
                &answer(60),
                Templates::default(),
                10,
                now,
            );
        }
        let (entries, bytes, evictions) = cache.stats();
        assert!(entries <= 1600 && bytes <= 16_000, "{entries} {bytes}");
        assert!(entries > 1000, "shards should fill evenly: {entries}");
        assert_eq!(evictions as usize, 5000 - entries);
    }

    #[test]
    fn memory_is_bounded_by_entries_and_bytes_lru_first() {
        let cache = Cache::new(Limits {
            max_entries: 2,
            max_bytes: 250,
            shards: 1,
            ..Limits::default()
        });
        let now = Instant::now();
        cache.insert(key("a.test."), &answer(60), Templates::default(), 100, now);
        cache.insert(key("b.test."), &answer(60), Templates::default(), 100, now);
        // Touch a, so b is the least recently used.
        assert!(matches!(cache.get(&key("a.test."), now), Lookup::Fresh(_)));
        cache.insert(key("c.test."), &answer(60), Templates::default(), 100, now);
        assert!(matches!(cache.get(&key("b.test."), now), Lookup::Miss));
        assert!(matches!(cache.get(&key("a.test."), now), Lookup::Fresh(_)));
        // Bytes: a 200-byte entry pushes out all but itself.
        cache.insert(key("d.test."), &answer(60), Templates::default(), 200, now);
        let (entries, bytes, evictions) = cache.stats();
        assert_eq!((entries, bytes), (1, 200));
        assert!(evictions >= 1);
    }
}

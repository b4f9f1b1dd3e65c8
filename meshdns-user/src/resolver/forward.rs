//! Forwarding: a question the mesh and the cache cannot answer goes to the
//! upstreams, once for all the identical questions in flight; what comes
//! back is cached, and when every upstream fails the cache's stale answer
//! (or SERVFAIL) is sent instead.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::Ordering},
    time::Instant,
};

use hickory_proto::op::{Message, ResponseCode};
use tokio::sync::watch;

use super::{
    Pending, Resolver,
    cache::{Key, Templates},
    reply::{answer_for, error_reply},
    wire::Template,
};

/// The answer to a question in flight, for the queries that wait for it.
pub(super) type Inflight = watch::Receiver<Option<Result<Arc<Message>, String>>>;

impl Resolver {
    /// Caches `answer` for `key` as received at `now`, as forwarding does,
    /// with its replies as bytes for the fast lane.
    pub fn remember(&self, key: Key, answer: &Message, now: Instant) {
        let bytes = answer.to_vec().map(|b| b.len()).unwrap_or(0);
        let templates = templates(&key, answer);
        self.cache.insert(key, answer, templates, bytes, now);
    }

    /// Answers from upstream, through the cache; stale or SERVFAIL if every
    /// upstream fails.
    pub(super) async fn forward(&self, pending: Box<Pending>) -> Message {
        let Pending {
            query, key, stale, ..
        } = *pending;
        match self.resolve_once(&key, &query).await {
            Ok(answer) => answer_for(&query, &answer),
            Err(error) => match stale {
                Some(answer) => {
                    self.stats.stale_answers.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, name = %key.display_name(), "upstreams failed; serving stale");
                    answer_for(&query, &answer)
                }
                None => {
                    self.stats.servfail.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%error, name = %key.display_name(), "upstreams failed");
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
        // Its zone's upstreams, and only those.
        let forwarding = self.forwarding();
        let forwarder = forwarding.for_name(&key.name);
        let result = match forwarder.upstreams.resolve(query).await {
            Ok(mut answer) => {
                forwarder.bound(&mut answer);
                self.remember(key.clone(), &answer, Instant::now());
                Ok(Arc::new(answer))
            }
            Err(error) => Err(format!("zone {}: {error}", forwarder.zone)),
        };
        let _ = sender.send(Some(result.clone()));
        result
    }
}

/// `answer` as the bytes of the replies the whole way gives to a query for
/// `key` without EDNS and with it, with RD clear, for the cache's fast lane
/// (`wire`). `None` for a variant that cannot be built, which then always
/// goes the whole way.
fn templates(key: &Key, answer: &Message) -> Templates {
    let template = |edns: bool| {
        let reply = answer_for(&key.template_query(edns)?, answer)
            .to_vec()
            .ok()?;
        Template::new(reply, key.name.len())
    };
    Templates {
        plain: template(false),
        edns: template(true),
    }
}

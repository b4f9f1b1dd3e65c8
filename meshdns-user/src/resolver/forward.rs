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
    cache::Key,
    reply::{answer_for, error_reply},
};

/// The answer to a question in flight, for the queries that wait for it.
pub(super) type Inflight = watch::Receiver<Option<Result<Arc<Message>, String>>>;

impl Resolver {
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
}

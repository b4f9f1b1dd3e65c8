//! The pods' addresses for the resolver's default `allow_from`: the
//! services file's `pod_cidrs`, or, on a routed CNI where no subnet on the
//! node says who the pods are, the destinations of the node's routes out of
//! the interfaces `--iface` matches (each pod has one), followed as routes
//! come and go.

use std::net::IpAddr;

use tokio::time::{Duration, Instant};

use crate::{
    cidr::Cidr,
    netif::{self, IfacePattern},
    resolver::Resolver,
};

/// How long a burst of route changes (a thousand pods starting) is let
/// settle before the routes are read again.
const SETTLE: Duration = Duration::from_millis(100);

/// The destinations of the main table's routes out of an interface one of
/// `patterns` matches: the pods, on a routed CNI. Not the default route,
/// nor IPv6 link-local ones.
pub fn routed_pods(patterns: &[IfacePattern]) -> std::io::Result<Vec<Cidr>> {
    let links = netif::links()?;
    let mut pods: Vec<Cidr> = netif::routes()?
        .into_iter()
        .filter(|route| route.prefix > 0)
        .filter(|route| !matches!(route.destination, IpAddr::V6(v6) if v6.is_unicast_link_local()))
        .filter(|route| {
            links.iter().any(|link| {
                link.index == route.oif && netif::first_match(patterns, &link.name).is_some()
            })
        })
        .map(|route| Cidr::containing(route.destination, route.prefix))
        .collect();
    pods.sort();
    pods.dedup();
    Ok(pods)
}

/// Keeps the resolver's routed pods in step with the node's routes, read
/// again a moment after they change.
pub struct PodRoutes {
    patterns: Vec<IfacePattern>,
    /// When to read the routes again, if they changed.
    due: Option<Instant>,
}

impl PodRoutes {
    pub fn new(patterns: &[IfacePattern]) -> Self {
        Self {
            patterns: patterns.to_vec(),
            due: None,
        }
    }

    /// The routes may have changed: read them again soon.
    pub fn changed(&mut self) {
        self.due.get_or_insert_with(|| Instant::now() + SETTLE);
    }

    /// When the routes are due to be read again.
    pub fn due(&self) -> Option<Instant> {
        self.due
    }

    /// Reads the routes and gives the resolver the pods they route to;
    /// how many prefixes that is.
    pub fn refresh(&mut self, resolver: &Resolver) -> usize {
        self.due = None;
        match routed_pods(&self.patterns) {
            Ok(pods) => {
                let count = pods.len();
                if resolver.set_routed_pods(pods) {
                    tracing::debug!(
                        prefixes = count,
                        "the pods' addresses from the node's routes changed"
                    );
                }
                count
            }
            Err(error) => {
                tracing::warn!(%error, "reading the node's routes to the pods");
                0
            }
        }
    }
}

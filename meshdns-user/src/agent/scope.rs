//! The fast path's scope as the agent derives it: the clients are the
//! resolver's `allow_from` (the file's, or the default, which follows the
//! pods' routes), the destinations the file's `fast_path_destinations`,
//! `local` being this host's addresses as the agent found them at start.

use std::net::{IpAddr, SocketAddr};

use crate::{
    cidr::Cidr,
    config::{ResolverSettings, destinations::Destinations, rate_limit::RateLimitSettings},
    fastpath::{FastPath, Scope},
    resolver::Resolver,
};

/// What the scope is made of besides the resolver's clients.
#[derive(Debug, Clone, Default)]
pub struct ScopeSource {
    /// `local`: where the resolver listens (not a wildcard address) and
    /// the interfaces' own addresses, each alone.
    local: Vec<Cidr>,
    /// As the services file last read says.
    destinations: Destinations,
    rate_limit: Option<RateLimitSettings>,
    /// What the program was last given, to skip a write that changes
    /// nothing.
    set: Option<Scope>,
}

impl ScopeSource {
    pub fn new(listen: &[SocketAddr], addresses: &[(IpAddr, u8)]) -> Self {
        let mut local: Vec<Cidr> = listen
            .iter()
            .map(SocketAddr::ip)
            .filter(|ip| !ip.is_unspecified())
            .chain(addresses.iter().map(|(ip, _)| *ip))
            .map(Cidr::host)
            .collect();
        local.sort();
        local.dedup();
        Self {
            local,
            ..Self::default()
        }
    }

    /// The services file says these destinations and this rate limit now.
    pub fn set_settings(&mut self, settings: &ResolverSettings) {
        self.destinations = settings.fast_path_destinations.clone();
        self.rate_limit = settings.rate_limit;
    }

    /// The scope the program should answer, with `resolver`'s clients.
    pub fn scope(&self, resolver: &Resolver) -> Scope {
        Scope::new(
            &resolver.allow_from(),
            self.destinations.prefixes(&self.local),
            self.rate_limit,
        )
    }

    /// Gives the program the scope it should answer, unless it has it.
    pub fn apply(
        &mut self,
        resolver: &Resolver,
        fast_path: &mut FastPath,
    ) -> crate::fastpath::Result<()> {
        let scope = self.scope(resolver);
        if self.set.as_ref() == Some(&scope) {
            return Ok(());
        }
        self.set = None;
        fast_path.set_scope(&scope)?;
        tracing::info!(
            clients = %shown(scope.clients.as_deref()),
            destinations = %shown(scope.destinations.as_deref()),
            rate_limit = %scope.rate_limit.map_or("off".to_string(), |r| r.to_string()),
            "the fast path's scope"
        );
        self.set = Some(scope);
        Ok(())
    }
}

/// A list of prefixes for the log: `any`, or the first few and a count.
fn shown(cidrs: Option<&[Cidr]>) -> String {
    let Some(cidrs) = cidrs else {
        return "any".to_string();
    };
    let first: Vec<String> = cidrs.iter().take(4).map(ToString::to_string).collect();
    match cidrs.len() {
        0..=4 => format!("[{}]", first.join(", ")),
        n => format!("[{}, ...] ({n} prefixes)", first.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_is_the_listened_and_the_interfaces_addresses_each_alone() {
        let source = ScopeSource::new(
            &[
                "198.18.0.1:53".parse().unwrap(),
                "0.0.0.0:53".parse().unwrap(),
            ],
            &[
                ("198.18.0.1".parse().unwrap(), 24),
                ("2001:db8::1".parse().unwrap(), 64),
            ],
        );
        let local: Vec<String> = source.local.iter().map(ToString::to_string).collect();
        assert_eq!(local, ["198.18.0.1/32", "2001:db8::1/128"]);
    }
}

//! The resolver as the agent sets it up: where it listens, whom it
//! answers by default, and where it forwards.

use std::{
    net::{IpAddr, SocketAddr},
    path::Path,
    sync::Arc,
};

use super::{AgentError, Options, Result};
use crate::{
    cidr::Cidr,
    config::ResolverSettings,
    netif,
    resolver::{
        Resolver,
        cache::{Cache, Limits},
        upstream::{self, Upstreams},
    },
    table::Table,
};

/// Whom the resolver answers when the services file has no `allow_from`
/// (now or after a reload): loopback and the interfaces' own subnets.
pub fn default_allow_from(addresses: &[(IpAddr, u8)]) -> Vec<Cidr> {
    let loopback = [
        Cidr::containing(IpAddr::from([127, 0, 0, 0]), 8),
        Cidr::containing(std::net::Ipv6Addr::LOCALHOST.into(), 128),
    ];
    loopback
        .into_iter()
        .chain(
            addresses
                .iter()
                .map(|(addr, prefix)| Cidr::containing(*addr, *prefix)),
        )
        .collect()
}

/// The resolver, set up from the options and the services file.
/// `listen` is where it will listen: never its own upstream. `addresses`
/// are the interfaces' own, with their prefix lengths.
pub fn resolver(
    options: &Options,
    table: Arc<Table>,
    settings: &ResolverSettings,
    listen: &[SocketAddr],
    addresses: &[(IpAddr, u8)],
) -> Resolver {
    let upstreams: Vec<SocketAddr> = if options.upstream.is_empty() {
        netif::nameservers(Path::new("/etc/resolv.conf"))
            .into_iter()
            .filter(|server| !listen.contains(server))
            .collect()
    } else {
        options.upstream.clone()
    };
    if upstreams.is_empty() {
        tracing::warn!("no upstream resolver: names outside the mesh get SERVFAIL");
    }
    let resolver = Resolver::new(
        table,
        settings,
        default_allow_from(addresses),
        Upstreams::new(&upstreams, upstream::Settings::default()),
        Cache::new(Limits::default()),
    );
    tracing::info!(?upstreams, allow_from = ?resolver.allow_from().iter().map(ToString::to_string).collect::<Vec<_>>(), "resolver ready");
    resolver
}

/// Where the resolver listens: `--listen`, or the interfaces' `addresses`
/// (not IPv6 link-local ones, which need a scope), port 53.
pub fn listen_addresses(options: &Options, addresses: &[(IpAddr, u8)]) -> Result<Vec<SocketAddr>> {
    if !options.listen.is_empty() {
        return Ok(options.listen.clone());
    }
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for (addr, _) in addresses {
        let link_local = matches!(addr, IpAddr::V6(v6) if v6.is_unicast_link_local());
        let addr = SocketAddr::new(*addr, 53);
        if !link_local && !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(AgentError::NoListenAddress {
            ifaces: match options.ifaces.len() {
                1 => options.ifaces[0].to_string(),
                _ => format!(
                    "none of {}",
                    options
                        .ifaces
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        });
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_allow_from_is_loopback_and_the_interfaces_subnets() {
        let addresses = [
            ("198.18.0.1".parse().unwrap(), 24),
            ("2001:db8::1".parse().unwrap(), 64),
        ];
        let cidrs: Vec<String> = default_allow_from(&addresses)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            cidrs,
            ["127.0.0.0/8", "::1/128", "198.18.0.0/24", "2001:db8::/64"]
        );
    }
}

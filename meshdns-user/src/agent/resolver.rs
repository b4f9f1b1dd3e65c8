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
    // The node's nameservers, less meshdns itself: the root zone's
    // upstreams unless --upstream says, and a `forward:` zone's that names
    // resolv.conf.
    let resolv_conf: Vec<SocketAddr> = netif::nameservers(Path::new("/etc/resolv.conf"))
        .into_iter()
        .filter(|server| !listen.contains(server))
        .collect();
    let root = if options.upstream.is_empty() {
        resolv_conf.clone()
    } else {
        options.upstream.clone()
    };
    let resolver = Resolver::new(
        table,
        settings,
        default_allow_from(addresses),
        &root,
        Cache::new(Limits::default()),
    )
    .with_resolv_conf(resolv_conf, settings);
    let zones: Vec<String> = resolver
        .forwarding()
        .zones()
        .map(|zone| format!("{} -> {:?}", zone.zone, zone.upstreams.addrs()))
        .collect();
    if resolver
        .forwarding()
        .zones()
        .any(|zone| zone.upstreams.addrs().is_empty())
    {
        tracing::warn!(?zones, "a zone without upstreams: its names get SERVFAIL");
    }
    tracing::info!(forwarding = ?zones, allow_from = ?resolver.allow_from().iter().map(ToString::to_string).collect::<Vec<_>>(), "resolver ready");
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

//! `fast_path_destinations`: the destination addresses the XDP program
//! answers queries for. Another address is another host's (a query routed
//! through this one, or sent to its MAC by a neighbour entry): answering it
//! would send a reply from that host's address.
//!
//! ```yaml
//! fast_path_destinations: local               # the default
//! fast_path_destinations: any
//! fast_path_destinations: [10.96.0.10, local] # addresses, CIDRs, local
//! ```

use serde::Deserialize;

use super::ConfigErrorKind;
use crate::cidr::Cidr;

/// As the file writes it: one word, or a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DestinationsConfig {
    Word(String),
    List(Vec<String>),
}

/// The destinations, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destinations {
    /// Every address.
    Any,
    /// `cidrs`, and with `local` this host's own: where the resolver
    /// listens and the attached interfaces' addresses.
    Listed { local: bool, cidrs: Vec<Cidr> },
}

impl Default for Destinations {
    /// `local`: what a plain host wants.
    fn default() -> Self {
        Destinations::Listed {
            local: true,
            cidrs: Vec::new(),
        }
    }
}

impl Destinations {
    /// The prefixes answered for, `local` being `local_addresses`; `None`:
    /// any.
    pub fn prefixes(&self, local_addresses: &[Cidr]) -> Option<Vec<Cidr>> {
        match self {
            Destinations::Any => None,
            Destinations::Listed { local, cidrs } => {
                let mut all: Vec<Cidr> = cidrs.clone();
                if *local {
                    all.extend_from_slice(local_addresses);
                }
                all.sort();
                all.dedup();
                Some(all)
            }
        }
    }
}

const FIELD: &str = "fast_path_destinations";

/// Checks what the file says; no value is `local`.
pub fn check(config: Option<&DestinationsConfig>) -> Result<Destinations, ConfigErrorKind> {
    let items: &[String] = match config {
        None => return Ok(Destinations::default()),
        Some(DestinationsConfig::Word(word)) if word == "any" => return Ok(Destinations::Any),
        Some(DestinationsConfig::Word(word)) => std::slice::from_ref(word),
        Some(DestinationsConfig::List(items)) => items,
    };
    let mut local = false;
    let mut cidrs = Vec::new();
    for item in items {
        match item.as_str() {
            "local" => local = true,
            // `any` with others says nothing more than `any`, and more
            // likely a mistake.
            "any" if items.len() > 1 => return Err(bad(item)),
            text => cidrs.push(prefix(text).ok_or_else(|| bad(item))?),
        }
    }
    Ok(Destinations::Listed { local, cidrs })
}

/// A CIDR, or an address alone (its /32 or /128).
fn prefix(text: &str) -> Option<Cidr> {
    match text.parse::<std::net::IpAddr>() {
        Ok(address) => Some(Cidr::host(address)),
        Err(_) => text.parse().ok(),
    }
}

fn bad(item: &str) -> ConfigErrorKind {
    ConfigErrorKind::Destination {
        field: FIELD,
        value: item.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::cidrs;

    /// What a services file of `yaml` says, or its error with its line.
    fn checked(yaml: &str) -> Result<Destinations, String> {
        crate::config::Services::parse(yaml)
            .map(|services| services.resolver.fast_path_destinations)
            .map_err(|(line, kind)| format!("line {line:?}: {kind}"))
    }

    #[test]
    fn local_any_and_lists_of_addresses_and_cidrs() {
        assert_eq!(checked("{}"), Ok(Destinations::default()));
        assert_eq!(
            checked("fast_path_destinations: local"),
            Ok(Destinations::default())
        );
        assert_eq!(
            checked("fast_path_destinations: any"),
            Ok(Destinations::Any)
        );
        assert_eq!(
            checked("fast_path_destinations: [10.96.0.10, \"fd00::/64\", local]"),
            Ok(Destinations::Listed {
                local: true,
                cidrs: cidrs(&["10.96.0.10/32", "fd00::/64"])
            })
        );
        assert_eq!(
            checked("fast_path_destinations: [198.18.0.0/15]"),
            Ok(Destinations::Listed {
                local: false,
                cidrs: cidrs(&["198.18.0.0/15"])
            })
        );
    }

    #[test]
    fn a_word_or_prefix_it_does_not_know_is_rejected_by_name() {
        for (yaml, value) in [
            ("fast_path_destinations: locals", "locals"),
            ("fast_path_destinations: [local, any]", "any"),
            ("fast_path_destinations: [10.96.0.10/8]", "10.96.0.10/8"),
            ("fast_path_destinations: [10.96.0.300]", "10.96.0.300"),
        ] {
            let error = checked(&format!("ttl: 60\n{yaml}\n")).unwrap_err();
            assert!(
                error.starts_with("line Some(2): ")
                    && error.contains(FIELD)
                    && error.contains(value),
                "{yaml}: {error}"
            );
        }
    }

    #[test]
    fn local_is_the_hosts_addresses_among_the_listed() {
        let local = cidrs(&["198.18.0.1/32", "2001:db8::1/128"]);
        assert_eq!(Destinations::Any.prefixes(&local), None);
        assert_eq!(
            Destinations::default().prefixes(&local),
            Some(local.clone())
        );
        let listed = Destinations::Listed {
            local: false,
            cidrs: cidrs(&["10.96.0.10/32"]),
        };
        assert_eq!(listed.prefixes(&local), Some(cidrs(&["10.96.0.10/32"])));
    }
}

//! `search:` in the services file: the search-list expansions of mesh
//! names that meshdns answers itself, so that a pod with Kubernetes'
//! `ndots:5` gets `redis.mesh` in one round trip, not seven.
//!
//! ```yaml
//! search:
//!   suffixes: ["*.svc.cluster.local", "svc.cluster.local", "cluster.local"]
//!   answer: cname      # off (the default) | cname | nxdomain
//! ```

use meshdns_common::{MAX_SEARCH_SUFFIX_LEN, SEARCH_CNAME, SEARCH_NXDOMAIN};
use serde::Deserialize;

use super::ConfigErrorKind;
use crate::dns_name;

/// `search:` as written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchConfig {
    /// The pods' search domains that a mesh name may be asked under; a
    /// leading `*` is one label of any content (the namespace).
    #[serde(default)]
    pub suffixes: Vec<String>,
    #[serde(default)]
    pub answer: SearchAnswer,
}

/// How a query for `<mesh name>.<suffix>` is answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchAnswer {
    /// Not at all: forwarded as any other name.
    #[default]
    Off,
    /// NOERROR: a CNAME to the mesh name, then its records of the asked
    /// type, or, lacking them, its zone's SOA (as CoreDNS's autopath does).
    Cname,
    /// NXDOMAIN, so that the client tries its next search domain at once.
    Nxdomain,
}

impl SearchAnswer {
    /// The program's `SearchPattern::answer` (0 for `Off`).
    pub fn code(self) -> u32 {
        match self {
            SearchAnswer::Off => 0,
            SearchAnswer::Cname => SEARCH_CNAME,
            SearchAnswer::Nxdomain => SEARCH_NXDOMAIN,
        }
    }
}

/// One suffix, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchSuffix {
    /// Lowercased wire format of the part after the wildcard (all of it
    /// without one), root label included.
    pub wire: Vec<u8>,
    /// Whether one label of any content comes before `wire`.
    pub wildcard: bool,
}

/// `search:`, checked: the suffixes in the file's order, which is the
/// order they are tried in; none when `answer` is `off`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub suffixes: Vec<SearchSuffix>,
    pub answer: SearchAnswer,
}

impl Search {
    /// Whether any name expands.
    pub fn is_on(&self) -> bool {
        self.answer != SearchAnswer::Off && !self.suffixes.is_empty()
    }
}

/// Checks `search:` against the zones (lowercased wire format): each
/// suffix a name, `*` only as its first label, none twice, none at or
/// below a zone (the zone answers such names itself, so the suffix would
/// never expand one), and suffixes when the answer is not `off`.
pub fn check(config: &SearchConfig, zones: &[&[u8]]) -> Result<Search, ConfigErrorKind> {
    let bad = |suffix: &str, why: String| ConfigErrorKind::SearchSuffix {
        suffix: suffix.to_string(),
        why,
    };
    if config.answer != SearchAnswer::Off && config.suffixes.is_empty() {
        return Err(ConfigErrorKind::SearchNoSuffixes);
    }
    let mut suffixes: Vec<SearchSuffix> = Vec::with_capacity(config.suffixes.len());
    for text in &config.suffixes {
        let (wildcard, rest) = match text.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        if rest.split('.').any(|label| label == "*") {
            return Err(bad(text, "'*' may only be the first label".into()));
        }
        let wire = dns_name::from_text(rest).map_err(|error| bad(text, error.to_string()))?;
        if wire.len() > MAX_SEARCH_SUFFIX_LEN {
            return Err(bad(
                text,
                format!(
                    "{} bytes in wire format; the most is {MAX_SEARCH_SUFFIX_LEN}",
                    wire.len()
                ),
            ));
        }
        if let Some(zone) = zones.iter().find(|z| dns_name::is_at_or_below(&wire, z)) {
            return Err(bad(
                text,
                format!(
                    "it is in the zone {}, which answers its names itself",
                    dns_name::to_text(zone)
                ),
            ));
        }
        let suffix = SearchSuffix { wire, wildcard };
        if suffixes.contains(&suffix) {
            return Err(bad(text, "listed twice".into()));
        }
        suffixes.push(suffix);
    }
    if config.answer == SearchAnswer::Off {
        suffixes.clear();
    }
    Ok(Search {
        suffixes,
        answer: config.answer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(suffixes: &[&str], answer: SearchAnswer) -> SearchConfig {
        SearchConfig {
            suffixes: suffixes.iter().map(|s| s.to_string()).collect(),
            answer,
        }
    }

    #[test]
    fn kubernetes_suffixes_are_checked_into_wire_format_in_order() {
        let search = check(
            &config(
                &["*.svc.Cluster.local", "svc.cluster.local.", "cluster.local"],
                SearchAnswer::Cname,
            ),
            &[b"\x04mesh\x00"],
        )
        .unwrap();
        assert!(search.is_on());
        let got: Vec<(&[u8], bool)> = search
            .suffixes
            .iter()
            .map(|s| (s.wire.as_slice(), s.wildcard))
            .collect();
        assert_eq!(
            got,
            [
                (&b"\x03svc\x07cluster\x05local\x00"[..], true),
                (&b"\x03svc\x07cluster\x05local\x00"[..], false),
                (&b"\x07cluster\x05local\x00"[..], false),
            ]
        );
    }

    #[test]
    fn off_expands_nothing_and_needs_no_suffixes() {
        let search = check(&config(&["cluster.local"], SearchAnswer::Off), &[]).unwrap();
        assert!(!search.is_on() && search.suffixes.is_empty());
        assert!(check(&SearchConfig::default(), &[]).is_ok());
    }

    #[test]
    fn bad_suffixes_are_rejected_with_the_reason() {
        let zones: &[&[u8]] = &[b"\x04mesh\x00"];
        for (suffixes, answer, why) in [
            (&["svc.*.local"][..], SearchAnswer::Cname, "first label"),
            (&["*.*.local"][..], SearchAnswer::Cname, "first label"),
            (&["bad name.local"][..], SearchAnswer::Cname, "not allowed"),
            (&["x.mesh"][..], SearchAnswer::Cname, "in the zone mesh."),
            (&["a.b", "A.b."][..], SearchAnswer::Nxdomain, "twice"),
            (&[][..], SearchAnswer::Cname, "no suffixes"),
        ] {
            let error = check(&config(suffixes, answer), zones).unwrap_err();
            assert!(error.to_string().contains(why), "{suffixes:?}: {error}");
        }
    }
}

//! `--iface` values: an interface's name, or a glob pattern for interfaces
//! that come and go (`cali*`, `lxc*`: a pod's host-side veth each).

use std::{fmt, str::FromStr};

/// One `--iface` value. A name without `*`, `?` or `[` is the interface of
/// that name, which the agent waits for at start; a pattern matches any
/// number of interfaces, none at first.
#[derive(Debug, Clone)]
pub struct IfacePattern {
    text: String,
    glob: Option<glob::Pattern>,
}

/// The longest interface name Linux allows (IFNAMSIZ less the NUL).
const MAX_NAME_LEN: usize = 15;

/// Why an `--iface` value is not one.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatternError {
    #[error("an empty interface name")]
    Empty,
    #[error("{0:?} is longer than the 15 bytes an interface name has at most")]
    TooLong(String),
    #[error("{0:?}: an interface name has no '/', ':' or whitespace")]
    BadCharacter(String),
    #[error("{text:?}, at byte {pos}: {msg}")]
    Glob {
        text: String,
        pos: usize,
        msg: &'static str,
    },
}

impl FromStr for IfacePattern {
    type Err = PatternError;

    fn from_str(text: &str) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.contains(['/', ':']) || text.contains(char::is_whitespace) {
            return Err(PatternError::BadCharacter(text.to_string()));
        }
        if !text.contains(['*', '?', '[']) {
            if text.len() > MAX_NAME_LEN {
                return Err(PatternError::TooLong(text.to_string()));
            }
            return Ok(Self {
                text: text.to_string(),
                glob: None,
            });
        }
        let glob = glob::Pattern::new(text).map_err(|error| PatternError::Glob {
            text: text.to_string(),
            pos: error.pos,
            msg: error.msg,
        })?;
        Ok(Self {
            text: text.to_string(),
            glob: Some(glob),
        })
    }
}

impl IfacePattern {
    /// Whether the interface called `name` is one of this value's.
    pub fn matches(&self, name: &str) -> bool {
        match &self.glob {
            Some(glob) => glob.matches(name),
            None => self.text == name,
        }
    }

    /// The interface's name, if this is a name and not a pattern.
    pub fn name(&self) -> Option<&str> {
        self.glob.is_none().then_some(self.text.as_str())
    }

    /// As given: `cali*`, `eth0`.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for IfacePattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for IfacePattern {}

impl fmt::Display for IfacePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first of `patterns` that `name` matches, by its position: an
/// interface counts for the first value that names it.
pub fn first_match(patterns: &[IfacePattern], name: &str) -> Option<usize> {
    patterns.iter().position(|pattern| pattern.matches(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> IfacePattern {
        text.parse().unwrap()
    }

    #[test]
    fn a_name_is_itself_and_a_pattern_matches_many() {
        let eth0 = pattern("eth0");
        assert_eq!(eth0.name(), Some("eth0"));
        assert!(eth0.matches("eth0") && !eth0.matches("eth01"));
        let calico = pattern("cali*");
        assert_eq!(calico.name(), None);
        for name in ["cali", "cali1234567890a", "calic0ffee"] {
            assert!(calico.matches(name), "{name}");
        }
        for name in ["eth0", "xcali1", "lxc1"] {
            assert!(!calico.matches(name), "{name}");
        }
        let cilium = pattern("lxc[0-9a-f]*");
        assert!(cilium.matches("lxc3f2a") && !cilium.matches("lxc_health"));
        let one = pattern("veth?");
        assert!(one.matches("veth1") && !one.matches("veth12"));
    }

    #[test]
    fn the_first_value_that_names_an_interface_counts_it() {
        let patterns = [pattern("eth0"), pattern("eth*"), pattern("*")];
        assert_eq!(first_match(&patterns, "eth0"), Some(0));
        assert_eq!(first_match(&patterns, "eth1"), Some(1));
        assert_eq!(first_match(&patterns, "lo"), Some(2));
        assert_eq!(first_match(&patterns[..2], "lo"), None);
    }

    #[test]
    fn what_is_no_interface_name_is_rejected_with_why() {
        assert_eq!("".parse::<IfacePattern>(), Err(PatternError::Empty));
        assert!(matches!(
            "a-name-of-16-byt".parse::<IfacePattern>(),
            Err(PatternError::TooLong(_))
        ));
        for text in ["eth0/1", "eth0:1", "eth 0"] {
            assert!(matches!(
                text.parse::<IfacePattern>(),
                Err(PatternError::BadCharacter(_))
            ));
        }
        let error = "cali[".parse::<IfacePattern>().unwrap_err();
        assert!(
            matches!(error, PatternError::Glob { pos: 4, .. }),
            "{error}"
        );
        assert!(error.to_string().starts_with("\"cali[\", at byte 4: "));
    }
}

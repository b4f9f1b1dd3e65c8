//! `meshdns status`: where the fast path is attached and how (asked of the
//! kernel for each pinned link), whether an agent runs it, its table's
//! size, its counters, and what the agent last wrote of its sources and
//! interfaces.

use std::{collections::BTreeMap, fmt, path::PathBuf};

use meshdns_common::Counter;
use serde::Serialize;

use super::{Pinned, Result, ZoneView, process};
use crate::{
    agent::interfaces::PatternStatus,
    fastpath::{self, Counters, Pins},
    netif::{self, XdpAttachMode},
    source::provenance::{Provenance, SourceSummary},
};

/// Counters by name, for `--json`.
fn counters_by_name(counters: &Counters) -> BTreeMap<&'static str, u64> {
    Counter::ALL
        .iter()
        .map(|c| (c.name(), counters.get(*c)))
        .collect()
}

/// `meshdns status`: where the fast path is attached and how, whether an
/// agent runs it, and what it has done.
#[derive(Debug, Serialize)]
pub struct Status {
    pub pin_dir: PathBuf,
    pub maps_dir: PathBuf,
    pub interfaces: Vec<Interface>,
    /// The agent process that runs the attached program, if one does.
    pub agent: Option<process::Agent>,
    pub zones: Vec<ZoneView>,
    pub names: usize,
    /// Whom and for which destinations the program answers: prefixes, or
    /// `None` for any.
    pub scope: ScopeView,
    pub counters: BTreeMap<&'static str, u64>,
    pub answered: u64,
    pub passed: u64,
    /// Answers over the rate limit that did not slip.
    pub dropped: u64,
    /// The services file's sources, as of the agent's last reload (from
    /// its state folder; empty if it lists none, or the folder is not
    /// there).
    pub sources: Vec<SourceSummary>,
    /// The interfaces of each `--iface` value, by what became of them, as
    /// the agent last wrote them to its state folder.
    pub interfaces_by_pattern: Vec<PatternStatus>,
}

/// The fast path's scope, as `status` shows it: each list's ranges (a
/// CIDR where a range is one), or `None` for any.
#[derive(Debug, Serialize)]
pub struct ScopeView {
    pub clients: Option<Vec<String>>,
    pub destinations: Option<Vec<String>>,
    /// The rate limit, in words; `None`: no limit.
    pub rate_limit: Option<String>,
}

impl ScopeView {
    fn of(scope: Option<&fastpath::ScopeRanges>) -> Self {
        let Some(scope) = scope else {
            // No table in the slot: every query is passed.
            return Self {
                clients: Some(Vec::new()),
                destinations: Some(Vec::new()),
                rate_limit: None,
            };
        };
        let shown = |ranges: &Option<Vec<std::ops::RangeInclusive<std::net::IpAddr>>>| {
            ranges
                .as_ref()
                .map(|ranges| ranges.iter().map(range_text).collect())
        };
        Self {
            clients: shown(&scope.clients),
            destinations: shown(&scope.destinations),
            rate_limit: scope.rate_limit.map(|limit| limit.to_string()),
        }
    }
}

/// `198.18.0.0/24` for a range that is a prefix, `198.18.0.2-198.18.0.4`
/// for one that is not.
fn range_text(range: &std::ops::RangeInclusive<std::net::IpAddr>) -> String {
    let (first, last) = (*range.start(), *range.end());
    let number = |a: std::net::IpAddr| match a {
        std::net::IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        std::net::IpAddr::V6(a) => (u128::from(a), 128),
    };
    let ((first_n, bits), (last_n, _)) = (number(first), number(last));
    let span = last_n - first_n;
    let host_bits = 128 - span.leading_zeros();
    let is_prefix = span
        .checked_add(1)
        .is_none_or(|size| size.is_power_of_two())
        && (host_bits == 128 || first_n & ((1u128 << host_bits) - 1) == 0);
    if is_prefix {
        format!("{first}/{}", bits - host_bits)
    } else {
        format!("{first}-{last}")
    }
}

/// One interface with a pinned link.
#[derive(Debug, Serialize)]
pub struct Interface {
    pub name: String,
    pub link_path: PathBuf,
    pub link_id: Option<u32>,
    /// The program the link runs.
    pub program_id: Option<u32>,
    /// How the kernel says a program is attached to the interface.
    pub mode: Option<XdpAttachMode>,
    /// True when the interface runs the link's program: the fast path serves.
    pub serving: bool,
    /// What is wrong, if it does not serve.
    pub problem: Option<String>,
}

pub fn status(
    pins: &Pins,
    provenance: Option<Provenance>,
    interfaces_by_pattern: Vec<PatternStatus>,
) -> Result<Status> {
    let pinned = Pinned::open(pins)?;
    let zones = ZoneView::all(&pinned.zones()?);
    let names = pinned.name_count()?;
    let scope = ScopeView::of(pinned.scope()?.as_ref());
    let counters = pinned.counters()?;
    let interfaces: Vec<Interface> = pins
        .linked_interfaces()
        .into_iter()
        .map(|name| interface(pins, name))
        .collect();
    let programs: Vec<u32> = interfaces.iter().filter_map(|i| i.program_id).collect();
    Ok(Status {
        pin_dir: pins.dir.clone(),
        maps_dir: pins.maps_dir(),
        interfaces,
        agent: process::running_program(&programs),
        zones,
        names,
        scope,
        counters: counters_by_name(&counters),
        answered: counters.answered(),
        passed: counters.passed(),
        dropped: counters.dropped(),
        sources: provenance.map(|p| p.sources).unwrap_or_default(),
        interfaces_by_pattern,
    })
}

fn interface(pins: &Pins, name: String) -> Interface {
    let link_path = pins.link(&name);
    let mut interface = Interface {
        name,
        link_path,
        link_id: None,
        program_id: None,
        mode: None,
        serving: false,
        problem: None,
    };
    let link = match fastpath::pinned_link_info(&interface.link_path) {
        Ok(link) => link,
        Err(error) => {
            interface.problem = Some(format!("cannot read the pinned link: {error}"));
            return interface;
        }
    };
    interface.link_id = Some(link.link_id);
    interface.program_id = Some(link.program_id);
    if link.ifindex != 0 && netif::name(link.ifindex).as_deref() != Some(interface.name.as_str()) {
        interface.problem = Some(format!(
            "the link is attached to interface index {} in another network namespace, or under another name",
            link.ifindex
        ));
        return interface;
    }
    match fastpath::check_serving(&link) {
        Ok(mode) => {
            interface.mode = Some(mode);
            interface.serving = true;
        }
        Err(problem) => interface.problem = Some(problem.to_string()),
    }
    interface
}

/// Most interfaces `status` lists one by one.
const MAX_LISTED: usize = 16;

/// Prefixes for people: `any`, or the first few and how many.
fn listed(prefixes: Option<&[String]>) -> String {
    match prefixes {
        None => "any".to_string(),
        Some([]) => "none (no agent has set them)".to_string(),
        Some(list) if list.len() <= MAX_LISTED => list.join(", "),
        Some(list) => format!(
            "{}, ... ({} prefixes)",
            list[..MAX_LISTED].join(", "),
            list.len()
        ),
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "pins:       {}", self.maps_dir.display())?;
        if self.interfaces.is_empty() {
            writeln!(f, "interfaces: none attached")?;
        }
        for p in &self.interfaces_by_pattern {
            writeln!(
                f,
                "--iface {}: {} attached, {} skipped, {} failed",
                p.pattern, p.attached, p.skipped, p.failed
            )?;
        }
        // A node's pods' veths are hundreds: counted, and only those that
        // do not serve listed (`--json` has them all).
        let serving = self
            .interfaces
            .iter()
            .filter(|i| i.problem.is_none())
            .count();
        let many = self.interfaces.len() > MAX_LISTED;
        if many {
            writeln!(
                f,
                "interfaces: {} pinned, {serving} serving{}",
                self.interfaces.len(),
                if serving < self.interfaces.len() {
                    "; those that do not:"
                } else {
                    ""
                }
            )?;
        }
        for i in self
            .interfaces
            .iter()
            .filter(|i| !many || i.problem.is_some())
        {
            write!(f, "interface:  {}", i.name)?;
            if let Some(mode) = i.mode {
                write!(f, ", XDP {mode:?} mode")?;
            }
            if let (Some(link), Some(program)) = (i.link_id, i.program_id) {
                write!(f, ", link {link}, program {program}")?;
            }
            match &i.problem {
                None => writeln!(f, ": serving")?,
                Some(problem) => writeln!(f, ": NOT serving: {problem}")?,
            }
        }
        match &self.agent {
            Some(agent) => writeln!(
                f,
                "agent:      running, pid {} ({})",
                agent.pid, agent.command
            )?,
            None => writeln!(
                f,
                "agent:      not running; the attached program serves the last table it was given"
            )?,
        }
        writeln!(
            f,
            "table:      {} names in zones {}",
            self.names,
            ZoneView::list(&self.zones)
        )?;
        writeln!(
            f,
            "answers:    clients {}; destinations {}",
            listed(self.scope.clients.as_deref()),
            listed(self.scope.destinations.as_deref())
        )?;
        writeln!(
            f,
            "rate limit: {}",
            self.scope.rate_limit.as_deref().unwrap_or("off")
        )?;
        writeln!(
            f,
            "packets:    {} answered, {} passed, {} dropped",
            self.answered, self.passed, self.dropped
        )?;
        for (name, value) in self.counters.iter().filter(|(_, v)| **v != 0) {
            writeln!(f, "  {name:<24} {value}")?;
        }
        for source in &self.sources {
            writeln!(
                f,
                "source:     {}: {}, {} names, {} left out",
                source.id,
                if source.up {
                    "up"
                } else {
                    "DOWN (serving its last good names)"
                },
                source.names,
                source.left_out
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_that_is_a_prefix_shows_as_one() {
        let range = |a: &str, b: &str| a.parse().unwrap()..=b.parse().unwrap();
        for (first, last, shown) in [
            ("198.18.0.0", "198.18.0.255", "198.18.0.0/24"),
            ("198.18.0.1", "198.18.0.1", "198.18.0.1/32"),
            ("0.0.0.0", "255.255.255.255", "0.0.0.0/0"),
            ("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "::/0"),
            ("2001:db8::", "2001:db8::ffff", "2001:db8::/112"),
            ("198.18.0.2", "198.18.0.4", "198.18.0.2-198.18.0.4"),
            ("198.18.0.1", "198.18.0.2", "198.18.0.1-198.18.0.2"),
        ] {
            assert_eq!(range_text(&range(first, last)), shown);
        }
    }
}

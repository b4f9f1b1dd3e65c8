//! The search-list expansions of the table's names: which mesh name a
//! name such as `redis.mesh.default.svc.cluster.local` stands for, by the
//! file's `search:` (the resolver's rule), and the patterns that give the
//! XDP program the same rule.

use meshdns_common::{
    MAX_SEARCH_PATTERNS, MAX_SEARCH_SUFFIX_LEN, NameKey, SEARCH_CNAME, SEARCH_NXDOMAIN,
    SearchPattern, ZoneConfig,
};

use super::{Table, zone_of};
use crate::{
    config::search::{Search, SearchAnswer, SearchSuffix},
    dns_name,
};

/// A name under a search suffix whose first labels make a name of a zone.
#[derive(Debug, Clone, Copy)]
pub struct Expansion<'a> {
    /// The mesh name's key: it may or may not be in the table.
    pub key: NameKey,
    pub zone: &'a ZoneConfig,
    pub answer: SearchAnswer,
}

impl Table {
    /// The search-list expansions, as the services file gave them.
    pub fn search(&self) -> &Search {
        &self.search
    }

    /// What `wire` (a name in wire format, lowercased, in no zone) expands
    /// to: the first suffix, in the file's order, that `wire` is under and
    /// that leaves a name in a zone (the first zone, the longest apex
    /// first, that holds it). `None` when search is off or no suffix does.
    /// Whether the table holds the name is the caller's to ask.
    pub fn expand(&self, wire: &[u8]) -> Option<Expansion<'_>> {
        if !self.search.is_on() {
            return None;
        }
        self.search.suffixes.iter().find_map(|suffix| {
            let mesh_name = mesh_name_under(wire, suffix)?;
            Some(Expansion {
                zone: zone_of(&self.zones, &mesh_name)?,
                key: NameKey::from_wire(&mesh_name)?,
                answer: self.search.answer,
            })
        })
    }

    /// The expansion of `wire` that is answered, and the mesh name's
    /// entry: a name the table holds with an address. The apex and the
    /// empty non-terminals exist but are no service to reach, and a
    /// cluster's own `mesh.<ns>.svc.cluster.local` must not be shadowed by
    /// them: such names are the upstreams', in both paths.
    pub fn expanded(&self, wire: &[u8]) -> Option<(Expansion<'_>, &super::Entry)> {
        let expansion = self.expand(wire)?;
        let entry = self.get(&expansion.key)?;
        entry.has_addresses().then_some((expansion, entry))
    }

    /// The program's search array: a pattern for each suffix and zone, in
    /// the order `expand` tries them (the suffixes in the file's order,
    /// each with every zone, the longest apex first), so that the program
    /// expands a name to what `expand` does. Those past
    /// `MAX_SEARCH_PATTERNS` are the resolver's alone: the program passes
    /// what it has no pattern for.
    pub fn search_patterns(&self) -> [SearchPattern; MAX_SEARCH_PATTERNS] {
        let mut patterns = [SearchPattern::NONE; MAX_SEARCH_PATTERNS];
        if !self.search.is_on() {
            return patterns;
        }
        let common = common_tail(self.search.suffixes.iter().map(|s| s.wire.as_slice()));
        let all = self.search.suffixes.iter().flat_map(|suffix| {
            (0u32..).zip(&self.zones).map(move |(zone, _)| {
                let mut pattern = SearchPattern::NONE;
                pattern.common[..common.len()].copy_from_slice(common);
                pattern.common_len = common.len() as u16;
                pattern.suffix[..suffix.wire.len()].copy_from_slice(&suffix.wire);
                pattern.suffix_len = suffix.wire.len() as u16;
                pattern.wildcard = u16::from(suffix.wildcard);
                pattern.zone = zone;
                pattern.answer = self.search.answer.code();
                pattern
            })
        });
        for (slot, pattern) in patterns.iter_mut().zip(all) {
            *slot = pattern;
        }
        patterns
    }
}

/// The longest tail, in whole labels, that all of `names` (wire format)
/// end with: at least the root label.
fn common_tail<'a>(mut names: impl Iterator<Item = &'a [u8]>) -> &'a [u8] {
    let Some(first) = names.next() else {
        return &[];
    };
    let mut tail = first;
    for name in names {
        while !dns_name::is_at_or_below(name, tail) {
            // `tail` is a suffix of `first` at a label start: drop its
            // first label.
            tail = &tail[1 + usize::from(tail[0])..];
        }
    }
    tail
}

/// The mesh name `wire` stands for under `suffix`: its labels before the
/// suffix (and before the wildcard's label, if it has one), and the root.
/// `None` if `wire` is not under the suffix, or nothing is left.
fn mesh_name_under(wire: &[u8], suffix: &SearchSuffix) -> Option<Vec<u8>> {
    // Cheap first: the resolver asks this of every name in no zone.
    let end = wire.len().checked_sub(suffix.wire.len())?;
    if end == 0 || wire[end..] != suffix.wire[..] {
        return None;
    }
    // The suffix must start at a label; the label before it is the
    // wildcard's.
    let (mut at, mut before) = (0, None);
    while at < end {
        before = Some(at);
        at += 1 + usize::from(wire[at]);
    }
    if at != end {
        return None;
    }
    let end = match suffix.wildcard {
        false => end,
        true => before?,
    };
    if end == 0 {
        return None;
    }
    let mut mesh_name = wire[..end].to_vec();
    mesh_name.push(0);
    Some(mesh_name)
}

impl Search {
    /// The expansions the program's search array holds, read back: its
    /// suffixes, each once, in order (for `meshdns lookup`, which reads the
    /// table from the kernel).
    pub fn from_patterns(patterns: &[SearchPattern]) -> Self {
        let mut search = Search::default();
        for pattern in patterns.iter().take_while(|p| p.suffix_len > 0) {
            let len = usize::from(pattern.suffix_len).min(MAX_SEARCH_SUFFIX_LEN);
            let suffix = SearchSuffix {
                wire: pattern.suffix[..len].to_vec(),
                wildcard: pattern.wildcard != 0,
            };
            if !search.suffixes.contains(&suffix) {
                search.suffixes.push(suffix);
            }
            search.answer = match pattern.answer {
                SEARCH_CNAME => SearchAnswer::Cname,
                SEARCH_NXDOMAIN => SearchAnswer::Nxdomain,
                _ => SearchAnswer::Off,
            };
        }
        search
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(search: &str) -> Table {
        Table::parse(&format!(
            "zones:\n  - name: mesh\n  - name: mesh.local\n{search}services:\n  - name: redis\n    vips: [240.0.0.100]\n"
        ))
        .unwrap()
    }

    const KUBERNETES: &str = "search:\n  suffixes: [\"*.svc.cluster.local\", svc.cluster.local, cluster.local]\n  answer: cname\n";

    /// The mesh name `name` expands to, as text.
    fn mesh_name_of(table: &Table, name: &str) -> Option<String> {
        let wire = dns_name::from_text(name).unwrap();
        table
            .expand(&wire)
            .map(|e| dns_name::to_text(e.key.as_wire()))
    }

    #[test]
    fn each_search_domain_of_a_pod_expands_to_the_mesh_name() {
        let table = table(KUBERNETES);
        for (name, want) in [
            ("redis.mesh.default.svc.cluster.local", Some("redis.mesh.")),
            ("redis.mesh.svc.cluster.local", Some("redis.mesh.")),
            ("redis.mesh.cluster.local", Some("redis.mesh.")),
            // Whether the table holds it is the caller's question.
            ("nope.mesh.default.svc.cluster.local", Some("nope.mesh.")),
            (
                "a.b.mesh.local.ns.svc.cluster.local",
                Some("a.b.mesh.local."),
            ),
            // Under a suffix, but no zone's name before it.
            ("redis.default.svc.cluster.local", None),
            ("svc.cluster.local", None),
            ("mesh.cluster.local", Some("mesh.")),
            ("redis.mesh.example.com", None),
        ] {
            assert_eq!(mesh_name_of(&table, name).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn off_expands_nothing_and_gives_the_program_no_patterns() {
        let table = table("");
        assert_eq!(mesh_name_of(&table, "redis.mesh.cluster.local"), None);
        assert!(table.search_patterns().iter().all(|p| p.suffix_len == 0));
    }

    /// The patterns are the suffixes in order, each with every zone, the
    /// longest apex first (zone 0 is `mesh.local`), and read back as the
    /// suffixes they came from.
    #[test]
    fn patterns_pair_each_suffix_with_each_zone_in_the_order_expand_tries() {
        let table = table(KUBERNETES);
        let patterns = table.search_patterns();
        let got: Vec<(String, u16, u32, u32)> = patterns
            .iter()
            .take_while(|p| p.suffix_len > 0)
            .map(|p| {
                (
                    dns_name::to_text(p.suffix_wire()),
                    p.wildcard,
                    p.zone,
                    p.answer,
                )
            })
            .collect();
        let want = |s: &str, w, z| (s.to_string(), w, z, SEARCH_CNAME);
        assert_eq!(
            got,
            [
                want("svc.cluster.local.", 1, 0),
                want("svc.cluster.local.", 1, 1),
                want("svc.cluster.local.", 0, 0),
                want("svc.cluster.local.", 0, 1),
                want("cluster.local.", 0, 0),
                want("cluster.local.", 0, 1),
            ]
        );
        assert_eq!(
            dns_name::to_text(table.zones()[0].apex_wire()),
            "mesh.local."
        );
        assert_eq!(
            dns_name::to_text(patterns[0].common_wire()),
            "cluster.local."
        );
        assert_eq!(&Search::from_patterns(&patterns), table.search());
    }
}

//! Whom, for which addresses and how often the program answers: the
//! `ScopeTable` in the `SCOPE` slot (see `meshdns_common::scope`), made
//! from the resolver's `allow_from` and the services file's
//! `fast_path_destinations` and `rate_limit`, and replaced whole when one
//! changes.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    ops::RangeInclusive,
};

use aya::maps::{Array, MapData};
use meshdns_common::{
    MAX_SCOPE_RANGES4, MAX_SCOPE_RANGES6, Range4, Range6, Ranges4, Ranges6, SCOPE_ANY_CLIENT,
    SCOPE_ANY_DESTINATION, SCOPE_MAP, ScopeTable,
};

use super::{FastPath, FastPathError, Result, sync};
use crate::{cidr::Cidr, config::rate_limit::RateLimitSettings};

/// What the program answers: clients and destinations, each a list of
/// prefixes or `None` for any, and how many answers a client prefix gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// `allow_from`.
    pub clients: Option<Vec<Cidr>>,
    /// `fast_path_destinations`.
    pub destinations: Option<Vec<Cidr>>,
    /// `rate_limit`; `None`: no limit.
    pub rate_limit: Option<RateLimitSettings>,
}

/// A scope as the program holds it: each list's addresses as merged
/// ranges, or `None` for any, and its rate limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeRanges {
    pub clients: Option<Vec<RangeInclusive<IpAddr>>>,
    pub destinations: Option<Vec<RangeInclusive<IpAddr>>>,
    pub rate_limit: Option<RateLimitSettings>,
}

impl Scope {
    /// Every client, every destination, no limit: `meshdns lookup`'s, and
    /// the tests' that are not about the scope.
    pub fn any() -> Self {
        Self {
            clients: None,
            destinations: None,
            rate_limit: None,
        }
    }

    /// The resolver's `allow_from` (any client if it holds both families
    /// whole), the destinations and the rate limit.
    pub fn new(
        allow_from: &[Cidr],
        destinations: Option<Vec<Cidr>>,
        rate_limit: Option<RateLimitSettings>,
    ) -> Self {
        let whole = |v4: bool| {
            allow_from
                .iter()
                .any(|c| c.is_everything() && c.is_ipv4() == v4)
        };
        Self {
            clients: (!(whole(true) && whole(false))).then(|| allow_from.to_vec()),
            destinations,
            rate_limit,
        }
    }

    /// Its lists as the program holds them.
    pub fn ranges(&self) -> ScopeRanges {
        let merged = |list: &Option<Vec<Cidr>>| {
            list.as_deref().map(|cidrs| {
                let (v4, v6) = merge(cidrs);
                v4.into_iter()
                    .map(|r| Ipv4Addr::from(*r.start()).into()..=Ipv4Addr::from(*r.end()).into())
                    .chain(v6.into_iter().map(|r| {
                        Ipv6Addr::from(*r.start()).into()..=Ipv6Addr::from(*r.end()).into()
                    }))
                    .collect()
            })
        };
        ScopeRanges {
            clients: merged(&self.clients),
            destinations: merged(&self.destinations),
            rate_limit: self.rate_limit,
        }
    }

    /// The table the program reads; an error if a list has more ranges
    /// than it holds.
    fn table(&self) -> Result<Box<ScopeTable>> {
        let mut table = Box::new(ScopeTable::EMPTY);
        if self.clients.is_none() {
            table.flags |= SCOPE_ANY_CLIENT;
        }
        if self.destinations.is_none() {
            table.flags |= SCOPE_ANY_DESTINATION;
        }
        if let Some(rate_limit) = &self.rate_limit {
            table.rate_limit = rate_limit.limit();
        }
        let clients = self.clients.as_deref().unwrap_or_default();
        fill(
            "allow_from",
            clients,
            &mut table.clients4,
            &mut table.clients6,
        )?;
        let destinations = self.destinations.as_deref().unwrap_or_default();
        fill(
            "fast_path_destinations",
            destinations,
            &mut table.destinations4,
            &mut table.destinations6,
        )?;
        Ok(table)
    }
}

/// The prefixes of `cidrs` as sorted, disjoint ranges of numbers, those
/// that overlap or touch made one: IPv4's, IPv6's.
fn merge(cidrs: &[Cidr]) -> (Vec<RangeInclusive<u32>>, Vec<RangeInclusive<u128>>) {
    let mut v4: Vec<RangeInclusive<u128>> = Vec::new();
    let mut v6: Vec<RangeInclusive<u128>> = Vec::new();
    for cidr in cidrs {
        if cidr.is_ipv4() { &mut v4 } else { &mut v6 }.push(cidr.numbers());
    }
    let v4 = join(v4)
        .into_iter()
        .map(|r| *r.start() as u32..=*r.end() as u32)
        .collect();
    (v4, join(v6))
}

/// Sorted ranges, those that overlap or touch joined.
fn join(mut ranges: Vec<RangeInclusive<u128>>) -> Vec<RangeInclusive<u128>> {
    ranges.sort_by_key(|r| *r.start());
    let mut joined: Vec<RangeInclusive<u128>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match joined.last_mut() {
            Some(last) if *range.start() <= last.end().saturating_add(1) => {
                if range.end() > last.end() {
                    *last = *last.start()..=*range.end();
                }
            }
            _ => joined.push(range),
        }
    }
    joined
}

/// Writes `cidrs` into a list's IPv4 and IPv6 ranges.
fn fill(list: &'static str, cidrs: &[Cidr], v4: &mut Ranges4, v6: &mut Ranges6) -> Result<()> {
    let (ranges4, ranges6) = merge(cidrs);
    let too_many = |family, count, max| FastPathError::TooManyRanges {
        list,
        family,
        count,
        max,
    };
    if ranges4.len() > MAX_SCOPE_RANGES4 {
        return Err(too_many(4, ranges4.len(), MAX_SCOPE_RANGES4));
    }
    if ranges6.len() > MAX_SCOPE_RANGES6 {
        return Err(too_many(6, ranges6.len(), MAX_SCOPE_RANGES6));
    }
    for (slot, range) in v4.ranges.iter_mut().zip(&ranges4) {
        *slot = Range4 {
            first: *range.start(),
            last: *range.end(),
        };
    }
    (v4.count, v4.first_step) = (ranges4.len() as u32, first_step(ranges4.len()));
    let halves = |n: u128| [(n >> 64) as u64, n as u64];
    for (slot, range) in v6.ranges.iter_mut().zip(&ranges6) {
        *slot = Range6 {
            first: halves(*range.start()),
            last: halves(*range.end()),
        };
    }
    (v6.count, v6.first_step) = (ranges6.len() as u32, first_step(ranges6.len()));
    Ok(())
}

/// The largest power of two below `count`, 0 for one or none: where the
/// program's halving starts.
fn first_step(count: usize) -> u32 {
    match count {
        0 | 1 => 0,
        n => 1 << (usize::BITS - 1 - (n - 1).leading_zeros()),
    }
}

/// A list of the program's table as ranges of addresses.
fn ranges_of(v4: &Ranges4, v6: &Ranges6) -> Vec<RangeInclusive<IpAddr>> {
    let whole = |halves: [u64; 2]| (u128::from(halves[0]) << 64) | u128::from(halves[1]);
    let v4 = v4.ranges[..(v4.count as usize).min(MAX_SCOPE_RANGES4)]
        .iter()
        .map(|r| IpAddr::from(Ipv4Addr::from(r.first))..=IpAddr::from(Ipv4Addr::from(r.last)));
    let v6 = v6.ranges[..(v6.count as usize).min(MAX_SCOPE_RANGES6)]
        .iter()
        .map(|r| {
            IpAddr::from(Ipv6Addr::from(whole(r.first)))..=Ipv6Addr::from(whole(r.last)).into()
        });
    v4.chain(v6).collect()
}

impl ScopeRanges {
    /// What `table` holds.
    pub fn of(table: &ScopeTable) -> Self {
        Self {
            clients: (table.flags & SCOPE_ANY_CLIENT == 0)
                .then(|| ranges_of(&table.clients4, &table.clients6)),
            destinations: (table.flags & SCOPE_ANY_DESTINATION == 0)
                .then(|| ranges_of(&table.destinations4, &table.destinations6)),
            rate_limit: RateLimitSettings::of(&table.rate_limit),
        }
    }
}

impl FastPath {
    /// Makes the program answer `scope`, in one update: a new table in the
    /// scope's slot.
    pub fn set_scope(&mut self, scope: &Scope) -> Result<()> {
        let table = scope.table()?;
        let entries: &[ScopeTable; 1] = std::array::from_ref(&*table);
        self.scope_map = Some(sync::replace_array(&mut self.scope, SCOPE_MAP, entries)?);
        Ok(())
    }

    /// The scope the program answers now, as the kernel holds it; `None`
    /// if no table is in its slot (every query passed).
    pub fn scope(&self) -> Result<Option<ScopeRanges>> {
        scope_of(self.scope_map.as_ref())
    }
}

/// What a scope array holds, if there is one.
pub fn scope_of(map: Option<&Array<MapData, ScopeTable>>) -> Result<Option<ScopeRanges>> {
    map.map(|map| {
        map.get(&0, 0)
            .map(|table| ScopeRanges::of(&table))
            .map_err(super::map_error(SCOPE_MAP))
    })
    .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cidr::cidrs;

    #[test]
    fn prefixes_that_overlap_or_touch_are_one_range() {
        let (v4, v6) = merge(&cidrs(&[
            "198.18.0.3/32",
            "198.18.0.2/32",
            "198.18.0.0/31",
            "10.0.0.0/8",
            "10.1.0.0/16",
            "0.0.0.0/0",
            "2001:db8::/64",
            "2001:db8:0:1::/64",
            "2001:db8::ffff/128",
        ]));
        assert_eq!(v4, [0..=u32::MAX]);
        assert_eq!(
            v6,
            [
                u128::from(Ipv6Addr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]))
                    ..=u128::from(Ipv6Addr::from([
                        0x2001, 0xdb8, 0, 1, 0xffff, 0xffff, 0xffff, 0xffff
                    ]))
            ]
        );
        let (v4, _) = merge(&cidrs(&[
            "198.18.0.2/32",
            "198.18.0.4/32",
            "198.18.0.3/32",
            "127.0.0.0/8",
        ]));
        assert_eq!(
            v4,
            [
                u32::from(Ipv4Addr::new(127, 0, 0, 0))
                    ..=u32::from(Ipv4Addr::new(127, 255, 255, 255)),
                u32::from(Ipv4Addr::new(198, 18, 0, 2))..=u32::from(Ipv4Addr::new(198, 18, 0, 4)),
            ]
        );
    }

    #[test]
    fn the_halving_starts_at_the_largest_power_of_two_below_the_count() {
        for (count, step) in [(0, 0), (1, 0), (2, 1), (3, 2), (4, 2), (5, 4), (1024, 512)] {
            assert_eq!(first_step(count), step, "{count}");
        }
    }

    #[test]
    fn a_list_longer_than_the_table_holds_is_refused() {
        // Every other /32 of a /20: 2,048 ranges that do not touch.
        let spread: Vec<Cidr> = (0..2048u32)
            .map(|i| {
                Cidr::host(Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 0)) + 2 * i).into())
            })
            .collect();
        let scope = Scope {
            clients: Some(spread),
            ..Scope::any()
        };
        let error = scope.table().unwrap_err().to_string();
        assert!(
            error.contains("allow_from") && error.contains("2048"),
            "{error}"
        );
    }
}

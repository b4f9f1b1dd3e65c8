//! IP prefixes (`240.0.0.0/4`, `fd00:fd00::/64`): VIP pools, `allow_from`,
//! and the interfaces' own subnets.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    str::FromStr,
};

/// An IPv4 or IPv6 prefix, such as `240.0.0.0/4`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cidr {
    base: IpAddr,
    prefix: u8,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0:?} is not a CIDR such as 240.0.0.0/4 or fd00:fd00::/64")]
pub struct CidrError(pub String);

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let error = || CidrError(text.to_string());
        let (addr, prefix) = text.split_once('/').ok_or_else(error)?;
        let base: IpAddr = addr.parse().map_err(|_| error())?;
        let prefix: u8 = prefix.parse().map_err(|_| error())?;
        let bits = if base.is_ipv4() { 32 } else { 128 };
        if prefix > bits {
            return Err(error());
        }
        let cidr = Cidr { base, prefix };
        // The base must be the network address: 240.0.0.1/4 is a typo.
        if cidr.nth_raw(0) != base {
            return Err(error());
        }
        Ok(cidr)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.base, self.prefix)
    }
}

impl Cidr {
    pub fn is_ipv4(&self) -> bool {
        self.base.is_ipv4()
    }

    fn bits(&self) -> u32 {
        if self.base.is_ipv4() { 32 } else { 128 }
    }

    fn host_bits(&self) -> u32 {
        self.bits() - u32::from(self.prefix)
    }

    /// The host part's bits set.
    fn host_mask(&self) -> u128 {
        match self.host_bits() {
            128 => u128::MAX,
            bits => (1u128 << bits) - 1,
        }
    }

    /// The address `i` places after the network address (i below the size).
    fn nth_raw(&self, i: u128) -> IpAddr {
        let value = (to_u128(self.base) & !self.host_mask()) | (i & self.host_mask());
        match self.base {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
        }
    }

    /// Whether the network address is kept back: in IPv4 prefixes longer
    /// than /31 (RFC 3021) with the broadcast address, and in IPv6 prefixes
    /// with room for it (the subnet-router anycast address, RFC 4291).
    fn reserves_network(&self) -> bool {
        let host_bits = self.host_bits();
        if self.base.is_ipv4() {
            host_bits > 1
        } else {
            host_bits > 0
        }
    }

    /// How many addresses may be given out.
    pub(crate) fn usable(&self) -> u128 {
        let size = self.host_mask().saturating_add(1);
        let reserved = match (self.reserves_network(), self.base.is_ipv4()) {
            (false, _) => 0,
            (true, true) => 2,
            (true, false) => 1,
        };
        size - reserved
    }

    /// The `i`-th usable address (i below `usable()`).
    pub(crate) fn usable_nth(&self, i: u128) -> IpAddr {
        self.nth_raw(i + u128::from(self.reserves_network()))
    }

    /// The subnet `addr` is in, given its prefix length (an interface's
    /// address and netmask).
    pub fn containing(addr: IpAddr, prefix: u8) -> Self {
        let bits = if addr.is_ipv4() { 32 } else { 128 };
        let any = Cidr {
            base: addr,
            prefix: prefix.min(bits),
        };
        Cidr {
            base: any.nth_raw(0),
            ..any
        }
    }

    /// The prefix of `addr` alone (a /32 or a /128).
    pub fn host(addr: IpAddr) -> Self {
        Cidr::containing(addr, if addr.is_ipv4() { 32 } else { 128 })
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.base
    }

    /// The prefix length, in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Its addresses as numbers, first to last (an IPv4 address's is
    /// below 2^32).
    pub fn numbers(&self) -> std::ops::RangeInclusive<u128> {
        let first = to_u128(self.base) & !self.host_mask();
        first..=first | self.host_mask()
    }

    /// Whether it holds every address of its family (`0.0.0.0/0`, `::/0`).
    pub fn is_everything(&self) -> bool {
        self.prefix == 0
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.base.is_ipv4()
            && to_u128(addr) & !self.host_mask() == to_u128(self.base) & !self.host_mask()
    }
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// Each of `list` parsed, for tests.
#[cfg(test)]
pub(crate) fn cidrs(list: &[&str]) -> Vec<Cidr> {
    list.iter().map(|c| c.parse().expect("a CIDR")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_contain() {
        let cidr: Cidr = "240.0.0.0/4".parse().unwrap();
        assert!(cidr.contains("255.255.255.254".parse().unwrap()));
        assert!(!cidr.contains("10.0.0.1".parse().unwrap()));
        assert!(!cidr.contains("fd00::1".parse().unwrap()));
        assert_eq!(cidr.usable(), (1 << 28) - 2);
        assert_eq!(cidr.usable_nth(0), "240.0.0.1".parse::<IpAddr>().unwrap());
        assert!("240.0.0.1/4".parse::<Cidr>().is_err(), "host bits set");
        assert!("240.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nonsense".parse::<Cidr>().is_err());
        let v6: Cidr = "fd00:fd00::/64".parse().unwrap();
        assert_eq!(v6.usable(), u128::from(u64::MAX));
        assert!(v6.contains("fd00:fd00::1234".parse().unwrap()));
    }

    #[test]
    fn subnets_of_addresses() {
        assert_eq!(
            Cidr::containing("198.18.0.1".parse().unwrap(), 24).to_string(),
            "198.18.0.0/24"
        );
        assert_eq!(
            Cidr::containing("2001:db8::1".parse().unwrap(), 64).to_string(),
            "2001:db8::/64"
        );
        assert_eq!(
            Cidr::containing("127.0.0.1".parse().unwrap(), 8).to_string(),
            "127.0.0.0/8"
        );
    }
}

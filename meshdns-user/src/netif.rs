//! Facts about the host the defaults come from: an interface's addresses
//! and subnets, and the system's nameservers.

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use crate::vip::Cidr;

/// The addresses of `iface` with their prefix lengths.
pub fn addresses(iface: &str) -> std::io::Result<Vec<(IpAddr, u8)>> {
    let mut found = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs; every
    // pointer is checked for null before use and read as the family says.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut cursor = list;
        while !cursor.is_null() {
            let ifa = &*cursor;
            cursor = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
                continue;
            }
            if CStr::from_ptr(ifa.ifa_name).to_bytes() != iface.as_bytes() {
                continue;
            }
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
                    let prefix = if ifa.ifa_netmask.is_null() {
                        32
                    } else {
                        let mask = &*(ifa.ifa_netmask as *const libc::sockaddr_in);
                        u32::from_be(mask.sin_addr.s_addr).count_ones() as u8
                    };
                    found.push((IpAddr::V4(ip), prefix));
                }
                libc::AF_INET6 => {
                    let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                    let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
                    let prefix = if ifa.ifa_netmask.is_null() {
                        128
                    } else {
                        let mask = &*(ifa.ifa_netmask as *const libc::sockaddr_in6);
                        u128::from_be_bytes(mask.sin6_addr.s6_addr).count_ones() as u8
                    };
                    found.push((IpAddr::V6(ip), prefix));
                }
                _ => {}
            }
        }
        libc::freeifaddrs(list);
    }
    Ok(found)
}

/// The subnet an address with a prefix length belongs to.
pub fn subnet(addr: IpAddr, prefix: u8) -> Cidr {
    let bits = if addr.is_ipv4() { 32 } else { 128 };
    let host_bits = bits - u32::from(prefix);
    let network = match addr {
        IpAddr::V4(a) => {
            let mask = if host_bits >= 32 {
                0
            } else {
                u32::MAX << host_bits
            };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let mask = if host_bits >= 128 {
                0
            } else {
                u128::MAX << host_bits
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    };
    format!("{network}/{prefix}")
        .parse()
        .expect("a network address with its prefix")
}

/// The nameservers of a resolv.conf, port 53.
pub fn nameservers(resolv_conf: &Path) -> Vec<SocketAddr> {
    let Ok(text) = std::fs::read_to_string(resolv_conf) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .filter_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_of_addresses() {
        assert_eq!(
            subnet("198.18.0.1".parse().unwrap(), 24).to_string(),
            "198.18.0.0/24"
        );
        assert_eq!(
            subnet("2001:db8::1".parse().unwrap(), 64).to_string(),
            "2001:db8::/64"
        );
        assert_eq!(
            subnet("127.0.0.1".parse().unwrap(), 8).to_string(),
            "127.0.0.0/8"
        );
    }

    #[test]
    fn nameservers_from_resolv_conf() {
        let path = std::env::temp_dir().join(format!("meshdns-resolv-{}", std::process::id()));
        std::fs::write(&path, "# x\nsearch example\nnameserver 198.18.1.1\nnameserver fe80::1%eth0\nnameserver bogus\n").unwrap();
        assert_eq!(
            nameservers(&path),
            [
                "198.18.1.1:53".parse().unwrap(),
                "[fe80::1]:53".parse().unwrap()
            ]
        );
        std::fs::remove_file(path).unwrap();
    }
}

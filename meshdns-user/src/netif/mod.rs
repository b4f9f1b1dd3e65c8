//! Facts about the host the defaults come from: an interface's addresses
//! and subnets, and the system's nameservers; and, in [`links`], the
//! interfaces as rtnetlink describes them and announces their changes.

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

mod links;
mod pattern;
mod routes;

pub use links::{Link, LinkEvent, LinkEvents, link, link_by_name, links, xdp_attached};
pub use pattern::{IfacePattern, PatternError, first_match};
pub use routes::{Route, routes};

/// Calls `f` with each `ifaddrs` entry of an interface in `ifaces` that has
/// an address: one getifaddrs for all of them.
fn each_ifaddr(
    ifaces: &[&str],
    mut f: impl FnMut(&libc::sockaddr, *const libc::sockaddr),
) -> std::io::Result<()> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list`, freed below with freeifaddrs; every
    // pointer is checked for null before use.
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
            let name = CStr::from_ptr(ifa.ifa_name).to_bytes();
            if !ifaces.iter().any(|iface| iface.as_bytes() == name) {
                continue;
            }
            f(&*ifa.ifa_addr, ifa.ifa_netmask);
        }
        libc::freeifaddrs(list);
    }
    Ok(())
}

/// The addresses of `iface` with their prefix lengths.
pub fn addresses(iface: &str) -> std::io::Result<Vec<(IpAddr, u8)>> {
    addresses_of(&[iface])
}

/// The addresses of the interfaces `ifaces` with their prefix lengths.
pub fn addresses_of(ifaces: &[&str]) -> std::io::Result<Vec<(IpAddr, u8)>> {
    let mut found = Vec::new();
    each_ifaddr(ifaces, |addr, netmask| {
        // SAFETY: the family says which sockaddr this is; a netmask, if
        // any, has the same family.
        unsafe {
            match i32::from(addr.sa_family) {
                libc::AF_INET => {
                    let addr = &*(addr as *const libc::sockaddr as *const libc::sockaddr_in);
                    let ip = Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
                    let prefix = if netmask.is_null() {
                        32
                    } else {
                        let mask = &*(netmask as *const libc::sockaddr_in);
                        u32::from_be(mask.sin_addr.s_addr).count_ones() as u8
                    };
                    found.push((IpAddr::V4(ip), prefix));
                }
                libc::AF_INET6 => {
                    let addr = &*(addr as *const libc::sockaddr as *const libc::sockaddr_in6);
                    let ip = Ipv6Addr::from(addr.sin6_addr.s6_addr);
                    let prefix = if netmask.is_null() {
                        128
                    } else {
                        let mask = &*(netmask as *const libc::sockaddr_in6);
                        u128::from_be_bytes(mask.sin6_addr.s6_addr).count_ones() as u8
                    };
                    found.push((IpAddr::V6(ip), prefix));
                }
                _ => {}
            }
        }
    })?;
    Ok(found)
}

/// The Ethernet (MAC) address of `iface`, if it has one: from its
/// link-layer (AF_PACKET) entry, as seen from this network namespace.
pub fn mac(iface: &str) -> std::io::Result<Option<[u8; 6]>> {
    let mut found = None;
    each_ifaddr(&[iface], |addr, _| {
        if i32::from(addr.sa_family) != libc::AF_PACKET {
            return;
        }
        // SAFETY: an AF_PACKET entry is a sockaddr_ll.
        let link = unsafe { &*(addr as *const libc::sockaddr as *const libc::sockaddr_ll) };
        // Loopback has six zero bytes: no address to check frames against.
        if link.sll_halen == 6 && link.sll_addr[..6] != [0; 6] {
            let mut mac = [0; 6];
            mac.copy_from_slice(&link.sll_addr[..6]);
            found = Some(mac);
        }
    })?;
    Ok(found)
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

/// The index of the interface called `name`, if there is one.
pub fn index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The name of the interface with index `index`, if there is one.
pub fn name(index: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: `buf` has the IF_NAMESIZE bytes if_indextoname writes at most.
    let name = unsafe { libc::if_indextoname(index, buf.as_mut_ptr()) };
    if name.is_null() {
        return None;
    }
    // SAFETY: if_indextoname wrote a NUL-terminated name into `buf`.
    let name = unsafe { CStr::from_ptr(buf.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// How an XDP program is attached to an interface, as the kernel reports
/// it (`IFLA_XDP_ATTACHED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    /// In the driver (native XDP).
    Driver,
    /// Generic (SKB) mode, after the driver.
    Generic,
    /// Offloaded to the NIC.
    Offload,
}

impl XdpAttachMode {
    /// As `ip link` and the logs say it: `driver`, `generic`, ...
    pub fn name(self) -> &'static str {
        match self {
            XdpAttachMode::Driver => "driver",
            XdpAttachMode::Generic => "generic",
            XdpAttachMode::Offload => "offload",
        }
    }

    /// The mode of an attachment, or `unknown` if the kernel could not say.
    pub fn name_of(mode: Option<Self>) -> &'static str {
        mode.map_or("unknown", Self::name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_addresses_and_no_ethernet_address() {
        let addresses = addresses("lo").unwrap();
        assert!(
            addresses.contains(&("127.0.0.1".parse().unwrap(), 8)),
            "{addresses:?}"
        );
        // Six zero bytes: no MAC to check frames against.
        assert_eq!(mac("lo").unwrap(), None);
    }

    #[test]
    fn the_loopback_interface_is_known_by_name_and_index() {
        let index = index("lo").expect("every network namespace has lo");
        assert_eq!(name(index).as_deref(), Some("lo"));
        assert_eq!(super::index("meshdns-none0"), None);
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

//! Facts about the host the defaults come from: an interface's addresses
//! and subnets, and the system's nameservers.

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

/// Calls `f` with each `ifaddrs` entry of `iface` that has an address.
fn each_ifaddr(
    iface: &str,
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
            if CStr::from_ptr(ifa.ifa_name).to_bytes() != iface.as_bytes() {
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
    let mut found = Vec::new();
    each_ifaddr(iface, |addr, netmask| {
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
    each_ifaddr(iface, |addr, _| {
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
    /// Several modes at once.
    Multi,
}

impl XdpAttachMode {
    /// As `ip link` and the logs say it: `driver`, `generic`, ...
    pub fn name(self) -> &'static str {
        match self {
            XdpAttachMode::Driver => "driver",
            XdpAttachMode::Generic => "generic",
            XdpAttachMode::Offload => "offload",
            XdpAttachMode::Multi => "multi",
        }
    }

    /// The mode of an attachment, or `unknown` if the kernel could not say.
    pub fn name_of(mode: Option<Self>) -> &'static str {
        mode.map_or("unknown", Self::name)
    }
}

/// The XDP program attached to the interface with index `ifindex`, if
/// any: how, and its id. Asked of the kernel over rtnetlink (RTM_GETLINK),
/// the same answer `ip link` shows.
pub fn xdp_attached(ifindex: u32) -> std::io::Result<Option<(XdpAttachMode, u32)>> {
    use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
    const RTM_GETLINK: u16 = 18;
    const NLM_F_REQUEST: u16 = 1;
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a fresh fd nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct nlmsghdr, then struct ifinfomsg naming the interface.
    let mut request = Vec::with_capacity(32);
    request.extend(32u32.to_ne_bytes());
    request.extend(RTM_GETLINK.to_ne_bytes());
    request.extend(NLM_F_REQUEST.to_ne_bytes());
    request.extend(1u32.to_ne_bytes()); // sequence
    request.extend(0u32.to_ne_bytes()); // port: the kernel
    request.extend([libc::AF_UNSPEC as u8, 0, 0, 0]);
    request.extend((ifindex as i32).to_ne_bytes());
    request.extend([0u8; 8]); // flags, change
    // SAFETY: sending our buffer on our socket; the kernel is the default
    // destination of an unbound netlink socket.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut reply = vec![0u8; 65_536];
    // SAFETY: receiving into our buffer, at most its length.
    let len = unsafe {
        libc::recv(
            socket.as_raw_fd(),
            reply.as_mut_ptr().cast(),
            reply.len(),
            0,
        )
    };
    if len < 0 {
        return Err(std::io::Error::last_os_error());
    }
    parse_xdp_attached(&reply[..len as usize])
}

/// Reads the `IFLA_XDP` attribute of an RTM_NEWLINK reply.
fn parse_xdp_attached(reply: &[u8]) -> std::io::Result<Option<(XdpAttachMode, u32)>> {
    const NLMSG_ERROR: u16 = 2;
    const RTM_NEWLINK: u16 = 16;
    const IFLA_XDP: u16 = 43;
    const IFLA_XDP_ATTACHED: u16 = 2;
    const IFLA_XDP_PROG_ID: u16 = 4;
    let bad = |what: &str| std::io::Error::other(format!("rtnetlink: {what}"));
    let u16_at = |at: usize| {
        reply
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        reply
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    let kind = u16_at(4).ok_or_else(|| bad("short reply"))?;
    if kind == NLMSG_ERROR {
        let errno = u32_at(16).ok_or_else(|| bad("short error"))? as i32;
        return Err(std::io::Error::from_raw_os_error(-errno));
    }
    if kind != RTM_NEWLINK {
        return Err(bad("not a link message"));
    }
    let end = (u32_at(0).ok_or_else(|| bad("short reply"))? as usize).min(reply.len());
    // Attributes follow the 16-byte header and the 16-byte ifinfomsg,
    // each 4-aligned: length (with its 4-byte head), type, value.
    let attributes = |mut at: usize, end: usize| {
        std::iter::from_fn(move || {
            let len = usize::from(u16_at(at)?);
            let kind = u16_at(at + 2)? & 0x3fff; // without NLA_F_NESTED
            if len < 4 || at + len > end {
                return None;
            }
            let value = (at + 4, at + len);
            at += (len + 3) & !3;
            Some((kind, value))
        })
    };
    let Some((_, (start, stop))) = attributes(32, end).find(|(kind, _)| *kind == IFLA_XDP) else {
        return Ok(None);
    };
    let mut mode = None;
    let mut program_id = 0;
    for (kind, (value, _)) in attributes(start, stop) {
        match kind {
            IFLA_XDP_ATTACHED => {
                mode = match reply.get(value) {
                    Some(1) => Some(XdpAttachMode::Driver),
                    Some(2) => Some(XdpAttachMode::Generic),
                    Some(3) => Some(XdpAttachMode::Offload),
                    Some(4) => Some(XdpAttachMode::Multi),
                    _ => None,
                }
            }
            IFLA_XDP_PROG_ID => program_id = u32_at(value).unwrap_or(0),
            _ => {}
        }
    }
    Ok(mode.map(|mode| (mode, program_id)))
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
    fn xdp_attachment_from_an_rtnetlink_reply() {
        // RTM_NEWLINK: header, ifinfomsg, IFLA_MTU, then IFLA_XDP (nested)
        // with ATTACHED = 2 (generic) and PROG_ID = 77.
        let mut reply = Vec::new();
        let attr = |kind: u16, value: &[u8]| {
            let mut a = ((4 + value.len()) as u16).to_ne_bytes().to_vec();
            a.extend(kind.to_ne_bytes());
            a.extend(value);
            while !a.len().is_multiple_of(4) {
                a.push(0);
            }
            a
        };
        let mut xdp = attr(2, &[2]);
        xdp.extend(attr(4, &77u32.to_ne_bytes()));
        let mut attrs = attr(4, &1500u32.to_ne_bytes());
        attrs.extend(attr(43 | 0x8000, &xdp));
        reply.extend(((32 + attrs.len()) as u32).to_ne_bytes());
        reply.extend(16u16.to_ne_bytes());
        reply.extend([0u8; 10]);
        reply.extend([0u8; 16]);
        reply.extend(&attrs);
        assert_eq!(
            parse_xdp_attached(&reply).unwrap(),
            Some((XdpAttachMode::Generic, 77))
        );
        // Cut after IFLA_MTU, without IFLA_XDP: nothing attached.
        let mut bare = reply[..40].to_vec();
        bare[..4].copy_from_slice(&40u32.to_ne_bytes());
        assert_eq!(parse_xdp_attached(&bare).unwrap(), None);
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

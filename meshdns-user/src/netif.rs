//! Facts about the host the defaults come from: an interface's addresses
//! and subnets, and the system's nameservers.

use std::{
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use netlink_packet_core::{NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{LinkAttribute, LinkMessage, LinkXdp, XdpAttached},
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

/// The XDP programs attached to the interface with index `ifindex`, each
/// with how it runs and its id; empty if none. Asked of the kernel over
/// rtnetlink (RTM_GETLINK), the same answer `ip link` shows.
///
/// When several are attached at once (`XDP_ATTACHED_MULTI`: one in the
/// driver or in generic mode, another offloaded to the NIC), the kernel
/// sends no `IFLA_XDP_PROG_ID`, only one id per mode; each comes back as
/// its own pair, with its own mode, so a caller looking for one program
/// finds how that one runs.
pub fn xdp_attached(ifindex: u32) -> std::io::Result<Vec<(XdpAttachMode, u32)>> {
    Ok(xdp_of(&get_link(ifindex)?))
}

/// The programs named by a link's `IFLA_XDP` attribute.
fn xdp_of(link: &LinkMessage) -> Vec<(XdpAttachMode, u32)> {
    let xdp = link
        .attributes
        .iter()
        .find_map(|attribute| match attribute {
            LinkAttribute::Xdp(xdp) => Some(xdp.as_slice()),
            _ => None,
        });
    xdp.map_or_else(Vec::new, xdp_programs)
}

/// The programs named by the `IFLA_XDP` attribute of an RTM_NEWLINK reply.
#[cfg(test)]
fn parse_xdp_attached(reply: &[u8]) -> std::io::Result<Vec<(XdpAttachMode, u32)>> {
    Ok(xdp_of(&parse_link(reply)?))
}

/// Whether interface `ifindex` is one end of a veth pair (its link kind,
/// over rtnetlink, as `ip -d link` shows it).
pub fn is_veth(ifindex: u32) -> std::io::Result<bool> {
    use netlink_packet_route::link::{InfoKind, LinkInfo};
    Ok(get_link(ifindex)?.attributes.iter().any(|attribute| {
        matches!(attribute, LinkAttribute::LinkInfo(infos)
            if infos.iter().any(|info| matches!(info, LinkInfo::Kind(InfoKind::Veth))))
    }))
}

/// The kernel's RTM_NEWLINK for interface `ifindex` (RTM_GETLINK).
fn get_link(ifindex: u32) -> std::io::Result<LinkMessage> {
    use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
    let mut link = LinkMessage::default();
    link.header.index = ifindex;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let request = emit(header, RouteNetlinkMessage::GetLink(link).into());
    let socket = Socket::new(NETLINK_ROUTE)?;
    // Port 0: the kernel.
    socket.send_to(&request, &SocketAddr::new(0, 0), 0)?;
    let (reply, _) = socket.recv_from_full()?;
    parse_link(&reply)
}

/// A netlink message with `header` (its length and type filled in) and
/// `payload`, in wire format.
fn emit(header: NetlinkHeader, payload: NetlinkPayload<RouteNetlinkMessage>) -> Vec<u8> {
    let mut packet = NetlinkMessage::new(header, payload);
    packet.finalize();
    let mut bytes = vec![0; packet.buffer_len()];
    packet.serialize(&mut bytes);
    bytes
}

/// The link of an RTM_NEWLINK reply.
fn parse_link(reply: &[u8]) -> std::io::Result<LinkMessage> {
    let bad = |what: String| std::io::Error::other(format!("rtnetlink: {what}"));
    let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(reply)
        .map_err(|error| bad(error.to_string()))?;
    match message.payload {
        NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link)) => Ok(link),
        NetlinkPayload::Error(error) => Err(error.to_io()),
        other => Err(bad(format!("not a link message: {other:?}"))),
    }
}

/// The programs in an `IFLA_XDP` attribute (`rtnl_xdp_fill` in the
/// kernel's net/core/rtnetlink.c): in one mode, `IFLA_XDP_PROG_ID` and the
/// same id for that mode; in several, only an id per mode.
fn xdp_programs(xdp: &[LinkXdp]) -> Vec<(XdpAttachMode, u32)> {
    let (mut attached, mut program, mut per_mode) = (None, None, Vec::new());
    for nla in xdp {
        match *nla {
            LinkXdp::Attached(mode) => attached = Some(mode),
            LinkXdp::ProgId(id) => program = Some(id),
            LinkXdp::DrvProgId(id) => per_mode.push((XdpAttachMode::Driver, id)),
            LinkXdp::SkbProgId(id) => per_mode.push((XdpAttachMode::Generic, id)),
            LinkXdp::HwProgId(id) => per_mode.push((XdpAttachMode::Offload, id)),
            _ => {}
        }
    }
    let mode = match attached {
        Some(XdpAttached::Driver) => XdpAttachMode::Driver,
        Some(XdpAttached::SocketBuffer) => XdpAttachMode::Generic,
        Some(XdpAttached::Hardware) => XdpAttachMode::Offload,
        // None (then there are no ids), Multiple, or a mode unknown here.
        _ => return per_mode,
    };
    program.map_or(per_mode, |id| vec![(mode, id)])
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::ErrorMessage;

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

    /// An RTM_NEWLINK reply in wire format, written by the crate's own
    /// serializer: IFLA_MTU, then IFLA_XDP with `xdp` if any.
    fn link_reply(xdp: Option<Vec<LinkXdp>>) -> Vec<u8> {
        let mut link = LinkMessage::default();
        link.header.index = 7;
        link.attributes.push(LinkAttribute::Mtu(1500));
        link.attributes.extend(xdp.map(LinkAttribute::Xdp));
        emit(
            NetlinkHeader::default(),
            RouteNetlinkMessage::NewLink(link).into(),
        )
    }

    #[test]
    fn xdp_attachment_in_one_mode() {
        use {XdpAttachMode as Mode, XdpAttached as Kernel};
        let cases = [
            (LinkXdp::DrvProgId(9), Kernel::Driver, Mode::Driver),
            (LinkXdp::SkbProgId(9), Kernel::SocketBuffer, Mode::Generic),
            (LinkXdp::HwProgId(9), Kernel::Hardware, Mode::Offload),
        ];
        for (id_for_mode, attached, mode) in cases {
            // As rtnl_xdp_fill sends it: the id for the mode, the mode, the id.
            let reply = link_reply(Some(vec![
                id_for_mode,
                LinkXdp::Attached(attached),
                LinkXdp::ProgId(9),
            ]));
            assert_eq!(parse_xdp_attached(&reply).unwrap(), [(mode, 9)]);
        }
    }

    #[test]
    fn xdp_attachment_in_several_modes_names_each_program() {
        // No IFLA_XDP_PROG_ID in multi mode: only an id per mode.
        let multi = link_reply(Some(vec![
            LinkXdp::DrvProgId(5),
            LinkXdp::HwProgId(6),
            LinkXdp::Attached(XdpAttached::Multiple),
        ]));
        assert_eq!(
            parse_xdp_attached(&multi).unwrap(),
            [(XdpAttachMode::Driver, 5), (XdpAttachMode::Offload, 6)]
        );
    }

    #[test]
    fn no_xdp_attachment_and_errors() {
        let none = link_reply(Some(vec![LinkXdp::Attached(XdpAttached::None)]));
        assert_eq!(parse_xdp_attached(&none).unwrap(), []);
        assert_eq!(parse_xdp_attached(&link_reply(None)).unwrap(), []);
        let mut error = ErrorMessage::default();
        error.code = std::num::NonZeroI32::new(-libc::ENODEV);
        let error = emit(NetlinkHeader::default(), NetlinkPayload::Error(error));
        let error = parse_xdp_attached(&error).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENODEV));
        assert!(parse_xdp_attached(&[0; 8]).is_err());
    }

    #[test]
    fn xdp_attachment_from_a_hand_written_reply() {
        // Independent of the crate: RTM_NEWLINK, header, ifinfomsg,
        // IFLA_MTU, then IFLA_XDP (nested) with ATTACHED = 2 (generic) and
        // PROG_ID = 77, without the per-mode id.
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
            [(XdpAttachMode::Generic, 77)]
        );
        // Cut after IFLA_MTU, without IFLA_XDP: nothing attached.
        let mut bare = reply[..40].to_vec();
        bare[..4].copy_from_slice(&40u32.to_ne_bytes());
        assert_eq!(parse_xdp_attached(&bare).unwrap(), []);
    }

    #[test]
    fn the_kernel_says_loopback_runs_no_xdp() {
        let lo = index("lo").expect("every network namespace has lo");
        assert_eq!(xdp_attached(lo).unwrap(), []);
        let error = xdp_attached(i32::MAX as u32).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENODEV));
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

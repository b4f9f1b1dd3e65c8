//! Interfaces as rtnetlink describes them: one asked for by index, all of
//! them at once (a dump), and each change as the kernel announces it
//! (RTM_NEWLINK and RTM_DELLINK to the RTNLGRP_LINK group), so that the
//! agent attaches to a pod's interface as it appears, without polling; and
//! that a route changed (the route groups), for the pods' addresses.

use std::{collections::VecDeque, os::fd::AsRawFd as _};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::{
    RouteNetlinkMessage,
    link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage, LinkXdp, XdpAttached},
};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use tokio::io::unix::AsyncFd;

use super::XdpAttachMode;

/// One interface, as one RTM_NEWLINK says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// Its Ethernet address; `None` for one without (loopback's six zero
    /// bytes, a tunnel).
    pub mac: Option<[u8; 6]>,
    /// One end of a veth pair (its link kind, as `ip -d link` shows it).
    pub veth: bool,
    /// The XDP programs attached to it, each with how it runs and its id;
    /// empty if none. See [`xdp_attached`].
    pub xdp: Vec<(XdpAttachMode, u32)>,
}

impl Link {
    /// The link an RTM_NEWLINK or RTM_DELLINK describes; `None` without a
    /// name, which the kernel always sends.
    fn from_message(message: &LinkMessage) -> Option<Self> {
        let mut link = Link {
            index: message.header.index,
            name: String::new(),
            mac: None,
            veth: false,
            xdp: Vec::new(),
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Address(mac) if mac.len() == 6 && mac[..] != [0; 6] => {
                    link.mac = Some(mac[..].try_into().expect("six bytes"));
                }
                LinkAttribute::LinkInfo(infos) => {
                    link.veth = infos
                        .iter()
                        .any(|info| matches!(info, LinkInfo::Kind(InfoKind::Veth)));
                }
                LinkAttribute::Xdp(xdp) => link.xdp = xdp_programs(xdp),
                _ => {}
            }
        }
        (!link.name.is_empty()).then_some(link)
    }
}

/// The interface with index `ifindex` (RTM_GETLINK).
pub fn link(ifindex: u32) -> std::io::Result<Link> {
    let message = get_link(ifindex)?;
    Link::from_message(&message)
        .ok_or_else(|| std::io::Error::other(format!("rtnetlink: link {ifindex} has no name")))
}

/// The interface called `name`, if there is one.
pub fn link_by_name(name: &str) -> std::io::Result<Option<Link>> {
    match super::index(name) {
        Some(index) => link(index).map(Some),
        None => Ok(None),
    }
}

/// Every interface of this network namespace, in one RTM_GETLINK dump: a
/// thousand pods' interfaces in one exchange, not one each.
pub fn links() -> std::io::Result<Vec<Link>> {
    let mut found = Vec::new();
    dump(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        |message| {
            if let RouteNetlinkMessage::NewLink(link) = message {
                found.extend(Link::from_message(&link));
            }
        },
    )?;
    Ok(found)
}

/// Sends `request` as a dump (NLM_F_DUMP) and calls `each` with every
/// message of the answer, until the kernel says it is done.
pub(super) fn dump(
    request: RouteNetlinkMessage,
    mut each: impl FnMut(RouteNetlinkMessage),
) -> std::io::Result<()> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    let request = emit(header, request.into());
    let socket = Socket::new(NETLINK_ROUTE)?;
    socket.send_to(&request, &SocketAddr::new(0, 0), 0)?;
    loop {
        let (reply, _) = socket.recv_from_full()?;
        for message in messages(&reply) {
            match message?.payload {
                NetlinkPayload::InnerMessage(message) => each(message),
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(error) => return Err(error.to_io()),
                _ => {}
            }
        }
    }
}

/// The netlink messages of one datagram, which may hold several (a dump's
/// parts, or a burst of notifications).
fn messages(
    mut datagram: &[u8],
) -> impl Iterator<Item = std::io::Result<NetlinkMessage<RouteNetlinkMessage>>> + '_ {
    std::iter::from_fn(move || {
        if datagram.len() < 16 {
            return None;
        }
        let length = u32::from_ne_bytes(datagram[..4].try_into().expect("four bytes")) as usize;
        if length < 16 || length > datagram.len() {
            datagram = &[];
            return Some(Err(std::io::Error::other(
                "rtnetlink: a message longer than its datagram",
            )));
        }
        let message = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&datagram[..length])
            .map_err(|error| std::io::Error::other(format!("rtnetlink: {error}")));
        // Messages are 4-byte aligned (NLMSG_ALIGN).
        datagram = &datagram[length.next_multiple_of(4).min(datagram.len())..];
        Some(message)
    })
}

/// What the kernel announced about an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// It exists, as described: new, or changed (up, down, renamed, an XDP
    /// program attached or detached), or listed again after `Lost`.
    Present(Link),
    /// It was deleted; its index may be given to another.
    Gone { index: u32, name: String },
    /// A route was added or removed: the pods' addresses, where they come
    /// from the routes (`super::routes`), may have changed.
    Routes,
    /// Announcements were lost (the socket's buffer overflowed, ENOBUFS,
    /// in a burst of changes): what exists now must be read again with
    /// [`links`] (and the routes).
    Lost,
}

/// The kernel's announcements of interfaces as they come and go.
pub struct LinkEvents {
    socket: AsyncFd<Socket>,
    pending: VecDeque<LinkEvent>,
}

/// The receive buffer asked for: a burst of a thousand new pods is a few
/// thousand announcements of a kilobyte or so each. Past it the kernel
/// drops what does not fit and says so (`LinkEvent::Lost`).
const EVENTS_BUFFER: libc::c_int = 8 << 20;

impl LinkEvents {
    /// Subscribes to the link announcements. Call it before listing the
    /// interfaces, so that nothing that changes in between is missed, and
    /// while CAP_NET_ADMIN is held, which the buffer's size needs past the
    /// system's `rmem_max`. In a tokio runtime.
    pub fn new() -> std::io::Result<Self> {
        Self::with_buffer(EVENTS_BUFFER)
    }

    /// [`LinkEvents::new`] with a receive buffer of `bytes`.
    fn with_buffer(bytes: libc::c_int) -> std::io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind(&SocketAddr::new(0, 0))?;
        // RTNLGRP_LINK, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE.
        for group in [1, 7, 11] {
            socket.add_membership(group)?;
        }
        socket.set_non_blocking(true)?;
        set_receive_buffer(&socket, bytes);
        // SAFETY: `Socket` owns its descriptor and closes it only when
        // dropped, which the AsyncFd that owns it does last.
        let socket = unsafe { AsyncFd::register(socket) }.map_err(std::io::Error::from)?;
        Ok(Self {
            socket,
            pending: VecDeque::new(),
        })
    }

    /// The next announcement.
    pub async fn next(&mut self) -> std::io::Result<LinkEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Ok(event);
            }
            let mut ready = self.socket.readable().await?;
            match ready.try_io(|socket| socket.get_ref().recv_from_full()) {
                Ok(Ok((datagram, _))) => self.pending.extend(events(&datagram)),
                Ok(Err(error)) if error.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.discard_queued();
                    return Ok(LinkEvent::Lost);
                }
                Ok(Err(error)) => return Err(error),
                Err(_would_block) => {}
            }
        }
    }

    /// Empties the socket's queue after an overflow (what was read of it
    /// is handed out before the next read, so none is left). From the overflow on, the kernel drops every announcement
    /// to this socket, and says so no more, until its queue has been read
    /// empty (`NETLINK_S_CONGESTED`, cleared in `netlink_rcv_wake`): read
    /// in turn, a full queue would hide the announcements that come while
    /// it is read (a thousand pods going after a thousand came). What is
    /// queued is superseded by the listing the caller takes next (`Lost`);
    /// what comes once the queue is empty is delivered.
    fn discard_queued(&mut self) {
        loop {
            match self.socket.get_ref().recv_from_full() {
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOBUFS) => {}
                // Empty (EAGAIN), or unreadable, which the next read reports.
                Err(_) => return,
            }
        }
    }
}

/// The announcements of one datagram; one that cannot be read says that
/// what exists must be read again.
fn events(datagram: &[u8]) -> Vec<LinkEvent> {
    let mut found = Vec::new();
    for message in messages(datagram) {
        let event = match message.map(|m| m.payload) {
            Ok(NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(link))) => {
                Link::from_message(&link).map(LinkEvent::Present)
            }
            Ok(NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelLink(link))) => {
                Link::from_message(&link).map(|link| LinkEvent::Gone {
                    index: link.index,
                    name: link.name,
                })
            }
            Ok(NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_),
            )) => Some(LinkEvent::Routes),
            Ok(_) => None,
            Err(error) => {
                tracing::warn!(%error, "an rtnetlink announcement that cannot be read: listing the interfaces again");
                Some(LinkEvent::Lost)
            }
        };
        found.extend(event);
    }
    found
}

/// Asks for a receive buffer of `bytes`: past `rmem_max` with
/// CAP_NET_ADMIN (SO_RCVBUFFORCE), else as much as the system allows.
fn set_receive_buffer(socket: &Socket, bytes: libc::c_int) {
    let set = |option| {
        // SAFETY: an int option on a socket we own.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
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

/// The kernel's RTM_NEWLINK for interface `ifindex` (RTM_GETLINK).
fn get_link(ifindex: u32) -> std::io::Result<LinkMessage> {
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
    use std::{io::Write as _, time::Duration};

    use netlink_packet_core::ErrorMessage;

    use super::super::index;
    use super::*;

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

    /// One announcement in wire format, by the crate's serializer.
    fn announcement(message: RouteNetlinkMessage) -> Vec<u8> {
        emit(NetlinkHeader::default(), message.into())
    }

    fn link_message(index: u32, name: &str, mac: [u8; 6]) -> LinkMessage {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.attributes.push(LinkAttribute::IfName(name.into()));
        link.attributes.push(LinkAttribute::Address(mac.to_vec()));
        link.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                InfoKind::Veth,
            )]));
        link
    }

    #[test]
    fn announcements_in_one_datagram_are_each_read() {
        let mac = [2, 0, 0, 0, 0, 7];
        let mut datagram =
            announcement(RouteNetlinkMessage::NewLink(link_message(7, "cali1", mac)));
        datagram.extend(announcement(RouteNetlinkMessage::DelLink(link_message(
            8, "cali2", mac,
        ))));
        let found = events(&datagram);
        assert_eq!(
            found,
            [
                LinkEvent::Present(Link {
                    index: 7,
                    name: "cali1".into(),
                    mac: Some(mac),
                    veth: true,
                    xdp: Vec::new(),
                }),
                LinkEvent::Gone {
                    index: 8,
                    name: "cali2".into()
                },
            ]
        );
        // Cut short: the kernel's announcements must be read again.
        let cut = &datagram[..datagram.len() - 3];
        assert_eq!(events(cut).last(), Some(&LinkEvent::Lost));
    }

    /// Runs `ip -batch` with `commands` (this thread's namespace).
    fn ip_batch(commands: &str) {
        let mut ip = std::process::Command::new("ip")
            .args(["-batch", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("ip (iproute2)");
        ip.stdin
            .take()
            .unwrap()
            .write_all(commands.as_bytes())
            .unwrap();
        assert!(ip.wait().unwrap().success(), "ip -batch:\n{commands}");
    }

    /// The next announcement, if one comes within two seconds.
    async fn next_within(events: &mut LinkEvents) -> Option<LinkEvent> {
        let next = tokio::time::timeout(Duration::from_secs(2), events.next());
        next.await.ok().map(Result::unwrap)
    }

    #[test]
    fn after_an_overflow_the_announcements_that_follow_are_not_lost() {
        // In a network namespace of its own: the thread's, which the `ip`
        // it runs inherits.
        std::thread::spawn(|| {
            // SAFETY: unshares this thread only, which owns no sockets yet.
            let unshared = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(unshared, 0, "unshare(CLONE_NEWNET) needs root");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut events = LinkEvents::with_buffer(16 << 10).unwrap();
                // A burst past the buffer: two announcements a veth pair.
                let burst: String = (0..200)
                    .map(|i| format!("link add ovh{i} type veth peer name ovp{i}\n"))
                    .collect();
                ip_batch(&burst);
                let mut before_lost = 0;
                while next_within(&mut events).await.expect("an overflow") != LinkEvent::Lost {
                    before_lost += 1;
                }
                assert!(before_lost < 200, "{before_lost} read before the overflow");
                // The agent lists the interfaces now; then one goes.
                let gone = index("ovh0").unwrap();
                ip_batch("link delete ovh0\n");
                loop {
                    match next_within(&mut events).await {
                        Some(LinkEvent::Gone { index, .. }) if index == gone => break,
                        Some(_) => {}
                        None => panic!("ovh0's deletion was not announced"),
                    }
                }
            });
        })
        .join()
        .unwrap();
    }

    #[test]
    fn the_dump_lists_loopback_without_a_mac() {
        let all = links().unwrap();
        let lo = all.iter().find(|link| link.name == "lo").expect("lo");
        assert_eq!((lo.mac, lo.veth, lo.xdp.as_slice()), (None, false, &[][..]));
        assert_eq!(link(lo.index).unwrap(), *lo);
        assert_eq!(link_by_name("meshdns-none0").unwrap(), None);
    }
}

//! The topology on the real kernel (needs root): what is created works, and
//! nothing is left once the values are dropped.

use std::process::Command;

use meshdns_topology::{End, Netns, Veth, routed};

fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "these tests create network namespaces: run them as root"
    );
}

/// Whether `ip ARGS` succeeds (a namespace or a link exists).
fn ip_succeeds(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|output| output.status.success())
}

/// Sends a datagram from `sender` to `to`, where `listener` receives it:
/// both through threads that entered their namespace.
fn assert_datagram_crosses(sender: &Netns, listener: &Netns, to: &str) {
    let (bound, is_bound) = std::sync::mpsc::channel();
    let addr: std::net::SocketAddr = to.parse().unwrap();
    let receiving = listener.spawn(move || {
        let socket = std::net::UdpSocket::bind(addr)?;
        socket.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        bound.send(()).unwrap();
        let mut buf = [0; 16];
        let (n, _) = socket.recv_from(&mut buf)?;
        Ok(buf[..n].to_vec())
    });
    is_bound.recv().unwrap();
    sender
        .run(move || {
            let any = if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            std::net::UdpSocket::bind(any)?.send_to(b"across", addr)?;
            Ok(())
        })
        .unwrap();
    let received = receiving.join().unwrap().unwrap();
    assert_eq!(received, b"across", "from {} to {to}", sender.name);
}

#[test]
fn two_namespaces_joined_by_a_veth_talk_and_are_gone_after_drop() {
    require_root();
    let id = std::process::id();
    let (a_name, b_name) = (format!("mdtopo-{id}-a"), format!("mdtopo-{id}-b"));
    let (a_if, b_if) = (format!("mdt{id}a"), format!("mdt{id}b"));
    {
        let a = Netns::create(a_name.as_str()).unwrap();
        let b = Netns::create(b_name.as_str()).unwrap();
        let _veth = Veth::create(
            Some(&a),
            End {
                iface: &a_if,
                addresses: &["198.18.0.1/24", "2001:db8::1/64"],
            },
            &b,
            End {
                iface: &b_if,
                addresses: &["198.18.0.2/24", "2001:db8::2/64"],
            },
        )
        .unwrap();
        for (sender, listener, to) in [
            (&a, &b, "198.18.0.2:5300"),
            (&b, &a, "198.18.0.1:5300"),
            (&a, &b, "[2001:db8::2]:5300"),
        ] {
            assert_datagram_crosses(sender, listener, to);
        }
        // The host does not have the namespaces' addresses.
        assert!(std::net::UdpSocket::bind("198.18.0.2:0").is_err());
    }
    for name in [&a_name, &b_name] {
        assert!(!ip_succeeds(&["netns", "pids", name]), "{name} is left");
    }
}

#[test]
fn a_host_end_goes_with_its_veth() {
    require_root();
    let id = std::process::id();
    let host_if = format!("mdt{id}h");
    let netns = Netns::create(format!("mdtopo-{id}-h")).unwrap();
    let veth = Veth::create(
        None,
        End {
            iface: &host_if,
            addresses: &[],
        },
        &netns,
        End {
            iface: &format!("mdt{id}p"),
            addresses: &["198.18.0.2/24"],
        },
    )
    .unwrap();
    assert!(ip_succeeds(&["link", "show", "dev", &host_if]));
    veth.delete().unwrap();
    assert!(!ip_succeeds(&["link", "show", "dev", &host_if]));
}

#[test]
fn a_routed_pod_reaches_its_node_through_the_proxy_arp_gateway() {
    require_root();
    let id = std::process::id();
    let node = Netns::create(format!("mdtopo-{id}-n")).unwrap();
    let pod = Netns::create(format!("mdtopo-{id}-p")).unwrap();
    routed::make_node(&node).unwrap();
    // An address of the node's own, off the pod's link: the pod reaches it
    // only through its gateway, which the host end's proxy ARP answers.
    node.ip(&["addr", "add", "198.19.0.10/32", "dev", "lo"])
        .unwrap();
    let _veth = routed::add_pod(&node, &pod, &format!("mdt{id}r"), "198.18.8.1").unwrap();
    assert_datagram_crosses(&pod, &node, "198.19.0.10:5300");
    assert_datagram_crosses(&node, &pod, "198.18.8.1:5300");
}

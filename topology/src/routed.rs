//! A node of a routed CNI, as Calico lays one out: each pod's veth has its
//! host end in the node's namespace and its pod end with a /32, a default
//! route through a link-local gateway that proxy ARP on the host end
//! answers (at once, as Calico sets it), and a route to the pod on the
//! node. Shared by the tests' routed node and the bench's pod target.

use crate::{End, Netns, Veth};

/// The gateway every pod routes through, answered by proxy ARP.
pub const GATEWAY: &str = "169.254.1.1";

/// Makes `node` a node that routes: IPv4 forwarding on (proxy ARP answers
/// only on an interface that forwards, and a new namespace does not) and
/// an uplink with the default route (proxy ARP answers for the pods'
/// gateway only with a route to it out of another interface, as a real
/// node has). The uplink is a veth whose far end stays in the node: this
/// kernel has no dummy device. Deleted with the node's namespace.
pub fn make_node(node: &Netns) -> anyhow::Result<()> {
    node.sysctl(&["net.ipv4.ip_forward=1"])?;
    node.ip(&[
        "link",
        "add",
        "uplink",
        "type",
        "veth",
        "peer",
        "name",
        "uplink-far",
    ])?;
    node.ip(&["link", "set", "uplink-far", "up"])?;
    node.ip(&["link", "set", "uplink", "up"])?;
    node.ip(&["addr", "add", "10.255.255.1/24", "dev", "uplink"])?;
    node.ip(&[
        "route",
        "add",
        "default",
        "via",
        "10.255.255.254",
        "dev",
        "uplink",
    ])?;
    Ok(())
}

/// Connects `pod` to `node` as a CNI does: the veth (`host_end` in the
/// node, `eth0` in the pod), the pod's /32 `address` and its routes, proxy
/// ARP on the host end and the route to the pod on the node.
pub fn add_pod(node: &Netns, pod: &Netns, host_end: &str, address: &str) -> anyhow::Result<Veth> {
    let veth = Veth::create(
        Some(node),
        End {
            iface: host_end,
            addresses: &[],
        },
        pod,
        End {
            iface: "eth0",
            addresses: &[],
        },
    )?;
    pod.ip(&["addr", "add", &format!("{address}/32"), "dev", "eth0"])?;
    pod.ip(&["route", "add", GATEWAY, "dev", "eth0", "scope", "link"])?;
    pod.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"])?;
    // The default delays each proxy ARP answer by up to 0.8 s.
    node.sysctl(&[
        &format!("net.ipv4.conf.{host_end}.proxy_arp=1"),
        &format!("net.ipv4.neigh.{host_end}.proxy_delay=0"),
    ])?;
    node.ip(&["route", "add", &format!("{address}/32"), "dev", host_end])?;
    Ok(veth)
}

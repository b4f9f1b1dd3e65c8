//! The node's routes to its pods. On a routed CNI each pod has a route out
//! of its host-side veth (a /32 with Calico, kindnet and the AWS VPC CNI),
//! and no subnet on the node says who the pods are: these routes do, when
//! the services file gives no `pod_cidrs`.

use std::net::IpAddr;

use netlink_packet_route::{
    RouteNetlinkMessage,
    route::{RouteAddress, RouteAttribute, RouteHeader, RouteMessage},
};

use super::links::dump;

/// One route of the main table to hosts reached directly (no gateway):
/// where to, and out of which interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub destination: IpAddr,
    pub prefix: u8,
    pub oif: u32,
}

/// The main table's routes with a destination and an interface and no
/// gateway, IPv4 and IPv6, in one RTM_GETROUTE dump. A route through a
/// gateway is to a network beyond the node, never to a pod on it.
pub fn routes() -> std::io::Result<Vec<Route>> {
    let mut found = Vec::new();
    dump(
        RouteNetlinkMessage::GetRoute(RouteMessage::default()),
        |message| {
            if let RouteNetlinkMessage::NewRoute(route) = message {
                found.extend(route_of(&route));
            }
        },
    )?;
    Ok(found)
}

/// The route `message` describes, if it is of the main table, has a
/// destination (not the default route) and an interface, and no gateway.
fn route_of(message: &RouteMessage) -> Option<Route> {
    let mut table = u32::from(message.header.table);
    let (mut destination, mut oif, mut gateway) = (None, None, false);
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Destination(RouteAddress::Inet(v4)) => destination = Some((*v4).into()),
            RouteAttribute::Destination(RouteAddress::Inet6(v6)) => {
                destination = Some((*v6).into())
            }
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::Gateway(_) | RouteAttribute::Via(_) | RouteAttribute::MultiPath(_) => {
                gateway = true
            }
            _ => {}
        }
    }
    (table == u32::from(RouteHeader::RT_TABLE_MAIN) && !gateway).then_some(())?;
    Some(Route {
        destination: destination?,
        prefix: message.header.destination_prefix_length,
        oif: oif?,
    })
}

#[cfg(test)]
mod tests {
    use netlink_packet_route::route::RouteHeader;

    use super::*;

    fn message(
        table: u8,
        destination: Option<IpAddr>,
        prefix: u8,
        oif: Option<u32>,
    ) -> RouteMessage {
        let mut message = RouteMessage::default();
        message.header = RouteHeader {
            table,
            destination_prefix_length: prefix,
            ..RouteHeader::default()
        };
        message
            .attributes
            .extend(destination.map(|d| RouteAttribute::Destination(d.into())));
        message.attributes.extend(oif.map(RouteAttribute::Oif));
        message
    }

    #[test]
    fn a_pods_route_is_its_address_and_its_interface() {
        let pod: IpAddr = "198.18.8.1".parse().unwrap();
        assert_eq!(
            route_of(&message(RouteHeader::RT_TABLE_MAIN, Some(pod), 32, Some(7))),
            Some(Route {
                destination: pod,
                prefix: 32,
                oif: 7
            })
        );
        // The local table, the default route, a blackhole: not a pod's.
        assert_eq!(route_of(&message(255, Some(pod), 32, Some(7))), None);
        // A network through a gateway, out of the same interface: not a pod.
        let mut via = message(
            RouteHeader::RT_TABLE_MAIN,
            Some("10.0.0.0".parse().unwrap()),
            8,
            Some(7),
        );
        via.attributes.push(RouteAttribute::Gateway(
            IpAddr::from([198, 18, 8, 254]).into(),
        ));
        assert_eq!(route_of(&via), None);
        assert_eq!(
            route_of(&message(RouteHeader::RT_TABLE_MAIN, None, 0, Some(7))),
            None
        );
        assert_eq!(
            route_of(&message(RouteHeader::RT_TABLE_MAIN, Some(pod), 26, None)),
            None
        );
    }

    #[test]
    fn the_dump_reads_this_namespaces_routes() {
        // Every namespace has at least its loopback's routes, in the local
        // table, which are not listed; the call itself must succeed.
        routes().unwrap();
    }
}

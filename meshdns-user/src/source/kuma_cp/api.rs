//! kuma-cp's REST API (port 5681, the same in Kubernetes and Universal
//! mode), as far as names go: protocol only, no I/O.
//!
//! - `GET /meshes`: the meshes, when the source does not list them;
//! - `GET /meshes/{mesh}/meshservices`, `/meshexternalservices`,
//!   `/meshmultizoneservices`: resources whose status carries the hostnames
//!   their HostnameGenerators made (`status.addresses[].hostname`) and their
//!   VIPs (`status.vips[].ip`; a MeshExternalService has one,
//!   `status.vip.ip`), which Kuma's data plane answers
//!   (`MeshExternalServiceOutbounds` in `pkg/xds/topology/dns.go`).
//!
//! A list response is `{"total": N, "items": [...], "next": URL or null}`;
//! `next` pages on.

use std::net::IpAddr;

use serde::Deserialize;

use crate::source::SourceName;

/// The kinds of resource listed per mesh, by their path.
pub const SERVICE_KINDS: [&str; 3] = [
    "meshservices",
    "meshexternalservices",
    "meshmultizoneservices",
];

/// One page of a list.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    /// How many items the whole list has.
    #[serde(default)]
    pub total: Option<usize>,
    pub items: Vec<T>,
    /// The next page's URL, absolute as kuma-cp writes it.
    #[serde(default)]
    pub next: Option<String>,
}

/// A mesh, of `GET /meshes`.
#[derive(Debug, Deserialize)]
pub struct Mesh {
    pub name: String,
}

/// A MeshService, MeshExternalService or MeshMultiZoneService.
#[derive(Debug, Deserialize)]
pub struct Service {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: Option<Status>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Status {
    #[serde(default)]
    pub addresses: Vec<Address>,
    #[serde(default)]
    pub vips: Vec<Vip>,
    /// A MeshExternalService's one VIP.
    #[serde(default)]
    pub vip: Option<Vip>,
}

#[derive(Debug, Deserialize)]
pub struct Address {
    #[serde(default)]
    pub hostname: String,
}

#[derive(Debug, Deserialize)]
pub struct Vip {
    #[serde(default)]
    pub ip: String,
}

/// A page that is not what the API sends.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("line {line}, column {column}: {message}")]
pub struct PageError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Reads one page of `T`.
pub fn page<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<Page<T>, PageError> {
    serde_json::from_slice(body).map_err(|error| PageError {
        line: error.line(),
        column: error.column(),
        message: error.to_string(),
    })
}

/// The names a service answers: each hostname with every VIP. A service
/// without VIPs or without hostnames (not yet given any) answers nothing;
/// VIPs that are not addresses are skipped, and returned apart for a
/// warning.
pub fn names_of(service: &Service) -> (Vec<SourceName>, Vec<String>) {
    let Some(status) = &service.status else {
        return (Vec::new(), Vec::new());
    };
    let mut addresses = Vec::new();
    let mut bad = Vec::new();
    for vip in status.vips.iter().chain(&status.vip) {
        if vip.ip.is_empty() {
            continue;
        }
        match vip.ip.parse::<IpAddr>() {
            Ok(address) if !addresses.contains(&address) => addresses.push(address),
            Ok(_) => {}
            Err(_) => bad.push(format!(
                "{}: VIP {:?} is not an address",
                service.name, vip.ip
            )),
        }
    }
    if addresses.is_empty() {
        return (Vec::new(), bad);
    }
    let names = status
        .addresses
        .iter()
        .filter(|a| !a.hostname.is_empty())
        .map(|a| SourceName {
            name: a
                .hostname
                .strip_suffix('.')
                .unwrap_or(&a.hostname)
                .to_string(),
            addresses: addresses.clone(),
        })
        .collect();
    (names, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A MeshService as `GET /meshes/default/meshservices` lists it (Kuma
    /// 2.9+, Kubernetes mode, synced from a zone).
    const MESH_SERVICES: &str = r#"{
 "total": 2,
 "items": [
  {
   "type": "MeshService",
   "mesh": "default",
   "name": "redis.kuma-demo.svc.zone-1",
   "creationTime": "2026-11-30T10:00:00Z",
   "modificationTime": "2026-11-30T10:00:00Z",
   "labels": {"kuma.io/display-name": "redis", "k8s.kuma.io/namespace": "kuma-demo", "kuma.io/zone": "zone-1"},
   "spec": {"selector": {"dataplaneTags": {"app": "redis"}}, "ports": [{"port": 6379, "targetPort": 6379, "appProtocol": "tcp"}]},
   "status": {
    "addresses": [
     {"hostname": "redis.svc.mesh.local", "origin": "HostnameGenerator", "hostnameGeneratorRef": {"coreName": "local-mesh-service"}},
     {"hostname": "redis.kuma-demo.svc.zone-1.mesh.local", "origin": "HostnameGenerator", "hostnameGeneratorRef": {"coreName": "synced-mesh-service"}}
    ],
    "vips": [{"ip": "241.0.0.1"}],
    "tls": {"status": "Ready"},
    "dataplaneProxies": {"connected": 1, "healthy": 1, "total": 1}
   }
  },
  {"type": "MeshService", "mesh": "default", "name": "new", "spec": {}, "status": {"addresses": [], "vips": []}}
 ],
 "next": "http://kuma-control-plane.kuma-system:5681/meshes/default/meshservices?offset=2"
}"#;

    #[test]
    fn a_mesh_services_hostnames_answer_with_its_vips() {
        let page: Page<Service> = page(MESH_SERVICES.as_bytes()).unwrap();
        assert_eq!(
            page.next.as_deref(),
            Some("http://kuma-control-plane.kuma-system:5681/meshes/default/meshservices?offset=2")
        );
        let (names, bad) = names_of(&page.items[0]);
        assert!(bad.is_empty());
        let names: Vec<(String, String)> = names
            .into_iter()
            .map(|n| (n.name, n.addresses[0].to_string()))
            .collect();
        assert_eq!(
            names,
            [
                ("redis.svc.mesh.local".to_string(), "241.0.0.1".to_string()),
                (
                    "redis.kuma-demo.svc.zone-1.mesh.local".to_string(),
                    "241.0.0.1".to_string()
                ),
            ]
        );
        // Not given hostnames or VIPs yet: nothing to answer.
        assert_eq!(names_of(&page.items[1]), (Vec::new(), Vec::new()));
    }

    #[test]
    fn a_mesh_external_service_has_one_vip() {
        let body = r#"{"total":1,"items":[{"type":"MeshExternalService","mesh":"default","name":"httpbin","spec":{"match":{"type":"HostnameGenerator","port":443,"protocol":"http"}},"status":{"vip":{"ip":"242.0.0.7"},"addresses":[{"hostname":"httpbin.extsvc.mesh.local","origin":"HostnameGenerator"}]}}],"next":null}"#;
        let page: Page<Service> = page(body.as_bytes()).unwrap();
        assert!(page.next.is_none());
        let (names, _) = names_of(&page.items[0]);
        assert_eq!(names[0].name, "httpbin.extsvc.mesh.local");
        assert_eq!(names[0].addresses, ["242.0.0.7".parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn meshes_and_broken_pages() {
        let page: Page<Mesh> =
            page(br#"{"total":2,"items":[{"type":"Mesh","name":"default"},{"type":"Mesh","name":"demo"}],"next":null}"#)
                .unwrap();
        let names: Vec<&str> = page.items.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["default", "demo"]);
        let error = self::page::<Mesh>(b"{\"items\": [\n{\"name\": 5}]}").unwrap_err();
        assert_eq!((error.line, error.column), (2, 10));
        let bad = r#"{"items":[{"name":"x","status":{"vips":[{"ip":"241.0.0.300"}],"addresses":[{"hostname":"x.svc.mesh.local"}]}}]}"#;
        let page: Page<Service> = self::page(bad.as_bytes()).unwrap();
        let (names, bad) = names_of(&page.items[0]);
        assert!(names.is_empty());
        assert_eq!(bad, ["x: VIP \"241.0.0.300\" is not an address"]);
    }
}

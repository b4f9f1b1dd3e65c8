//! What the tests serve, and what is built from it: services files, a
//! fast path loaded with one, a resolver that needs no network.

use std::{net::SocketAddr, sync::Arc};

use meshdns::{
    config::ResolverSettings,
    fastpath::FastPath,
    resolver::{
        Resolver,
        cache::{Cache, Limits},
    },
    table::Table,
};

/// The services the fast path's fixtures serve: one of each answer shape
/// (both families, three addresses, a Kuma name in both its forms, eight
/// of each family). Build a file from it with [`services`].
pub const SERVICE_LIST: &str = r#"services:
  - name: redis
    vips: [240.0.0.100, "fd00:fd00::100"]
  - name: web
    vips: [240.0.0.101, 240.0.0.102, 240.0.0.103]
  - name: echo-server_echo-example_svc_1010
    vips: [240.0.0.104]
  - name: eight
    vips: [240.0.1.1, 240.0.1.2, 240.0.1.3, 240.0.1.4, 240.0.1.5, 240.0.1.6, 240.0.1.7, 240.0.1.8,
           "fd00::1", "fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7", "fd00::8"]
"#;

/// A services file in zone `mesh`: `header` (zone-level settings, each line
/// ending in a newline), [`SERVICE_LIST`], then `extra` services.
pub fn services(header: &str, extra: &str) -> String {
    format!("zone: mesh\n{header}{SERVICE_LIST}{extra}")
}

/// The services a lab's agent serves: two services, one of them with both
/// families. Tests that need more add to it.
pub const LAB_SERVICES: &str = "\
zone: mesh
ttl: 60
services:
  - name: redis
    vips: [240.0.0.100, \"fd00:fd00::100\"]
  - name: web
    vips: [240.0.0.101, 240.0.0.102]
";

/// A service whose name makes `<it>.mesh` exactly 255 bytes in wire format.
pub fn longest_service() -> String {
    let label = "l".repeat(63);
    // 3 * (1 + 63) + (1 + 56) + (1 + 4) + 1 = 255
    format!("{label}.{label}.{label}.{}", "m".repeat(56))
}

/// The table of the services file `text`, loaded into a fresh program
/// (the verifier runs) with maps of its own, attached nowhere.
pub fn loaded_fast_path(text: &str) -> (FastPath, Table) {
    crate::require_root();
    let table = Table::parse(text).expect("the fixture's services parse");
    let mut fast_path = FastPath::load().expect("the verifier accepts the program");
    fast_path.sync(table.clone()).expect("the table loads");
    (fast_path, table)
}

/// A resolver for `table` that needs no network: no upstream (forwarded
/// names get SERVFAIL at once), answering loopback clients.
pub fn offline_resolver(table: Table) -> Resolver {
    resolver(table, &[])
}

/// A resolver for `table` forwarding to `upstreams`, answering loopback
/// clients, with the default cache.
pub fn resolver(table: Table, upstreams: &[SocketAddr]) -> Resolver {
    Resolver::new(
        Arc::new(table),
        &ResolverSettings::default(),
        vec!["127.0.0.0/8".parse().expect("a CIDR")],
        upstreams,
        Cache::new(Limits::default()),
    )
}

/// Bytes as hex, for failure messages.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

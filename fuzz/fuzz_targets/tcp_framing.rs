//! DNS over TCP (RFC 7766 §8), any bytes from a client that then closes
//! its side: the connection's framing as the agent serves it, through an
//! in-memory stream. Every reply is framed whole and answers one of the
//! messages that arrived whole (by ID); a message cut short is not
//! answered; the connection ends.
#![no_main]

use std::{
    net::SocketAddr,
    sync::{Arc, LazyLock},
    time::Duration,
};

use libfuzzer_sys::fuzz_target;
use meshdns::{
    config::ResolverSettings,
    resolver::{
        Resolver,
        cache::{Cache, Limits},
        server::serve_connection,
    },
    table::Table,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

static RESOLVER: LazyLock<Arc<Resolver>> = LazyLock::new(|| {
    let table = Table::parse("services:\n  - name: redis\n    vips: [240.0.0.100]\n")
        .expect("the fuzz table parses");
    Arc::new(Resolver::new(
        Arc::new(table),
        &ResolverSettings::default(),
        vec!["127.0.0.0/8".parse().expect("a CIDR")],
        &[],
        Cache::new(Limits::default()),
    ))
});

/// The IDs of the messages `data` holds whole, in its framing.
fn whole_ids(data: &[u8]) -> Vec<[u8; 2]> {
    let mut ids = Vec::new();
    let mut rest = data;
    while let [hi, lo, after @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if after.len() < len {
            break;
        }
        if len >= 2 {
            ids.push([after[0], after[1]]);
        }
        rest = &after[len..];
    }
    ids
}

fuzz_target!(|data: &[u8]| {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("a runtime");
    let client: SocketAddr = "127.0.0.1:40053".parse().expect("an address");
    let output = runtime.block_on(async {
        let (mut ours, theirs) = tokio::io::duplex(1 << 20);
        let served = tokio::spawn(serve_connection(theirs, client, RESOLVER.clone()));
        ours.write_all(data).await.expect("the stream takes it");
        ours.shutdown().await.expect("the write side closes");
        let mut output = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), ours.read_to_end(&mut output))
            .await
            .expect("the connection ends once the client has closed")
            .expect("reading the replies");
        let _ = served.await;
        output
    });
    let ids = whole_ids(data);
    let mut rest = &output[..];
    while !rest.is_empty() {
        let [hi, lo, after @ ..] = rest else {
            panic!("a reply's length cut short: {output:02x?}");
        };
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        assert!(after.len() >= len, "a reply cut short: {output:02x?}");
        let reply = &after[..len];
        assert!(len >= 12, "a reply shorter than a header");
        assert!(
            ids.contains(&[reply[0], reply[1]]),
            "a reply to no whole message: {reply:02x?}"
        );
        rest = &after[len..];
    }
});

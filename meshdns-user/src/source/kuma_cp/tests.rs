//! The poller against a stand-in for kuma-cp: kuma-cp cannot run here, so
//! a local HTTP server answers in its exact format (list pages with
//! `next`, ETags and 304), and fails as a real one may: a 500, a hang past
//! the timeout, a restart.

use std::{net::SocketAddr, sync::atomic::Ordering};

use super::*;
use crate::source::testing::{FakeKumaCp, Mode, kuma_cp_pages};

fn source(addr: SocketAddr) -> KumaCp {
    KumaCp {
        url: format!("http://{addr}").parse().unwrap(),
        meshes: None,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(300),
    }
}

/// The poller's names, sorted, as `name address`.
fn names(poller: &Poller) -> Vec<String> {
    let mut names: Vec<String> = poller
        .polled()
        .names
        .unwrap_or_default()
        .iter()
        .map(|n| format!("{} {}", n.name, n.addresses[0]))
        .collect();
    names.sort();
    names
}

/// Waits until `check` holds of the poller, or fails after 5 s.
async fn until(poller: &Poller, what: &str, check: impl Fn(&Polled) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check(&poller.polled()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never: {what}; {:?}",
            poller.polled()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_names_serve_through_failures_of_kuma_cp_and_recover() {
    let saved = std::env::temp_dir().join(format!("meshdns-kuma-cp-{}.json", std::process::id()));
    let _ = std::fs::remove_file(&saved);
    let server = FakeKumaCp::start(0, |base| kuma_cp_pages(base, "241.0.0.1")).await;
    let changed = Arc::new(Notify::new());
    let poller = Poller::start(source(server.addr), saved.clone(), changed.clone());

    // Every mesh's services, every page, the external service's one VIP.
    tokio::time::timeout(Duration::from_secs(5), changed.notified())
        .await
        .unwrap();
    let all = [
        "httpbin.extsvc.mesh.local 242.0.0.1",
        "redis.svc.mesh.local 241.0.0.1",
        "web.svc.mesh.local 241.0.0.2",
    ];
    assert_eq!(names(&poller), all);
    assert!(poller.polled().error.is_none());

    // Polls carry the ETags kuma-cp sent: unchanged pages come back 304.
    until(&poller, "304s", |_| {
        server.not_modified.load(Ordering::Relaxed) >= 4
    })
    .await;
    assert_eq!(names(&poller), all);

    // A 500: the last good names stay, the failure is reported.
    server.set(Mode::Fail);
    until(&poller, "the 500 reported", |p| {
        p.error.as_deref().is_some_and(|e| e.contains("HTTP 500"))
    })
    .await;
    assert_eq!(names(&poller), all);

    // A hang past the timeout: the same.
    server.set(Mode::Hang);
    until(&poller, "the timeout reported", |p| {
        p.error
            .as_deref()
            .is_some_and(|e| e.contains("no answer within"))
    })
    .await;
    assert_eq!(names(&poller), all);

    // Gone (a restart), then back with a change: the change is served.
    let port = server.addr.port();
    drop(server);
    until(&poller, "the refusal reported", |p| {
        p.error
            .as_deref()
            .is_some_and(|e| !e.contains("no answer within") && !e.contains("HTTP"))
    })
    .await;
    assert_eq!(names(&poller), all);
    let server = FakeKumaCp::start(port, |base| kuma_cp_pages(base, "241.0.0.9")).await;
    until(&poller, "the new VIP", |p| {
        p.error.is_none()
            && p.names
                .iter()
                .flatten()
                .any(|n| n.addresses[0].to_string() == "241.0.0.9")
    })
    .await;

    // A new poller (an agent restarted) while kuma-cp is away serves what
    // the last one saved, before any poll succeeds.
    drop(server);
    drop(poller);
    let restarted = Poller::start(
        source(SocketAddr::from(([127, 0, 0, 1], port))),
        saved.clone(),
        changed,
    );
    let names = names(&restarted);
    assert!(
        names.contains(&"redis.svc.mesh.local 241.0.0.9".to_string()),
        "{names:?}"
    );
    let _ = std::fs::remove_file(&saved);
}

#[test]
fn polls_back_off_to_a_minute_while_they_fail() {
    let second = Duration::from_secs(1);
    assert_eq!(backoff(5 * second, 0), 5 * second);
    assert_eq!(backoff(5 * second, 1), 10 * second);
    assert_eq!(backoff(5 * second, 3), 40 * second);
    assert_eq!(backoff(5 * second, 30), 60 * second);
    assert_eq!(
        backoff(120 * second, 2),
        120 * second,
        "never shorter than the interval"
    );
}

#[test]
fn next_pages_are_asked_of_the_configured_server() {
    let base: Uri = "http://10.0.0.1:5681".parse().unwrap();
    assert_eq!(
        at(&base, "/meshes/default/meshservices?offset=100")
            .unwrap()
            .to_string(),
        "http://10.0.0.1:5681/meshes/default/meshservices?offset=100"
    );
    let prefixed: Uri = "http://cp/kuma/".parse().unwrap();
    assert_eq!(
        at(&prefixed, "/meshes").unwrap().to_string(),
        "http://cp/kuma/meshes"
    );
    assert_eq!(
        at(&prefixed, "/kuma/meshes?offset=1").unwrap().to_string(),
        "http://cp/kuma/meshes?offset=1"
    );
}

#[tokio::test]
async fn a_missing_mesh_a_missing_api_or_a_list_that_moved_fail_the_poll() {
    let poll_once = |server: &FakeKumaCp, meshes: Option<Vec<String>>| {
        let source = KumaCp {
            meshes,
            ..source(server.addr)
        };
        async move {
            poll(&source, &mut Cache::default())
                .await
                .map(|p| p.names.len())
        }
    };
    let server = FakeKumaCp::start(0, |base| kuma_cp_pages(base, "241.0.0.1")).await;
    assert_eq!(
        poll_once(&server, Some(vec!["default".into()])).await,
        Ok(3)
    );
    let error = poll_once(&server, Some(vec!["typo".into()]))
        .await
        .unwrap_err();
    assert!(error.contains("no mesh \"typo\""), "{error}");

    // No /meshes at all: not kuma-cp's API, not an empty one.
    let server = FakeKumaCp::start(0, |base| {
        let mut pages = kuma_cp_pages(base, "241.0.0.1");
        pages.remove("/meshes");
        pages
    })
    .await;
    let error = poll_once(&server, None).await.unwrap_err();
    assert!(error.contains("not kuma-cp's API"), "{error}");

    // A service removed between the pages: fewer items than the total.
    let server = FakeKumaCp::start(0, |base| {
        let mut pages = kuma_cp_pages(base, "241.0.0.1");
        let second = "/meshes/default/meshservices?offset=1".to_string();
        pages.insert(second, r#"{"total":2,"items":[],"next":null}"#.into());
        pages
    })
    .await;
    let error = poll_once(&server, None).await.unwrap_err();
    assert!(error.contains("1 items read of 2"), "{error}");

    // A second page that is gone: an error, not the end of the list.
    let server = FakeKumaCp::start(0, |base| {
        let mut pages = kuma_cp_pages(base, "241.0.0.1");
        pages.remove("/meshes/default/meshservices?offset=1");
        pages
    })
    .await;
    let error = poll_once(&server, None).await.unwrap_err();
    assert!(error.contains("a page into the list"), "{error}");
}

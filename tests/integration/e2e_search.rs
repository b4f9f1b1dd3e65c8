//! Search-list expansions end to end, with the system's own resolver: a
//! client namespace with a pod's `/etc/resolv.conf` (Kubernetes' search
//! list and `ndots:5`; `ip netns exec` bind-mounts it from
//! `/etc/netns/<name>/`), glibc's `getent ahosts redis.mesh`, and the
//! program's counters, which show that every query glibc sent was
//! answered in the driver. The agent's resolver listens on loopback only
//! here: a query the program passed would go unanswered.

use std::{fs, path::PathBuf, time::Duration};

use meshdns_common::Counter;
use meshdns_tests::lab::{Lab, SERVER_V4};

/// A pod's resolv.conf for the lab's client namespace, removed on drop.
struct PodResolvConf(PathBuf);

impl PodResolvConf {
    fn write(lab: &Lab) -> Self {
        let dir = PathBuf::from("/etc/netns").join(&lab.client.name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join("resolv.conf"),
            format!(
                "nameserver {SERVER_V4}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:2 attempts:1\n"
            ),
        )
        .unwrap();
        Self(dir)
    }
}

impl Drop for PodResolvConf {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `getent ahosts redis.mesh` in the lab's client namespace, with the
/// search expansions answered as `answer` says: glibc gets both VIPs, and
/// what each counter moved by.
fn getent_with(answer: &str) -> meshdns::fastpath::Counters {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let config = lab.write_services(&format!(
        "zone: mesh\nttl: 60\nsearch:\n  suffixes: [\"*.svc.cluster.local\", svc.cluster.local, cluster.local]\n  answer: {answer}\nservices:\n  - name: redis\n    vips: [240.0.0.100, \"fd00:fd00::100\"]\n"
    ));
    let _agent = lab.start_agent(&config, &[]).unwrap();
    let _resolv_conf = PodResolvConf::write(&lab);
    let before = lab.fast_path_counters().unwrap();
    let started = std::time::Instant::now();
    let output = lab
        .client
        .command("getent")
        .args(["ahosts", "redis.mesh"])
        .output()
        .expect("running getent (libc-bin)");
    let took = started.elapsed();
    let moved = lab.fast_path_counters().unwrap().since(&before);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{answer}: getent failed: {stdout}");
    for vip in ["240.0.0.100", "fd00:fd00::100"] {
        assert!(stdout.contains(vip), "{answer}: no {vip} in\n{stdout}");
    }
    // A query passed would have waited for glibc's timeout (2 s).
    assert!(took < Duration::from_secs(1), "{answer}: took {took:?}");
    for counter in [
        Counter::PassNotInZone,
        Counter::PassUnknownName,
        Counter::PassUnsupportedType,
        Counter::PassNotQuery,
    ] {
        assert_eq!(moved.get(counter), 0, "{answer}: {moved}");
    }
    // `meshdns lookup` runs the first expansion glibc asked through the
    // program on the maps that serve: answered there, as glibc was.
    let expansion = "redis.mesh.default.svc.cluster.local";
    let lookup = crate::e2e_inspect::meshdns_json(&lab, &["lookup", expansion, "A"]).unwrap();
    let verdict = &lookup["fast_path"];
    let (outcome, rcode) = match answer {
        "cname" => (Counter::AnsweredSearchCname, "NOERROR"),
        _ => (Counter::AnsweredSearchNxdomain, "NXDOMAIN"),
    };
    assert_eq!(verdict["outcome"], outcome.name(), "{lookup:#}");
    assert_eq!(verdict["action"], "answered", "{lookup:#}");
    assert_eq!(verdict["reply"]["rcode"], rcode, "{lookup:#}");
    let records = crate::e2e_inspect::records(&verdict["reply"]);
    let expected: &[&str] = match answer {
        "cname" => &[
            "redis.mesh.default.svc.cluster.local. 60 IN CNAME redis.mesh.",
            "redis.mesh. 60 IN A 240.0.0.100",
        ],
        _ => &[],
    };
    assert_eq!(records, expected, "{lookup:#}");
    moved
}

/// `answer: cname`: the first search domain's queries, one per family,
/// each answered with the CNAME chain (CoreDNS's autopath, RFC 1034
/// §3.6.2): glibc follows it and asks nothing more.
#[test]
fn getent_resolves_a_mesh_name_in_one_round_trip_per_family_rfc1034_3_6_2() {
    let moved = getent_with("cname");
    assert_eq!(moved.get(Counter::AnsweredSearchCname), 2, "{moved}");
    assert_eq!(moved.answered(), 2, "{moved}");
}

/// `answer: nxdomain`: each search domain's pair answered NXDOMAIN in the
/// driver, then the name itself: eight queries, none passed.
#[test]
fn getent_walks_the_search_list_in_the_driver_with_nxdomain() {
    let moved = getent_with("nxdomain");
    assert_eq!(moved.get(Counter::AnsweredSearchNxdomain), 6, "{moved}");
    assert_eq!(
        moved.get(Counter::AnsweredA) + moved.get(Counter::AnsweredAaaa),
        2,
        "{moved}"
    );
    assert_eq!(moved.answered(), 8, "{moved}");
}

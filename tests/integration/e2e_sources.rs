//! Names from the mesh's control plane, end to end, answered by the fast
//! path in the kernel: Kuma's VIP lists from a folder laid out as the
//! kubelet lays out a ConfigMap volume (`..data` a symlink to a timestamped
//! folder), and kuma-cp's API polled. kuma-cp itself does not run here; the
//! lists and the API's answers are in the exact format it writes (its
//! tests' documents, `meshdns::source::kuma_vips`; a stand-in server,
//! `meshdns::source::testing::FakeKumaCp`).

use std::{
    net::SocketAddr,
    thread::sleep,
    time::{Duration, Instant},
};

use meshdns::source::testing::{ConfigMapVolume, FakeKumaCp, Mode, kuma_cp_pages};

use crate::e2e_inspect::meshdns_json;
use meshdns_common::Counter;
use meshdns_tests::{
    lab::{Lab, SERVER_V4},
    load::{Load, Outcome},
};
use serde_json::Value;

/// kuma-cp's shape 3, for mesh `default`: `redis` (which the services file
/// lists too, with another VIP), a Kubernetes service and an external host.
fn default_mesh(backend_vip: &str) -> String {
    format!(
        r#"{{"0:redis":{{"address":"240.0.0.9","outbounds":[{{"Port":0,"TagSet":{{"kuma.io/service":"redis"}},"Origin":""}}]}},"0:backend_kuma-demo_svc_80":{{"address":"{backend_vip}","outbounds":[{{"Port":80,"TagSet":{{"kuma.io/service":"backend_kuma-demo_svc_80"}},"Origin":""}}]}},"1:kuma.io":{{"address":"240.0.1.4","outbounds":[{{"Port":0,"TagSet":{{"kuma.io/service":"external-host"}},"Origin":""}}]}}}}"#
    )
}

/// Tag-first (shape 4), for mesh `demo`.
const DEMO_MESH: &str = r#"{"v":{"web":{"oe":[{"ap":[{"a":"10.43.0.7","p":8080,"o":"k8s"},{"a":"240.0.0.3","o":"svc"}]}]}}}"#;

/// Each name's one A record is `want` (`TTL IN A ADDRESS`), and the fast
/// path gave every answer.
fn answered_by_the_kernel(lab: &Lab, expected: &[(&str, &str)]) {
    let before = lab.fast_path_counters().unwrap();
    for (name, want) in expected {
        let (status, records) = lab.dig_records(SERVER_V4, name, "A");
        assert!(status.contains("status: NOERROR"), "{name}: {status}");
        assert_eq!(records, [format!("{name}. {want}")], "{name}");
    }
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(
        moved.get(Counter::AnsweredA),
        expected.len() as u64,
        "the fast path answered: {moved}"
    );
}

fn answer(addr: &str) -> Outcome {
    Outcome::Answer(vec![addr.parse().unwrap()])
}

#[test]
fn a_configmap_swap_changes_the_fast_paths_answers_and_a_broken_one_changes_nothing() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let mut volume = ConfigMapVolume::new("e2e-kuma-vips");
    volume.publish(&[("default", &default_mesh("240.0.0.2")), ("demo", DEMO_MESH)]);
    let config = lab.write_services(&format!(
        "zone: mesh\nservices:\n  - name: redis\n    vips: [240.0.0.100]\nsources:\n  - kuma_vips: {}\n",
        volume.dir.display()
    ));
    let mut agent = lab.start_agent(&config, &[]).unwrap();

    // Kuma's names, from the kernel; the file's redis over Kuma's.
    answered_by_the_kernel(
        &lab,
        &[
            ("backend_kuma-demo_svc_80.mesh", "30 IN A 240.0.0.2"),
            ("backend.kuma-demo.svc.80.mesh", "30 IN A 240.0.0.2"),
            ("web.mesh", "30 IN A 240.0.0.3"),
            // A host entry, outside the zone: answered as written.
            ("kuma.io", "30 IN A 240.0.1.4"),
            // The services file's own name, with its TTL.
            ("redis.mesh", "60 IN A 240.0.0.100"),
        ],
    );

    // dump, lookup and status say where each name came from (the agent
    // writes it to its state folder; the kernel's maps do not know).
    let source_id = format!("kuma_vips:{}", volume.dir.display());
    let dump = meshdns_json(&lab, &["dump"]).unwrap();
    let from = |name: &str| {
        dump["names"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in the dump"))["source"]
            .clone()
    };
    assert_eq!(from("backend.kuma-demo.svc.80.mesh."), source_id.as_str());
    assert_eq!(from("redis.mesh."), Value::Null, "the services file's");
    let lookup = meshdns_json(&lab, &["lookup", "web.mesh"]).unwrap();
    assert_eq!(lookup["source"], source_id.as_str());
    let status = meshdns_json(&lab, &["status"]).unwrap();
    assert_eq!(status["sources"][0]["id"], source_id.as_str());
    assert_eq!(status["sources"][0]["up"], true);
    // backend's two names, web and the host kuma.io; Kuma's redis left out.
    assert_eq!(status["sources"][0]["names"], 4);
    assert_eq!(status["sources"][0]["left_out"], 1);

    // A new version of the ConfigMap under load: the answers move to it,
    // and only the names that changed are touched.
    let server = SocketAddr::new(SERVER_V4.parse().unwrap(), 53);
    let load = Load::start(
        &lab.client,
        server,
        &["backend.kuma-demo.svc.80.mesh", "web.mesh", "redis.mesh"],
    );
    sleep(Duration::from_millis(300));
    let published = Instant::now();
    volume.publish(&[
        ("default", &default_mesh("240.0.0.22")),
        ("demo", DEMO_MESH),
    ]);
    let line = agent
        .wait_for_log("fast path table updated", Duration::from_secs(5))
        .unwrap()
        .to_string();
    assert!(
        line.contains("added=0") && line.contains("updated=2") && line.contains("removed=0"),
        "the two names of backend, and nothing else: {line}"
    );
    sleep(Duration::from_millis(300));

    // Half a file, as a writer that is not done leaves it.
    volume.publish(&[
        ("default", r#"{"0:redis":{"address":"240.0.0.9","outb"#),
        ("demo", DEMO_MESH),
    ]);
    let line = agent
        .wait_for_log("its last good names keep serving", Duration::from_secs(5))
        .unwrap()
        .to_string();
    assert!(
        line.contains("/default: line 1, column"),
        "the file and the position: {line}"
    );
    sleep(Duration::from_millis(300));
    let report = load.stop().unwrap();

    report.assert_seen(
        "web.mesh",
        &[answer("240.0.0.3")],
        "an unchanged name never fails",
    );
    report.assert_seen(
        "redis.mesh",
        &[answer("240.0.0.100")],
        "the file's name wins throughout",
    );
    report.assert_seen(
        "backend.kuma-demo.svc.80.mesh",
        &[answer("240.0.0.2"), answer("240.0.0.22")],
        "the old VIP or the new one, never a failure, and the broken list changes nothing",
    );
    let applied = report
        .first_seen("backend.kuma-demo.svc.80.mesh", &answer("240.0.0.22"))
        .unwrap()
        .duration_since(published);
    println!(
        "{} queries; the swap answered {applied:?} after it",
        report.sent
    );
    // The target is 100 ms; this bound catches a change not seen by the
    // folder's watch at all.
    assert!(
        applied < Duration::from_secs(1),
        "applied after {applied:?}"
    );
    let (_, records) = lab.dig_records(SERVER_V4, "backend.kuma-demo.svc.80.mesh", "A");
    assert_eq!(
        records,
        ["backend.kuma-demo.svc.80.mesh. 30 IN A 240.0.0.22"]
    );
}

/// A stand-in for kuma-cp (it cannot run here) in the server's namespace,
/// where the agent runs: it answers in kuma-cp's exact format
/// (`meshdns::source::testing`).
fn fake_kuma_cp(lab: &Lab, runtime: &tokio::runtime::Runtime) -> FakeKumaCp {
    let listener = lab
        .server
        .run(|| {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        })
        .unwrap();
    let _context = runtime.enter();
    FakeKumaCp::serve(
        tokio::net::TcpListener::from_std(listener).unwrap(),
        |base| kuma_cp_pages(base, "241.0.0.1"),
    )
}

#[test]
fn kuma_cps_names_are_answered_in_the_kernel_and_outlive_its_failures() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kuma_cp = fake_kuma_cp(&lab, &runtime);
    let config = lab.write_services(&format!(
        "zone: mesh.local\nsources:\n  - kuma_cp: {{url: \"http://{}\", interval: 1s}}\n",
        kuma_cp.addr
    ));
    let mut agent = lab.start_agent(&config, &[]).unwrap();
    // The first poll comes after the start, and brings the names.
    let line = agent
        .wait_for_log("fast path table updated", Duration::from_secs(5))
        .unwrap()
        .to_string();
    // The three names and their empty non-terminals, `svc.mesh.local`
    // and `extsvc.mesh.local` (the apex came with the file).
    assert!(line.contains("added=5"), "{line}");

    let answered = |lab: &Lab| {
        answered_by_the_kernel(
            lab,
            &[
                ("redis.svc.mesh.local", "30 IN A 241.0.0.1"),
                ("web.svc.mesh.local", "30 IN A 241.0.0.2"),
                ("httpbin.extsvc.mesh.local", "30 IN A 242.0.0.1"),
            ],
        )
    };
    answered(&lab);

    // kuma-cp fails: the names keep serving, and the log says why.
    kuma_cp.set(Mode::Fail);
    let line = agent
        .wait_for_log("its last good names keep serving", Duration::from_secs(5))
        .unwrap()
        .to_string();
    assert!(line.contains("HTTP 500"), "{line}");
    answered(&lab);

    // An agent started while kuma-cp is away serves the names the last one
    // saved, from its first answer on.
    agent.stop().unwrap();
    let mut agent = lab.start_agent(&config, &[]).unwrap();
    answered(&lab);
    agent
        .wait_for_log("serving the names kuma-cp last gave", Duration::ZERO)
        .unwrap();
}

#[test]
fn a_source_folder_made_after_the_agent_started_is_read_as_it_comes() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let mut volume = ConfigMapVolume::new("e2e-kuma-vips-later");
    std::fs::remove_dir(&volume.dir).unwrap();
    let config = lab.write_services(&format!(
        "zone: mesh\nservices: []\nsources:\n  - kuma_vips: {}\n",
        volume.dir.display()
    ));
    let mut agent = lab.start_agent(&config, &[]).unwrap();
    agent
        .wait_for_log("its last good names keep serving", Duration::ZERO)
        .unwrap();

    // The kubelet mounts the volume late: the folder, then its data.
    std::fs::create_dir(&volume.dir).unwrap();
    volume.publish(&[("default", DEMO_MESH)]);
    agent
        .wait_for_log("fast path table updated", Duration::from_secs(5))
        .unwrap();
    answered_by_the_kernel(&lab, &[("web.mesh", "30 IN A 240.0.0.3")]);
}

/// Kuma's two kinds of names at once, as one agent serves them: `mesh`
/// (authoritative) from the VIP lists and `mesh.local` (not) from kuma-cp,
/// each zone with its own rules, answered by the kernel on a real veth.
#[test]
fn mesh_and_mesh_local_at_once_each_by_its_own_rules() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let kuma_cp = fake_kuma_cp(&lab, &runtime);
    let mut volume = ConfigMapVolume::new("e2e-two-zones");
    volume.publish(&[("demo", DEMO_MESH)]);
    let config = lab.write_services(&format!(
        "zones:\n  - name: mesh\n    authoritative: true\n  - name: mesh.local\n    soa: {{minimum: 10}}\nsources:\n  - kuma_vips: {}\n  - kuma_cp: {{url: \"http://{}\", interval: 1s}}\n",
        volume.dir.display(),
        kuma_cp.addr
    ));
    let _agent = lab.start_agent(&config, &[]).unwrap();
    // kuma-cp's names come with its first poll, before or after the start.
    let wait_for = |lab: &Lab, name: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        while lab.dig_records(SERVER_V4, name, "A").1.is_empty() {
            assert!(Instant::now() < deadline, "{name} never answered");
            sleep(Duration::from_millis(50));
        }
    };
    wait_for(&lab, "redis.svc.mesh.local");
    answered_by_the_kernel(
        &lab,
        &[
            ("web.mesh", "30 IN A 240.0.0.3"),
            ("redis.svc.mesh.local", "30 IN A 241.0.0.1"),
        ],
    );

    // An unknown name: NXDOMAIN from the kernel in mesh (authoritative),
    // with mesh's SOA; passed in mesh.local, whose NODATA carries its own.
    let before = lab.fast_path_counters().unwrap();
    let (status, records) = lab.dig_records(SERVER_V4, "nope.mesh", "A");
    assert!(status.contains("status: NXDOMAIN"), "{status}");
    assert!(
        records[0].starts_with("mesh. 30 IN SOA ns.mesh. hostmaster.mesh."),
        "{records:?}"
    );
    let (status, records) = lab.dig_records(SERVER_V4, "web.svc.mesh.local", "AAAA");
    assert!(status.contains("status: NOERROR"), "{status}");
    assert!(
        records[0].starts_with("mesh.local. 10 IN SOA ns.mesh.local. hostmaster.mesh.local."),
        "{records:?}"
    );
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::AnsweredNxdomain), 1, "{moved}");
    assert_eq!(moved.get(Counter::AnsweredNodata), 1, "{moved}");
    let before = lab.fast_path_counters().unwrap();
    lab.dig_records(SERVER_V4, "nope.mesh.local", "A");
    let moved = lab.fast_path_counters().unwrap().since(&before);
    assert_eq!(moved.get(Counter::PassUnknownName), 1, "{moved}");
}

//! The Kuma variants of the manifests (`deploy/kubernetes/kuma`,
//! `deploy/kubernetes/kuma-cp`) as kustomize builds them: the base, the
//! overlay's RFC 6902 patches applied to their targets, and its namespace
//! set on every resource. What they must agree on: each mesh's VIP list,
//! the ConfigMap kuma-cp keeps (`kuma-<mesh>-dns-vips`, key `config`,
//! `pkg/dns/vips/persistence.go`), mounted where the services file's
//! source reads it; kuma-cp's API at a name the pod resolves.

use std::fs;

use meshdns::{config::Services, source::Source};
use serde_json::{Value, json};

use crate::deploy_manifests::{deploy_dir, manifests};

/// The overlay in `deploy/kubernetes/<overlay>`, built.
fn built(overlay: &str) -> Vec<Value> {
    let dir = deploy_dir().join("kubernetes").join(overlay);
    let read = |name: &str| {
        let path = dir.join(name);
        let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_saphyr::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let kustomization = read("kustomization.yaml");
    assert_eq!(
        kustomization["resources"],
        json!(["../"]),
        "built on the base alone"
    );
    let mut docs: Vec<Value> = manifests()
        .into_iter()
        .filter(|doc| doc["kind"] != "Kustomization")
        .collect();
    for patch in kustomization["patches"].as_array().unwrap() {
        let ops: json_patch::Patch =
            serde_json::from_value(read(patch["path"].as_str().unwrap())).unwrap();
        let target = &patch["target"];
        let doc = docs
            .iter_mut()
            .find(|doc| doc["kind"] == target["kind"] && doc["metadata"]["name"] == target["name"])
            .unwrap_or_else(|| panic!("no target {target:?}"));
        json_patch::patch(doc, &ops).unwrap_or_else(|e| panic!("{}: {e}", patch["path"]));
    }
    let namespace = kustomization["namespace"].as_str().unwrap().to_string();
    for doc in &mut docs {
        doc["metadata"]["namespace"] = json!(namespace);
    }
    docs
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

/// The services file of a built variant, checked as the agent checks it.
fn services(docs: &[Value]) -> Services {
    let text = find(docs, "ConfigMap", "meshdns-services")["data"]["services.yaml"]
        .as_str()
        .unwrap();
    Services::parse(text).unwrap_or_else(|(line, kind)| panic!("services.yaml:{line:?}: {kind}"))
}

fn pod(docs: &[Value]) -> &Value {
    &find(docs, "DaemonSet", "meshdns")["spec"]["template"]["spec"]
}

#[test]
fn the_kuma_variant_runs_beside_kuma_cp_and_mounts_each_meshs_vip_list_where_its_file_reads_it() {
    let docs = built("kuma");
    // A pod mounts only ConfigMaps of its own namespace: kuma-cp's.
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"] == "kuma-system")
    );
    let pod = pod(&docs);
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "kuma-vips")
        .expect("a kuma-vips volume");
    let configmap = &volume["projected"]["sources"][0]["configMap"];
    assert_eq!(
        configmap["name"], "kuma-default-dns-vips",
        "kuma-cp's name for mesh default's list"
    );
    assert_eq!(
        configmap["items"],
        json!([{"key": "config", "path": "default"}])
    );
    assert_eq!(
        configmap["optional"], true,
        "a mesh without a list yet must not stop the pod"
    );
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "kuma-vips")
        .expect("mounted");
    assert!(
        mount.get("subPath").is_none(),
        "a folder: subPath never updates"
    );
    let services = services(&docs);
    let [Source::KumaVips { path, .. }] = services.sources.as_slice() else {
        panic!("one kuma_vips source: {:?}", services.sources);
    };
    assert_eq!(path.to_str(), mount["mountPath"].as_str());
    assert_eq!(pod["dnsPolicy"], "Default", "as the base");
}

#[test]
fn the_kuma_cp_variant_polls_kuma_cp_at_a_name_the_pod_resolves() {
    let docs = built("kuma-cp");
    assert!(
        docs.iter()
            .all(|d| d["metadata"]["namespace"] == "kuma-system")
    );
    assert_eq!(pod(&docs)["dnsPolicy"], "ClusterFirstWithHostNet");
    let services = services(&docs);
    let [Source::KumaCp { cp, .. }] = services.sources.as_slice() else {
        panic!("one kuma_cp source: {:?}", services.sources);
    };
    // Through the search path, whatever the cluster's domain.
    assert_eq!(cp.url.host(), Some("kuma-control-plane.kuma-system.svc"));
    assert_eq!(cp.url.port_u16(), Some(5681), "kuma-cp's API port");
}

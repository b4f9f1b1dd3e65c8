use std::path::Path;

use super::*;
use crate::source::testing::ConfigMapVolume;

fn source(path: &Path) -> Source {
    Source::KumaVips {
        path: path.to_path_buf(),
        ttl: KUMA_TTL,
        domain: "mesh".into(),
    }
}

fn context() -> ReadContext {
    ReadContext {
        state_dir: std::env::temp_dir(),
        changed: Arc::new(Notify::new()),
    }
}

fn served(state: &SourceState) -> Vec<String> {
    state
        .names()
        .map(|n| format!("{} {}", n.name, n.addresses[0]))
        .collect()
}

#[test]
fn a_configmap_volume_is_read_key_by_key_through_its_data_link() {
    let mut volume = ConfigMapVolume::new("source-volume");
    volume.publish(&[
        ("default", r#"{"0:redis":{"address":"240.0.0.1","outbounds":[{"TagSet":{"kuma.io/service":"redis"}}]}}"#),
        ("demo", r#"{"backend":"240.0.0.2"}"#),
    ]);
    let mut state = SourceState::default();
    state.read(&source(&volume.dir), &context());
    assert!(state.up(), "{:?}", state.errors);
    assert_eq!(
        served(&state),
        ["redis.mesh 240.0.0.1", "backend.mesh 240.0.0.2"]
    );
    assert!(state.last_success.is_some());
}

#[test]
fn a_broken_file_keeps_its_last_good_names_and_the_others_move_on() {
    let mut volume = ConfigMapVolume::new("source-broken");
    volume.publish(&[
        ("a", r#"{"one":"240.0.0.1"}"#),
        ("b", r#"{"two":"240.0.0.2"}"#),
    ]);
    let mut state = SourceState::default();
    state.read(&source(&volume.dir), &context());
    let first_success = state.last_success;

    // `a` half written, `b` changed.
    volume.publish(&[
        ("a", r#"{"one":"240.0.0."#),
        ("b", r#"{"two":"240.0.0.3"}"#),
    ]);
    state.read(&source(&volume.dir), &context());
    assert!(!state.up());
    assert_eq!(served(&state), ["one.mesh 240.0.0.1", "two.mesh 240.0.0.3"]);
    assert_eq!(state.errors.len(), 1);
    assert!(
        state.errors[0].contains("/a: line 1, column"),
        "the file and the position: {}",
        state.errors[0]
    );
    assert_eq!(state.last_success, first_success, "not a success");

    // The folder gone altogether: everything stays.
    let dir = volume.dir.clone();
    drop(volume);
    state.read(&source(&dir), &context());
    assert!(!state.up());
    assert_eq!(served(&state), ["one.mesh 240.0.0.1", "two.mesh 240.0.0.3"]);
}

#[test]
fn a_key_removed_from_the_volume_takes_its_names_with_it() {
    let mut volume = ConfigMapVolume::new("source-removed");
    volume.publish(&[
        ("a", r#"{"one":"240.0.0.1"}"#),
        ("b", r#"{"two":"240.0.0.2"}"#),
    ]);
    let mut state = SourceState::default();
    state.read(&source(&volume.dir), &context());
    std::fs::remove_file(volume.dir.join("b")).unwrap();
    volume.publish(&[("a", r#"{"one":"240.0.0.1"}"#)]);
    state.read(&source(&volume.dir), &context());
    assert!(state.up(), "{:?}", state.errors);
    assert_eq!(served(&state), ["one.mesh 240.0.0.1"]);
}

#[test]
fn one_file_is_a_source_too() {
    let volume = ConfigMapVolume::new("source-file");
    let file = volume.dir.join("vips.json");
    std::fs::write(
        &file,
        r#"{"v":{"web":{"oe":[{"ap":[{"a":"fd00::7","o":"svc"}]}]}}}"#,
    )
    .unwrap();
    let mut state = SourceState::default();
    let file_source = source(&file);
    state.read(&file_source, &context());
    assert_eq!(served(&state), ["web.mesh fd00::7"]);
    assert_eq!(file_source.watch_path(), Some(volume.dir.clone()));
    assert_eq!(file_source.id(), format!("kuma_vips:{}", file.display()));
}

#[test]
fn sources_are_written_as_a_path_or_with_a_ttl() {
    let config = crate::config::Config::parse(
        "sources:\n  - kuma_vips: /run/meshdns/kuma-vips\n  - kuma_vips: {path: /x.json, ttl: 60, domain: kuma.}\n",
    )
    .unwrap();
    let checked: Vec<Source> = config.sources.iter().map(|s| s.check().unwrap()).collect();
    assert_eq!(
        checked,
        [
            Source::KumaVips {
                path: "/run/meshdns/kuma-vips".into(),
                ttl: KUMA_TTL,
                domain: "mesh".into(),
            },
            Source::KumaVips {
                path: "/x.json".into(),
                ttl: 60,
                domain: "kuma".into(),
            },
        ]
    );
    let (line, kind) = crate::config::Services::parse(
        "zone: mesh\nsources:\n  - kuma_vips: {path: /x, ttl: 4294967295}\n",
    )
    .unwrap_err();
    assert_eq!(line, Some(2), "{kind}");
    assert!(crate::config::Config::parse("sources:\n  - kuma_cpx: /x\n").is_err());
}

#[test]
fn sources_that_would_mislead_are_refused() {
    for (text, why) in [
        (
            "sources:\n  - kuma_vips: {path: /x, tll: 60}\n",
            "unknown field `tll`",
        ),
        (
            "sources:\n  - kuma_vips: {path: /x, domain: \"a..b\"}\n",
            "domain",
        ),
        (
            "sources:\n  - kuma_vips: /x\n  - kuma_vips: /x\n",
            "listed twice",
        ),
        (
            "sources:\n  - kuma_cp: {url: \"http://u:p@cp:5681\"}\n",
            "no user or password",
        ),
        (
            "sources:\n  - kuma_cp: {url: \"https://cp:5682\"}\n",
            "http://",
        ),
        (
            "sources:\n  - kuma_cp: {url: \"http://cp:5681\", meshes: [\"a/b\"]}\n",
            "not a mesh name",
        ),
    ] {
        let (_, kind) = crate::config::Services::parse(text).unwrap_err();
        assert!(kind.to_string().contains(why), "{text}: {kind}");
    }
    // An IPv6 literal is a URL like any other.
    let services =
        crate::config::Services::parse("sources:\n  - kuma_cp: {url: \"http://[fd00::1]:5681\"}\n")
            .unwrap();
    assert!(
        matches!(&services.sources[0], Source::KumaCp { cp, .. } if cp.url.host() == Some("[fd00::1]"))
    );
}

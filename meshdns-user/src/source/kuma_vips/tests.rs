//! Each shape with the documents of Kuma's own tests
//! (`pkg/dns/vips/persistence_test.go`, `testdata/*_tag_first.golden.json`),
//! checked against the names and addresses kuma-cp's data plane serves for
//! them, written out by hand here from `VIPOutbounds` and the DNS
//! generator.

use super::*;

/// `(name, address)` of each name, in order.
fn names(text: &str) -> Vec<(String, String)> {
    parse(text, KUMA_ZONE)
        .unwrap_or_else(|e| panic!("{e}"))
        .names
        .into_iter()
        .map(|n| (n.name, n.address.to_string()))
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(n, a)| (n.to_string(), a.to_string()))
        .collect()
}

#[test]
fn shape_1_service_to_vip() {
    let text = r#"{"backend":"240.0.0.1","frontend":"240.0.0.3","postgres":"240.0.0.0","redis":"240.0.0.2"}"#;
    assert_eq!(
        names(text),
        pairs(&[
            ("backend.mesh", "240.0.0.1"),
            ("frontend.mesh", "240.0.0.3"),
            ("postgres.mesh", "240.0.0.0"),
            ("redis.mesh", "240.0.0.2"),
        ])
    );
    // Underscores answer in the form with dots too.
    let text = r#"{"backend_2":"240.0.1.1","redis_2":"240.0.1.2"}"#;
    assert_eq!(
        names(text),
        pairs(&[
            ("backend_2.mesh", "240.0.1.1"),
            ("backend.2.mesh", "240.0.1.1"),
            ("redis_2.mesh", "240.0.1.2"),
            ("redis.2.mesh", "240.0.1.2"),
        ])
    );
}

#[test]
fn shape_2_typed_keys() {
    let text = r#"{"0:backend_2":"240.0.1.1","0:frontend_2":"240.0.1.3","1:host.com":"240.0.1.4"}"#;
    let list = parse(text, KUMA_ZONE).unwrap();
    assert_eq!(
        names(text),
        pairs(&[
            ("backend_2.mesh", "240.0.1.1"),
            ("backend.2.mesh", "240.0.1.1"),
            ("frontend_2.mesh", "240.0.1.3"),
            ("frontend.2.mesh", "240.0.1.3"),
            ("host.com", "240.0.1.4"),
        ])
    );
    assert_eq!(list.names[4].kind, EntryKind::Host);
    // One key without a type makes every key a service, as kuma-cp reads
    // it (and `0:a.mesh` is then no DNS name: the table skips it).
    assert_eq!(
        names(r#"{"0:a":"240.0.0.1","b":"240.0.0.2"}"#),
        pairs(&[("0:a.mesh", "240.0.0.1"), ("b.mesh", "240.0.0.2")])
    );
}

#[test]
fn shape_3_entries_with_outbounds() {
    // kuma-cp's own output (the "should update old version" test).
    let text = r#"{"0:backend":{"address":"240.0.0.1","outbounds":[{"Port":0,"TagSet":{"kuma.io/service":"backend"},"Origin":""}]},"0:frontend":{"address":"240.0.0.3","outbounds":[{"Port":0,"TagSet":{"kuma.io/service":"frontend"},"Origin":""}]},"1:kuma.io":{"address":"240.0.1.4","outbounds":[{"Port":0,"TagSet":{"kuma.io/service":"external-host"},"Origin":""}]}}"#;
    assert_eq!(
        names(text),
        pairs(&[
            ("backend.mesh", "240.0.0.1"),
            ("frontend.mesh", "240.0.0.3"),
            ("kuma.io", "240.0.1.4"),
        ])
    );
    // A service answers by its first outbound's service tag.
    let text = r#"{"0:backend_3":{"address":"240.0.2.1","outbounds":[{"TagSet":{"kuma.io/service":"backend_3"}}]},"2:api.example.com":{"address":"fd00::5","outbounds":[{"Port":80,"TagSet":{"kuma.io/service":"api"}}]},"0:renamed":{"address":"240.0.2.9","outbounds":[{"TagSet":{"kuma.io/service":"real"}}]}}"#;
    assert_eq!(
        names(text),
        pairs(&[
            ("backend_3.mesh", "240.0.2.1"),
            ("backend.3.mesh", "240.0.2.1"),
            ("real.mesh", "240.0.2.9"),
            ("api.example.com", "fd00::5"),
        ])
    );
}

#[test]
fn shape_4_tag_first() {
    // testdata/full_example_tag_first.golden.json.
    let text = r#"{"v":{"demo-app_kuma-demo_svc_5000":{"oe":[{"ap":[{"a":"10.43.96.209","p":5000,"o":"k8s"},{"a":"240.0.0.2","o":"svc"}]}]},"httpbin":{"oe":[{"ap":[{"a":"240.0.0.2","p":443,"o":"svc"},{"a":"240.0.0.3","d":"httpbin.org","p":443,"o":"external-service:httpbin"},{"a":"240.0.0.5","d":"httpbin.mesh","p":80,"o":"virtual-outbound:default"}]}]},"redis_kuma-demo_svc_6379":{"oe":[{"ap":[{"a":"10.43.224.70","p":6379,"o":"k8s"},{"a":"240.0.0.1","o":"svc"},{"a":"240.0.0.6","d":"redis_kuma-demo_svc_6379.mesh","p":80,"o":"virtual-outbound:default"}]}]}}}"#;
    let list = parse(text, KUMA_ZONE).unwrap();
    // Kubernetes hosts named by their ClusterIP are not names; the
    // virtual outbounds' domains, later in Kuma's order, win over the
    // services' own names.
    assert_eq!(
        names(text),
        pairs(&[
            ("demo-app_kuma-demo_svc_5000.mesh", "240.0.0.2"),
            ("demo-app.kuma-demo.svc.5000.mesh", "240.0.0.2"),
            ("httpbin.mesh", "240.0.0.5"),
            ("redis_kuma-demo_svc_6379.mesh", "240.0.0.6"),
            ("redis.kuma-demo.svc.6379.mesh", "240.0.0.1"),
            ("httpbin.org", "240.0.0.3"),
        ])
    );
    assert!(list.skipped.is_empty(), "{:?}", list.skipped);
    let kinds: Vec<EntryKind> = list.names.iter().map(|n| n.kind).collect();
    use EntryKind::*;
    assert_eq!(kinds, [Service, Service, Fqdn, Fqdn, Service, Host]);
}

#[test]
fn an_empty_config_is_an_empty_list() {
    assert_eq!(parse("", KUMA_ZONE).unwrap(), VipList::default());
    assert_eq!(parse("{}", KUMA_ZONE).unwrap(), VipList::default());
    assert_eq!(parse(r#"{"v":{}}"#, KUMA_ZONE).unwrap(), VipList::default());
}

#[test]
fn unknown_entry_types_and_bad_addresses_are_skipped_with_a_reason() {
    let text = r#"{"0:a":"240.0.0.1","7:future":"240.0.0.2","1:bad":"240.0.0.300","0:none":""}"#;
    let list = parse(text, KUMA_ZONE).unwrap();
    assert_eq!(names(text), pairs(&[("a.mesh", "240.0.0.1")]));
    let skipped: Vec<(&str, &str)> = list
        .skipped
        .iter()
        .map(|s| (s.entry.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(
        skipped,
        [
            ("1:bad", "\"240.0.0.300\" is not an IP address"),
            ("7:future", "unknown entry type 7"),
        ]
    );
}

#[test]
fn malformed_json_is_refused_with_its_position() {
    let error = parse(
        "{\n  \"0:a\": \"240.0.0.1\",\n  \"0:b\" \"240.0.0.2\"\n}",
        KUMA_ZONE,
    )
    .unwrap_err();
    let KumaVipsError::Json { line, column, .. } = error else {
        panic!("{error:?}");
    };
    assert_eq!((line, column), (3, 9));
    // Half a file, as a writer that is not done leaves it.
    assert!(matches!(
        parse(r#"{"0:a": {"address": "240.0.0.1", "outb"#, KUMA_ZONE),
        Err(KumaVipsError::Json { line: 1, .. })
    ));
    // A wrong type inside a known shape, with its position.
    let error = parse("{\"v\": {\"a\": {\"oe\": 5}}}", KUMA_ZONE).unwrap_err();
    assert!(
        matches!(error, KumaVipsError::Json { line: 1, .. }),
        "{error}"
    );
}

#[test]
fn documents_of_no_known_shape_are_refused() {
    for text in [
        "[1, 2]",
        "\"x\"",
        r#"{"a": "240.0.0.1", "b": {"address": "240.0.0.2"}}"#,
    ] {
        assert!(
            matches!(parse(text, KUMA_ZONE), Err(KumaVipsError::Shape(_))),
            "{text}"
        );
    }
    assert_eq!(
        parse(
            r#"{"0:a": {"address": "240.0.0.1", "outbounds": []}}"#,
            KUMA_ZONE
        ),
        Err(KumaVipsError::NoOutbounds("0:a".into()))
    );
}

#[test]
fn dns_names_are_what_govalidator_calls_so() {
    for name in ["host.com", "a_b.mesh", "x.", "under_score", "a-b.c"] {
        assert!(is_dns_name(name), "{name}");
    }
    for name in [
        "10.43.96.209",
        "fd00::1",
        "",
        "-a.com",
        "a..b",
        "a b",
        &"a".repeat(64),
    ] {
        assert!(!is_dns_name(name), "{name}");
    }
}

#[test]
fn a_tag_first_entry_keeps_its_first_address_as_kuma_cp_reads_it() {
    // Two outbounds of one service (other tags, other ports): one entry,
    // the first address (`ToVirtualOutboundView`).
    let text = r#"{"v":{"web":{"oe":[{"t":{"version":"1"},"ap":[{"a":"240.0.0.7","p":80,"o":"svc"}]},{"t":{"version":"2"},"ap":[{"a":"240.0.0.8","p":81,"o":"svc"}]}]}}}"#;
    assert_eq!(names(text), pairs(&[("web.mesh", "240.0.0.7")]));
}

#[test]
fn services_answer_in_kuma_cps_domain() {
    // kuma-cp with `dns_server.domain: kuma`.
    let list = parse(r#"{"backend_2":"240.0.1.1"}"#, "kuma").unwrap();
    let names: Vec<&str> = list.names.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["backend_2.kuma", "backend.2.kuma"]);
}

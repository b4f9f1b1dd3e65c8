//! Issue 16's defect 1, end to end: the cache keyed by CD (RFC 4035
//! §3.2.2, RFC 6840 §5.9). Knot serves `example.` signed with keys of its
//! own making; Unbound validates it against a trust anchor those keys do
//! not match, so it answers SERVFAIL (bogus) and, with CD, the data
//! unvalidated; the agent forwards to that Unbound. An answer one client
//! got with CD must not reach a client that did not set CD.

use std::net::Ipv4Addr;

use meshdns_tests::{
    fixtures::LAB_SERVICES,
    knot::Knot,
    lab::{Lab, dig_status},
    unbound::{UNBOUND_ADDR, Unbound},
};

/// Where Knot listens, inside the server namespace.
const KNOT: &str = "127.0.0.4:5300";

/// A DS record for `example.` that no key of Knot's has: every answer in
/// the zone is bogus to a validator that trusts it.
const WRONG_ANCHOR: &str =
    "example. DS 12345 13 2 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// dig's status, flags line and answer for `args`, from the client.
fn ask(lab: &Lab, args: &[&str]) -> (String, String, String) {
    let out = lab.client.dig("198.18.0.1", args);
    let status = dig_status(&out).unwrap_or_else(|| format!("no reply: {out}"));
    let flags = out
        .lines()
        .find_map(|line| line.split(";; flags: ").nth(1))
        .map(|rest| rest.split(';').next().unwrap_or_default().to_string())
        .unwrap_or_default();
    let answer = out
        .lines()
        .skip_while(|line| !line.starts_with(";; ANSWER SECTION"))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    (status, flags, answer)
}

#[test]
fn rfc4035_3_2_2_an_answer_cached_for_cd_never_reaches_a_client_without_cd() {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    lab.client
        .add_address(&lab.client_if, "198.18.0.3/24")
        .unwrap();
    let records = [
        "$TTL 300",
        "@ SOA ns.example. hostmaster.example. 1 3600 600 86400 60",
        "@ NS ns.example.",
        "ns A 127.0.0.4",
        "sip A 198.18.7.1",
    ]
    .map(String::from);
    let _knot =
        Knot::start_signed(&lab.server, KNOT.parse().unwrap(), "example.", &records).unwrap();
    let _unbound = Unbound::start_validating(
        &lab.server,
        Ipv4Addr::new(127, 0, 0, 2),
        "example.",
        KNOT.parse().unwrap(),
        WRONG_ANCHOR,
        ("sip.example", "198.18.7.1"),
    )
    .unwrap();
    // The upstream as the test says it is: bogus without CD, the data with.
    let direct = lab
        .server
        .dig("127.0.0.2", &["-p", "5353", "sip.example", "A"]);
    assert!(direct.contains("status: SERVFAIL"), "{direct}");

    let config = lab.write_services(LAB_SERVICES);
    let _agent = lab
        .start_agent(
            &config,
            &["--listen", "198.18.0.1:53", "--upstream", UNBOUND_ADDR],
        )
        .unwrap();
    // One client asks with CD: the data, unvalidated, which the agent
    // caches.
    let (status, flags, answer) = ask(&lab, &["-b", "198.18.0.2", "+cd", "sip.example", "A"]);
    assert_eq!(status, "NOERROR");
    assert!(flags.split(' ').any(|f| f == "cd"), "{flags}");
    assert!(answer.contains("198.18.7.1"), "{answer}");
    // Another asks without: what the validator says, SERVFAIL, and no CD
    // it never set.
    let (status, flags, answer) = ask(&lab, &["-b", "198.18.0.3", "sip.example", "A"]);
    assert_eq!(status, "SERVFAIL", "the CD answer was served: {answer}");
    assert!(!flags.split(' ').any(|f| f == "cd"), "{flags}");
    // And with CD again, the data.
    let (status, _, answer) = ask(&lab, &["-b", "198.18.0.3", "+cd", "sip.example", "A"]);
    assert_eq!(status, "NOERROR");
    assert!(answer.contains("198.18.7.1"), "{answer}");
}

//! Issue 16's defect 4, end to end: the kernel program answers only the
//! clients `allow_from` lets in and only for the destinations
//! `fast_path_destinations` names, as the agent keeps its tries in step
//! with the services file. `dig` from the lab's client, from addresses
//! inside and outside; the fast path's counters say who answered.

use std::time::Duration;

use meshdns_common::Counter;
use meshdns_tests::{
    fixtures::LAB_SERVICES,
    lab::{Agent, Lab, dig_status},
};

/// A lab whose agent serves `LAB_SERVICES` after `header`, its resolver
/// on the server's veth addresses, the client's veth with `extra`
/// addresses besides its own.
fn setup(header: &str, extra: &[&str]) -> (Lab, Agent) {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    for address in extra {
        lab.client.add_address(&lab.client_if, address).unwrap();
    }
    let config = lab.write_services(&format!("{header}{LAB_SERVICES}"));
    let agent = lab
        .start_agent(
            &config,
            &["--listen", "198.18.0.1:53", "--listen", "[2001:db8::1]:53"],
        )
        .unwrap();
    (lab, agent)
}

/// `redis.mesh A` (or AAAA) asked of `server` from `source`: the status and
/// the answer's addresses, and what the fast path counted meanwhile.
fn ask(lab: &Lab, server: &str, source: &str, qtype: &str) -> (String, String, Counted) {
    let before = lab.fast_path_counters().unwrap();
    let out = lab.client.dig(
        server,
        &[
            "-b",
            source,
            "redis.mesh",
            qtype,
            "+time=1",
            "+noall",
            "+comments",
            "+answer",
        ],
    );
    let moved = lab.fast_path_counters().unwrap().since(&before);
    let status = dig_status(&out).unwrap_or_else(|| "no reply".to_string());
    let answer = out
        .lines()
        .filter(|line| !line.starts_with(';') && !line.trim().is_empty())
        .filter_map(|line| line.split_whitespace().last())
        .collect::<Vec<_>>()
        .join(" ");
    let counted = Counted {
        answered: moved.answered(),
        not_allowed: moved.get(Counter::PassClientNotAllowed),
        other_destination: moved.get(Counter::PassOtherDestination),
    };
    (status, answer, counted)
}

/// Waits for the agent's `count`-th reload to reach the fast path (its
/// scope comes before its table).
fn reloaded(agent: &mut Agent, count: usize) {
    agent
        .wait_for_logs("fast path table updated", count, Duration::from_secs(5))
        .unwrap();
}

#[derive(Debug, PartialEq, Eq)]
struct Counted {
    answered: u64,
    not_allowed: u64,
    other_destination: u64,
}

const ANSWERED: Counted = Counted {
    answered: 1,
    not_allowed: 0,
    other_destination: 0,
};
const NOT_ALLOWED: Counted = Counted {
    answered: 0,
    not_allowed: 1,
    other_destination: 0,
};
const OTHER_DESTINATION: Counted = Counted {
    answered: 0,
    not_allowed: 0,
    other_destination: 1,
};

#[test]
fn allow_from_in_the_fast_path_follows_the_services_file() {
    let header = "allow_from: [127.0.0.0/8, 198.18.0.2/32, \"2001:db8::2/128\"]\n";
    let (lab, mut agent) = setup(header, &["198.18.0.3/24", "2001:db8::3/64"]);
    // Inside: the kernel answers.
    let (status, answer, counted) = ask(&lab, "198.18.0.1", "198.18.0.2", "A");
    assert_eq!(
        (status.as_str(), answer.as_str()),
        ("NOERROR", "240.0.0.100")
    );
    assert_eq!(counted, ANSWERED);
    let (status, answer, counted) = ask(&lab, "2001:db8::1", "2001:db8::2", "AAAA");
    assert_eq!(
        (status.as_str(), answer.as_str()),
        ("NOERROR", "fd00:fd00::100")
    );
    assert_eq!(counted, ANSWERED);
    // Outside, of either family: passed, and the resolver refuses it, as
    // it refuses that client's other questions.
    for (server, source) in [("198.18.0.1", "198.18.0.3"), ("2001:db8::1", "2001:db8::3")] {
        let (status, _, counted) = ask(&lab, server, source, "A");
        assert_eq!(status, "REFUSED", "from {source}");
        assert_eq!(counted, NOT_ALLOWED, "from {source}");
    }
    // The file lets the subnet in: the kernel answers that client too.
    lab.write_services(&format!(
        "allow_from: [127.0.0.0/8, 198.18.0.0/24]\n{LAB_SERVICES}"
    ));
    reloaded(&mut agent, 1);
    let (status, _, counted) = ask(&lab, "198.18.0.1", "198.18.0.3", "A");
    assert_eq!(status, "NOERROR");
    assert_eq!(counted, ANSWERED);
    // And the IPv6 client it no longer lists is passed and refused.
    let (status, _, counted) = ask(&lab, "2001:db8::1", "2001:db8::2", "AAAA");
    assert_eq!(status, "REFUSED");
    assert_eq!(counted, NOT_ALLOWED);
}

#[test]
fn fast_path_destinations_local_a_list_and_any() {
    let (lab, mut agent) = setup("", &[]);
    // Another host's addresses, which a neighbour entry on the client
    // sends to the server's MAC (as a router or a spoofer would).
    let server_mac = lab
        .server
        .command("ip")
        .args(["-br", "link", "show", "dev", &lab.server_if])
        .output()
        .unwrap();
    let server_mac = String::from_utf8(server_mac.stdout).unwrap();
    let server_mac = server_mac.split_whitespace().nth(2).unwrap().to_string();
    for other in ["198.18.5.77", "198.18.5.78"] {
        lab.client
            .ip(&[
                "route",
                "add",
                &format!("{other}/32"),
                "dev",
                &lab.client_if,
            ])
            .unwrap();
        lab.client
            .ip(&[
                "neigh",
                "add",
                other,
                "lladdr",
                &server_mac,
                "dev",
                &lab.client_if,
            ])
            .unwrap();
    }
    // `local`, the default: the server's own address is answered; another
    // host's is passed (and, the server not being that host, not answered
    // at all).
    let (status, _, counted) = ask(&lab, "198.18.0.1", "198.18.0.2", "A");
    assert_eq!(status, "NOERROR");
    assert_eq!(counted, ANSWERED);
    let (status, _, counted) = ask(&lab, "198.18.5.77", "198.18.0.2", "A");
    assert_eq!(status, "no reply");
    assert_eq!(counted, OTHER_DESTINATION);
    // A list: the address it names is answered, from that address (dig
    // takes only a reply from where it asked), and local no longer is.
    lab.write_services(&format!(
        "fast_path_destinations: [198.18.5.77]\n{LAB_SERVICES}"
    ));
    reloaded(&mut agent, 1);
    let (status, answer, counted) = ask(&lab, "198.18.5.77", "198.18.0.2", "A");
    assert_eq!(
        (status.as_str(), answer.as_str()),
        ("NOERROR", "240.0.0.100")
    );
    assert_eq!(counted, ANSWERED);
    let (status, _, counted) = ask(&lab, "198.18.0.1", "198.18.0.2", "A");
    assert_eq!(status, "NOERROR", "the resolver answers it");
    assert_eq!(counted, OTHER_DESTINATION);
    // Any: every address.
    lab.write_services(&format!("fast_path_destinations: any\n{LAB_SERVICES}"));
    reloaded(&mut agent, 2);
    for server in ["198.18.5.78", "198.18.0.1"] {
        let (status, _, counted) = ask(&lab, server, "198.18.0.2", "A");
        assert_eq!(status, "NOERROR", "{server}");
        assert_eq!(counted, ANSWERED, "{server}");
    }
}

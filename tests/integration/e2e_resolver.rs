//! The resolver behind the fast path, end to end: `meshdns run` listening on
//! the veth, Unbound from Debian as its upstream in the same namespace, and
//! `dig` (and a raw TCP client) in the client namespace.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    thread::sleep,
    time::{Duration, Instant},
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query, ResponseCode},
    rr::{Name, RecordType},
};
use meshdns_tests::{
    fixtures::LAB_SERVICES,
    lab::{Agent, Lab, SERVER_V4, dig_status},
    unbound::{BIG_RECORDS, UNBOUND_ADDR, Unbound},
};

/// A lab with Unbound upstream and an agent whose resolver listens on the
/// veth; `extra_config` is added to the services file.
struct Setup {
    lab: Lab,
    unbound: Unbound,
    agent: Agent,
}

fn setup(extra_config: &str) -> Setup {
    let mut lab = Lab::new().unwrap();
    lab.enable_peer_napi().unwrap();
    let unbound = Unbound::start(&lab.server).unwrap();
    let config = lab.write_services(&format!("{LAB_SERVICES}{extra_config}"));
    let listen = format!("{SERVER_V4}:53");
    let agent = lab
        .start_agent(&config, &["--listen", &listen, "--upstream", UNBOUND_ADDR])
        .unwrap();
    agent_ready(&lab);
    Setup {
        lab,
        unbound,
        agent,
    }
}

/// Waits until the resolver replies on the veth (whatever it says).
fn agent_ready(lab: &Lab) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if lab
            .dig(&["www.test", "+noall", "+comments"])
            .contains("status:")
        {
            return;
        }
        sleep(Duration::from_millis(50));
    }
    panic!("the resolver did not answer");
}

/// Answer and authority records without their TTLs, and the status.
fn records_and_status(out: &str) -> (Vec<String>, String) {
    let status = dig_status(out).unwrap_or_default();
    let records = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| {
            let mut fields: Vec<&str> = l.split_whitespace().collect();
            if fields.len() > 1 {
                fields.remove(1);
            }
            fields.join(" ")
        })
        .collect();
    (records, status)
}

/// The TTL of the first record in `+noall +answer` output.
fn first_ttl(out: &str) -> u32 {
    out.lines()
        .find(|l| !l.starts_with(';') && !l.trim().is_empty())
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no record in {out:?}"))
}

#[test]
fn forwarded_answers_equal_the_upstreams() {
    let s = setup("");
    for (name, qtype) in [
        ("www.test", "A"),
        ("txt.test", "TXT"),
        ("nope.test", "A"),
        ("www.test", "AAAA"),
    ] {
        let ours = s
            .lab
            .dig(&[name, qtype, "+noall", "+comments", "+answer", "+authority"]);
        let theirs = s
            .lab
            .server
            .command("dig")
            .args([
                "@127.0.0.2",
                "-p",
                "5353",
                name,
                qtype,
                "+noall",
                "+comments",
                "+answer",
                "+authority",
            ])
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&theirs.stdout);
        assert_eq!(
            records_and_status(&ours),
            records_and_status(&theirs),
            "{name} {qtype}"
        );
    }
    let (_, status) = records_and_status(&s.lab.dig(&["nope.test", "+noall", "+comments"]));
    assert_eq!(status, "NXDOMAIN");
}

#[test]
fn truncation_over_udp_leads_to_tcp_and_the_full_answer() {
    let s = setup("");
    // Over UDP the answer does not fit: TC, no records (dig +ignore does
    // not retry).
    let udp = s
        .lab
        .dig(&["big.test", "+ignore", "+noall", "+comments", "+answer"]);
    let flags = udp
        .lines()
        .find(|l| l.contains(";; flags:"))
        .unwrap_or_default();
    assert!(flags.contains(" tc"), "{udp}");
    assert!(records_and_status(&udp).0.is_empty(), "{udp}");
    // dig retries over TCP on its own: all records, which meshdns itself
    // got from Unbound over TCP after a truncated UDP answer.
    let tcp = s.lab.dig(&["big.test", "+noall", "+answer"]);
    assert_eq!(
        records_and_status(&tcp).0.len(),
        usize::from(BIG_RECORDS),
        "{tcp}"
    );
    // Without EDNS the limit is 512 bytes: a plain query is truncated too.
    let plain = s
        .lab
        .dig(&["big.test", "+noedns", "+ignore", "+noall", "+comments"]);
    assert!(plain.contains(" tc"), "{plain}");
}

#[test]
fn dead_upstream_means_stale_answers_not_silence() {
    let mut s = setup("stale_max: 1h\n");
    // Cache two names; short.test has a one-second TTL.
    assert!(s.lab.dig(&["www.test", "+short"]).contains("198.18.5.1"));
    assert!(s.lab.dig(&["short.test", "+short"]).contains("198.18.5.2"));
    sleep(Duration::from_millis(1500));
    s.unbound.kill();

    // Expired in cache, upstream dead: served stale with a 30 s TTL.
    let out = s.lab.dig(&["short.test", "+noall", "+answer"]);
    assert!(out.contains("198.18.5.2"), "{out}");
    assert_eq!(first_ttl(&out), 30, "{out}");
    // Still fresh in cache: served as is.
    assert!(s.lab.dig(&["www.test", "+short"]).contains("198.18.5.1"));
    // Never seen: SERVFAIL, promptly.
    let start = Instant::now();
    let out = s.lab.dig(&["never.test", "+noall", "+comments"]);
    assert_eq!(records_and_status(&out).1, "SERVFAIL", "{out}");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "SERVFAIL took {:?}",
        start.elapsed()
    );

    // The upstream comes back: fresh answers again.
    s.unbound.restart().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = s.lab.dig(&["short.test", "+noall", "+answer"]);
        if out.contains("198.18.5.2") && first_ttl(&out) <= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no fresh answer after the upstream came back: {out}"
        );
        sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_client_outside_allow_from_is_refused() {
    let s = setup("allow_from: [127.0.0.0/8]\n");
    let _ = &s.agent;
    let out = s.lab.dig(&["www.test", "+noall", "+comments"]);
    assert_eq!(records_and_status(&out).1, "REFUSED", "{out}");
}

#[test]
fn allow_from_follows_the_services_file_when_it_changes() {
    let mut s = setup("allow_from: [127.0.0.0/8]\n");
    let out = s.lab.dig(&["www.test", "+noall", "+comments"]);
    assert_eq!(records_and_status(&out).1, "REFUSED", "{out}");

    s.lab
        .write_services(&format!("{LAB_SERVICES}allow_from: [198.18.0.0/15]\n"));
    s.agent
        .wait_for_log("table reloaded", Duration::from_secs(5))
        .unwrap();
    let out = s.lab.dig(&["www.test", "+noall", "+comments"]);
    assert_eq!(records_and_status(&out).1, "NOERROR", "{out}");
}

#[test]
fn mesh_names_over_tcp_and_the_types_the_fast_path_passes() {
    let s = setup("");
    let out = s.lab.dig(&["+tcp", "redis.mesh", "A", "+noall", "+answer"]);
    assert_eq!(
        records_and_status(&out).0,
        ["redis.mesh. IN A 240.0.0.100"],
        "{out}"
    );
    // Other types of a mesh name: NODATA with the zone's SOA.
    let out = s
        .lab
        .dig(&["redis.mesh", "MX", "+noall", "+comments", "+authority"]);
    let (records, status) = records_and_status(&out);
    assert_eq!(status, "NOERROR");
    assert_eq!(
        records,
        ["mesh. IN SOA ns.mesh. hostmaster.mesh. 1 3600 600 86400 30"]
    );
    // RFC 8482: ANY gets the addresses it has.
    let out = s.lab.dig(&["redis.mesh", "ANY", "+noall", "+answer"]);
    assert_eq!(records_and_status(&out).0.len(), 2, "{out}");
    // RFC 6891 §6.1.3: EDNS version 1 gets BADVERS.
    let out = s
        .lab
        .dig(&["redis.mesh", "+edns=1", "+noednsneg", "+noall", "+comments"]);
    assert_eq!(records_and_status(&out).1, "BADVERS", "{out}");
}

#[test]
fn rfc7766_pipelined_queries_on_one_connection_answered_with_their_ids() {
    let s = setup("");
    let server: SocketAddr = format!("{SERVER_V4}:53").parse().unwrap();
    let names = [
        "www.test.",
        "redis.mesh.",
        "txt.test.",
        "nope.test.",
        "big.test.",
    ];
    let replies = s
        .lab
        .client
        .run(move || {
            let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(3))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            // All queries in one write, before reading anything.
            let mut out = Vec::new();
            for (i, name) in names.iter().enumerate() {
                let mut query = Message::new(1000 + i as u16, MessageType::Query, OpCode::Query);
                query.metadata.recursion_desired = true;
                query.add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
                let bytes = query.to_vec()?;
                out.extend((bytes.len() as u16).to_be_bytes());
                out.extend(bytes);
            }
            stream.write_all(&out)?;
            let mut replies = Vec::new();
            for _ in &names {
                let mut len = [0u8; 2];
                stream.read_exact(&mut len)?;
                let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
                stream.read_exact(&mut buf)?;
                replies.push(Message::from_vec(&buf)?);
            }
            Ok(replies)
        })
        .unwrap();
    let mut ids: Vec<u16> = replies.iter().map(|r| r.metadata.id).collect();
    ids.sort();
    assert_eq!(ids, [1000, 1001, 1002, 1003, 1004]);
    for reply in &replies {
        let i = usize::from(reply.metadata.id - 1000);
        assert_eq!(reply.queries[0].name().to_ascii(), names[i]);
        let answers = reply.answers.len();
        match names[i] {
            "nope.test." => assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain),
            // A TXT-only name asked for A: NODATA.
            "txt.test." => assert_eq!((answers, reply.authorities.len()), (0, 1), "{reply:?}"),
            "big.test." => assert_eq!(answers, usize::from(BIG_RECORDS), "TCP carries it whole"),
            _ => assert_eq!(answers, 1, "{reply:?}"),
        }
    }
}

/// RFC 7766 §8: a message is its announced length; one cut short by the
/// client (its length announced, its last 6 bytes never sent, the write
/// side shut; the outside run announced 39 and sent 33) is no
/// message and is not answered, as Knot does: the connection just ends.
/// A whole one before it, on the same connection, is answered.
#[test]
fn rfc7766_8_a_message_cut_short_is_not_answered() {
    let s = setup("");
    let server: SocketAddr = format!("{SERVER_V4}:53").parse().unwrap();
    let (whole, rest) = s
        .lab
        .client
        .run(move || {
            let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(3))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            let mut query = Message::new(7, MessageType::Query, OpCode::Query);
            query.add_query(Query::query(
                Name::from_ascii("redis.mesh.")?,
                RecordType::TXT,
            ));
            let bytes = query.to_vec()?;
            let mut out = Vec::new();
            out.extend((bytes.len() as u16).to_be_bytes());
            out.extend(&bytes);
            // The same query again, its last 6 bytes never sent.
            out.extend((bytes.len() as u16).to_be_bytes());
            out.extend(&bytes[..bytes.len() - 6]);
            stream.write_all(&out)?;
            stream.shutdown(std::net::Shutdown::Write)?;
            let mut len = [0u8; 2];
            stream.read_exact(&mut len)?;
            let mut whole = vec![0u8; usize::from(u16::from_be_bytes(len))];
            stream.read_exact(&mut whole)?;
            // Then the server's end: nothing more.
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest)?;
            Ok((Message::from_vec(&whole)?, rest))
        })
        .unwrap();
    assert_eq!(whole.metadata.id, 7);
    assert_eq!(whole.metadata.response_code, ResponseCode::NoError);
    assert_eq!(rest, b"", "the cut message was answered");
}

//! The fixtures as data, Katran style: a description, the input frame,
//! the expected action and the expected output bytes, for every answer
//! shape and every reason to pass. Expected answers are built
//! independently of meshdns (hickory-proto for the DNS message; negative
//! answers by hand; the test's own checksum code). [`super`] runs them.

use std::net::IpAddr;

use meshdns_common::Counter;
use meshdns_tests::{fixtures::longest_service, frame::*};

/// The zone's SOA from TYPE on, with the defaults (RFC 1035 §3.3.13), built
/// here by hand.
pub(super) fn soa_rr() -> Vec<u8> {
    let mut rdata = b"\x02ns\x04mesh\x00\x0ahostmaster\x04mesh\x00".to_vec();
    for field in [1u32, 3600, 600, 86400, 30] {
        rdata.extend(field.to_be_bytes());
    }
    let mut rr = vec![0, 6, 0, 1, 0, 0, 0, 30];
    rr.extend((rdata.len() as u16).to_be_bytes());
    rr.extend(rdata);
    rr
}

/// The IPv4 VIPs of the fixtures' `eight`.
const EIGHT_V4: [&str; 8] = [
    "240.0.1.1",
    "240.0.1.2",
    "240.0.1.3",
    "240.0.1.4",
    "240.0.1.5",
    "240.0.1.6",
    "240.0.1.7",
    "240.0.1.8",
];

fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// Which table a fixture runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Zone {
    /// `authoritative: false`: unknown names are passed (Kuma's behaviour).
    Forwarding,
    /// `authoritative: true`: unknown names in the zone get NXDOMAIN.
    Authoritative,
    /// As `Forwarding`, with the search expansions answered NXDOMAIN
    /// (`answer: nxdomain`); the others answer them with a CNAME.
    NxdomainSearch,
}

/// The fixtures' search suffixes, as a pod in Kubernetes has them.
pub(super) const SEARCH_SUFFIXES: &str =
    "[\"*.svc.cluster.local\", svc.cluster.local, cluster.local]";

pub(super) enum Expect {
    /// XDP_TX with exactly these bytes, counted under this counter.
    Tx(Vec<u8>, Counter),
    /// XDP_PASS with the frame unchanged, counted under this reason.
    Pass(Counter),
    /// XDP_DROP (an answer over the rate limit), counted under this.
    Drop(Counter),
}

pub(super) struct Fixture {
    pub description: &'static str,
    pub zone: Zone,
    pub input: Vec<u8>,
    pub expect: Expect,
}

fn answer(description: &'static str, query: Query, addrs: &[&str]) -> Fixture {
    let counter = if query.qtype == TYPE_A {
        Counter::AnsweredA
    } else {
        Counter::AnsweredAaaa
    };
    Fixture {
        description,
        zone: Zone::Forwarding,
        input: query.frame(),
        expect: Expect::Tx(query.expected_reply(&ips(addrs), 60), counter),
    }
}

/// NODATA: NOERROR, no answer, the SOA (RFC 2308 §2.2).
fn nodata(description: &'static str, zone: Zone, query: Query) -> Fixture {
    Fixture {
        description,
        zone,
        input: query.frame(),
        expect: Expect::Tx(
            query.expected_negative_reply(NOERROR, &soa_rr(), 1),
            Counter::AnsweredNodata,
        ),
    }
}

/// NXDOMAIN with the SOA (RFC 2308 §2.1).
fn nxdomain(description: &'static str, query: Query) -> Fixture {
    Fixture {
        description,
        zone: Zone::Authoritative,
        input: query.frame(),
        expect: Expect::Tx(
            query.expected_negative_reply(NXDOMAIN, &soa_rr(), 1),
            Counter::AnsweredNxdomain,
        ),
    }
}

fn pass(description: &'static str, input: Vec<u8>, reason: Counter) -> Fixture {
    Fixture {
        description,
        zone: Zone::Forwarding,
        input,
        expect: Expect::Pass(reason),
    }
}

fn in_zone(mut fixture: Fixture, zone: Zone) -> Fixture {
    fixture.zone = zone;
    fixture
}

pub(super) fn fixtures() -> Vec<Fixture> {
    let redis_a = || Query::new("redis.mesh", TYPE_A);
    let eight_v4 = EIGHT_V4;
    let eight_v6 = [
        "fd00::1", "fd00::2", "fd00::3", "fd00::4", "fd00::5", "fd00::6", "fd00::7", "fd00::8",
    ];
    let longest = leak(format!("{}.mesh", longest_service()));
    let vlan = (0x8100, 100);
    let qinq = (0x88a8, 200);
    let mut cases = vec![
        // Answers (RFC 1035 §4.1: header, question echoed, answers).
        answer("A for a known name", redis_a(), &["240.0.0.100"]),
        answer(
            "AAAA for a known name",
            Query::new("redis.mesh", TYPE_AAAA),
            &["fd00:fd00::100"],
        ),
        answer(
            "three A records, in config order",
            Query::new("web.mesh", TYPE_A),
            &["240.0.0.101", "240.0.0.102", "240.0.0.103"],
        ),
        answer(
            "eight A records",
            Query::new("eight.mesh", TYPE_A),
            &eight_v4,
        ),
        answer(
            "eight AAAA records with EDNS",
            Query::new("eight.mesh", TYPE_AAAA).with_opt(Opt::dig()),
            &eight_v6,
        ),
        answer(
            "DNS 0x20 mixed case: question keeps the client's bytes",
            Query::new("ReDiS.MeSh", TYPE_A),
            &["240.0.0.100"],
        ),
        answer(
            "Kuma name as written",
            Query::new("echo-server_echo-example_svc_1010.mesh", TYPE_A),
            &["240.0.0.104"],
        ),
        answer(
            "Kuma name in RFC 1035 form",
            Query::new("echo-server.echo-example.svc.1010.mesh", TYPE_A),
            &["240.0.0.104"],
        ),
        answer(
            "RFC 6891: EDNS query (with a cookie) gets OPT back, no options",
            redis_a().with_opt(Opt::dig()),
            &["240.0.0.100"],
        ),
        answer(
            "RFC 3225: DO bit is echoed",
            redis_a().with_opt(Opt {
                do_bit: true,
                ..Opt::dig()
            }),
            &["240.0.0.100"],
        ),
        answer(
            "RD clear and CD set are copied",
            Query {
                flags: CD,
                ..redis_a()
            },
            &["240.0.0.100"],
        ),
        answer(
            "a 255-byte name",
            Query::new(longest, TYPE_A),
            &["240.0.2.1"],
        ),
        // Transports.
        answer("IPv6", redis_a().over(Link::ipv6()), &["240.0.0.100"]),
        answer(
            "IPv6, AAAA, EDNS",
            Query::new("eight.mesh", TYPE_AAAA)
                .with_opt(Opt::dig())
                .over(Link::ipv6()),
            &eight_v6,
        ),
        answer(
            "802.1Q tag kept",
            redis_a().over(Link::vlans(&[vlan], false)),
            &["240.0.0.100"],
        ),
        answer(
            "802.1ad + 802.1Q tags kept, IPv6",
            Query::new("redis.mesh", TYPE_AAAA).over(Link::vlans(&[qinq, vlan], true)),
            &["fd00:fd00::100"],
        ),
        answer(
            "two 802.1Q tags",
            redis_a().over(Link::vlans(&[vlan, vlan], false)),
            &["240.0.0.100"],
        ),
        // NODATA: the name exists, with no address of the family.
        nodata(
            "RFC 2308 §2.2: AAAA for an IPv4-only name is NODATA with the SOA",
            Zone::Forwarding,
            Query::new("web.mesh", TYPE_AAAA),
        ),
        nodata(
            "NODATA with EDNS, mixed case: SOA owner points into the client's bytes",
            Zone::Forwarding,
            Query::new("WEB.MeSh", TYPE_AAAA).with_opt(Opt::dig()),
        ),
        nodata(
            "NODATA over IPv6 with a VLAN tag",
            Zone::Forwarding,
            Query::new("web.mesh", TYPE_AAAA).over(Link::vlans(&[vlan], true)),
        ),
        nodata(
            "NODATA for a 255-byte name",
            Zone::Forwarding,
            Query::new(longest, TYPE_AAAA),
        ),
        nodata(
            "RFC 8020: an empty non-terminal is NODATA, not NXDOMAIN",
            Zone::Authoritative,
            Query::new("echo-example.svc.1010.mesh", TYPE_A),
        ),
        nodata(
            "the apex of an authoritative zone is NODATA for A",
            Zone::Authoritative,
            Query {
                flags: 0,
                ..Query::new("mesh", TYPE_A)
            },
        ),
        // NXDOMAIN, only when authoritative.
        nxdomain(
            "RFC 2308 §2.1: unknown name in an authoritative zone",
            Query::new("nope.mesh", TYPE_A),
        ),
        nxdomain(
            "NXDOMAIN, mixed case, EDNS with DO, IPv6",
            Query::new("NoPe.Deeper.MESH", TYPE_AAAA)
                .with_opt(Opt {
                    do_bit: true,
                    ..Opt::dig()
                })
                .over(Link::ipv6()),
        ),
    ];

    // Link-layer padding after the datagram is dropped from the reply.
    let mut padded = redis_a().frame();
    padded.extend([0; 16]);
    cases.push(Fixture {
        description: "trailing Ethernet padding",
        zone: Zone::Forwarding,
        input: padded,
        expect: Expect::Tx(
            redis_a().expected_reply(&ips(&["240.0.0.100"]), 60),
            Counter::AnsweredA,
        ),
    });

    // Everything else passes, untouched.
    cases.push(pass(
        "unknown name, zone not authoritative",
        Query::new("nope.mesh", TYPE_A).frame(),
        Counter::PassUnknownName,
    ));
    for zone in [Zone::Forwarding, Zone::Authoritative] {
        cases.push(in_zone(
            pass(
                "name outside the zone",
                Query::new("example.com", TYPE_A).frame(),
                Counter::PassNotInZone,
            ),
            zone,
        ));
        cases.push(in_zone(
            pass(
                "a name ending in 'xmesh' is not in 'mesh'",
                Query::new("a.xmesh", TYPE_A).frame(),
                Counter::PassNotInZone,
            ),
            zone,
        ));
        // The last bytes are "\x04mesh\x00", but inside a label.
        cases.push(in_zone(
            pass(
                "the zone's bytes inside a label are not the zone",
                Query {
                    name: b"\x07ab\x04mesh\x00".to_vec(),
                    ..redis_a()
                }
                .frame(),
                Counter::PassNotInZone,
            ),
            zone,
        ));
    }
    cases.push(pass(
        "MX, not A/AAAA",
        Query::new("redis.mesh", TYPE_MX).frame(),
        Counter::PassUnsupportedType,
    ));
    cases.push(pass(
        "class CH",
        Query {
            qclass: CLASS_CH,
            ..redis_a()
        }
        .frame(),
        Counter::PassUnsupportedType,
    ));
    cases.push(pass(
        "RFC 6891 §6.1.3: EDNS version 1 goes to the agent for BADVERS",
        redis_a()
            .with_opt(Opt {
                version: 1,
                ..Opt::dig()
            })
            .frame(),
        Counter::PassEdnsVersion,
    ));
    cases.push(pass(
        "a query over 512 bytes (EDNS padding)",
        redis_a()
            .with_opt(Opt {
                options: vec![(12, vec![0; 480])],
                ..Opt::dig()
            })
            .frame(),
        Counter::PassTooLarge,
    ));
    cases.push(pass(
        "ARP",
        {
            let mut arp = vec![0xff; 6];
            arp.extend(CLIENT_MAC);
            arp.extend([0x08, 0x06]);
            arp.extend([0, 1, 8, 0, 6, 4, 0, 1]);
            arp.extend([0; 20]);
            arp
        },
        Counter::PassNotUnicast,
    ));
    let mut lldp = redis_a().frame();
    lldp[12..14].copy_from_slice(&[0x88, 0xcc]);
    cases.push(pass("LLDP ethertype", lldp, Counter::PassNotIp));
    cases.push(pass(
        "three VLAN tags",
        redis_a()
            .over(Link::vlans(&[qinq, vlan, vlan], false))
            .frame(),
        Counter::PassNotIp,
    ));
    let mut multicast_mac = redis_a().frame();
    multicast_mac[0] = 0x01;
    cases.push(pass(
        "Ethernet multicast destination",
        multicast_mac,
        Counter::PassNotUnicast,
    ));
    let mut broadcast = redis_a().frame();
    broadcast[IP + 16..IP + 20].copy_from_slice(&[255; 4]);
    fix_checksums(&mut broadcast);
    cases.push(pass(
        "IPv4 broadcast destination",
        broadcast,
        Counter::PassNotUnicast,
    ));
    let mut v6_multicast = redis_a().over(Link::ipv6()).frame();
    v6_multicast[14 + 24] = 0xff;
    fix_checksums(&mut v6_multicast);
    cases.push(pass(
        "IPv6 multicast destination",
        v6_multicast,
        Counter::PassNotUnicast,
    ));
    let mut hop_by_hop = redis_a().over(Link::ipv6()).frame();
    hop_by_hop[14 + 6] = 0;
    cases.push(pass(
        "IPv6 with a hop-by-hop header",
        hop_by_hop,
        Counter::PassIpOptions,
    ));
    cases.push(pass(
        "non-DNS UDP (NTP)",
        udp_frame(&[0x23; 48], 123),
        Counter::PassNotDnsPort,
    ));
    let mut tcp = redis_a().frame();
    tcp[IP + 9] = 6;
    fix_ipv4_checksum(&mut tcp, IP);
    cases.push(pass("TCP to port 53", tcp, Counter::PassNotUdp));
    // (BPF_PROG_TEST_RUN refuses XDP frames shorter than an Ethernet header.)
    cases.push(pass(
        "an IPv4 ethertype and nothing after it",
        redis_a().frame()[..IP].to_vec(),
        Counter::PassMalformed,
    ));
    cases.push(pass(
        "frame cut inside the question",
        redis_a().frame()[..DNS + 15].to_vec(),
        Counter::PassMalformed,
    ));
    let mut response = redis_a().frame();
    patch_u16(&mut response, DNS + 2, 0x8180);
    cases.push(pass("a response (QR=1)", response, Counter::PassNotQuery));
    let mut notify = redis_a().frame();
    patch_u16(&mut notify, DNS + 2, 4 << 11);
    cases.push(pass("opcode NOTIFY", notify, Counter::PassNotQuery));
    let mut tc = redis_a().frame();
    patch_u16(&mut tc, DNS + 2, RD | 0x0200);
    cases.push(pass("TC set in a query", tc, Counter::PassNotQuery));
    let mut two_questions = redis_a().frame();
    patch_u16(&mut two_questions, DNS + 4, 2);
    cases.push(pass("QDCOUNT 2", two_questions, Counter::PassNotQuery));
    let mut with_answer = redis_a().frame();
    patch_u16(&mut with_answer, DNS + 6, 1);
    cases.push(pass("ANCOUNT 1", with_answer, Counter::PassNotQuery));
    let mut two_additional = redis_a().with_opt(Opt::dig()).frame();
    patch_u16(&mut two_additional, DNS + 10, 2);
    cases.push(pass("ARCOUNT 2", two_additional, Counter::PassNotQuery));
    cases.push(pass(
        "RFC 1035 §4.1.4: compression pointer in the question",
        Query {
            name: vec![5, b'r', b'e', b'd', b'i', b's', 0xc0, 0x0c],
            ..redis_a()
        }
        .frame(),
        Counter::PassMalformed,
    ));
    cases.push(pass(
        "RFC 1035 §2.3.4: 64-byte label",
        Query::new(leak(format!("{}.mesh", "a".repeat(64))), TYPE_A).frame(),
        Counter::PassMalformed,
    ));
    let mut trailing = redis_a().to_bytes();
    trailing.extend([0xde, 0xad]);
    cases.push(pass(
        "bytes after the question",
        udp_frame(&trailing, 53),
        Counter::PassMalformed,
    ));
    let mut not_opt = redis_a().to_bytes();
    not_opt[11] = 1;
    not_opt.extend([0, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4]);
    cases.push(pass(
        "an additional record that is not OPT",
        udp_frame(&not_opt, 53),
        Counter::PassNotQuery,
    ));
    let mut short_udp = redis_a().frame();
    let udp_len = u16::from_be_bytes([short_udp[UDP + 4], short_udp[UDP + 5]]);
    patch_u16(&mut short_udp, UDP + 4, udp_len - 1);
    cases.push(pass(
        "UDP length disagrees with IP length",
        short_udp,
        Counter::PassMalformed,
    ));
    let mut options = redis_a().frame();
    options[IP] = 0x46;
    cases.push(pass("IPv4 with options", options, Counter::PassIpOptions));
    let mut fragment = redis_a().frame();
    patch_u16(&mut fragment, IP + 6, 0x2000);
    cases.push(pass("IPv4 fragment (MF)", fragment, Counter::PassIpOptions));
    cases.extend(search_expansions());
    cases.extend(scope());
    cases
}

/// The scope the fixtures run in (`super` sets it): the clients of the
/// frames' subnets (`allow_from`) and the server's own addresses
/// (`fast_path_destinations`).
pub(super) const ALLOW_FROM: [&str; 3] = ["127.0.0.0/8", "198.18.0.0/24", "2001:db8::/64"];
pub(super) const DESTINATIONS: [&str; 2] = ["198.18.0.1/32", "2001:db8::1/128"];

/// `fixture` with its query sent from, or to, `address` instead; an
/// answer's reply goes back to it, or from it.
fn readdress(mut fixture: Fixture, which: Address, address: &str) -> Fixture {
    let address: IpAddr = address.parse().unwrap();
    fixture.input = readdressed(&fixture.input, which, address);
    if let Expect::Tx(reply, _) = &mut fixture.expect {
        let mirrored = match which {
            Address::Source => Address::Destination,
            Address::Destination => Address::Source,
        };
        *reply = readdressed(reply, mirrored, address);
    }
    fixture
}

/// Issue 16's defect 4: `allow_from` and `fast_path_destinations` in the
/// program. A query from a client outside the one, or to an address
/// outside the other, is passed untouched, whatever its answer would be;
/// one inside both is answered, from a prefix's other addresses too.
fn scope() -> Vec<Fixture> {
    let redis_a = || Query::new("redis.mesh", TYPE_A);
    let redis_aaaa = || Query::new("redis.mesh", TYPE_AAAA).over(Link::ipv6());
    let vlan = (0x8100, 100);
    vec![
        readdress(
            answer(
                "allow_from: another client of a listed prefix is answered",
                redis_a(),
                &["240.0.0.100"],
            ),
            Address::Source,
            "198.18.0.200",
        ),
        readdress(
            answer(
                "allow_from: another IPv6 client of a listed prefix is answered",
                redis_aaaa(),
                &["fd00:fd00::100"],
            ),
            Address::Source,
            "2001:db8::ffff:1",
        ),
        readdress(
            pass(
                "allow_from: a client outside it: passed",
                redis_a().frame(),
                Counter::PassClientNotAllowed,
            ),
            Address::Source,
            "198.18.1.2",
        ),
        readdress(
            pass(
                "allow_from: an IPv6 client outside it: passed",
                redis_aaaa().frame(),
                Counter::PassClientNotAllowed,
            ),
            Address::Source,
            "2001:db8:1::2",
        ),
        readdress(
            pass(
                "allow_from: a client outside it behind two VLAN tags: passed",
                redis_a().over(Link::vlans(&[vlan, vlan], false)).frame(),
                Counter::PassClientNotAllowed,
            ),
            Address::Source,
            "203.0.113.9",
        ),
        readdress(
            in_zone(
                pass(
                    "allow_from: NXDOMAIN is an answer too: a client outside it: passed",
                    Query::new("nope.mesh", TYPE_A).frame(),
                    Counter::PassClientNotAllowed,
                ),
                Zone::Authoritative,
            ),
            Address::Source,
            "198.18.1.2",
        ),
        readdress(
            pass(
                "allow_from: a search expansion from a client outside it: passed",
                Query::new("redis.mesh.default.svc.cluster.local", TYPE_A).frame(),
                Counter::PassClientNotAllowed,
            ),
            Address::Source,
            "198.18.1.2",
        ),
        readdress(
            pass(
                "fast_path_destinations: to another host's address: passed",
                redis_a().frame(),
                Counter::PassOtherDestination,
            ),
            Address::Destination,
            "198.18.5.77",
        ),
        readdress(
            pass(
                "fast_path_destinations: to another host's IPv6 address: passed",
                redis_aaaa().frame(),
                Counter::PassOtherDestination,
            ),
            Address::Destination,
            "2001:db8::77",
        ),
        readdress(
            pass(
                "fast_path_destinations: a search expansion to another host's address: passed",
                Query::new("redis.mesh.default.svc.cluster.local", TYPE_A).frame(),
                Counter::PassOtherDestination,
            ),
            Address::Destination,
            "198.18.5.77",
        ),
        // The checks run on answers alone: what is passed anyway says why
        // it is, not who sent it.
        readdress(
            pass(
                "a name outside the zones from a client outside allow_from: not in the zone",
                Query::new("www.example.com", TYPE_A).frame(),
                Counter::PassNotInZone,
            ),
            Address::Source,
            "198.18.1.2",
        ),
    ]
}

/// A search expansion answered with a CNAME to `target` and `addrs`.
fn expansion(description: &'static str, query: Query, target: &str, addrs: &[&str]) -> Fixture {
    Fixture {
        description,
        zone: Zone::Forwarding,
        input: query.frame(),
        expect: Expect::Tx(
            query.expected_cname_reply(target, &ips(addrs), 60),
            Counter::AnsweredSearchCname,
        ),
    }
}

/// The search-list expansions of mesh names (`<mesh name>.<suffix>`), each
/// named after what it checks: CoreDNS's autopath answer (RFC 1034 §3.6.2:
/// a CNAME, then the target's records, RFC 2308 §2.2 for a family it
/// lacks), with and without EDNS, under each kind of suffix, in mixed case
/// (the question as sent, the target as the table has it); NXDOMAIN in
/// that mode (RFC 8020's "the client tries the next search domain"); and
/// the names under a suffix that are no mesh name, passed.
fn search_expansions() -> Vec<Fixture> {
    let first = "redis.mesh.default.svc.cluster.local";
    vec![
        expansion(
            "RFC 1034 §3.6.2: A under *.svc.cluster.local: CNAME, then the target's A",
            Query::new(first, TYPE_A),
            "redis.mesh.",
            &["240.0.0.100"],
        ),
        expansion(
            "RFC 6891: AAAA expansion with EDNS gets OPT after the chain",
            Query::new(first, TYPE_AAAA).with_opt(Opt::dig()),
            "redis.mesh.",
            &["fd00:fd00::100"],
        ),
        expansion(
            "DNS 0x20: the question keeps the client's case, the target is the table's",
            Query::new("ReDiS.MeSh.DeFault.SVC.cluster.LOCAL", TYPE_A),
            "redis.mesh.",
            &["240.0.0.100"],
        ),
        expansion(
            "under svc.cluster.local (no wildcard label), eight A",
            Query::new("eight.mesh.svc.cluster.local", TYPE_A),
            "eight.mesh.",
            &EIGHT_V4,
        ),
        expansion(
            "under cluster.local, a dotted Kuma name, over IPv6",
            Query::new(
                "echo-server.echo-example.svc.1010.mesh.cluster.local",
                TYPE_A,
            )
            .over(Link::ipv6()),
            "echo-server.echo-example.svc.1010.mesh.",
            &["240.0.0.104"],
        ),
        {
            let query = Query::new("web.mesh.kube-system.svc.cluster.local", TYPE_AAAA)
                .with_opt(Opt::dig());
            Fixture {
                description: "RFC 2308 §2.2: a family the target lacks: the CNAME, and its zone's SOA",
                zone: Zone::Forwarding,
                input: query.frame(),
                expect: Expect::Tx(
                    query.expected_cname_nodata(&wire_name("web.mesh"), 60, &soa_rr(), 1),
                    Counter::AnsweredSearchCname,
                ),
            }
        },
        {
            let query = Query::new("redis.mesh.svc.cluster.local", TYPE_A);
            Fixture {
                description: "answer: nxdomain: NXDOMAIN, the question alone, not authoritative",
                zone: Zone::NxdomainSearch,
                input: query.frame(),
                expect: Expect::Tx(
                    query.expected_search_nxdomain(),
                    Counter::AnsweredSearchNxdomain,
                ),
            }
        },
        {
            let query =
                Query::new("web.mesh.default.svc.cluster.local", TYPE_AAAA).with_opt(Opt::dig());
            Fixture {
                description: "answer: nxdomain, with EDNS, for a family the name lacks",
                zone: Zone::NxdomainSearch,
                input: query.frame(),
                expect: Expect::Tx(
                    query.expected_search_nxdomain(),
                    Counter::AnsweredSearchNxdomain,
                ),
            }
        },
        pass(
            "under a suffix, a mesh zone's name the table lacks: passed",
            Query::new("nope.mesh.default.svc.cluster.local", TYPE_A).frame(),
            Counter::PassNotInZone,
        ),
        pass(
            "under a suffix, no mesh name before it: passed",
            Query::new("redis.default.svc.cluster.local", TYPE_A).frame(),
            Counter::PassNotInZone,
        ),
        // The apex and the empty non-terminals exist (RFC 8020) but are no
        // service: `mesh.<ns>.svc.cluster.local` is the cluster's.
        pass(
            "under a suffix, the mesh zone's apex: passed",
            Query::new("mesh.default.svc.cluster.local", TYPE_A).frame(),
            Counter::PassNotInZone,
        ),
        pass(
            "under a suffix, an empty non-terminal: passed",
            Query::new("svc.1010.mesh.svc.cluster.local", TYPE_AAAA).frame(),
            Counter::PassNotInZone,
        ),
        in_zone(
            pass(
                "answer: nxdomain, the mesh zone's apex: passed",
                Query::new("Mesh.cluster.local", TYPE_A).frame(),
                Counter::PassNotInZone,
            ),
            Zone::NxdomainSearch,
        ),
        pass(
            "a mesh name under no suffix: passed",
            Query::new("redis.mesh.example.com", TYPE_A).frame(),
            Counter::PassNotInZone,
        ),
        pass(
            "a suffix alone: passed",
            Query::new("svc.cluster.local", TYPE_A).frame(),
            Counter::PassNotInZone,
        ),
        in_zone(
            pass(
                "answer: nxdomain, a name the table lacks: passed",
                Query::new("nope.mesh.cluster.local", TYPE_A).frame(),
                Counter::PassNotInZone,
            ),
            Zone::NxdomainSearch,
        ),
    ]
}

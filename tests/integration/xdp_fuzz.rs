//! Fuzzing through the kernel: random and mutated frames (flipped bits,
//! truncations, bad lengths, bogus label lengths, compression pointers, odd
//! VLAN and IP headers) run through the real compiled program with
//! BPF_PROG_TEST_RUN, and every result held to the fast path's contract:
//!
//! - the action is `XDP_PASS` or `XDP_TX`, never `XDP_ABORTED` or `XDP_DROP`;
//! - a passed frame is unchanged;
//! - a transmitted frame is a well-formed DNS response (hickory-proto
//!   decodes it) to the same ID and question bytes, with valid checksums,
//!   addresses and ports swapped and VLAN tags kept, and it says what the
//!   table says: the name's addresses in order, NODATA with the SOA, or
//!   NXDOMAIN only in an authoritative zone for a name not in the table.
//!
//! `MESHDNS_FUZZ_SEED` replays a run; `MESHDNS_FUZZ_ITERATIONS` sets its
//! length (default 100,000). The seed is printed either way.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    time::{SystemTime, UNIX_EPOCH},
};

use hickory_proto::{
    op::ResponseCode,
    rr::{RData, RecordType},
};
use meshdns::{fastpath::FastPath, table::Table};
use meshdns_common::NameKey;
use meshdns_tests::{
    fixtures::{self, hex},
    frame::*,
    xdp::{self, XDP_PASS, XDP_TX},
};

const SERVICES: &str = r#"
zone: mesh
services:
  - name: redis
    vips: [240.0.0.100, "fd00:fd00::100"]
  - name: web
    vips: [240.0.0.101, 240.0.0.102, 240.0.0.103]
  - name: v6only
    vips: ["fd00::1", "fd00::2"]
  - name: echo-server_echo-example_svc_1010
    vips: [240.0.0.104]
  - name: a.b.c.d.e.f.g.h
    vips: [240.0.0.105]
"#;

/// splitmix64: small, fast, and the same sequence for the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn byte(&mut self) -> u8 {
        self.next() as u8
    }

    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

const NAMES: [&str; 12] = [
    "redis.mesh",
    "REDIS.mesh",
    "ReDiS.MeSh",
    "web.mesh",
    "v6only.mesh",
    "echo-server_echo-example_svc_1010.mesh",
    "echo-server.echo-example.svc.1010.mesh",
    "a.b.c.d.e.f.g.h.mesh",
    "c.d.e.f.g.h.mesh",
    "nope.mesh",
    "mesh",
    "example.com",
];

/// A valid query of some shape: a name from the table or near it, a type,
/// EDNS or not, VLAN tags or not, IPv4 or IPv6.
fn valid_query(rng: &mut Rng) -> Query {
    let qtype = [TYPE_A, TYPE_AAAA, TYPE_A, TYPE_AAAA, TYPE_MX][rng.below(5)];
    let mut query = Query::new(NAMES[rng.below(NAMES.len())], qtype);
    query.id = rng.next() as u16;
    query.flags = [RD, 0, RD | CD][rng.below(3)];
    if rng.chance(2) {
        query = query.with_opt(Opt {
            do_bit: rng.chance(2),
            version: if rng.chance(20) { 1 } else { 0 },
            options: if rng.chance(2) {
                vec![(10, vec![rng.byte(); 8])]
            } else {
                vec![]
            },
            ..Opt::dig()
        });
    }
    let vlans = match rng.below(6) {
        0 => vec![(0x8100, 7)],
        1 => vec![(0x88a8, 8), (0x8100, 9)],
        _ => vec![],
    };
    query.over(Link::vlans(&vlans, rng.chance(3)))
}

/// One frame to try: a valid query, mutated most of the time, or noise.
fn frame(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(50) {
        let len = 14 + rng.below(200);
        return (0..len).map(|_| rng.byte()).collect();
    }
    let query = valid_query(rng);
    let mut f = query.frame();
    let layout = Layout::of(&f).expect("a valid query frame");
    let dns = layout.l4 + 8;
    let rounds = if rng.chance(4) { 0 } else { 1 + rng.below(3) };
    for _ in 0..rounds {
        match rng.below(9) {
            // Flip a few bits anywhere, or in the DNS message.
            0 | 1 => {
                let start = if rng.chance(2) && dns < f.len() {
                    dns
                } else {
                    0
                };
                for _ in 0..1 + rng.below(4) {
                    let at = start + rng.below(f.len() - start);
                    f[at] ^= 1 << rng.below(8);
                }
            }
            // Truncate (BPF_PROG_TEST_RUN needs 14 bytes at least).
            2 => {
                let len = 14 + rng.below(f.len() - 13);
                f.truncate(len);
            }
            // Append bytes.
            3 => f.extend((0..1 + rng.below(40)).map(|_| rng.byte())),
            // A bogus label length or a compression pointer in the name.
            4 => {
                let at = dns + 12 + rng.below(query.name.len());
                let value = [0xc0, 0x40, 63, 0, 1, rng.byte()][rng.below(6)];
                if let Some(byte) = f.get_mut(at) {
                    *byte = value;
                }
            }
            // A bad IP or UDP length.
            5 => {
                let at = if layout.ipv6 {
                    layout.l3 + 4
                } else {
                    layout.l3 + 2
                };
                let at = if rng.chance(2) { at } else { layout.l4 + 4 };
                if let Some(field) = f.get_mut(at..at + 2) {
                    let value =
                        u16::from_be_bytes([field[0], field[1]]) as i32 + rng.below(9) as i32 - 4;
                    field.copy_from_slice(&(value as u16).to_be_bytes());
                }
            }
            // A header count or flags.
            6 => {
                let at = dns + 2 + 2 * rng.below(5);
                let word = [rng.byte() & 0x83, rng.byte() & 0x03];
                if let Some(field) = f.get_mut(at..at + 2) {
                    field.copy_from_slice(&word);
                }
            }
            // An odd ethertype or next header.
            7 => {
                let at = [
                    12,
                    layout.l3 - 2,
                    if layout.ipv6 {
                        layout.l3 + 6
                    } else {
                        layout.l3 + 9
                    },
                ][rng.below(3)];
                let value = [0, 6, 17, 0x81, 0x86, 0x88][rng.below(6)];
                if let Some(byte) = f.get_mut(at) {
                    *byte = value;
                }
            }
            // Keep the checksums right, so the kernel has no excuse.
            _ => {}
        }
        if Layout::of(&f).is_some() && rng.chance(2) {
            fix_checksums(&mut f);
        }
    }
    f
}

/// Why a transmitted frame breaks the contract, if it does.
fn check_tx(input: &[u8], output: &[u8], table: &Table, authoritative: bool) -> Result<(), String> {
    let inl = Layout::of(input).ok_or("answered a frame that is not UDP")?;
    let outl = Layout::of(output).ok_or("reply is not a UDP frame")?;
    verify_checksums(output)?;
    if output[..6] != input[6..12] || output[6..12] != input[..6] {
        return Err("MAC addresses not swapped".into());
    }
    if output[12..outl.l3] != input[12..inl.l3] || outl.ipv6 != inl.ipv6 {
        return Err("VLAN tags or IP version changed".into());
    }
    let (src, dst) = if inl.ipv6 { (8, 24) } else { (12, 16) };
    let alen = if inl.ipv6 { 16 } else { 4 };
    if output[outl.l3 + src..outl.l3 + src + alen] != input[inl.l3 + dst..inl.l3 + dst + alen]
        || output[outl.l3 + dst..outl.l3 + dst + alen] != input[inl.l3 + src..inl.l3 + src + alen]
        || output[outl.l4..outl.l4 + 2] != input[inl.l4 + 2..inl.l4 + 4]
        || output[outl.l4 + 2..outl.l4 + 4] != input[inl.l4..inl.l4 + 2]
    {
        return Err("IP addresses or ports not swapped".into());
    }

    let query = inl.dns(input);
    let reply_bytes = outl.dns(output);
    let name_len =
        meshdns_common::name::wire_name_len(&query[12..]).ok_or("answered a bad name")?;
    let question = &query[..12 + name_len + 4];
    if reply_bytes[..2] != query[..2] || reply_bytes[12..question.len()] != question[12..] {
        return Err("ID or question bytes changed".into());
    }
    if reply_bytes.len() > 512 {
        return Err("reply over 512 bytes".into());
    }
    let reply = decode_dns(output).map_err(|e| format!("hickory cannot decode the reply: {e}"))?;
    let query_has_opt = u16::from_be_bytes([query[10], query[11]]) == 1;
    if reply.edns.is_some() != query_has_opt {
        return Err("OPT in the reply does not follow the query".into());
    }

    let qtype = u16::from_be_bytes([question[12 + name_len], question[12 + name_len + 1]]);
    let key = NameKey::from_wire(&question[12..12 + name_len]).ok_or("bad name")?;
    // Negative answers carry the SOA with its MINIMUM as TTL (30 here).
    let soa_only = |rcode| {
        reply.metadata.response_code == rcode
            && reply.answers.is_empty()
            && reply.authorities.len() == 1
            && reply.authorities[0].record_type() == RecordType::SOA
            && reply.authorities[0].ttl == 30
    };
    match table.get(&key) {
        Some(entry) => {
            let want: Vec<RData> = if qtype == TYPE_A {
                entry
                    .record
                    .v4()
                    .iter()
                    .map(|a| RData::A(Ipv4Addr::from(*a).into()))
                    .collect()
            } else if qtype == TYPE_AAAA {
                entry
                    .record
                    .v6()
                    .iter()
                    .map(|a| RData::AAAA(Ipv6Addr::from(*a).into()))
                    .collect()
            } else {
                return Err(format!("answered type {qtype}"));
            };
            if want.is_empty() {
                if !soa_only(ResponseCode::NoError) {
                    return Err(format!("want NODATA for {key:?}, got {reply:?}"));
                }
            } else {
                let got: Vec<RData> = reply.answers.iter().map(|r| r.data.clone()).collect();
                if reply.metadata.response_code != ResponseCode::NoError || got != want {
                    return Err(format!("want {want:?} for {key:?}, got {reply:?}"));
                }
                // hickory's record equality leaves TTLs out; check them.
                if reply.answers.iter().any(|r| r.ttl != entry.record.ttl) {
                    return Err(format!(
                        "want TTL {} for {key:?}, got {reply:?}",
                        entry.record.ttl
                    ));
                }
            }
        }
        None => {
            if !authoritative || !soa_only(ResponseCode::NXDomain) {
                return Err(format!(
                    "want a pass for a name not in the table, got {reply:?}"
                ));
            }
        }
    }
    if !reply.metadata.authoritative {
        return Err("AA not set".into());
    }
    Ok(())
}

#[test]
fn random_and_mutated_frames_keep_the_contract() {
    meshdns_tests::require_root();
    let seed = std::env::var("MESHDNS_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let iterations: usize = std::env::var("MESHDNS_FUZZ_ITERATIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    println!("fuzz seed {seed} ({iterations} frames); replay with MESHDNS_FUZZ_SEED={seed}");

    let mut setups: Vec<(bool, Table, FastPath)> = [false, true]
        .into_iter()
        .map(|authoritative| {
            let text = format!("authoritative: {authoritative}\n{SERVICES}");
            let (fast_path, table) = fixtures::loaded_fast_path(&text);
            (authoritative, table, fast_path)
        })
        .collect();

    let mut rng = Rng(seed);
    let (mut answered, mut passed) = (0usize, 0usize);
    let mut failures = Vec::new();
    for i in 0..iterations {
        let input = frame(&mut rng);
        let (authoritative, table, fast_path) = &mut setups[i % 2];
        let (action, output) = xdp::run(fast_path, &input)
            .unwrap_or_else(|e| panic!("frame {i}: BPF_PROG_TEST_RUN failed: {e}"));
        let verdict = match action {
            XDP_PASS if output == input => {
                passed += 1;
                Ok(())
            }
            XDP_PASS => Err("passed a changed frame".to_string()),
            XDP_TX => {
                answered += 1;
                check_tx(&input, &output, table, *authoritative)
            }
            action => Err(format!("action {action}")),
        };
        if let Err(why) = verdict {
            failures.push(format!(
                "frame {i} ({} zone): {why}\n  in  {}\n  out {}",
                if *authoritative {
                    "authoritative"
                } else {
                    "forwarding"
                },
                hex(&input),
                hex(&output)
            ));
            if failures.len() >= 10 {
                break;
            }
        }
    }
    println!("{answered} answered, {passed} passed");
    assert!(
        failures.is_empty(),
        "seed {seed}: {} frames broke the contract:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // A fuzzer that never reaches the answer path tests nothing there.
    assert!(
        answered > iterations / 20,
        "only {answered} of {iterations} frames answered"
    );
    assert!(
        passed > iterations / 4,
        "only {passed} of {iterations} frames passed"
    );
}

//! A million names in the fast path's table: they all fit, lookups through
//! the real program find the right one, and what the kernel charges for the
//! map is printed (the README quotes it).

use std::{
    net::IpAddr,
    os::fd::{AsFd as _, AsRawFd as _},
    time::Instant,
};

use meshdns::{
    config::{Config, Service},
    fastpath::FastPath,
    table::Table,
    vip::State,
};
use meshdns_common::Counter;
use meshdns_tests::{
    frame::{Query, TYPE_A},
    xdp,
};

const NAMES: u32 = 1_000_000;

fn service(i: u32) -> Service {
    let [_, b, c, d] = i.to_be_bytes();
    Service {
        // Realistic lengths: Kuma-style names run 30 to 50 bytes.
        name: format!("svc-{i:07}.namespace-{:03}.svc", i % 997),
        vips: vec![IpAddr::from([240, b, c, d])],
        zone: None,
    }
}

/// The kernel's charge for the names maps, from /proc/self/fdinfo.
fn memlock(fast_path: &FastPath) -> u64 {
    fast_path
        .names()
        .maps()
        .iter()
        .map(|map| {
            let fd = map.fd().as_fd().as_raw_fd();
            let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
            info.lines()
                .find_map(|l| l.strip_prefix("memlock:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .expect("fdinfo has memlock")
        })
        .sum()
}

#[test]
fn a_million_names_fit_and_answer() {
    meshdns_tests::require_root();
    let mut config = Config::parse("zone: mesh\n").unwrap();
    config.services = (0..NAMES).map(service).collect();
    let table = Table::build(config.clone().validate().unwrap(), &mut State::default(), 0).unwrap();
    // And the zone's apex and its 997 namespaces' empty non-terminals
    // (`namespace-NNN.svc.mesh`, `svc.mesh`), which exist (RFC 8020).
    let services = table
        .iter()
        .filter(|(_, entry)| entry.has_addresses())
        .count();
    assert_eq!(services, NAMES as usize);
    let all = table.len();
    assert_eq!(all, NAMES as usize + 997 + 2);

    let mut fast_path = FastPath::load().unwrap();
    let empty = memlock(&fast_path);
    let start = Instant::now();
    let report = fast_path.sync(table).unwrap();
    let fill = start.elapsed();
    assert_eq!(report.added, all);
    let full = memlock(&fast_path);
    println!(
        "{NAMES} names: map charged {:.1} MiB empty, {:.1} MiB full ({} bytes a name); filled in {fill:.1?}",
        empty as f64 / (1 << 20) as f64,
        full as f64 / (1 << 20) as f64,
        (full - empty) / u64::from(NAMES)
    );

    // Names from all over the table answer with their own address.
    for i in [0, 1, 499_999, 777_777, NAMES - 1] {
        let name = format!("SVC-{i:07}.namespace-{:03}.svc.mesh", i % 997);
        let query = Query::new(Box::leak(name.into_boxed_str()), TYPE_A);
        let input = query.frame();
        let before = fast_path.counters().unwrap();
        let (_, output) = xdp::run(&mut fast_path, &input).unwrap();
        let want = query.expected_reply(&service(i).vips, 60);
        assert_eq!(output, want, "name {i}");
        let moved = fast_path.counters().unwrap().since(&before);
        assert_eq!(moved.get(Counter::AnsweredA), 1);
    }

    // A reload that moves one service's VIP touches one name, and is quick
    // about it: the agent applies every saved file this way.
    config.services[777_777].vips = vec![IpAddr::from([241, 0, 0, 1])];
    let table = Table::build(config.validate().unwrap(), &mut State::default(), 0).unwrap();
    let start = Instant::now();
    let report = fast_path.sync(table).unwrap();
    let resync = start.elapsed();
    println!("one changed name among {NAMES}: table updated in {resync:.1?}");
    assert_eq!((report.updated, report.added, report.removed), (1, 0, 0));
    assert_eq!(report.unchanged, all - 1);
    let name = format!("{}.mesh", service(777_777).name);
    let query = Query::new(Box::leak(name.into_boxed_str()), TYPE_A);
    let (_, output) = xdp::run(&mut fast_path, &query.frame()).unwrap();
    assert_eq!(
        output,
        query.expected_reply(&[IpAddr::from([241, 0, 0, 1])], 60)
    );
}

/// A class holds at most `MAX_NAMES` of its names: a table with more is
/// refused whole, with the map and the count, before any map changes.
#[test]
fn more_names_of_a_class_than_its_bound_are_refused_before_any_change() {
    meshdns_tests::require_root();
    let bound = meshdns_common::MAX_NAMES[2];
    let mut config = Config::parse("zone: mesh\n").unwrap();
    // 120 bytes and more in wire format: the longest class.
    config.services = (0..=bound)
        .map(|i| Service {
            name: format!("{}-{i:06}.{}", "l".repeat(50), "m".repeat(50)),
            vips: service(i).vips,
            zone: None,
        })
        .collect();
    let table = Table::build(config.validate().unwrap(), &mut State::default(), 0).unwrap();
    let mut fast_path = FastPath::load().unwrap();
    let error = fast_path.sync(table).unwrap_err().to_string();
    assert!(
        error.contains(&format!("{} names of NAMES256", bound + 1))
            && error.contains(&bound.to_string()),
        "{error}"
    );
    assert_eq!(fast_path.names().count().unwrap(), 0);
}

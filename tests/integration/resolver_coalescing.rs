//! The resolver's forwarding, in process against a scripted upstream on
//! loopback: identical questions in flight share one upstream query, and
//! the answer is then served from the cache.

use std::{
    net::UdpSocket,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use hickory_proto::{
    op::{Message, MessageType, OpCode, Query},
    rr::{Name, RData, Record, RecordType, rdata::A},
};
use meshdns::{resolver::Transport, table::Table};

/// An upstream that answers every A query with 198.18.5.1 after `delay`,
/// counting the queries it gets.
fn slow_upstream(delay: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = socket.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            seen.fetch_add(1, Ordering::SeqCst);
            let query = Message::from_vec(&buf[..len]).unwrap();
            let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
            reply.add_queries(query.queries.iter().cloned());
            let name = query.queries[0].name().clone();
            reply.add_answer(Record::from_rdata(
                name,
                300,
                RData::A(A::new(198, 18, 5, 1)),
            ));
            std::thread::sleep(delay);
            let _ = socket.send_to(&reply.to_vec().unwrap(), from);
        }
    });
    (addr, count)
}

fn query(id: u16) -> Vec<u8> {
    let mut query = Message::new(id, MessageType::Query, OpCode::Query);
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(
        Name::from_ascii("www.example.").unwrap(),
        RecordType::A,
    ));
    query.to_vec().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_questions_in_flight_share_one_upstream_query() {
    let (upstream, count) = slow_upstream(Duration::from_millis(300));
    let table = Table::parse("zone: mesh\n").unwrap();
    let resolver = Arc::new(meshdns_tests::fixtures::resolver(table, &[upstream]));
    let client = "127.0.0.1:40000".parse().unwrap();
    let tasks: Vec<_> = (0..20)
        .map(|id| {
            let resolver = resolver.clone();
            tokio::spawn(async move { resolver.handle(&query(id), client, Transport::Udp).await })
        })
        .collect();
    for (id, task) in tasks.into_iter().enumerate() {
        let reply = Message::from_vec(&task.await.unwrap().unwrap()).unwrap();
        assert_eq!(
            reply.metadata.id, id as u16,
            "each client gets its own ID back"
        );
        assert_eq!(reply.answers.len(), 1);
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "twenty identical questions, one upstream query"
    );

    // And now it is in the cache.
    let reply = resolver
        .handle(&query(99), client, Transport::Udp)
        .await
        .unwrap();
    assert_eq!(Message::from_vec(&reply).unwrap().answers.len(), 1);
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

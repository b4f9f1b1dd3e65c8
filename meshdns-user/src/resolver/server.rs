//! The resolver's sockets: UDP, and TCP per RFC 7766 (length-prefixed
//! messages, several per connection, pipelined and answered in any order,
//! an idle timeout, and a cap on connections).

use std::{
    io::{self, IoSliceMut},
    net::SocketAddr,
    os::fd::{AsRawFd as _, RawFd},
    sync::Arc,
    time::Duration,
};

use nix::{
    errno::Errno,
    sys::socket::{MsgFlags, MultiHeaders, SockaddrLike as _, SockaddrStorage, recvmmsg},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpListener,
    sync::{Semaphore, mpsc, oneshot},
    task::JoinSet,
    time::timeout,
};

use super::{Resolver, Step, Transport};

/// A TCP connection with nothing to read for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(10);
/// Most TCP connections at once; more wait to be accepted.
const MAX_TCP_CONNECTIONS: usize = 512;
/// Most queries of one TCP connection being answered at once.
const MAX_TCP_INFLIGHT: usize = 64;

/// Runs first in each UDP thread: the agent drops capabilities there, as
/// capabilities belong to threads.
pub type ThreadStart = Arc<dyn Fn() + Send + Sync>;

/// Why the resolver could not listen on an address.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("binding UDP {addr}")]
    Udp {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("binding TCP {addr}")]
    Tcp {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("starting a UDP thread for {addr}")]
    Thread {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("a UDP thread for {addr} died at its start")]
    ThreadDied {
        addr: SocketAddr,
        #[source]
        source: oneshot::error::RecvError,
    },
}

/// Binds UDP and TCP on every address in `listen` and serves until the
/// process ends (UDP) or the returned tasks are dropped (TCP). Fails if any
/// address cannot be bound. Returns once every UDP thread has run
/// `thread_start`.
pub async fn listen(
    resolver: Arc<Resolver>,
    listen: &[SocketAddr],
    thread_start: ThreadStart,
) -> Result<JoinSet<()>, ListenError> {
    let mut tasks = JoinSet::new();
    let connections = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let runtime = tokio::runtime::Handle::current();
    for &addr in listen {
        // One UDP socket per core on the same address (SO_REUSEPORT), each
        // with a thread of its own that blocks in recvfrom: the kernel
        // spreads clients over them, and a query answered from the table
        // or the cache costs two system calls and no task switch.
        for i in 0..threads {
            let udp = reuseport_udp(addr).map_err(|source| ListenError::Udp { addr, source })?;
            let (resolver, runtime) = (resolver.clone(), runtime.clone());
            let thread_start = thread_start.clone();
            let (started, start) = oneshot::channel();
            std::thread::Builder::new()
                .name(format!("udp-{i}"))
                .spawn(move || {
                    thread_start();
                    let _ = started.send(());
                    serve_udp(udp, resolver, runtime)
                })
                .map_err(|source| ListenError::Thread { addr, source })?;
            start
                .await
                .map_err(|source| ListenError::ThreadDied { addr, source })?;
        }
        let tcp = TcpListener::bind(addr)
            .await
            .map_err(|source| ListenError::Tcp { addr, source })?;
        tracing::info!(%addr, udp_sockets = threads, "resolver listening on UDP and TCP");
        tasks.spawn(serve_tcp(tcp, resolver.clone(), connections.clone()));
    }
    Ok(tasks)
}

/// A blocking UDP socket bound to `addr` with SO_REUSEPORT.
fn reuseport_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Most datagrams one system call receives or sends.
const UDP_BATCH: usize = 32;
/// Room for the largest datagram, so that none is cut short.
const UDP_BUFFER: usize = 65_535;

/// A UDP socket's own thread: answers what needs no upstream at once, and
/// hands forwarding to the runtime, which sends that reply when it comes.
/// Datagrams come and go in batches (`recvmmsg`, `sendmmsg`): under load
/// one system call each way per batch, not per query; when idle it waits
/// for one datagram and answers it at once.
fn serve_udp(
    socket: std::net::UdpSocket,
    resolver: Arc<Resolver>,
    runtime: tokio::runtime::Handle,
) {
    let socket = Arc::new(socket);
    let fd = socket.as_raw_fd();
    let mut buffers = vec![vec![0u8; UDP_BUFFER]; UDP_BATCH];
    let mut receiving = MultiHeaders::<SockaddrStorage>::preallocate(UDP_BATCH, None);
    let mut received = Vec::with_capacity(UDP_BATCH);
    let mut replies = Vec::with_capacity(UDP_BATCH);
    loop {
        received.clear();
        {
            let mut slices: Vec<[IoSliceMut; 1]> = buffers
                .iter_mut()
                .map(|buffer| [IoSliceMut::new(buffer)])
                .collect();
            // Blocks for the first datagram, then takes what is queued.
            match recvmmsg(
                fd,
                &mut receiving,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(results) => received.extend(
                    results.map(|result| (result.bytes, result.address.and_then(socket_addr))),
                ),
                Err(Errno::EINTR) => continue,
                Err(error) => {
                    tracing::warn!(%error, "UDP receive failed");
                    continue;
                }
            }
        }
        replies.clear();
        for (buffer, &(len, client)) in buffers.iter().zip(&received) {
            let Some(client) = client else { continue };
            match resolver.handle_now(&buffer[..len], client, Transport::Udp) {
                Step::Done(None) => {}
                Step::Done(Some(reply)) => {
                    if let Some(reply) = resolver.rate_limited(reply, client) {
                        replies.push((reply, client));
                    }
                }
                Step::Forward(pending) => {
                    let (socket, resolver) = (socket.clone(), resolver.clone());
                    runtime.spawn(async move {
                        let reply = resolver.finish(pending).await;
                        let Some(reply) = resolver.rate_limited(reply, client) else {
                            return;
                        };
                        // A datagram send does not block for long; no need
                        // to move this off the runtime.
                        if let Err(error) = socket.send_to(&reply, client) {
                            tracing::debug!(%error, %client, "UDP send failed");
                        }
                    });
                }
            }
        }
        send_batch(fd, &replies);
    }
}

/// Sends each reply to its client, as few system calls as it takes; a
/// datagram the kernel refuses is logged and skipped, the rest still sent.
/// `sendmmsg(2)` itself: nix's wrapper reads its results' address slots,
/// which only a receive fills.
fn send_batch(fd: RawFd, replies: &[(Vec<u8>, SocketAddr)]) {
    let addresses: Vec<SockaddrStorage> = replies
        .iter()
        .map(|&(_, client)| SockaddrStorage::from(client))
        .collect();
    let mut iovecs: Vec<libc::iovec> = replies
        .iter()
        .map(|(reply, _)| libc::iovec {
            iov_base: reply.as_ptr() as *mut libc::c_void,
            iov_len: reply.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = addresses
        .iter()
        .zip(iovecs.iter_mut())
        .map(|(address, iovec)| {
            // SAFETY: an mmsghdr is integers and pointers, for which zero
            // (null) is a valid value.
            let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
            header.msg_hdr.msg_name = address.as_ptr() as *mut libc::c_void;
            header.msg_hdr.msg_namelen = address.len();
            header.msg_hdr.msg_iov = iovec;
            header.msg_hdr.msg_iovlen = 1;
            header
        })
        .collect();
    let mut start = 0;
    while start < headers.len() {
        let rest = &mut headers[start..];
        // SAFETY: each header points into `addresses`, `iovecs` and
        // `replies`, which outlive the call and are not moved meanwhile.
        let sent = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as libc::c_uint, 0) };
        if sent >= 0 {
            start += (sent as usize).max(1);
            continue;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            tracing::debug!(%error, client = %replies[start].1, "UDP send failed");
            start += 1;
        }
    }
}

/// The socket address of a datagram's sender.
fn socket_addr(address: SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4((*v4).into()));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6((*v6).into()))
}

async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>, connections: Arc<Semaphore>) {
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else {
            return;
        };
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "TCP accept failed");
                continue;
            }
        };
        let resolver = resolver.clone();
        tokio::spawn(async move {
            if let Err(error) = serve_connection(stream, client, resolver).await {
                tracing::debug!(%error, %client, "TCP connection ended");
            }
            drop(permit);
        });
    }
}

/// Reads queries until the client closes or idles; answers each as soon as
/// it is ready, so a slow upstream answer does not hold up the others.
/// Generic over the stream so that the framing can be driven without a
/// socket (the fuzz target `tcp_framing`).
pub async fn serve_connection<S>(
    stream: S,
    client: SocketAddr,
    resolver: Arc<Resolver>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (replies, mut outgoing) = mpsc::channel::<Vec<u8>>(MAX_TCP_INFLIGHT);
    let write = tokio::spawn(async move {
        while let Some(reply) = outgoing.recv().await {
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            writer.write_all(&framed).await?;
        }
        writer.shutdown().await
    });
    let inflight = Arc::new(Semaphore::new(MAX_TCP_INFLIGHT));
    loop {
        let len = match timeout(TCP_IDLE, reader.read_u16()).await {
            Ok(Ok(len)) => usize::from(len),
            // Closed by the client, or idle too long.
            Ok(Err(_)) | Err(_) => break,
        };
        let mut request = vec![0u8; len];
        // A message cut short (the client closed, or idled, before its
        // announced length arrived) is no message: the connection ends
        // unanswered (RFC 7766 §8), as it does for what follows.
        match timeout(TCP_IDLE, reader.read_exact(&mut request)).await {
            Ok(Ok(_)) => {}
            Ok(Err(_)) | Err(_) => break,
        }
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            break;
        };
        let (resolver, replies) = (resolver.clone(), replies.clone());
        tokio::spawn(async move {
            if let Some(reply) = resolver.handle(&request, client, Transport::Tcp).await {
                let _ = replies.send(reply).await;
            }
            drop(permit);
        });
    }
    drop(replies);
    write.await.map_err(std::io::Error::other)?
}

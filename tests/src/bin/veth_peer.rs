//! `meshdns-veth-peer --netns NS --iface IF`: attaches an XDP_PASS program
//! to a veth end inside a namespace and holds it until SIGINT or SIGTERM.
//!
//! veth delivers `XDP_TX` frames only to a peer with NAPI on, and an XDP
//! program on the peer is what turns it on. Labs (`cargo xtask run`) run this
//! on their client end so the fast path's replies arrive.

use clap::Parser;
use meshdns_tests::lab::{Netns, PeerNapi};

#[derive(Parser)]
struct Args {
    /// Network namespace of the interface (an `ip netns` name).
    #[arg(long)]
    netns: String,
    #[arg(long)]
    iface: String,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let netns = Netns::existing(args.netns);
    let iface = args.iface.clone();
    let _peer = netns.run(move || PeerNapi::attach(&iface))?;
    println!("XDP_PASS attached to {} in {}", args.iface, netns.name);
    let mut signals = [libc::SIGINT, libc::SIGTERM];
    wait_for(&mut signals);
    Ok(())
}

/// Blocks until one of `signals` arrives.
fn wait_for(signals: &mut [libc::c_int]) {
    // SAFETY: plain signal-mask calls on a zeroed, initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals.iter() {
            libc::sigaddset(&mut set, *signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut received = 0;
        libc::sigwait(&set, &mut received);
    }
}

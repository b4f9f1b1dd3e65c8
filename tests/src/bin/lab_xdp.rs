//! `meshdns-lab-xdp --netns NS --iface IF [--program pass|floor|floor-generic|tc-floor]`:
//! attaches one of the object's helper programs to an interface inside a
//! namespace and holds it until SIGINT or SIGTERM.
//!
//! - `pass` returns `XDP_PASS`: on the client end of a veth it turns on
//!   NAPI, which veth needs to deliver `XDP_TX` frames, so the fast path's
//!   replies arrive (`cargo xtask run` and the benchmark use it);
//! - `floor` swaps addresses and returns `XDP_TX` with no DNS work: the
//!   benchmark's floor, in driver mode; `floor-generic` the same in
//!   generic (SKB) mode, the pod bench's floor for that hook;
//! - `tc-floor` does the same at TC ingress (TCX) and sends the packet back
//!   out with `bpf_redirect`: the TC hook's floor.

use aya::programs::XdpMode;
use clap::{Parser, ValueEnum};
use meshdns_common::{FLOOR_PROGRAM, PASS_PROGRAM, TC_FLOOR_PROGRAM};
use meshdns_tests::{
    lab::{Netns, attach_helper},
    tc::TcHelper,
};

#[derive(Clone, Copy, ValueEnum)]
enum Program {
    Pass,
    Floor,
    FloorGeneric,
    TcFloor,
}

#[derive(Parser)]
struct Args {
    /// Network namespace of the interface (an `ip netns` name).
    #[arg(long)]
    netns: String,
    #[arg(long)]
    iface: String,
    #[arg(long, value_enum, default_value_t = Program::Pass)]
    program: Program,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let netns = Netns::existing(args.netns);
    let iface = args.iface.clone();
    let (name, mode) = match args.program {
        Program::Pass => (PASS_PROGRAM, XdpMode::Driver),
        Program::Floor => (FLOOR_PROGRAM, XdpMode::Driver),
        Program::FloorGeneric => (FLOOR_PROGRAM, XdpMode::Skb),
        Program::TcFloor => (TC_FLOOR_PROGRAM, XdpMode::Driver),
    };
    // Held, attached, until the signal.
    let _attached: Box<dyn std::any::Any> = match args.program {
        Program::TcFloor => Box::new(TcHelper::attach(&netns, &iface, name)?),
        _ => Box::new(netns.run(move || attach_helper(&iface, name, mode))?),
    };
    println!("{name} attached to {} in {}", args.iface, netns.name);
    wait_for(&[libc::SIGINT, libc::SIGTERM]);
    Ok(())
}

/// Blocks until one of `signals` arrives.
fn wait_for(signals: &[libc::c_int]) {
    // SAFETY: plain signal-mask calls on a zeroed, initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in signals {
            libc::sigaddset(&mut set, *signal);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        let mut received = 0;
        libc::sigwait(&set, &mut received);
    }
}

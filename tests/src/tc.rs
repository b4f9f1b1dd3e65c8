//! A TC program beside meshdns's, as a CNI attaches one to a pod's
//! interface: the object's `meshdns_tc_count`, on the interface's ingress
//! (TCX, as Cilium uses on this kernel), counting the DNS queries it sees.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::PerCpuArray,
    programs::{SchedClassifier, TcAttachType},
};
use meshdns_common::{LAB_TC_SEEN_MAP, TC_COUNT_PROGRAM};

use crate::lab::Netns;

/// The counting classifier on one interface; detached on drop.
pub struct TcCounter {
    ebpf: Ebpf,
}

impl TcCounter {
    /// Attaches the counter to the ingress of `iface` in `netns`.
    pub fn attach(netns: &Netns, iface: &str) -> anyhow::Result<Self> {
        let iface = iface.to_string();
        let ebpf = netns.run(move || {
            let mut ebpf = Ebpf::load(meshdns::EBPF_OBJECT)?;
            let program: &mut SchedClassifier = ebpf
                .program_mut(TC_COUNT_PROGRAM)
                .with_context(|| format!("no {TC_COUNT_PROGRAM} program in the object"))?
                .try_into()?;
            program.load()?;
            program.attach(&iface, TcAttachType::Ingress)?;
            Ok(ebpf)
        })?;
        Ok(Self { ebpf })
    }

    /// The DNS queries (IPv4, UDP to port 53) it has seen.
    pub fn seen(&self) -> anyhow::Result<u64> {
        let map = self
            .ebpf
            .map(LAB_TC_SEEN_MAP)
            .with_context(|| format!("no {LAB_TC_SEEN_MAP} map"))?;
        let seen: PerCpuArray<_, u64> = PerCpuArray::try_from(map)?;
        Ok(seen.get(&0, 0)?.iter().sum())
    }
}

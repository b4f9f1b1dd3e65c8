//! TC programs beside meshdns's, from the object's helpers, on an
//! interface's ingress (TCX, as Cilium uses on this kernel): the counter a
//! test sets where a CNI's program would be, and the TC hook's floor the
//! pod bench measures.

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::PerCpuArray,
    programs::{SchedClassifier, TcAttachType},
};
use meshdns_common::{LAB_TC_SEEN_MAP, TC_COUNT_PROGRAM};

use crate::lab::Netns;

/// One of the object's TC helpers on one interface; detached on drop.
pub struct TcHelper {
    ebpf: Ebpf,
}

impl TcHelper {
    /// Attaches `meshdns_tc_count`, which counts the DNS queries it sees
    /// and hands every packet on, to the ingress of `iface` in `netns`.
    pub fn counter(netns: &Netns, iface: &str) -> anyhow::Result<Self> {
        Self::attach(netns, iface, TC_COUNT_PROGRAM)
    }

    /// Attaches the helper `program` to the ingress of `iface` in `netns`.
    pub fn attach(netns: &Netns, iface: &str, program: &'static str) -> anyhow::Result<Self> {
        let iface = iface.to_string();
        let ebpf = netns.run(move || {
            let mut ebpf = Ebpf::load(meshdns::EBPF_OBJECT)?;
            let classifier: &mut SchedClassifier = ebpf
                .program_mut(program)
                .with_context(|| format!("no {program} program in the object"))?
                .try_into()?;
            classifier.load()?;
            classifier.attach(&iface, TcAttachType::Ingress)?;
            Ok(ebpf)
        })?;
        Ok(Self { ebpf })
    }

    /// What the counter has seen: DNS queries (IPv4, UDP to port 53).
    pub fn seen(&self) -> anyhow::Result<u64> {
        let map = self
            .ebpf
            .map(LAB_TC_SEEN_MAP)
            .with_context(|| format!("no {LAB_TC_SEEN_MAP} map"))?;
        let seen: PerCpuArray<_, u64> = PerCpuArray::try_from(map)?;
        Ok(seen.get(&0, 0)?.iter().sum())
    }
}

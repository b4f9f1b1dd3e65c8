//! What happened to each packet the XDP program saw.

/// Index into the per-CPU counters array: one outcome per packet.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Counter {
    /// Answered with A records (`XDP_TX`).
    AnsweredA = 0,
    /// Answered with AAAA records (`XDP_TX`).
    AnsweredAaaa,
    /// Passed: not an IPv4 frame (ARP, IPv6, VLAN-tagged, ...).
    PassNotIpv4,
    /// Passed: IPv4 with options, or a fragment.
    PassIpOptionsOrFragment,
    /// Passed: not UDP.
    PassNotUdp,
    /// Passed: UDP, but not to port 53.
    PassNotDnsPort,
    /// Passed: truncated or inconsistent lengths, a bad name, trailing bytes.
    PassMalformed,
    /// Passed: a DNS message, but not a plain query (a response, another
    /// opcode, TC set, or section counts other than one question).
    PassNotQuery,
    /// Passed: a class other than IN or a type other than A and AAAA.
    PassUnsupportedType,
    /// Passed: an OPT record with an EDNS version above 0 (the agent answers BADVERS).
    PassEdnsVersion,
    /// Passed: the name is not in the table.
    PassUnknownName,
    /// Passed: the name has no address of the asked family.
    PassNoAddress,
    /// Passed: the reply would not fit in 512 bytes.
    PassTooLarge,
    /// Passed: the kernel refused to resize the frame for the reply.
    PassTailAdjust,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 14] = [
        Counter::AnsweredA,
        Counter::AnsweredAaaa,
        Counter::PassNotIpv4,
        Counter::PassIpOptionsOrFragment,
        Counter::PassNotUdp,
        Counter::PassNotDnsPort,
        Counter::PassMalformed,
        Counter::PassNotQuery,
        Counter::PassUnsupportedType,
        Counter::PassEdnsVersion,
        Counter::PassUnknownName,
        Counter::PassNoAddress,
        Counter::PassTooLarge,
        Counter::PassTailAdjust,
    ];

    /// Number of counters: the counters map's `max_entries`.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// Short stable name, for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::AnsweredA => "answered_a",
            Counter::AnsweredAaaa => "answered_aaaa",
            Counter::PassNotIpv4 => "pass_not_ipv4",
            Counter::PassIpOptionsOrFragment => "pass_ip_options_or_fragment",
            Counter::PassNotUdp => "pass_not_udp",
            Counter::PassNotDnsPort => "pass_not_dns_port",
            Counter::PassMalformed => "pass_malformed",
            Counter::PassNotQuery => "pass_not_query",
            Counter::PassUnsupportedType => "pass_unsupported_type",
            Counter::PassEdnsVersion => "pass_edns_version",
            Counter::PassUnknownName => "pass_unknown_name",
            Counter::PassNoAddress => "pass_no_address",
            Counter::PassTooLarge => "pass_too_large",
            Counter::PassTailAdjust => "pass_tail_adjust",
        }
    }

    /// Whether the packet was answered on the fast path.
    pub const fn is_answer(self) -> bool {
        matches!(self, Counter::AnsweredA | Counter::AnsweredAaaa)
    }
}

const _: () = {
    let mut i = 0;
    while i < Counter::ALL.len() {
        assert!(Counter::ALL[i] as usize == i);
        i += 1;
    }
};

//! What happened to each packet the XDP program saw.

/// Index into the per-CPU counters array: one outcome per packet.
#[repr(u32)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Counter {
    /// Answered with A records (`XDP_TX`).
    AnsweredA = 0,
    /// Answered with AAAA records (`XDP_TX`).
    AnsweredAaaa,
    /// Answered NOERROR with no answer and the SOA: the name exists, but has
    /// no address of the asked family (RFC 2308 §2.2).
    AnsweredNodata,
    /// Answered NXDOMAIN with the SOA: the zone is authoritative and the
    /// name is not in it (RFC 2308 §2.1).
    AnsweredNxdomain,
    /// Answered a search-list expansion of a mesh name (`<mesh
    /// name>.<suffix>`) with a CNAME to the mesh name and its records, or,
    /// lacking them, the mesh zone's SOA.
    AnsweredSearchCname,
    /// Answered a search-list expansion of a mesh name NXDOMAIN, so that
    /// the client tries its next search domain at once.
    AnsweredSearchNxdomain,
    /// Passed: neither IPv4 nor IPv6 (ARP, LLDP, more than two VLAN tags, ...).
    PassNotIp,
    /// Passed: IPv4 with options or fragmented, or IPv6 with extension headers.
    PassIpOptions,
    /// Passed: not UDP.
    PassNotUdp,
    /// Passed: UDP, but not to port 53.
    PassNotDnsPort,
    /// Passed: to a multicast or broadcast address, or to another host's
    /// MAC address (a NIC in promiscuous mode); only unicast to this
    /// interface is answered.
    PassNotUnicast,
    /// Passed: truncated or inconsistent lengths, a bad name, trailing bytes.
    PassMalformed,
    /// Passed: a DNS message, but not a plain query (a response, another
    /// opcode, TC set, or section counts other than one question).
    PassNotQuery,
    /// Passed: a class other than IN or a type other than A and AAAA.
    PassUnsupportedType,
    /// Passed: an OPT record with an EDNS version above 0 (the agent answers BADVERS).
    PassEdnsVersion,
    /// Passed: the name is in no zone (nor, with search expansions, a
    /// mesh name of the table under a search suffix).
    PassNotInZone,
    /// Passed: the name is in the zone but not in the table, and the zone
    /// is not authoritative.
    PassUnknownName,
    /// Passed: the query is larger than 512 bytes.
    PassTooLarge,
    /// Passed: the kernel refused to resize the frame for the reply (not enough headroom).
    PassResize,
    /// Passed: the client is outside `allow_from` (the resolver refuses it).
    PassClientNotAllowed,
    /// Passed: sent to an address outside `fast_path_destinations` (another
    /// host's, routed through this one): the reply would leave from it.
    PassOtherDestination,
    /// Answered truncated (TC, no records): over the rate limit, and one
    /// of the answers that slip, so that a real client asks again over TCP.
    RateLimitedTruncated,
    /// Dropped (`XDP_DROP`): an answer over the rate limit that does not
    /// slip.
    RateLimitedDropped,
}

impl Counter {
    /// Every counter, in index order.
    pub const ALL: [Counter; 23] = [
        Counter::AnsweredA,
        Counter::AnsweredAaaa,
        Counter::AnsweredNodata,
        Counter::AnsweredNxdomain,
        Counter::AnsweredSearchCname,
        Counter::AnsweredSearchNxdomain,
        Counter::PassNotIp,
        Counter::PassIpOptions,
        Counter::PassNotUdp,
        Counter::PassNotDnsPort,
        Counter::PassNotUnicast,
        Counter::PassMalformed,
        Counter::PassNotQuery,
        Counter::PassUnsupportedType,
        Counter::PassEdnsVersion,
        Counter::PassNotInZone,
        Counter::PassUnknownName,
        Counter::PassTooLarge,
        Counter::PassResize,
        Counter::PassClientNotAllowed,
        Counter::PassOtherDestination,
        Counter::RateLimitedTruncated,
        Counter::RateLimitedDropped,
    ];

    /// Number of counters: the counters map's `max_entries`.
    pub const COUNT: u32 = Self::ALL.len() as u32;

    /// Short stable name, for logs and metrics labels.
    pub const fn name(self) -> &'static str {
        match self {
            Counter::AnsweredA => "answered_a",
            Counter::AnsweredAaaa => "answered_aaaa",
            Counter::AnsweredNodata => "answered_nodata",
            Counter::AnsweredNxdomain => "answered_nxdomain",
            Counter::AnsweredSearchCname => "answered_search_cname",
            Counter::AnsweredSearchNxdomain => "answered_search_nxdomain",
            Counter::PassNotIp => "pass_not_ip",
            Counter::PassIpOptions => "pass_ip_options",
            Counter::PassNotUdp => "pass_not_udp",
            Counter::PassNotDnsPort => "pass_not_dns_port",
            Counter::PassNotUnicast => "pass_not_unicast",
            Counter::PassMalformed => "pass_malformed",
            Counter::PassNotQuery => "pass_not_query",
            Counter::PassUnsupportedType => "pass_unsupported_type",
            Counter::PassEdnsVersion => "pass_edns_version",
            Counter::PassNotInZone => "pass_not_in_zone",
            Counter::PassUnknownName => "pass_unknown_name",
            Counter::PassTooLarge => "pass_too_large",
            Counter::PassResize => "pass_resize",
            Counter::PassClientNotAllowed => "pass_client_not_allowed",
            Counter::PassOtherDestination => "pass_other_destination",
            Counter::RateLimitedTruncated => "rate_limited_truncated",
            Counter::RateLimitedDropped => "rate_limited_dropped",
        }
    }

    /// What the outcome means, in a sentence, for people reading
    /// `meshdns lookup` and `meshdns status`.
    pub const fn description(self) -> &'static str {
        match self {
            Counter::AnsweredA => "answered with A records",
            Counter::AnsweredAaaa => "answered with AAAA records",
            Counter::AnsweredNodata => {
                "answered NODATA: the name exists but has no address of this family"
            }
            Counter::AnsweredNxdomain => {
                "answered NXDOMAIN: the zone is authoritative and the name is not in it"
            }
            Counter::AnsweredSearchCname => {
                "answered a search expansion of a mesh name: a CNAME to it, and its records or its zone's SOA"
            }
            Counter::AnsweredSearchNxdomain => {
                "answered a search expansion of a mesh name NXDOMAIN: the client tries its next domain"
            }
            Counter::PassNotIp => "passed: not IPv4 or IPv6",
            Counter::PassIpOptions => {
                "passed: IPv4 options or fragments, or IPv6 extension headers"
            }
            Counter::PassNotUdp => "passed: not UDP",
            Counter::PassNotDnsPort => "passed: not to UDP port 53",
            Counter::PassNotUnicast => {
                "passed: to a multicast or broadcast address, or (a name of a zone) to another host's MAC"
            }
            Counter::PassMalformed => "passed: malformed",
            Counter::PassNotQuery => "passed: not a plain query",
            Counter::PassUnsupportedType => {
                "passed: a class other than IN or a type other than A and AAAA"
            }
            Counter::PassEdnsVersion => "passed: EDNS version above 0",
            Counter::PassNotInZone => "passed: the name is not in the zone",
            Counter::PassUnknownName => {
                "passed: the name is not in the table and the zone is not authoritative"
            }
            Counter::PassTooLarge => "passed: the query is larger than 512 bytes",
            Counter::PassResize => "passed: the frame could not be resized for the reply",
            Counter::PassClientNotAllowed => {
                "passed: the client is outside allow_from (the resolver refuses it)"
            }
            Counter::PassOtherDestination => "passed: to an address outside fast_path_destinations",
            Counter::RateLimitedTruncated => {
                "answered truncated: the client's prefix is over the rate limit (a real client retries over TCP)"
            }
            Counter::RateLimitedDropped => "dropped: the client's prefix is over the rate limit",
        }
    }

    /// Whether the packet was answered on the fast path (`XDP_TX`).
    pub const fn is_answer(self) -> bool {
        matches!(
            self,
            Counter::AnsweredA
                | Counter::AnsweredAaaa
                | Counter::AnsweredNodata
                | Counter::AnsweredNxdomain
                | Counter::AnsweredSearchCname
                | Counter::AnsweredSearchNxdomain
                | Counter::RateLimitedTruncated
        )
    }

    /// Whether the packet was dropped (`XDP_DROP`): neither answered nor
    /// passed.
    pub const fn is_drop(self) -> bool {
        matches!(self, Counter::RateLimitedDropped)
    }
}

const _: () = {
    let mut i = 0;
    while i < Counter::ALL.len() {
        assert!(Counter::ALL[i] as usize == i);
        i += 1;
    }
};

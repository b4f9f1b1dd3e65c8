//! DNS wire-format constants and fixed-size records (RFC 1035 §4.1, RFC 6891 §6.1.2).

/// DNS message header (RFC 1035 §4.1.1).
#[repr(C)]
pub struct DnsHdr {
    pub id: [u8; 2],
    pub flags: [u8; 2],
    pub qdcount: [u8; 2],
    pub ancount: [u8; 2],
    pub nscount: [u8; 2],
    pub arcount: [u8; 2],
}

pub const DNS_HDR_LEN: usize = core::mem::size_of::<DnsHdr>();

/// Everything of a resource record but its owner name and RDATA, which the
/// fast path writes separately (RFC 1035 §4.1.3).
#[repr(C)]
pub struct RrFixed {
    pub rtype: [u8; 2],
    pub class: [u8; 2],
    pub ttl: [u8; 4],
    pub rdlength: [u8; 2],
}

/// An OPT pseudo-record with an empty RDATA, root owner name included
/// (RFC 6891 §6.1.2, §6.1.3).
#[repr(C)]
pub struct OptRr {
    pub name: u8,
    pub rtype: [u8; 2],
    /// The requestor's UDP payload size.
    pub udp_payload_size: [u8; 2],
    pub extended_rcode: u8,
    pub version: u8,
    pub flags: [u8; 2],
    pub rdlength: [u8; 2],
}

pub const OPT_RR_LEN: usize = core::mem::size_of::<OptRr>();

const _: () =
    assert!(DNS_HDR_LEN == 12 && core::mem::size_of::<RrFixed>() == 10 && OPT_RR_LEN == 11);

// Header flag bits (RFC 1035 §4.1.1, RFC 4035 §3.2.2 for CD).
pub const FLAG_QR: u16 = 0x8000;
pub const OPCODE_MASK: u16 = 0x7800;
pub const FLAG_AA: u16 = 0x0400;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
pub const FLAG_RA: u16 = 0x0080;
pub const FLAG_CD: u16 = 0x0010;

/// DO bit in the OPT record's flags (RFC 3225).
pub const EDNS_FLAG_DO: u16 = 0x8000;

pub const CLASS_IN: u16 = 1;
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;

/// A compression pointer to offset 12, where the question's name starts
/// (RFC 1035 §4.1.4): every answer owner name is the question's name.
pub const NAME_PTR_TO_QUESTION: [u8; 2] = [0xc0, 0x0c];

/// Largest DNS message the fast path sends; 512 bytes is the limit for a
/// client without EDNS (RFC 1035 §4.2.1), so no reply ever needs TC.
pub const MAX_REPLY_LEN: usize = 512;

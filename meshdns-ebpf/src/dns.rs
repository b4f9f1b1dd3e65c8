//! DNS wire format (RFC 1035 §4.1, RFC 6891 §6.1.2) and the buffer in which
//! the program reads a query and writes its reply.

/// Largest query the fast path reads, and largest reply it writes: 512
/// bytes is the limit for a client without EDNS (RFC 1035 §4.2.1), so no
/// reply ever needs TC, with or without EDNS.
pub const MAX_MSG_LEN: usize = 512;

/// Offsets in the buffer are masked with this, so the verifier knows every
/// access lands inside it.
const MSG_MASK: usize = MAX_MSG_LEN - 1;

/// The message buffer: twice the largest message, so that a masked offset
/// (below 512) plus any field (shorter than 512) stays inside.
#[repr(C)]
pub struct Msg {
    pub bytes: [u8; 2 * MAX_MSG_LEN],
}

impl Msg {
    /// The byte at `at`.
    #[inline(always)]
    pub fn u8(&self, at: usize) -> u8 {
        self.bytes[at & MSG_MASK]
    }

    /// The big-endian 16-bit word at `at`.
    #[inline(always)]
    pub fn u16(&self, at: usize) -> u16 {
        let at = at & MSG_MASK;
        u16::from_be_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    /// Writes `value` big-endian at `at`.
    #[inline(always)]
    pub fn put_u16(&mut self, at: usize, value: u16) {
        let at = at & MSG_MASK;
        let [hi, lo] = value.to_be_bytes();
        self.bytes[at] = hi;
        self.bytes[at + 1] = lo;
    }

    /// Writes `bytes` at `at`.
    #[inline(always)]
    pub fn put<const N: usize>(&mut self, at: usize, bytes: &[u8; N]) {
        let at = at & MSG_MASK;
        for (i, b) in bytes.iter().enumerate() {
            self.bytes[at + i] = *b;
        }
    }
}

// Header (RFC 1035 §4.1.1): offsets and flag bits; CD from RFC 4035 §3.2.2.
pub const HDR_FLAGS: usize = 2;
pub const HDR_QDCOUNT: usize = 4;
pub const HDR_ANCOUNT: usize = 6;
pub const HDR_NSCOUNT: usize = 8;
pub const HDR_ARCOUNT: usize = 10;
pub const HDR_LEN: usize = 12;

pub const FLAG_QR: u16 = 0x8000;
pub const OPCODE_MASK: u16 = 0x7800;
pub const FLAG_AA: u16 = 0x0400;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
pub const FLAG_RA: u16 = 0x0080;
pub const FLAG_CD: u16 = 0x0010;
pub const RCODE_NXDOMAIN: u16 = 3;

pub const CLASS_IN: u16 = 1;
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_OPT: u16 = 41;

/// An answer record: owner pointer (2), TYPE, CLASS, TTL, RDLENGTH (10), RDATA.
pub const RR_FIXED_LEN: usize = 2 + 10;
pub const A_RR_LEN: usize = RR_FIXED_LEN + 4;
pub const AAAA_RR_LEN: usize = RR_FIXED_LEN + 16;

/// A compression pointer to `offset` (RFC 1035 §4.1.4).
#[inline(always)]
pub fn name_pointer(offset: usize) -> [u8; 2] {
    (0xc000 | (offset as u16 & 0x3fff)).to_be_bytes()
}

/// OPT record (RFC 6891 §6.1.2): root name (1), TYPE, CLASS = UDP payload
/// size, TTL = extended RCODE, VERSION, flags, RDLENGTH.
pub const OPT_RR_LEN: usize = 11;
pub const OPT_TYPE: usize = 1;
pub const OPT_VERSION: usize = 6;
pub const OPT_FLAGS: usize = 7;
pub const OPT_RDLENGTH: usize = 9;
/// DO bit in the OPT record's flags (RFC 3225).
pub const EDNS_FLAG_DO: u16 = 0x8000;

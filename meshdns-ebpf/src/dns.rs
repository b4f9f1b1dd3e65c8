//! DNS wire format (RFC 1035 §4.1, RFC 6891 §6.1.2) and the buffer in which
//! the program reads a query and writes its reply.

/// Largest query the fast path reads, and largest reply it writes: 512
/// bytes is the limit for a client without EDNS (RFC 1035 §4.2.1), so no
/// reply ever needs TC, with or without EDNS.
pub const MAX_MSG_LEN: usize = 512;

/// Offsets in the buffer are masked with this, so the verifier knows every
/// access lands inside it.
const MSG_MASK: usize = MAX_MSG_LEN - 1;

/// The query's buffer: twice the largest message, so that a masked offset
/// (below 512) plus any field (shorter than 512) stays inside.
///
/// The message starts 4 bytes into an 8-byte aligned block, so that the
/// question's name (at offset 12) is 8-byte aligned and can be read a word
/// at a time (`name_word`).
#[repr(C, align(8))]
pub struct Msg {
    _lead: [u8; 4],
    pub bytes: [u8; 2 * MAX_MSG_LEN],
}

const _: () =
    assert!(core::mem::offset_of!(Msg, bytes) % 8 == 4 && (4 + HDR_LEN).is_multiple_of(8));

impl Msg {
    /// Bytes `8 * w ..` of the question's name, as they are in memory.
    #[inline(always)]
    pub fn name_word(&self, w: usize) -> u64 {
        let at = (HDR_LEN + 8 * w) & MSG_MASK;
        // SAFETY: `at` is below 512 and the buffer 1024 bytes long; at the
        // message's offset 12 plus a multiple of 8 the address is 8-byte
        // aligned (see the assertion above).
        unsafe { core::ptr::read(self.bytes.as_ptr().add(at) as *const u64) }
    }

    /// Bytes `at .. at + 8` of the message as one word, in memory order,
    /// from any offset: the two aligned words around them, shifted
    /// together (two loads, not eight, and no branch).
    #[inline(always)]
    pub fn word_at(&self, at: usize) -> u64 {
        // Offsets in the 8-byte aligned block, which `bytes` starts 4 into.
        let offset = (at & MSG_MASK) + 4;
        let shift = ((offset & 7) * 8) as u32;
        let words = self as *const Msg as *const u64;
        // SAFETY: the block is 8-byte aligned and 1,032 bytes long; word
        // `offset / 8 + 1` is at most 65, whose end (528) is inside.
        let (low, high) = unsafe {
            (
                core::ptr::read(words.add(offset / 8)),
                core::ptr::read(words.add(offset / 8 + 1)),
            )
        };
        // `high << (64 - shift)` in two steps: for a shift of 0 it is 0,
        // where one shift by 64 would not be defined.
        (low >> shift) | ((high << 1) << (63 - shift))
    }

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
}

/// Where the program writes what the reply appends to the question: the
/// answer or authority section and the OPT record. Records are written
/// whole words at a time, so the answers start at `SECTION_ANSWERS`, a
/// multiple of 8; an authority section's owner pointer takes the two bytes
/// before it, so that the SOA record's words are aligned too, and a search
/// expansion's CNAME the bytes before those.
#[repr(C, align(8))]
pub struct Section {
    pub bytes: [u8; 2 * MAX_MSG_LEN],
}

/// Offset in `Section` of the first answer record, and of the SOA record
/// after its two-byte owner pointer: room before it for a CNAME to a name
/// of 255 bytes and that pointer, a multiple of 8.
pub const SECTION_ANSWERS: usize = (2 + RR_FIXED_LEN + 255).next_multiple_of(8);

impl Section {
    /// Writes `word` (bytes in wire order) at `at`, a multiple of 4 below
    /// 512; returns its part of the section's checksum (`checksum`'s
    /// memory-order partial sum).
    #[inline(always)]
    pub fn put32(&mut self, at: usize, word: [u8; 4]) -> u64 {
        let at = at & MSG_MASK & !3;
        let word = u32::from_ne_bytes(word);
        // SAFETY: inside the buffer (masked below 512 of 1024 bytes), and
        // 4-byte aligned: the buffer is 8-byte aligned, `at` a multiple of 4.
        unsafe { core::ptr::write(self.bytes.as_mut_ptr().add(at) as *mut u32, word) };
        word as u64
    }

    /// Writes `word` (bytes in memory order) at `at`, a multiple of 8 below
    /// 512; returns its part of the checksum, as `put32`.
    #[inline(always)]
    pub fn put64(&mut self, at: usize, word: u64) -> u64 {
        let at = at & MSG_MASK & !7;
        // SAFETY: as for `put32`, 8-byte aligned.
        unsafe { core::ptr::write(self.bytes.as_mut_ptr().add(at) as *mut u64, word) };
        (word & 0xffff_ffff) + (word >> 32)
    }

    /// Writes `word` (bytes in memory order) at `at`, any offset below
    /// 512; returns its part of the checksum, as `put32`, for a word at an
    /// even distance from where the sum starts.
    #[inline(always)]
    pub fn put64_unaligned(&mut self, at: usize, word: u64) -> u64 {
        let at = at & MSG_MASK;
        // SAFETY: inside the buffer (masked below 512 of 1024 bytes).
        unsafe { core::ptr::write_unaligned(self.bytes.as_mut_ptr().add(at) as *mut u64, word) };
        (word & 0xffff_ffff) + (word >> 32)
    }

    /// Writes `bytes` at `at`, any offset below 512.
    #[inline(always)]
    pub fn put<const N: usize>(&mut self, at: usize, bytes: &[u8; N]) {
        let at = at & MSG_MASK;
        for (i, b) in bytes.iter().enumerate() {
            self.bytes[at + i] = *b;
        }
    }
}

/// The DNS header (RFC 1035 §4.1.1), as the reply rewrites it in the frame.
#[repr(C)]
pub struct DnsHdr {
    pub id: [u8; 2],
    pub flags: [u8; 2],
    pub qdcount: [u8; 2],
    pub ancount: [u8; 2],
    pub nscount: [u8; 2],
    pub arcount: [u8; 2],
}

const _: () = assert!(core::mem::size_of::<DnsHdr>() == HDR_LEN);

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
pub const TYPE_CNAME: u16 = 5;
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

//! The fast path's map key: a DNS name in lowercased wire format.

use bytemuck::{Pod, Zeroable};

/// Longest name in wire format, length octets and root label included (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// Longest label (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Key of the names map: the query name in wire format (length-prefixed
/// labels, ending with the zero-length root label), ASCII lowercased, and
/// zero-padded to a fixed width.
///
/// Wire format is self-delimiting, so the zero padding can never make two
/// different names equal, and the whole name is the key: a hash collision in
/// the kernel's map can never return another name's record.
///
/// 8-byte aligned so that the XDP program can clear one, for every query,
/// with 32 eight-byte stores (the size, and so the map, is the same).
#[repr(C, align(8))]
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
pub struct NameKey {
    /// `MAX_NAME_LEN` bytes of name plus one, so the width is a power of two
    /// and the last byte is always zero.
    pub wire: [u8; MAX_NAME_LEN + 1],
}

const _: () = assert!(core::mem::size_of::<NameKey>() == 256);

#[cfg(feature = "user")]
aya_pod!(NameKey);

impl NameKey {
    /// All zeros: no name (its length is 0).
    pub const ZERO: Self = bytemuck::zeroed();

    /// Builds a key from a name already in wire format, lowercasing it.
    /// Returns `None` if the bytes are not one well-formed, uncompressed name
    /// that ends exactly at the end of `wire`.
    pub fn from_wire(wire: &[u8]) -> Option<Self> {
        if wire_name_len(wire)? != wire.len() {
            return None;
        }
        let mut key = Self::ZERO;
        for (dst, src) in key.wire.iter_mut().zip(wire) {
            *dst = LOWERCASE[*src as usize];
        }
        Some(key)
    }

    /// Length in bytes of the wire-format name held in the key.
    pub fn len(&self) -> usize {
        wire_name_len(&self.wire).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The wire-format name held in the key, without the zero padding.
    pub fn as_wire(&self) -> &[u8] {
        &self.wire[..self.len()]
    }
}

/// The widths the names map is split at: a name of `n` bytes in wire format
/// is kept under a key of the first width that holds it, so that the kernel
/// hashes (and stores) 48 bytes for most names, not 256. Each width is a
/// multiple of 8 (no padding) and is exact: the key is the whole name,
/// zero-padded, so a hash collision still cannot return another name.
pub const NAME_WIDTHS: [usize; 3] = [48, 112, MAX_NAME_LEN + 1];

/// Which names map a name goes in, by its length in wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameClass {
    /// At most 48 bytes: [`NameKey48`], the `NAMES48` map.
    Short,
    /// At most 112 bytes: [`NameKey112`], the `NAMES112` map.
    Medium,
    /// Up to 255 bytes: [`NameKey`], the `NAMES256` map.
    Long,
}

impl NameClass {
    /// The class of a name of `len` bytes in wire format.
    #[inline(always)]
    pub const fn of(len: usize) -> Self {
        if len <= NAME_WIDTHS[0] {
            NameClass::Short
        } else if len <= NAME_WIDTHS[1] {
            NameClass::Medium
        } else {
            NameClass::Long
        }
    }
}

/// A key of the `NAMES48` or `NAMES112` map: the first `N` bytes of a
/// [`NameKey`] whose name fits in them (the rest of which is zeros).
macro_rules! short_key {
    ($name:ident, $len:expr, $doc:literal) => {
        #[doc = $doc]
        #[repr(C, align(8))]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Pod, Zeroable)]
        pub struct $name {
            pub wire: [u8; $len],
        }

        const _: () = assert!(core::mem::size_of::<$name>() == $len);

        #[cfg(feature = "user")]
        aya_pod!($name);

        impl From<&$name> for NameKey {
            /// The full-width key of the same name.
            fn from(short: &$name) -> Self {
                let mut key = NameKey::ZERO;
                key.wire[..$len].copy_from_slice(&short.wire);
                key
            }
        }
    };
}

short_key!(
    NameKey48,
    48,
    "Key of the `NAMES48` map: a name of at most 48 bytes, as in [`NameKey`]."
);
short_key!(
    NameKey112,
    112,
    "Key of the `NAMES112` map: a name of at most 112 bytes, as in [`NameKey`]."
);

impl NameKey {
    /// The class of the name held.
    pub fn class(&self) -> NameClass {
        NameClass::of(self.len())
    }

    /// The first 48 bytes, the `NAMES48` key of a [`NameClass::Short`] name.
    pub fn short(&self) -> NameKey48 {
        bytemuck::pod_read_unaligned(&self.wire[..48])
    }

    /// The first 112 bytes, the `NAMES112` key of a [`NameClass::Medium`] name.
    pub fn medium(&self) -> NameKey112 {
        bytemuck::pod_read_unaligned(&self.wire[..112])
    }
}

impl core::fmt::Debug for NameKey {
    /// The name as dotted text, e.g. `NameKey("redis.mesh.")`.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("NameKey(\"")?;
        let wire = self.as_wire();
        let mut pos = 0;
        while let Some(&len) = wire.get(pos) {
            let label = wire
                .get(pos + 1..pos + 1 + len as usize)
                .unwrap_or_default();
            for &b in label {
                write!(f, "{}", core::ascii::escape_default(b))?;
            }
            if len != 0 || pos == 0 {
                f.write_str(".")?;
            }
            pos += 1 + len as usize;
        }
        f.write_str("\")")
    }
}

/// The length of the uncompressed wire-format name at the start of `bytes`,
/// root label included, or `None` if there is no valid one there (a label
/// over 63 bytes, a compression pointer, a name over 255 bytes, or the bytes
/// end first).
pub fn wire_name_len(bytes: &[u8]) -> Option<usize> {
    let mut pos = 0;
    loop {
        let label = *bytes.get(pos)? as usize;
        if label > MAX_LABEL_LEN {
            return None;
        }
        pos += 1 + label;
        if pos > MAX_NAME_LEN {
            return None;
        }
        if label == 0 {
            return Some(pos);
        }
    }
}

/// ASCII lowercasing as a table, for the agent. Only `A`..=`Z` change;
/// label length octets are at most 63, below `A` (65), so lowercasing a
/// whole wire name leaves them intact. The XDP program does the same eight
/// bytes at a time with [`lowercase_word`]; a test checks they agree.
pub static LOWERCASE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = if b.is_ascii_uppercase() { b | 0x20 } else { b };
        i += 1;
    }
    table
};

/// The eight bytes of `word` lowercased as [`LOWERCASE`] does, in any byte
/// order, with no table and no branch: the XDP program lowercases a name a
/// word at a time with it.
#[inline(always)]
pub const fn lowercase_word(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte's low seven bits plus a constant set its top bit exactly when
    // the byte is at least 'A', or more than 'Z'; none carries into the
    // next byte. A byte whose own top bit is set is not a letter.
    let low = word & !HIGH;
    let from_a = low + (0x80 - b'A' as u64) * ONES;
    let past_z = low + (0x80 - b'Z' as u64 - 1) * ONES;
    let upper = from_a & !past_z & !word & HIGH;
    // 0x80 >> 2 is 0x20, the case bit.
    word | (upper >> 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte value, in every position of the word, with neighbours
    /// that could carry into it.
    #[test]
    fn lowercase_word_agrees_with_the_table() {
        for byte in 0..=255u8 {
            for position in 0..8 {
                for fill in [0x00, 0x40, 0x5a, 0x7f, 0x80, 0xff] {
                    let mut bytes = [fill; 8];
                    bytes[position] = byte;
                    let expected = bytes.map(|b| LOWERCASE[b as usize]);
                    let word = u64::from_ne_bytes(bytes);
                    assert_eq!(lowercase_word(word).to_ne_bytes(), expected, "{bytes:02x?}");
                }
            }
        }
    }
}

//! The candidate hash: the number behind a name's `k`th candidate VIP,
//! which the allocator maps onto a pool's usable addresses.

/// Candidate `k` for `name`: FNV-1a 64 over the name, a separator and k,
/// then the splitmix64 finalizer so that near names spread evenly.
pub fn candidate_hash(name: &str, k: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in name.bytes().chain([0xff]).chain(k.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}

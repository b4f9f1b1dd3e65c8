//! What the verifier needs to walk the program within its limits.

/// Returns `value & mask` such that the verifier knows only its bounds, not
/// which value it is.
///
/// Different paths reach the same code with different known values (a name
/// length per iteration of the name loop, an offset per VLAN and IP
/// version); without this the verifier would walk everything after them once
/// per value, and give up at its limit of a million instructions. A round
/// trip through map memory, which the verifier does not track, makes all
/// those paths one.
#[inline(always)]
pub(crate) fn forget_exact_value(slot: &mut u64, value: usize, mask: usize) -> usize {
    // SAFETY: `slot` is a valid, exclusive reference.
    unsafe {
        core::ptr::write_volatile(slot, value as u64);
        core::ptr::read_volatile(slot) as usize & mask
    }
}

//! The verification pattern: a hash of each 32-bit word's index and a seed, computed the same
//! way in WGSL and on the CPU, so a buffer of any size can be filled on the GPU and checked word
//! for word (on the GPU, counting mismatches) without moving it to the host.

/// WGSL source of `pattern(index, seed) -> u32`, included by the kernels that fill and check.
pub const PATTERN_WGSL: &str = include_str!("kernels/wgsl/pattern.wgsl");

/// CPU twin of the WGSL `pattern` (lowbias32 by Chris Wellons over a Weyl sequence).
pub fn pattern(index: u32, seed: u32) -> u32 {
    let mut x = index.wrapping_mul(0x9E37_79B9).wrapping_add(seed);
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// CPU twin of the WGSL `half_pair`.
pub fn half_pair(bits: u32) -> u32 {
    (bits & 0x83FF_83FF) | 0x3000_3000
}

/// The seed of piece `piece` of a buffer filled from `seed` (pieces are filled separately
/// because one binding holds at most ~2 GiB).
pub fn piece_seed(seed: u32, piece: u32) -> u32 {
    seed.wrapping_add(piece.wrapping_mul(0x632B_E5AB))
}

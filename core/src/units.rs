//! Units. GiB = 2^30 bytes, GB = 10^9 bytes; names carry their unit and the two are never mixed
//! silently.

/// Bytes in one KiB (2^10).
pub const KIB: u64 = 1 << 10;
/// Bytes in one MiB (2^20).
pub const MIB: u64 = 1 << 20;
/// Bytes in one GiB (2^30).
pub const GIB: u64 = 1 << 30;
/// Bytes in one GB (10^9).
pub const GB: u64 = 1_000_000_000;

/// Bytes as GiB, for display.
pub fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

/// Bytes as GB (10^9), for display.
pub fn gb(bytes: u64) -> f64 {
    bytes as f64 / GB as f64
}

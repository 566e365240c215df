//! Human-readable numbers for the page. GiB (2^30) for memory sizes, as every runtime reports
//! them; rates in decimal units (GB/s, TFLOP/s) as datasheets give them. Each label says which.

use headroom_core::units::GIB;

/// Bytes in one MiB (2^20).
const MIB_F64: f64 = (1u64 << 20) as f64;

/// `4.58 GiB`, or `512.0 MiB` below one GiB.
pub fn bytes(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{:.2} GiB", bytes as f64 / GIB as f64)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB_F64)
    }
}

/// Bytes as GiB with two decimals, no unit.
pub fn gib(bytes: u64) -> String {
    format!("{:.2}", bytes as f64 / GIB as f64)
}

/// `1.23 TFLOP/s`, `456.7 GFLOP/s`.
pub fn flops(flops_per_s: f64) -> String {
    if flops_per_s >= 1e12 {
        format!("{:.2} TFLOP/s", flops_per_s / 1e12)
    } else {
        format!("{:.1} GFLOP/s", flops_per_s / 1e9)
    }
}

/// `102.4 GB/s` (decimal GB, as datasheets give bandwidth).
pub fn bandwidth(bytes_per_s: f64) -> String {
    format!("{:.1} GB/s", bytes_per_s / 1e9)
}

/// Tokens per second with sensible precision.
pub fn tokens_per_s(rate: f64) -> String {
    if !rate.is_finite() || rate <= 0.0 {
        "—".to_string()
    } else if rate >= 100.0 {
        format!("{rate:.0} tok/s")
    } else if rate >= 10.0 {
        format!("{rate:.1} tok/s")
    } else {
        format!("{rate:.2} tok/s")
    }
}

/// A count with thousands grouped: `8 030 261 248` → `8.03 B`, `124 M`, `4 096`.
pub fn count(n: u64) -> String {
    if n >= 1_000_000_000 {
        format!("{:.2} B", n as f64 / 1e9)
    } else if n >= 1_000_000 {
        format!("{:.1} M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_use_binary_units() {
        assert_eq!(bytes(GIB * 3 / 2), "1.50 GiB");
        assert_eq!(bytes(1 << 29), "512.0 MiB");
        assert_eq!(bandwidth(102.4e9), "102.4 GB/s");
        assert_eq!(tokens_per_s(0.0), "—");
        assert_eq!(count(8_030_261_248), "8.03 B");
    }
}

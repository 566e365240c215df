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

/// Small sizes: `512 B`, `128.0 KiB`, `1.5 MiB`, then as [`bytes`].
pub fn bytes_small(n: u64) -> String {
    if n < 1024 {
        format!("{n} B")
    } else if n < 1 << 20 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        bytes(n)
    }
}

/// A date-time as written in reports (`2026-12-07T13:52:39Z`, RFC 3339) in words:
/// `7 Dec 2026, 13:52 UTC`; text that is not such a date is returned as it is.
pub fn date_utc(rfc3339: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let parse = || -> Option<String> {
        let (date, time) = rfc3339.split_once('T')?;
        let mut d = date.split('-');
        let (y, m, day) = (d.next()?, d.next()?, d.next()?);
        let month = MONTHS.get(m.parse::<usize>().ok()?.checked_sub(1)?)?;
        let day: u32 = day.parse().ok()?;
        let hm = time.get(..5)?;
        Some(format!("{day} {month} {y}, {hm} UTC"))
    };
    parse().unwrap_or_else(|| rfc3339.to_string())
}

/// A rate with three significant digits: `1234` → `1230`, `12.345` → `12.3`, `0.01234` →
/// `0.0123` (reports print no more digits than a measurement holds).
pub fn significant(value: f64) -> String {
    if !value.is_finite() || value == 0.0 {
        return "0".into();
    }
    let digits = value.abs().log10().floor() as i32;
    let decimals = (2 - digits).max(0) as usize;
    format!("{value:.decimals$}")
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
        assert_eq!(bytes_small(512), "512 B");
        assert_eq!(bytes_small(131_072), "128.0 KiB");
        assert_eq!(date_utc("2026-12-07T13:52:39Z"), "7 Dec 2026, 13:52 UTC");
        assert_eq!(date_utc("yesterday"), "yesterday");
        assert_eq!(significant(1234.6), "1235");
        assert_eq!(significant(12.345), "12.3");
        assert_eq!(significant(0.012345), "0.0123");
    }
}

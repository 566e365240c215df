//! The GPU's share of unified memory on a Mac, by macOS release and RAM size.
//!
//! Metal's `MTLDevice.recommendedMaxWorkingSetSize` is what the GPU may keep resident. It depends
//! on the RAM size *and* the macOS release: macOS 13–14 logs (`ggml_metal_init`) give exactly 2/3
//! of RAM up to 32 GB and 3/4 from 64 GB, while macOS 26 gives more on large machines (64 GB →
//! 51.84 GiB, 81%; 128 GB → 107.52 GiB, 84%). The reports, each with who reported it, are kept as
//! data beside the device catalog (`core/data/devices.json`, `apple_working_set`).
//!
//! How a size is answered ([`working_set`]):
//! * macOS 11–15: the older rule ([`crate::usable_memory::apple_working_set_bytes`]), which every
//!   report of those releases matches.
//! * macOS 26 onward: a reported size gives its reported working set; a size between two reports
//!   gets the share (working set ÷ RAM) interpolated linearly in RAM between them; above the
//!   largest report, the largest report's share; below the smallest, the older rule (no smaller
//!   machine has been reported on these releases).
//!
//! Without a release, the newest in the table is assumed (today's Macs). A probe report's
//! measured working set and `iogpu.wired_limit_mb` replace all of this
//! ([`crate::usable_memory::usable_memory_on`]).

use std::{fmt, str::FromStr, sync::OnceLock};

use serde::{Deserialize, Serialize};

use crate::{
    CoreError,
    error::{Fix, Setting},
    units::GIB,
    usable_memory::apple_working_set_bytes,
};

/// The macOS releases Apple silicon runs: 11 (Big Sur) to 15 (Sequoia), then 26 (Tahoe) onward,
/// when Apple numbered releases by year. Majors above this are typos.
pub const MAX_MACOS_MAJOR: u32 = 99;

/// The macOS release assumed when the question names none: the newest the table has reports for.
pub const NEWEST_MACOS_MAJOR: u32 = 26;

/// A macOS release, e.g. `26`, `15.5`, `14.6.1` (only the major number decides the share).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacosVersion {
    /// Major version: 11–15, or 26 onward.
    pub major: u32,
    /// Minor version (0 when not given).
    pub minor: u32,
}

impl MacosVersion {
    /// The release a question assumes when it names none ([`NEWEST_MACOS_MAJOR`]).
    pub fn newest() -> MacosVersion {
        MacosVersion {
            major: NEWEST_MACOS_MAJOR,
            minor: 0,
        }
    }

    /// Check that this release exists for Apple silicon (11–15, 26–[`MAX_MACOS_MAJOR`]).
    pub fn validate(&self) -> Result<(), CoreError> {
        let ok = (11..=15).contains(&self.major) || (26..=MAX_MACOS_MAJOR).contains(&self.major);
        if ok {
            Ok(())
        } else {
            Err(CoreError::setting(
                Setting::MacosVersion,
                self,
                format!(
                    "Apple silicon runs macOS 11 to 15 and 26 onward (releases were renumbered \
                     by year after 15); give a major version such as 15 or {NEWEST_MACOS_MAJOR}"
                ),
                vec![Fix::new(
                    Setting::MacosVersion,
                    NEWEST_MACOS_MAJOR.to_string(),
                )],
            ))
        }
    }
}

impl fmt::Display for MacosVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.minor == 0 {
            write!(f, "{}", self.major)
        } else {
            write!(f, "{}.{}", self.major, self.minor)
        }
    }
}

impl FromStr for MacosVersion {
    type Err = CoreError;

    /// `26`, `15.5`, `14.6.1`, with an optional `macOS ` prefix; the major must be a release
    /// Apple silicon runs.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let t = t
            .get(..5)
            .filter(|p| p.eq_ignore_ascii_case("macos"))
            .map_or(t, |_| t[5..].trim_start());
        let bad = || {
            CoreError::setting(
                Setting::MacosVersion,
                s,
                "expected a macOS version such as 26, 15.5 or 14.6.1",
                vec![Fix::new(
                    Setting::MacosVersion,
                    NEWEST_MACOS_MAJOR.to_string(),
                )],
            )
        };
        let mut parts = t.split('.');
        let major: u32 = parts
            .next()
            .filter(|p| !p.is_empty() && p.len() <= 4)
            .and_then(|p| p.parse().ok())
            .ok_or_else(bad)?;
        let minor: u32 = match parts.next() {
            None => 0,
            Some(p) => p.parse().ok().filter(|_| p.len() <= 4).ok_or_else(bad)?,
        };
        // A patch number is allowed and ignored; anything after it is not a version.
        if let Some(p) = parts.next()
            && (p.len() > 4 || p.parse::<u32>().is_err())
        {
            return Err(bad());
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        let v = MacosVersion { major, minor };
        v.validate()?;
        Ok(v)
    }
}

/// One reported working set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkingSetReport {
    /// First macOS major version the row holds for.
    pub macos_from: u32,
    /// Last macOS major version the row holds for.
    pub macos_to: u32,
    /// Unified memory, GiB.
    pub ram_gib: f64,
    /// The reported `recommendedMaxWorkingSetSize`, GiB.
    pub working_set_gib: f64,
    /// Who reported it, where, on which machine and release.
    pub source: String,
}

impl WorkingSetReport {
    fn share(&self) -> f64 {
        self.working_set_gib / self.ram_gib
    }

    fn holds_for(&self, macos: MacosVersion) -> bool {
        (self.macos_from..=self.macos_to).contains(&macos.major)
    }
}

#[derive(Deserialize)]
struct Table {
    rows: Vec<WorkingSetReport>,
}

#[derive(Deserialize)]
struct CatalogFile {
    apple_working_set: Table,
}

/// Parse the table from the bundled catalog, reporting a malformed file as an error.
pub fn reports_result() -> Result<Vec<WorkingSetReport>, CoreError> {
    serde_json::from_str::<CatalogFile>(crate::devices::CATALOG_JSON)
        .map(|c| c.apple_working_set.rows)
        .map_err(|e| CoreError::MalformedJson {
            what: "core/data/devices.json (apple_working_set)".into(),
            detail: e.to_string(),
        })
}

/// Every reported working set (parsed once; empty only if the bundled file is malformed, which a
/// test rules out).
pub fn reports() -> &'static [WorkingSetReport] {
    static REPORTS: OnceLock<Vec<WorkingSetReport>> = OnceLock::new();
    REPORTS.get_or_init(|| reports_result().unwrap_or_default())
}

/// A working set and how it was found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkingSet {
    /// Bytes the GPU may keep resident.
    pub bytes: u64,
    /// How `bytes` was found, in words (the release, the rule or the reports behind it).
    pub basis: String,
}

fn gib(bytes: u64) -> f64 {
    bytes as f64 / GIB as f64
}

/// Metal's working set on a Mac with `ram_bytes` of unified memory running `macos` (`None`: the
/// newest release in the table). See the module docs for the rules.
pub fn working_set(ram_bytes: u64, macos: Option<MacosVersion>) -> WorkingSet {
    working_set_in(reports(), ram_bytes, macos)
}

/// [`working_set`] over any list of reports.
pub fn working_set_in(
    reports: &[WorkingSetReport],
    ram_bytes: u64,
    macos: Option<MacosVersion>,
) -> WorkingSet {
    let release = macos.unwrap_or_else(MacosVersion::newest);
    let assumed = if macos.is_none() {
        " (assumed: the newest release with reports)"
    } else {
        ""
    };
    let ram_gib = gib(ram_bytes);
    let older_rule = |why: &str| {
        let bytes = apple_working_set_bytes(ram_bytes);
        let rule = if ram_bytes >= crate::usable_memory::APPLE_LARGE_RAM_THRESHOLD_BYTES {
            "3/4"
        } else {
            "2/3"
        };
        WorkingSet {
            bytes,
            basis: format!(
                "Metal working set on macOS {release}{assumed} ≈ {rule} of {ram_gib:.0} GiB \
                 unified memory = {:.2} GiB ({why})",
                gib(bytes)
            ),
        }
    };
    let mut rows: Vec<&WorkingSetReport> = reports
        .iter()
        .filter(|r| {
            r.holds_for(release)
                && r.ram_gib.is_finite()
                && r.ram_gib > 0.0
                && r.working_set_gib.is_finite()
                && r.working_set_gib > 0.0
        })
        .collect();
    if release.major <= 15 || rows.is_empty() {
        return older_rule(
            "the 2/3-below-36-GiB, 3/4-above rule of macOS 13–14 ggml_metal_init logs; \
             raise with iogpu.wired_limit_mb",
        );
    }
    rows.sort_by(|a, b| a.ram_gib.total_cmp(&b.ram_gib));
    let share_bytes = |share: f64| ((ram_bytes as f64) * share).min(ram_bytes as f64) as u64;
    // An exact report: within half a GiB of the size (catalog sizes are whole GiB).
    if let Some(r) = rows.iter().find(|r| (r.ram_gib - ram_gib).abs() < 0.5) {
        let bytes = ((r.working_set_gib * GIB as f64) as u64).min(ram_bytes);
        return WorkingSet {
            bytes,
            basis: format!(
                "Metal working set on macOS {release}{assumed}: {:.2} GiB of {ram_gib:.0} GiB \
                 unified memory ({:.0}%), as reported: {}",
                gib(bytes),
                r.share() * 100.0,
                r.source
            ),
        };
    }
    let (first, last) = (rows[0], rows[rows.len() - 1]);
    if ram_gib < first.ram_gib {
        return older_rule(&format!(
            "no report below {:.0} GiB on macOS {release}: the older rule of macOS 13–14 logs, \
             which the {:.0} GiB report still matches",
            first.ram_gib, first.ram_gib
        ));
    }
    if ram_gib > last.ram_gib {
        let bytes = share_bytes(last.share());
        return WorkingSet {
            bytes,
            basis: format!(
                "Metal working set on macOS {release}{assumed} ≈ {:.0}% of {ram_gib:.0} GiB = \
                 {:.2} GiB (the share reported for {:.0} GiB, the largest reported size: {})",
                last.share() * 100.0,
                gib(bytes),
                last.ram_gib,
                last.source
            ),
        };
    }
    // Between two reports: the share interpolated linearly in RAM.
    let pair = rows
        .windows(2)
        .find(|w| w[0].ram_gib <= ram_gib && ram_gib <= w[1].ram_gib);
    let (lo, hi) = match pair {
        Some(w) => (w[0], w[1]),
        None => (first, last),
    };
    let t = if hi.ram_gib > lo.ram_gib {
        (ram_gib - lo.ram_gib) / (hi.ram_gib - lo.ram_gib)
    } else {
        0.0
    };
    let share = lo.share() + t * (hi.share() - lo.share());
    let bytes = share_bytes(share);
    WorkingSet {
        bytes,
        basis: format!(
            "Metal working set on macOS {release}{assumed} ≈ {:.1}% of {ram_gib:.0} GiB = {:.2} \
             GiB (share interpolated between the reports for {:.0} GiB, {:.0}%, and {:.0} GiB, \
             {:.0}%)",
            share * 100.0,
            gib(bytes),
            lo.ram_gib,
            lo.share() * 100.0,
            hi.ram_gib,
            hi.share() * 100.0
        ),
    }
}

/// PyTorch's MPS allocator refuses allocations beyond `PYTORCH_MPS_HIGH_WATERMARK_RATIO` × the
/// working set; its default ratio is 1.7 (PyTorch `MPSAllocator.h`, `default_high_watermark_ratio`).
/// On a 16 GB M2 (10.67 GiB working set) that is 18.13 GiB, the limit its "MPS backend out of
/// memory" error names.
pub const MPS_HIGH_WATERMARK_RATIO: f64 = 1.7;

/// The bytes at which PyTorch's MPS backend stops allocating for a `working_set_bytes` device.
pub fn mps_high_watermark_bytes(working_set_bytes: u64) -> u64 {
    (working_set_bytes as f64 * MPS_HIGH_WATERMARK_RATIO) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v: MacosVersion = "26".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v, MacosVersion::newest());
        let v: MacosVersion = "macOS 15.5".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.major, v.minor), (15, 5));
        let v: MacosVersion = "14.6.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.major, v.minor), (14, 6));
        for bad in [
            "", "0", "10", "16", "25", "100", "x", "15.", "26.a", "1.2.3.4", "-1",
        ] {
            assert!(bad.parse::<MacosVersion>().is_err(), "{bad}");
        }
    }

    #[test]
    fn table_parses_and_sources_every_row() {
        let rows = reports_result().unwrap_or_else(|e| panic!("{e}"));
        assert!(rows.len() >= 8);
        for r in &rows {
            assert!(!r.source.trim().is_empty());
            assert!(r.working_set_gib > 0.0 && r.working_set_gib < r.ram_gib);
            assert!(r.macos_from <= r.macos_to);
        }
    }
}

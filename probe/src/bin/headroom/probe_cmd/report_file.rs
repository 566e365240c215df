//! The report file of `headroom probe`: where `--out` may point, and writing it atomically
//! (temporary file + rename) so that an interrupted run always leaves a whole, valid report.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use headroom_core::report::ProbeReport;

/// RFC 3339 UTC from the system clock (civil-from-days: H. Hinnant, "chrono-compatible
/// low-level date algorithms").
pub fn utc_now() -> String {
    utc_from_unix(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    )
}

fn utc_from_unix(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// What `--out` names, resolved once before the run: the path itself when nothing is there or a
/// regular file is, the file a symlink names (so the report replaces that file, not the link),
/// and an error for anything else — renaming over a device node, a FIFO or a folder would
/// replace it (as root, `--out /dev/null` would replace the system's `/dev/null`).
pub fn resolve_out(path: &Path) -> anyhow::Result<PathBuf> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(err) => {
            return Err(anyhow::Error::new(err).context(format!(
                "--out {}: cannot look at this path",
                path.display()
            )));
        }
    };
    if meta.file_type().is_symlink() {
        let target = std::fs::canonicalize(path).with_context(|| {
            format!(
                "--out {} is a symlink to a file that does not exist; give a file path",
                path.display()
            )
        })?;
        return match std::fs::metadata(&target) {
            Ok(m) if m.is_file() => Ok(target),
            _ => bail!(
                "--out {} is a symlink to {}, which is not a regular file; give a file path",
                path.display(),
                target.display()
            ),
        };
    }
    if !meta.is_file() {
        bail!(
            "--out {} is {}, not a regular file: the report would replace it; give a file path",
            path.display(),
            crate::user_file::kind_of(&meta)
        );
    }
    Ok(path.to_path_buf())
}

/// Writes the report to a new temporary file beside `path`, then renames it over `path`: readers
/// and an interrupted run only ever see a whole, valid file. `path` comes from [`resolve_out`];
/// it is checked again here because the run takes minutes and the path may change meanwhile.
pub fn write_atomic(path: &Path, report: &ProbeReport) -> anyhow::Result<()> {
    use std::io::Write;
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.is_file()
    {
        bail!(
            "{} is no longer a regular file; the report was not written",
            path.display()
        );
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A stale temporary file (or a symlink planted in its place) is removed, and the new one is
    // created exclusively, so the write never goes through a link to somewhere else.
    match std::fs::remove_file(&tmp) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            return Err(anyhow::Error::new(err).context(format!(
                "cannot replace the stale temporary file {}",
                tmp.display()
            )));
        }
        _ => {}
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| file.write_all((report.to_json() + "\n").as_bytes()))
        .with_context(|| format!("cannot write the report to {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_refuses_what_is_not_a_regular_file_and_follows_symlinks() {
        let dir = std::env::temp_dir().join(format!("headroom-out-unit-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("folder")).unwrap_or_else(|e| panic!("{e}"));
        let file = dir.join("report.json");
        std::fs::write(&file, "{}").unwrap_or_else(|e| panic!("{e}"));
        assert!(resolve_out(&dir.join("folder")).is_err());
        assert!(resolve_out(Path::new("/dev/null")).is_err());
        assert_eq!(resolve_out(&file).ok(), Some(file.clone()));
        let new = dir.join("new.json");
        assert_eq!(resolve_out(&new).ok(), Some(new));
        #[cfg(unix)]
        {
            let link = dir.join("link.json");
            std::os::unix::fs::symlink(&file, &link).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(resolve_out(&link).ok(), std::fs::canonicalize(&file).ok());
            let to_dev = dir.join("to-dev");
            std::os::unix::fs::symlink("/dev/null", &to_dev).unwrap_or_else(|e| panic!("{e}"));
            assert!(resolve_out(&to_dev).is_err());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn date_is_rfc3339() {
        assert_eq!(utc_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_from_unix(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(utc_from_unix(951_782_400), "2000-02-29T00:00:00Z");
        let d = utc_now();
        assert_eq!(d.len(), 20, "{d}");
        assert!(d.ends_with('Z') && d.as_bytes()[10] == b'T', "{d}");
    }
}

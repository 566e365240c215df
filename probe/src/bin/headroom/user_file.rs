//! Reading files a user names (a model's config.json, a checkpoint's headers, a probe report,
//! the Hugging Face cache): only regular files, opened so that nothing can block, and read up to
//! a cap. A FIFO would hang a plain `read_to_string`, `/dev/zero` would grow it without bound and
//! a 200 MB "config.json" would take gigabytes; each is refused with one line instead.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};
use headroom_core::CoreError;

/// What a path names, for a message about why it is refused.
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "a device";
        }
        if kind.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

/// Opens `path` for reading if it is a regular file (a symlink is followed to what it names).
/// `what` names the file in messages (`probe report`, `config.json`).
pub fn open_regular(path: &Path, what: &str) -> anyhow::Result<File> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "cannot read {what} {}; check the path and permissions",
            path.display()
        )
    })?;
    if !meta.is_file() {
        bail!(
            "{what} {} is {}, not a regular file: give the file itself",
            path.display(),
            kind_of(&meta)
        );
    }
    let mut options = OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        // Non-blocking open: if the path was swapped for a FIFO after the check above, opening
        // it returns at once instead of waiting for a writer; the check below then refuses it.
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(O_NONBLOCK);
    }
    let file = options.open(path).with_context(|| {
        format!(
            "cannot open {what} {}; check the path and permissions",
            path.display()
        )
    })?;
    let opened = file
        .metadata()
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    if !opened.is_file() {
        bail!(
            "{what} {} is {}, not a regular file: give the file itself",
            path.display(),
            kind_of(&opened)
        );
    }
    Ok(file)
}

/// `O_NONBLOCK` of the platforms headroom builds for (std exposes no constant and this is the
/// only one needed, so no `libc` dependency).
#[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
const O_NONBLOCK: i32 = 0x0004;
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))
))]
const O_NONBLOCK: i32 = 0o4000;

/// At most the first `bytes` bytes of the regular file `path` (fewer if it is shorter).
pub fn read_prefix(path: &Path, what: &str, bytes: u64) -> anyhow::Result<Vec<u8>> {
    let file = open_regular(path, what)?;
    let mut out = Vec::new();
    file.take(bytes)
        .read_to_end(&mut out)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    Ok(out)
}

/// The whole of the regular file `path` as bytes, refused when it holds more than `cap_bytes`.
pub fn read_capped(path: &Path, what: &str, cap_bytes: u64) -> anyhow::Result<Vec<u8>> {
    let bytes = read_prefix(path, what, cap_bytes.saturating_add(1))?;
    if bytes.len() as u64 > cap_bytes {
        return Err(anyhow::Error::new(CoreError::TooLarge {
            what: format!("{what} {}", path.display()),
            bytes: std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len()),
            cap_bytes,
        }));
    }
    Ok(bytes)
}

/// The whole of the regular file `path` as UTF-8 text, refused when it holds more than
/// `cap_bytes`.
pub fn read_text(path: &Path, what: &str, cap_bytes: u64) -> anyhow::Result<String> {
    String::from_utf8(read_capped(path, what, cap_bytes)?).map_err(|_| {
        anyhow::anyhow!(
            "cannot read {what} {}: it is not UTF-8 text; check that you gave the right file",
            path.display()
        )
    })
}

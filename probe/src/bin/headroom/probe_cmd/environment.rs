//! The process environment `headroom probe` runs in: what the GPU drivers need from it, and what
//! to say when no adapter is found.

use std::path::{Path, PathBuf};

/// What Wayland's client library accepts as `XDG_RUNTIME_DIR`: an absolute path to a folder.
fn usable_runtime_dir(value: Option<&std::ffi::OsStr>) -> bool {
    value
        .map(Path::new)
        .is_some_and(|dir| dir.is_absolute() && dir.is_dir())
}

/// Wayland's client library (loaded by Mesa's Vulkan drivers) prints `error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment` on every run without a usable one, as under `sudo`,
/// in containers and in CI. A private, empty folder satisfies it (nothing listens there, so no
/// display is found, which a compute-only run does not need). Returns the folder to remove at
/// the end, if one was made.
pub fn give_mesa_a_runtime_dir() -> Option<PathBuf> {
    const VAR: &str = "XDG_RUNTIME_DIR";
    if usable_runtime_dir(std::env::var_os(VAR).as_deref()) || !cfg!(target_os = "linux") {
        return None;
    }
    let dir = std::env::temp_dir().join(format!("headroom-runtime-{}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(&dir).ok()?;
    // SAFETY: called from `run` before the wgpu instance, the progress bar or any other thread
    // exists: nothing reads the environment concurrently.
    unsafe { std::env::set_var(VAR, &dir) };
    Some(dir)
}

pub fn no_adapter_message(backends: wgpu::Backends) -> String {
    format!(
        "no GPU adapter found (backends searched: {backends:?}).\n\
         Install your GPU's driver (NVIDIA, AMD or Intel; Apple GPUs need macOS 11 or newer).\n\
         On Linux without a GPU, Mesa's lavapipe gives a CPU Vulkan driver for a correctness check:\n\
         \x20   sudo apt-get install mesa-vulkan-drivers libvulkan1\n\
         Then run `vulkaninfo --summary` (package vulkan-tools) to see the adapters."
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdg_runtime_dir_is_replaced_when_unset_relative_or_missing() {
        use std::ffi::OsStr;
        assert!(!usable_runtime_dir(None));
        assert!(!usable_runtime_dir(Some(OsStr::new("run/user/1000"))));
        assert!(!usable_runtime_dir(Some(OsStr::new(
            "/nonexistent/headroom/runtime"
        ))));
        assert!(usable_runtime_dir(Some(std::env::temp_dir().as_os_str())));
    }
}

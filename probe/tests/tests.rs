//! The probe crate's integration tests: one binary (`cargo test -p headroom-probe --test tests`),
//! one module per intent, helpers in `util`. Fixtures live in the workspace's `tests/data` (see `util::data_dir`).
//!
//! * `cli`: `headroom fit`, `models` and `devices` end to end (table, JSON, bad input).
//! * `checkpoints`: `fit` on `.gguf` files and `.safetensors` folders.
//! * `hub`: `fit owner/name` against a local stand-in for the Hugging Face Hub.
//! * `hub_checkpoints`: checkpoint headers read from that stand-in by Range requests.
//! * `questions`: the three questions — `fit` on this machine by default, `fit --devices-that-fit`,
//!   `models --fits`, `devices --limits` — and the launch command.
//! * `offload_cli`: `fit` when a model does not fit the GPU: the split, `--gpu-layers`,
//!   `--n-cpu-moe` and their checks.
//! * `probe_cli`: `headroom probe` and `show` on a real Vulkan device (lavapipe in CI).
//! * `probe_kernels`: every WGSL kernel's correctness on a real Vulkan device (slow on lavapipe:
//!   `cargo test -p headroom-probe --test tests probe_kernels::`).

mod checkpoints;
mod cli;
mod hostile;
mod hub;
mod hub_checkpoints;
mod offload_cli;
mod probe_cli;
mod probe_kernels;
mod questions;
mod util;

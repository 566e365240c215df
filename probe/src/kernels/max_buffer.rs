//! The largest single buffer: the adapter's limit, the largest size the driver accepts, and the
//! largest whose every word was written with a pattern and read back correctly (FACTS.md: Metal
//! can drop a command buffer on out-of-memory and leave zeros, so acceptance alone proves
//! nothing).

use headroom_core::report::{AllocationAttempt, MaxBufferResult};

use crate::ProbeError;
use crate::gpu::{Gpu, scoped};
use crate::kernels::MIB;
use crate::kernels::fill::{Fill, Filler};

/// Sizes tried at most (the first at the cap, then a bisection).
pub const MAX_ATTEMPTS: usize = 12;
/// The bisection stops when the bracket is narrower than the cap over this.
const RESOLUTION_DIVISOR: u64 = 64;

/// Inputs to the largest-buffer search.
#[derive(Debug, Clone, PartialEq)]
pub struct MaxBufferParams {
    /// Upper end of the search (budget, device memory), bytes; the adapter limit caps it too.
    pub cap_bytes: u64,
    /// Seed of the pattern.
    pub seed: u32,
    /// Test hook: allocations above this many bytes fail as if out of memory, without asking
    /// the driver (the CLI sets it from `HEADROOM_PROBE_SIMULATE_OOM_BYTES`).
    pub simulate_oom_above_bytes: Option<u64>,
    /// Stop searching after this many seconds.
    pub time_limit_s: f64,
}

async fn attempt(
    gpu: &Gpu<'_>,
    filler: &Filler,
    size: u64,
    p: &MaxBufferParams,
) -> AllocationAttempt {
    if p.simulate_oom_above_bytes.is_some_and(|limit| size > limit) {
        return AllocationAttempt {
            bytes: size,
            accepted: false,
            verified: false,
            error: Some(
                "out of memory (simulated by HEADROOM_PROBE_SIMULATE_OOM_BYTES)".to_owned(),
            ),
        };
    }
    let result = scoped(gpu, "allocate and fill", async {
        let buffer = gpu.storage("largest buffer", size);
        filler.fill(gpu, &buffer, 0, size, p.seed, Fill::Words);
        let mismatches = filler
            .check(gpu, &buffer, 0, size, p.seed, Fill::Words)
            .await;
        drop(buffer);
        gpu.wait()?;
        mismatches
    })
    .await;
    match result {
        Ok(0) => AllocationAttempt {
            bytes: size,
            accepted: true,
            verified: true,
            error: None,
        },
        Ok(bad) => AllocationAttempt {
            bytes: size,
            accepted: true,
            verified: false,
            error: Some(format!(
                "{bad} of {} 16-byte words read back wrong",
                size / 16
            )),
        },
        Err(err) => AllocationAttempt {
            bytes: size,
            accepted: false,
            verified: false,
            error: Some(err.to_string()),
        },
    }
}

/// Runs the search. Errors only if the fill kernels cannot be built.
pub async fn run(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    p: &MaxBufferParams,
) -> Result<MaxBufferResult, ProbeError> {
    let gpu = Gpu::new(device, queue);
    let filler = Filler::new(&gpu).await?;
    let limit = gpu.limits.max_buffer_size;
    let cap = limit.min(p.cap_bytes) / 256 * 256;
    let start = crate::gpu::now_s();
    let mut attempts = Vec::new();
    let (mut good, mut bad) = (0u64, cap + 1);
    let mut accepted_max = 0u64;
    let mut size = cap;
    let resolution = (cap / RESOLUTION_DIVISOR).max(MIB);
    while size > 0 && attempts.len() < MAX_ATTEMPTS {
        let a = attempt(&gpu, &filler, size, p).await;
        if a.accepted {
            accepted_max = accepted_max.max(size);
        }
        if a.verified {
            good = size;
        } else {
            bad = size;
        }
        attempts.push(a);
        if bad <= good + resolution || crate::gpu::now_s() - start > p.time_limit_s {
            break;
        }
        size = (good + (bad - good) / 2) / MIB * MIB;
        if size <= good {
            break;
        }
    }
    Ok(MaxBufferResult {
        adapter_limit_bytes: limit,
        searched_up_to_bytes: cap,
        largest_accepted_bytes: accepted_max,
        largest_verified_bytes: good,
        attempts,
    })
}

//! Host↔device transfer: how fast weights that live in host memory reach the GPU (transformers'
//! offload copies them for every forward pass; llama.cpp copies host-resident weights to the GPU
//! for each prompt micro-batch) and how fast results come back.
//!
//! Upload: `queue.write_buffer` of a host buffer into a device buffer, submitted and waited for.
//! Download: a copy of the device buffer into a `MAP_READ` buffer, mapped and copied out. Both
//! are timed on the wall clock (they are host work as much as device work), repeated, and the
//! median counts. The downloaded bytes must equal the uploaded ones, word for word, before
//! either speed counts: the round trip is the check.

use headroom_core::report::{HostMetric, Measurement, Metric, Status, Timing, Verification};

use super::{BINDING_ALIGN_BYTES, MeasureSettings, failed};
use crate::ProbeError;
use crate::gpu::{Gpu, now_s, scoped};

/// Inputs to the transfer stage.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferParams {
    /// Buffer size, bytes (a multiple of 256 after the adapter's limit).
    pub size_bytes: u64,
    /// Seed of the data.
    pub seed: u32,
    /// Measurement length: repeats until `target_s` has passed each way.
    pub settings: MeasureSettings,
}

/// Fewest timed repeats each way.
pub const MIN_REPEATS: usize = 3;

/// Most timed repeats each way.
pub const MAX_REPEATS: usize = 20;

fn pattern(size: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(size);
    while out.len() < size {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(size);
    out
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times.get(times.len() / 2).copied().unwrap_or(0.0)
}

/// Runs the stage: `transfer.upload` and `transfer.download` (failed ones with their error).
pub async fn run(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    p: &TransferParams,
) -> Vec<Measurement> {
    let gpu = Gpu::new(device, queue);
    let names = [
        Metric::Host(HostMetric::Upload),
        Metric::Host(HostMetric::Download),
    ];
    let size =
        p.size_bytes.min(gpu.limits.max_buffer_size) / BINDING_ALIGN_BYTES * BINDING_ALIGN_BYTES;
    let params = crate::params! { "buffer_bytes" => size, "statistic" => "median of repeats" };
    let result = if size == 0 {
        Err(ProbeError::Unsupported(format!(
            "no buffer fits: asked for {} bytes, the adapter's max_buffer_size is {}",
            p.size_bytes, gpu.limits.max_buffer_size
        )))
    } else {
        scoped(&gpu, "transfer", run_inner(&gpu, size, p)).await
    };
    match result {
        Ok((up, down, mismatched, checked)) => {
            let passed = mismatched == 0;
            let verification = Verification {
                passed,
                rel_error: mismatched as f64 / checked.max(1) as f64,
                tolerance: 0.0,
                checked_elements: checked,
                reference: "the uploaded words, read back after the download".to_owned(),
            };
            [(names[0], up, "uploaded"),
             (names[1], down, "downloaded")]
                .into_iter()
                .map(|(name, mut times, counted)| {
                    let per = median(&mut times);
                    Measurement {
                        name,
                        status: if passed { Status::Ok } else { Status::Failed },
                        error: (!passed).then(|| {
                            format!("wrong result: {mismatched} of {checked} words differ after the round trip")
                        }),
                        params: params.clone(),
                        verification: Some(verification.clone()),
                        timing: Some(Timing {
                            timer: "wall_clock".to_owned(),
                            iterations: times.len() as u32,
                            total_s: times.iter().sum(),
                            per_iter_s: per,
                        }),
                        flops_per_s: None,
                        bytes_per_s: (passed && per > 0.0).then(|| size as f64 / per),
                        bytes_counted: Some(counted.to_owned()),
                        tokens_per_s: None,
                        accumulator: None,
                    }
                })
                .collect()
        }
        Err(err) => names
            .iter()
            .map(|&n| failed(n, params.clone(), &err))
            .collect(),
    }
}

/// Upload and download times (seconds per repeat), mismatched words and words checked.
async fn run_inner(
    gpu: &Gpu<'_>,
    size: u64,
    p: &TransferParams,
) -> Result<(Vec<f64>, Vec<f64>, u64, u64), ProbeError> {
    let len = usize::try_from(size)
        .map_err(|_| ProbeError::Unsupported(format!("{size} bytes do not fit host memory")))?;
    let data = pattern(len, p.seed);
    let target = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("transfer target"),
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("transfer read-back"),
        size,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let repeat = |times: &Vec<f64>, start: f64| {
        times.len() < MIN_REPEATS
            || (now_s() - start < p.settings.target_s && times.len() < MAX_REPEATS)
    };
    // An untimed round each way: first-use allocations and page faults are not the link.
    gpu.queue.write_buffer(&target, 0, &data);
    gpu.finish().await?;
    let mut up = Vec::new();
    let start = now_s();
    while repeat(&up, start) {
        let t = now_s();
        gpu.queue.write_buffer(&target, 0, &data);
        gpu.queue.submit([]);
        gpu.finish().await?;
        up.push(now_s() - t);
    }
    let mut down = Vec::new();
    let mut last = Vec::new();
    let start = now_s();
    while repeat(&down, start) {
        let t = now_s();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(&target, 0, &staging, 0, size);
        gpu.queue.submit([encoder.finish()]);
        last = gpu.map_read(&staging).await?;
        down.push(now_s() - t);
    }
    let words = |b: &[u8]| -> Vec<u32> {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let (want, got) = (words(&data), words(&last));
    let mismatched = if want.len() == got.len() {
        want.iter().zip(&got).filter(|(a, b)| a != b).count() as u64
    } else {
        want.len() as u64
    };
    Ok((up, down, mismatched, want.len() as u64))
}

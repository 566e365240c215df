//! Filling buffers with the verification [`pattern`](crate::pattern) and checking them word for
//! word on the GPU. Used by the largest-buffer search, the allocation stage, bandwidth and decode.

use crate::ProbeError;
use crate::gpu::{Gpu, pieces, workgroups_for};
use crate::kernels::{BINDING_ALIGN_BYTES, wgsl_template};
use crate::pattern::{PATTERN_WGSL, piece_seed};

const WORKGROUP_SIZE: u32 = 256;
/// Each invocation handles this many vec4 words in a grid-stride loop (keeps dispatches under
/// the per-dimension limit for 2 GiB pieces).
const VEC4_PER_INVOCATION: u64 = 16;

fn fill_wgsl() -> String {
    wgsl_template(
        include_str!("wgsl/fill.wgsl"),
        &[
            ("PATTERN", &PATTERN_WGSL),
            ("WORKGROUP_SIZE", &WORKGROUP_SIZE),
        ],
    )
}

fn check_wgsl() -> String {
    wgsl_template(
        include_str!("wgsl/fill_check.wgsl"),
        &[
            ("PATTERN", &PATTERN_WGSL),
            ("WORKGROUP_SIZE", &WORKGROUP_SIZE),
        ],
    )
}

/// Compiled fill and check pipelines.
pub struct Filler {
    fill: wgpu::ComputePipeline,
    check: wgpu::ComputePipeline,
}

/// What to write: raw pattern words, or finite f16 pairs made from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Raw 32-bit pattern words (any bits).
    Words,
    /// Finite f16 values (see `half_pair`).
    Halves,
}

impl Filler {
    /// Compiles both pipelines.
    pub async fn new(gpu: &Gpu<'_>) -> Result<Filler, ProbeError> {
        Ok(Filler {
            fill: gpu.pipeline("fill", &fill_wgsl()).await?,
            check: gpu.pipeline("check", &check_wgsl()).await?,
        })
    }

    fn piece_params(
        gpu: &Gpu<'_>,
        size_bytes: u64,
        seed: u32,
        kind: Fill,
    ) -> Vec<(u64, u64, wgpu::Buffer, u32)> {
        let max_piece = gpu.limits.max_storage_buffer_binding_size.min(1 << 30);
        pieces(size_bytes, max_piece, BINDING_ALIGN_BYTES)
            .into_iter()
            .enumerate()
            .map(|(index, (offset, size))| {
                let n_vec4 = size / 16;
                let groups = workgroups_for(
                    n_vec4.div_ceil(VEC4_PER_INVOCATION),
                    WORKGROUP_SIZE,
                    gpu.limits.max_compute_workgroups_per_dimension,
                );
                let stride = groups * WORKGROUP_SIZE;
                let uniform = gpu.uniform(&[
                    n_vec4 as u32,
                    piece_seed(seed, index as u32),
                    stride,
                    u32::from(kind == Fill::Halves),
                ]);
                (offset, size, uniform, groups)
            })
            .collect()
    }

    /// Records a fill of `size_bytes` (a multiple of 16) at `offset` and submits it.
    pub fn fill(
        &self,
        gpu: &Gpu<'_>,
        buffer: &wgpu::Buffer,
        offset: u64,
        size_bytes: u64,
        seed: u32,
        kind: Fill,
    ) {
        let parts = Self::piece_params(gpu, size_bytes, seed, kind);
        let groups: Vec<_> = parts
            .iter()
            .map(|(o, s, u, g)| {
                (
                    gpu.bind(&self.fill, &[(buffer, offset + o, Some(*s)), (u, 0, None)]),
                    *g,
                )
            })
            .collect();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.fill);
            for (bind_group, count) in &groups {
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(*count, 1, 1);
            }
        }
        gpu.queue.submit([encoder.finish()]);
    }

    /// Counts the 16-byte words of `size_bytes` at `offset` that differ from the pattern.
    pub async fn check(
        &self,
        gpu: &Gpu<'_>,
        buffer: &wgpu::Buffer,
        offset: u64,
        size_bytes: u64,
        seed: u32,
        kind: Fill,
    ) -> Result<u64, ProbeError> {
        let parts = Self::piece_params(gpu, size_bytes, seed, kind);
        let counter = gpu.storage_init("mismatches", &[0u8; 16]);
        let groups: Vec<_> = parts
            .iter()
            .map(|(o, s, u, g)| {
                (
                    gpu.bind(
                        &self.check,
                        &[
                            (buffer, offset + o, Some(*s)),
                            (&counter, 0, None),
                            (u, 0, None),
                        ],
                    ),
                    *g,
                )
            })
            .collect();
        let mut encoder = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&self.check);
            for (bind_group, count) in &groups {
                pass.set_bind_group(0, bind_group, &[]);
                pass.dispatch_workgroups(*count, 1, 1);
            }
        }
        gpu.queue.submit([encoder.finish()]);
        let bytes = gpu.read_back(&counter, 0, 16).await?;
        Ok(u64::from(bytemuck::cast_slice::<u8, u32>(&bytes)[0]))
    }
}

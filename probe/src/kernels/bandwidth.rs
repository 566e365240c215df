//! Memory bandwidth: read (a reduction whose sums are checked), write (a fill whose contents are
//! checked), copy (checked word for word). Each result states which bytes it counts: read and
//! write count the bytes moved once; copy counts bytes read + bytes written.
//!
//! Buffers larger than one storage binding (≤ 2 GiB − 4 everywhere) are bound in pieces.

use headroom_core::report::{Measurement, Status, Verification};

use crate::gpu::{Gpu, Measured, pieces, scoped, workgroups_for};
use crate::kernels::fill::{Fill, Filler};
use crate::kernels::{BINDING_ALIGN_BYTES, GIB, MeasureSettings, failed};
use crate::pattern::{pattern, piece_seed};
use crate::{ProbeError, params};

const WORKGROUP_SIZE: u32 = 256;
/// Vec4 words each invocation moves per pass (the loops are unrolled by 4 for memory-level
/// parallelism, then grid-stride).
const VEC4_PER_INVOCATION: u64 = 16;
/// Largest piece bound at once: 1 GiB stays under every adapter's binding limit.
const MAX_PIECE_BYTES: u64 = GIB;
/// Bytes read back per piece to check the write kernel (start, middle and end windows).
const WRITE_CHECK_WINDOW_BYTES: u64 = 4096;

const READ_WGSL: &str = r#"
struct Params { n_vec4: u32, seed: u32, stride: u32, partial_base: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> partial: array<vec4<u32>>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = p.stride;
    var a = vec4<u32>(0u);
    var b = vec4<u32>(0u);
    var c = vec4<u32>(0u);
    var d = vec4<u32>(0u);
    var i = gid.x;
    while (i + 3u * s < p.n_vec4) {
        a += src[i];
        b += src[i + s];
        c += src[i + 2u * s];
        d += src[i + 3u * s];
        i += 4u * s;
    }
    while (i < p.n_vec4) {
        a += src[i];
        i += s;
    }
    // Stored, so the reads cannot be optimized away; summed on the CPU to check them.
    partial[p.partial_base + gid.x] = a + b + c + d;
}
"#;

const WRITE_WGSL: &str = r#"
struct Params { n_vec4: u32, seed: u32, stride: u32, partial_base: u32 }
@group(0) @binding(0) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(1) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = p.stride;
    let seed = vec4<u32>(p.seed);
    let lane = vec4<u32>(0u, 1u, 2u, 3u);
    var i = gid.x;
    while (i + 3u * s < p.n_vec4) {
        dst[i] = (vec4<u32>(i * 4u) + lane) ^ seed;
        dst[i + s] = (vec4<u32>((i + s) * 4u) + lane) ^ seed;
        dst[i + 2u * s] = (vec4<u32>((i + 2u * s) * 4u) + lane) ^ seed;
        dst[i + 3u * s] = (vec4<u32>((i + 3u * s) * 4u) + lane) ^ seed;
        i += 4u * s;
    }
    while (i < p.n_vec4) {
        dst[i] = (vec4<u32>(i * 4u) + lane) ^ seed;
        i += s;
    }
}
"#;

const COPY_WGSL: &str = r#"
struct Params { n_vec4: u32, seed: u32, stride: u32, partial_base: u32 }
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let s = p.stride;
    var i = gid.x;
    while (i + 3u * s < p.n_vec4) {
        let a = src[i];
        let b = src[i + s];
        let c = src[i + 2u * s];
        let d = src[i + 3u * s];
        dst[i] = a;
        dst[i + s] = b;
        dst[i + 2u * s] = c;
        dst[i + 3u * s] = d;
        i += 4u * s;
    }
    while (i < p.n_vec4) {
        dst[i] = src[i];
        i += s;
    }
}
"#;

/// Inputs to the bandwidth stage.
#[derive(Debug, Clone, PartialEq)]
pub struct BandwidthParams {
    /// Size of each of the two buffers, bytes (a multiple of 256).
    pub size_bytes: u64,
    /// Seed of the data.
    pub seed: u32,
    /// Measurement length.
    pub settings: MeasureSettings,
}

struct Piece {
    offset: u64,
    size: u64,
    seed: u32,
    groups: u32,
    uniform: wgpu::Buffer,
}

fn measurement(
    name: &str,
    size: u64,
    counted: &str,
    bytes_per_iter: f64,
    measured: &Measured,
    check: Verification,
) -> Measurement {
    let passed = check.passed;
    Measurement {
        name: name.to_owned(),
        status: if passed { Status::Ok } else { Status::Failed },
        error: (!passed).then(|| {
            format!(
                "wrong result: {} of {} checked words differ",
                check.rel_error * check.checked_elements as f64,
                check.checked_elements
            )
        }),
        params: params! { "buffer_bytes" => size, "bytes_per_iteration" => bytes_per_iter },
        timing: Some(measured.timing()),
        bytes_per_s: passed.then(|| bytes_per_iter / measured.per_iter_s()),
        bytes_counted: Some(counted.to_owned()),
        verification: Some(check),
        flops_per_s: None,
        tokens_per_s: None,
        accumulator: None,
    }
}

fn exact(mismatches: u64, checked: u64, reference: &str) -> Verification {
    Verification {
        passed: mismatches == 0,
        rel_error: if checked == 0 {
            0.0
        } else {
            mismatches as f64 / checked as f64
        },
        tolerance: 0.0,
        checked_elements: checked,
        reference: reference.to_owned(),
    }
}

/// Runs read, write and copy. Returns the three measurements (failed ones with their error).
pub async fn run(
    device: &wgpu::Device,
    queue: &wgpu::Queue,
    p: &BandwidthParams,
) -> Vec<Measurement> {
    let gpu = Gpu::new(device, queue);
    let names = ["bandwidth.read", "bandwidth.write", "bandwidth.copy"];
    // NVIDIA's Vulkan driver caps one buffer at 4 GiB − 2 MiB: take what the adapter allows.
    let size =
        p.size_bytes.min(gpu.limits.max_buffer_size) / BINDING_ALIGN_BYTES * BINDING_ALIGN_BYTES;
    let base = params! { "buffer_bytes" => size };
    if size == 0 {
        let err = ProbeError::Unsupported(format!(
            "no buffer fits: asked for {} bytes, the adapter's max_buffer_size is {}",
            p.size_bytes, gpu.limits.max_buffer_size
        ));
        return names
            .iter()
            .map(|n| failed(n, base.clone(), &err))
            .collect();
    }
    let result = scoped(&gpu, "bandwidth", run_inner(&gpu, size, p)).await;
    match result {
        Ok(measurements) => measurements,
        Err(err) => names
            .iter()
            .map(|n| failed(n, base.clone(), &err))
            .collect(),
    }
}

async fn run_inner(
    gpu: &Gpu<'_>,
    size: u64,
    p: &BandwidthParams,
) -> Result<Vec<Measurement>, ProbeError> {
    let filler = Filler::new(gpu).await?;
    let read = gpu.pipeline("bandwidth read", READ_WGSL).await?;
    let write = gpu.pipeline("bandwidth write", WRITE_WGSL).await?;
    let copy = gpu.pipeline("bandwidth copy", COPY_WGSL).await?;
    let src = gpu.storage("bandwidth src", size);
    let dst = gpu.storage("bandwidth dst", size);
    let max_piece = MAX_PIECE_BYTES.min(gpu.limits.max_storage_buffer_binding_size);
    let mut partial_words = 0u32;
    let parts: Vec<Piece> = pieces(size, max_piece, BINDING_ALIGN_BYTES)
        .into_iter()
        .enumerate()
        .map(|(index, (offset, piece))| {
            let n_vec4 = piece / 16;
            let groups = workgroups_for(
                n_vec4.div_ceil(VEC4_PER_INVOCATION),
                WORKGROUP_SIZE,
                gpu.limits.max_compute_workgroups_per_dimension,
            );
            let stride = groups * WORKGROUP_SIZE;
            let seed = piece_seed(p.seed, index as u32);
            let uniform = gpu.uniform(&[n_vec4 as u32, seed, stride, partial_words]);
            partial_words += stride;
            Piece {
                offset,
                size: piece,
                seed,
                groups,
                uniform,
            }
        })
        .collect();
    let partial = gpu.storage("bandwidth partial sums", u64::from(partial_words) * 16);
    // Fill the source with the pattern (piece seeds match `Filler`'s because both split at the
    // same 1 GiB boundaries).
    let mut out = Vec::new();

    // Read.
    filler.fill(gpu, &src, 0, size, p.seed, Fill::Words);
    let binds: Vec<_> = parts
        .iter()
        .map(|pc| {
            gpu.bind(
                &read,
                &[
                    (&src, pc.offset, Some(pc.size)),
                    (&partial, 0, None),
                    (&pc.uniform, 0, None),
                ],
            )
        })
        .collect();
    let record = |pass: &mut wgpu::ComputePass<'_>, reps: u32| {
        pass.set_pipeline(&read);
        for _ in 0..reps {
            for (bind, pc) in binds.iter().zip(&parts) {
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups(pc.groups, 1, 1);
            }
        }
    };
    let measured = gpu
        .measure(&record, p.settings.target_s, p.settings.max_iterations)
        .await?;
    let sums = gpu
        .read_back(&partial, 0, u64::from(partial_words) * 16)
        .await?;
    let got = bytemuck::cast_slice::<u8, u32>(&sums)
        .iter()
        .fold(0u32, |acc, &x| acc.wrapping_add(x));
    let want = expected_sum(&parts);
    let check = Verification {
        passed: got == want,
        rel_error: if got == want { 0.0 } else { 1.0 },
        tolerance: 0.0,
        checked_elements: size / 4,
        reference: "wrapping u32 sum of every word, recomputed on the CPU".to_owned(),
    };
    let mut m = measurement(
        "bandwidth.read",
        size,
        "read",
        size as f64,
        &measured,
        check,
    );
    if got != want {
        m.error = Some(format!(
            "wrong result: sum of words {got:#x}, expected {want:#x}"
        ));
    }
    out.push(m);

    // Write.
    let binds: Vec<_> = parts
        .iter()
        .map(|pc| {
            gpu.bind(
                &write,
                &[(&dst, pc.offset, Some(pc.size)), (&pc.uniform, 0, None)],
            )
        })
        .collect();
    let record = |pass: &mut wgpu::ComputePass<'_>, reps: u32| {
        pass.set_pipeline(&write);
        for _ in 0..reps {
            for (bind, pc) in binds.iter().zip(&parts) {
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups(pc.groups, 1, 1);
            }
        }
    };
    let measured = gpu
        .measure(&record, p.settings.target_s, p.settings.max_iterations)
        .await?;
    let mut bad = 0u64;
    let mut checked = 0u64;
    for pc in &parts {
        let window = WRITE_CHECK_WINDOW_BYTES.min(pc.size);
        for at in [0, (pc.size / 2) / 16 * 16, pc.size - window] {
            let bytes = gpu.read_back(&dst, pc.offset + at, window).await?;
            for (j, &w) in bytemuck::cast_slice::<u8, u32>(&bytes).iter().enumerate() {
                let index = (at / 4) as u32 + j as u32;
                checked += 1;
                if w != index ^ pc.seed {
                    bad += 1;
                }
            }
        }
    }
    out.push(measurement(
        "bandwidth.write",
        size,
        "written",
        size as f64,
        &measured,
        exact(
            bad,
            checked,
            "start, middle and end windows of each piece read back and compared",
        ),
    ));

    // Copy.
    let binds: Vec<_> = parts
        .iter()
        .map(|pc| {
            gpu.bind(
                &copy,
                &[
                    (&src, pc.offset, Some(pc.size)),
                    (&dst, pc.offset, Some(pc.size)),
                    (&pc.uniform, 0, None),
                ],
            )
        })
        .collect();
    let record = |pass: &mut wgpu::ComputePass<'_>, reps: u32| {
        pass.set_pipeline(&copy);
        for _ in 0..reps {
            for (bind, pc) in binds.iter().zip(&parts) {
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups(pc.groups, 1, 1);
            }
        }
    };
    let measured = gpu
        .measure(&record, p.settings.target_s, p.settings.max_iterations)
        .await?;
    let mismatches = filler
        .check(gpu, &dst, 0, size, p.seed, Fill::Words)
        .await?;
    out.push(measurement(
        "bandwidth.copy",
        size,
        "read + written",
        2.0 * size as f64,
        &measured,
        exact(
            mismatches,
            size / 16,
            "every 16-byte word of the destination checked on the GPU against the source pattern",
        ),
    ));
    Ok(out)
}

fn expected_sum(parts: &[Piece]) -> u32 {
    let mut sum = 0u32;
    for pc in parts {
        for w in 0..(pc.size / 4) as u32 {
            sum = sum.wrapping_add(pattern(w, pc.seed));
        }
    }
    sum
}

//! Matrix multiplication `C = A · B` (row-major, square `n × n`): f32; f16 inputs with f32
//! accumulate and, separately, f16 accumulate; and f16 on matrix units through cooperative
//! matrices (native only, `EXPERIMENTAL_COOPERATIVE_MATRIX`).
//!
//! The vector kernels are generated per tile shape: a workgroup computes a `BM × BN` tile from
//! `BK`-deep slices of A and B staged in shared memory; each invocation keeps a `TM × TN` block of
//! C in registers (fully unrolled, vec4 loads). Several tile shapes are tried and the fastest
//! verified one is kept (the choice is in the report). The cooperative-matrix kernel has one
//! subgroup compute `FM × FN` fragments of the adapter's fragment size.

use headroom_core::report::{GemmMetric, Measurement, Metric, Status, Verification, params::key};

use crate::gpu::Gpu;
use crate::kernels::search::{Rejected, search};
use crate::kernels::{MeasureSettings, failed, rel_frobenius, skipped};
use crate::{ProbeError, Rng, params};

mod coop;
mod vector;

use coop::STAGED_FRAG;
pub use coop::{
    CoopTile, GlobalLoad, SharedLayout, StagedTile, coop_fragments, coop_wgsl, staged_wgsl,
};
pub use vector::{Tile, vector_wgsl};

/// Which GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GemmVariant {
    /// f32 in, f32 accumulate, f32 out.
    F32,
    /// f16 in, f32 accumulate, f32 out (`SHADER_F16`).
    F16AccF32,
    /// f16 in, f16 accumulate, f16 out (`SHADER_F16`).
    F16AccF16,
    /// f16 in on matrix units, f32 accumulate and out.
    CoopF16AccF32,
    /// f16 in on matrix units, f16 accumulate and out.
    CoopF16AccF16,
}

impl GemmVariant {
    /// Every variant, in report order.
    pub const ALL: [GemmVariant; 5] = [
        GemmVariant::F32,
        GemmVariant::F16AccF32,
        GemmVariant::F16AccF16,
        GemmVariant::CoopF16AccF32,
        GemmVariant::CoopF16AccF16,
    ];

    /// The report's metric.
    pub fn metric(self) -> Metric {
        Metric::Gemm(match self {
            GemmVariant::F32 => GemmMetric::F32,
            GemmVariant::F16AccF32 => GemmMetric::F16AccF32,
            GemmVariant::F16AccF16 => GemmMetric::F16AccF16,
            GemmVariant::CoopF16AccF32 => GemmMetric::CoopF16AccF32,
            GemmVariant::CoopF16AccF16 => GemmMetric::CoopF16AccF16,
        })
    }

    fn input(self) -> &'static str {
        if self == GemmVariant::F32 {
            "f32"
        } else {
            "f16"
        }
    }

    /// Accumulator (and output) type.
    pub fn accumulator(self) -> &'static str {
        match self {
            GemmVariant::F32 | GemmVariant::F16AccF32 | GemmVariant::CoopF16AccF32 => "f32",
            GemmVariant::F16AccF16 | GemmVariant::CoopF16AccF16 => "f16",
        }
    }

    fn is_coop(self) -> bool {
        matches!(
            self,
            GemmVariant::CoopF16AccF32 | GemmVariant::CoopF16AccF16
        )
    }

    /// Accepted relative Frobenius error against an f64 reference on the same (rounded) inputs.
    /// f32: ~√K·2⁻²⁴ with margin; f16 inputs, f32 accumulate: only the f32 sum errs; f16
    /// accumulate: each partial sum is rounded to 11 bits, ~√K·2⁻¹¹ for K ≤ 8192.
    fn tolerance(self) -> f64 {
        match self.accumulator() {
            "f32" => 1e-4,
            _ => 5e-2,
        }
    }
}

/// Rows of tiles walked together (grouped ordering, as in Triton's matmul tutorial): consecutive
/// workgroups share A and B panels in L2 instead of streaming all of B for each row of tiles.
const GROUP_M: u32 = 8;

/// WGSL computing `tile_m`, `tile_n` from the workgroup id with grouped ordering, `group`
/// rows of tiles at a time.
fn swizzle_wgsl(group: u32) -> String {
    format!(
        r#"    let tiles_n = nwg.x;
    let tiles_m = nwg.y;
    let pid = wid.y * tiles_n + wid.x;
    let group_size = {group}u * tiles_n;
    let first_m = (pid / group_size) * {group}u;
    let group_m = min(tiles_m - first_m, {group}u);
    let tile_m = first_m + (pid % group_size) % group_m;
    let tile_n = (pid % group_size) / group_m;
"#
    )
}

/// Inputs to one GEMM run.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmParams {
    /// Variant.
    pub variant: GemmVariant,
    /// M = N = K.
    pub n: u32,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Measurement length.
    pub settings: MeasureSettings,
    /// Vector tile shapes to try (default [`Tile::CANDIDATES`]).
    pub tiles: Vec<Tile>,
    /// Cooperative-matrix configurations reported by the adapter
    /// (`Adapter::cooperative_matrix_properties`), for the coop variants.
    pub coop_properties: Vec<wgpu::CooperativeMatrixProperties>,
    /// Subgroup size for the coop kernel (the adapter's `subgroup_max_size`).
    pub subgroup_size: u32,
}

/// Rows of C compared with the CPU reference (all of them for small matrices).
const CHECK_ROWS: usize = 32;

struct Inputs {
    a_bytes: Vec<u8>,
    b_bytes: Vec<u8>,
    a: Vec<f32>,
    b: Vec<f32>,
}

fn inputs(variant: GemmVariant, n: usize, seed: u64) -> Inputs {
    let mut rng = Rng::new(seed);
    let mut a = rng.vec_f32(n * n);
    let mut b = rng.vec_f32(n * n);
    if variant.input() == "f16" {
        let a16: Vec<half::f16> = a.iter().map(|&x| half::f16::from_f32(x)).collect();
        let b16: Vec<half::f16> = b.iter().map(|&x| half::f16::from_f32(x)).collect();
        // The reference multiplies the rounded inputs: only the kernel's arithmetic is judged.
        a = a16.iter().map(|x| x.to_f32()).collect();
        b = b16.iter().map(|x| x.to_f32()).collect();
        Inputs {
            a_bytes: bytemuck::cast_slice(&a16).to_vec(),
            b_bytes: bytemuck::cast_slice(&b16).to_vec(),
            a,
            b,
        }
    } else {
        Inputs {
            a_bytes: bytemuck::cast_slice(&a).to_vec(),
            b_bytes: bytemuck::cast_slice(&b).to_vec(),
            a,
            b,
        }
    }
}

/// The rows of C the check compares (all of them for small matrices).
fn check_rows(n: usize) -> Vec<usize> {
    if n <= CHECK_ROWS {
        (0..n).collect()
    } else {
        (0..CHECK_ROWS)
            .map(|i| i * (n - 1) / (CHECK_ROWS - 1))
            .collect()
    }
}

/// f64 reference for the checked rows of `A · B`, row after row. Computed once per measurement
/// and shared by every candidate kernel; natively the rows are split over the CPU's cores (at
/// 8192³ one row is 67 M multiply-adds).
fn reference(inputs: &Inputs, n: usize) -> Vec<f64> {
    let rows = check_rows(n);
    let row = |r: usize| -> Vec<f64> {
        let mut acc = vec![0f64; n];
        for k in 0..n {
            let a = f64::from(inputs.a[r * n + k]);
            let brow = &inputs.b[k * n..(k + 1) * n];
            for (x, &b) in acc.iter_mut().zip(brow) {
                *x += a * f64::from(b);
            }
        }
        acc
    };
    #[cfg(not(target_arch = "wasm32"))]
    {
        let threads = std::thread::available_parallelism().map_or(1, |t| t.get());
        let chunk = rows.len().div_ceil(threads.max(1));
        std::thread::scope(|scope| {
            let handles: Vec<_> = rows
                .chunks(chunk.max(1))
                .map(|part| {
                    scope.spawn(move || part.iter().flat_map(|&r| row(r)).collect::<Vec<f64>>())
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_default())
                .collect()
        })
    }
    #[cfg(target_arch = "wasm32")]
    {
        rows.iter().flat_map(|&r| row(r)).collect()
    }
}

fn verify(variant: GemmVariant, want: &[f64], c_bytes: &[u8], n: usize) -> Verification {
    let c: Vec<f32> = if variant.accumulator() == "f16" {
        bytemuck::cast_slice::<u8, half::f16>(c_bytes)
            .iter()
            .map(|x| x.to_f32())
            .collect()
    } else {
        bytemuck::cast_slice::<u8, f32>(c_bytes).to_vec()
    };
    let rows = check_rows(n);
    let mut got = Vec::with_capacity(rows.len() * n);
    for &r in &rows {
        got.extend(c[r * n..(r + 1) * n].iter().map(|&x| f64::from(x)));
    }
    // A reference cut short (a panicked worker) cannot pass.
    let err = if want.len() == got.len() {
        rel_frobenius(&got, want)
    } else {
        f64::INFINITY
    };
    Verification {
        passed: err.is_finite() && err <= variant.tolerance(),
        rel_error: err,
        tolerance: variant.tolerance(),
        checked_elements: (rows.len() * n) as u64,
        reference: "f64 on the CPU over evenly spaced rows, same rounded inputs".to_owned(),
    }
}

/// Runs one GEMM variant at one size: every tile candidate is verified and timed, the fastest
/// verified one is reported. Never panics; failures are recorded.
pub async fn run(device: &wgpu::Device, queue: &wgpu::Queue, p: &GemmParams) -> Measurement {
    let gpu = Gpu::new(device, queue);
    let name = p.variant.metric();
    let n = p.n;
    let mut base = params! { key::M => n, key::N => n, key::K => n };
    if p.variant.input() == "f16" && !gpu.has(wgpu::Features::SHADER_F16) {
        return skipped(name, base, "the adapter lacks SHADER_F16");
    }
    // Candidate kernels: (label, source, grid, shared bytes).
    let mut candidates: Vec<(String, String, (u32, u32))> = Vec::new();
    if p.variant.is_coop() {
        if !gpu.has(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
            return skipped(
                name,
                base,
                "the adapter lacks EXPERIMENTAL_COOPERATIVE_MATRIX (matrix units through wgpu: native Vulkan/Metal only)",
            );
        }
        let frags = coop_fragments(&p.coop_properties, p.variant);
        let Some(&frag) = frags.first() else {
            return skipped(
                name,
                base,
                &format!(
                    "no square 8x8/16x16 f16 cooperative-matrix configuration with {} accumulate",
                    p.variant.accumulator()
                ),
            );
        };
        let subgroup = p.subgroup_size.max(1);
        // Shared-memory-staged kernels first (16×16 fragments; `subgroup_id` needs SUBGROUP).
        if frags.contains(&STAGED_FRAG) && gpu.has(wgpu::Features::SUBGROUP) {
            for &tile in &StagedTile::CANDIDATES {
                let threads = tile.subgroups() * subgroup;
                if !tile.valid(subgroup)
                    || !n.is_multiple_of(tile.bm)
                    || !n.is_multiple_of(tile.bn)
                    || !n.is_multiple_of(tile.bk)
                    || !(n / tile.bk).is_multiple_of(tile.prefetch)
                    || tile.shared_bytes() > gpu.limits.max_compute_workgroup_storage_size
                    || threads > gpu.limits.max_compute_invocations_per_workgroup
                {
                    continue;
                }
                candidates.push((
                    tile.label(),
                    staged_wgsl(p.variant, tile, subgroup),
                    (n / tile.bn, n / tile.bm),
                ));
            }
        }
        // Fragments straight from global memory: only where the staged kernel cannot run
        // (8×8 fragments, no subgroups, or no staged shape fits).
        let staged = candidates.len();
        for (fm, fn_) in [(4, 4), (4, 2), (2, 2)] {
            if staged > 0 {
                break;
            }
            let tile = CoopTile {
                frag,
                fm,
                fn_,
                subgroup,
            };
            if !n.is_multiple_of(tile.block_m()) || !n.is_multiple_of(tile.block_n()) {
                continue;
            }
            candidates.push((
                tile.label(),
                coop_wgsl(p.variant, tile),
                (n / tile.block_n(), n / tile.block_m()),
            ));
        }
        base.insert(
            "fragment".into(),
            serde_json::json!(format!("{frag}x{frag}x{frag}")),
        );
    } else {
        let acc_bytes = if p.variant.accumulator() == "f16" {
            2
        } else {
            4
        };
        for &tile in &p.tiles {
            if !n.is_multiple_of(tile.bm)
                || !n.is_multiple_of(tile.bn)
                || !n.is_multiple_of(tile.bk)
            {
                continue;
            }
            if tile.shared_bytes(acc_bytes) > gpu.limits.max_compute_workgroup_storage_size
                || tile.threads() > gpu.limits.max_compute_invocations_per_workgroup
            {
                continue;
            }
            candidates.push((
                tile.label(),
                vector_wgsl(p.variant, tile),
                (n / tile.bn, n / tile.bm),
            ));
        }
    }
    if candidates.is_empty() {
        return skipped(name, base, &format!("no tile shape divides n = {n}"));
    }
    let in_bytes: u64 = if p.variant.input() == "f16" { 2 } else { 4 };
    let out_bytes: u64 = if p.variant.accumulator() == "f16" {
        2
    } else {
        4
    };
    let elems = u64::from(n) * u64::from(n);
    if elems * in_bytes.max(out_bytes) > gpu.limits.max_storage_buffer_binding_size {
        return skipped(
            name,
            base,
            "a matrix is larger than the storage binding limit",
        );
    }
    // A and B share one buffer (see below).
    if 2 * elems * in_bytes + u64::from(gpu.limits.min_storage_buffer_offset_alignment)
        > gpu.limits.max_buffer_size
    {
        return skipped(name, base, "A and B together exceed the buffer size limit");
    }
    let inputs = inputs(p.variant, n as usize, p.seed);
    let result = crate::gpu::scoped(&gpu, &name.to_string(), async {
        // A and B live in one buffer, B right after A, so their relative placement is fixed
        // rather than left to the allocator: with separate buffers the coop kernels' speed at
        // 8192³ changed by up to 3× between identical runs on an H100 (C is written, so it needs
        // its own buffer: a buffer bound read-write cannot also be bound read-only in the same
        // dispatch).
        let align = u64::from(gpu.limits.min_storage_buffer_offset_alignment).max(256);
        let a_len = inputs.a_bytes.len() as u64;
        let b_len = inputs.b_bytes.len() as u64;
        let c_len = elems * out_bytes;
        let b_at = a_len.next_multiple_of(align);
        let ab = gpu.storage("gemm a|b", b_at + b_len);
        gpu.queue.write_buffer(&ab, 0, &inputs.a_bytes);
        gpu.queue.write_buffer(&ab, b_at, &inputs.b_bytes);
        let c = gpu.storage("gemm c", c_len);
        let dims = gpu.uniform(&[n, n, n, 0]);
        let mut want: Option<Vec<f64>> = None;
        let search = search(
            &candidates,
            |(label, _, _)| label.clone(),
            p.settings,
            async |(label, source, (gx, gy)): &(String, String, (u32, u32))| {
                let pipeline = match gpu.pipeline(&format!("{name} {label}"), source).await {
                    Ok(pipeline) => pipeline,
                    Err(err) => return Ok(Err(Rejected::NotCompiled(err.to_string()))),
                };
                let bind = gpu.bind(
                    &pipeline,
                    &[
                        (&ab, 0, Some(a_len)),
                        (&ab, b_at, Some(b_len)),
                        (&c, 0, None),
                        (&dims, 0, None),
                    ],
                );
                gpu.clear(&c);
                let measured = gpu
                    .measure_grid(
                        &pipeline,
                        &bind,
                        (*gx, *gy),
                        p.settings.target_s,
                        p.settings.max_iterations,
                    )
                    .await?;
                let c_bytes = gpu.read_back(&c, 0, c_len).await?;
                let want = want.get_or_insert_with(|| reference(&inputs, n as usize));
                let check = verify(p.variant, want, &c_bytes, n as usize);
                Ok(if check.passed {
                    Ok((measured, check))
                } else {
                    Err(Rejected::Wrong(check))
                })
            },
        )
        .await?;
        let flops = 2.0 * (elems as f64) * f64::from(n);
        base.insert("candidates".into(), search.candidates_json(flops));
        if let Some(retried) = search.retried_json(flops) {
            base.insert("retried".into(), retried);
        }
        let best = search
            .best()
            .and_then(|t| t.verified().map(|(m, v)| (t.label.clone(), *m, v.clone())));
        Ok::<_, ProbeError>(best.ok_or_else(|| search.failure("tile")))
    })
    .await;
    match result {
        Err(err) => failed(name, base, &err),
        Ok(Ok((label, measured, check))) => {
            base.insert("tile".into(), serde_json::json!(label));
            Measurement {
                name,
                status: Status::Ok,
                error: None,
                params: base,
                verification: Some(check),
                timing: Some(measured.timing()),
                flops_per_s: Some(2.0 * (elems as f64) * f64::from(n) / measured.per_iter_s()),
                bytes_per_s: None,
                bytes_counted: None,
                tokens_per_s: None,
                accumulator: Some(p.variant.accumulator().to_owned()),
            }
        }
        Ok(Err(err)) => {
            let mut m = failed(name, base, &err);
            m.accumulator = Some(p.variant.accumulator().to_owned());
            m
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses, validates (every capability) and writes SPIR-V for one generated kernel.
    #[cfg(not(target_arch = "wasm32"))]
    fn compile_to_spirv(label: &str, source: &str) {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{label}: {}\n{source}", e.emit_to_string(source)));
        let info = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        )
        .subgroup_stages(naga::valid::ShaderStages::all())
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .unwrap_or_else(|e| panic!("{label}: {}\n{source}", e.emit_to_string(source)));
        let options = naga::back::spv::Options {
            lang_version: (1, 6),
            ..Default::default()
        };
        naga::back::spv::write_vec(&module, &info, &options, None)
            .unwrap_or_else(|e| panic!("{label}: SPIR-V: {e}"));
    }

    #[test]
    #[cfg(not(target_arch = "wasm32"))]
    fn every_cooperative_matrix_kernel_compiles_to_spirv() {
        for variant in [GemmVariant::CoopF16AccF32, GemmVariant::CoopF16AccF16] {
            for tile in StagedTile::CANDIDATES {
                assert!(tile.valid(32), "{}", tile.label());
                compile_to_spirv(&tile.label(), &staged_wgsl(variant, tile, 32));
                for (global, shared) in [
                    (GlobalLoad::Words4, SharedLayout::Words),
                    (GlobalLoad::Words4, SharedLayout::Vectors),
                    (GlobalLoad::Halves4, SharedLayout::Halves),
                    (GlobalLoad::Words4, SharedLayout::HalfVectors),
                ] {
                    let tile = StagedTile {
                        global,
                        shared,
                        ..tile
                    };
                    assert!(tile.valid(32), "{}", tile.label());
                    compile_to_spirv(&tile.label(), &staged_wgsl(variant, tile, 32));
                }
            }
            for (fm, fn_) in [(4, 4), (4, 2), (2, 2)] {
                let tile = CoopTile {
                    frag: 16,
                    fm,
                    fn_,
                    subgroup: 32,
                };
                compile_to_spirv(&tile.label(), &coop_wgsl(variant, tile));
            }
        }
    }

    #[test]
    fn the_check_rejects_a_wrong_product() {
        let n = 16;
        let inputs = inputs(GemmVariant::F32, n, 1);
        // The exact product passes.
        let mut c = vec![0f32; n * n];
        for r in 0..n {
            for col in 0..n {
                c[r * n + col] = (0..n)
                    .map(|k| inputs.a[r * n + k] * inputs.b[k * n + col])
                    .sum();
            }
        }
        let want = reference(&inputs, n);
        let ok = verify(GemmVariant::F32, &want, bytemuck::cast_slice(&c), n);
        assert!(ok.passed, "{ok:?}");
        // An all-zero output (a kernel that wrote nothing) fails with relative error 1.
        let zeros = vec![0f32; n * n];
        let bad = verify(GemmVariant::F32, &want, bytemuck::cast_slice(&zeros), n);
        assert!(
            !bad.passed && (bad.rel_error - 1.0).abs() < 1e-12,
            "{bad:?}"
        );
        // One element off by 1% of the matrix norm fails f32's tolerance.
        let mut off = c.clone();
        off[5] += 0.5;
        assert!(!verify(GemmVariant::F32, &want, bytemuck::cast_slice(&off), n).passed);
    }
}

//! Fused attention `O = softmax(Q·Kᵀ/√d)·V`, causal and not, head_dim 64 and 128, in the style of
//! FlashAttention: one invocation owns one query row (q and the output accumulator in registers,
//! generated per head size), keys and values stream through shared memory in tiles, and the
//! softmax is computed online (running max and sum), so the S×S score matrix never exists.
//! Storage is f16 where the adapter has `SHADER_F16` (else f32); arithmetic is f32.
//!
//! FLOPs counted: 4·B·H·S²·D without a mask, half that with the causal mask (the work a causal
//! kernel must do), the convention of FlashAttention's benchmarks.

use headroom_core::report::{
    AttentionMetric, AttentionStorage, Measurement, Metric, Status, Verification, params::key,
};

use crate::gpu::{Gpu, scoped};
use crate::kernels::attention_coop::{CoopAttention, FRAG};
use crate::kernels::search::{Rejected, search};
use crate::kernels::{MeasureSettings, failed, rel_frobenius, skipped, wgsl_template};
use crate::{ProbeError, Rng, params};

/// Query rows per workgroup (one per invocation).
const QUERY_BLOCK: u32 = 64;
/// Query rows (per checked head) compared with the CPU reference.
const CHECK_ROWS: usize = 16;
/// Heads compared with the CPU reference.
const CHECK_HEADS: usize = 2;

/// Inputs to one attention run.
#[derive(Debug, Clone, PartialEq)]
pub struct AttentionParams {
    /// Batch.
    pub batch: u32,
    /// Heads.
    pub heads: u32,
    /// Sequence length (a multiple of 64).
    pub seq: u32,
    /// Head size: 64 or 128.
    pub head_dim: u32,
    /// Causal mask.
    pub causal: bool,
    /// Seed of the inputs.
    pub seed: u64,
    /// Measurement length.
    pub settings: MeasureSettings,
    /// Keys per shared-memory tile; `None`: the most that fit the adapter's workgroup storage
    /// (up to 32). CPU rasterizers take a small tile: LLVM compiles the unrolled 32-key body for
    /// minutes on lavapipe.
    pub key_block: Option<u32>,
    /// Cooperative-matrix configurations reported by the adapter
    /// (`Adapter::cooperative_matrix_properties`); empty: the coop kernels are not tried.
    pub coop_properties: Vec<wgpu::CooperativeMatrixProperties>,
    /// The adapter's subgroup size where it is fixed (`subgroup_min_size == subgroup_max_size`);
    /// `None`: the coop kernels (whose lanes split rows by subgroup size) are not tried.
    pub subgroup_size: Option<u32>,
}

impl AttentionParams {
    /// The report's metric, e.g. `attention.f16.d128.causal`.
    pub fn metric(&self, f16: bool) -> Metric {
        Metric::Attention(AttentionMetric {
            storage: if f16 {
                AttentionStorage::F16
            } else {
                AttentionStorage::F32
            },
            head_dim: self.head_dim,
            causal: self.causal,
        })
    }
}

/// Keys per shared-memory tile that fit the adapter's workgroup storage (K and V tiles in f32).
fn key_block(head_dim: u32, shared_limit_bytes: u32) -> u32 {
    let per_key = 2 * head_dim * 4;
    let mut block = 32;
    while block > 4 && block * per_key > shared_limit_bytes {
        block /= 2;
    }
    block
}

/// WGSL for one head size, mask and storage type.
pub fn wgsl(head_dim: u32, causal: bool, f16: bool, key_block: u32) -> String {
    let d4 = head_dim / 4;
    let st = if f16 { "f16" } else { "f32" };
    // One line per vec4 of the head: q, the accumulator o and the dot products stay in
    // registers, unrolled for the head size.
    let per_vec4 = |line: &dyn Fn(u32) -> String| -> String { (0..d4).map(line).collect() };
    wgsl_template(
        include_str!("wgsl/attention.wgsl"),
        &[
            ("ENABLE", &if f16 { "enable f16;\n" } else { "" }),
            ("ST", &st),
            ("KV_LEN", &(key_block * d4)),
            ("QUERY_BLOCK", &QUERY_BLOCK),
            ("D4", &d4),
            ("BC", &key_block),
            // q pre-scaled by log2(e)/sqrt(d): the softmax then uses exp2.
            (
                "Q_LOADS",
                &per_vec4(&|i| {
                    format!(
                        "    let q{i} = vec4<f32>(q_in[q_base + {i}u]) * p.scale_log2;\n    var o{i} = vec4<f32>(0.0);\n"
                    )
                }),
            ),
            (
                "KEY_END",
                &if causal {
                    format!("    let key_end = (wid.x + 1u) * {QUERY_BLOCK}u;\n")
                } else {
                    "    let key_end = seq;\n".to_owned()
                },
            ),
            (
                "DOTS",
                &per_vec4(&|i| format!("            dot_sum += dot(q{i}, ks[kb + {i}u]);\n")),
            ),
            (
                "MASK",
                &if causal {
                    "            if (k0 + j > row) { dot_sum = -1e30; }\n"
                } else {
                    ""
                },
            ),
            (
                "RESCALE_O",
                &per_vec4(&|i| format!("        o{i} = o{i} * correction;\n")),
            ),
            (
                "ACCUMULATE_O",
                &per_vec4(&|i| {
                    format!("            o{i} = fma(vec4<f32>(pj), vs[vb + {i}u], o{i});\n")
                }),
            ),
            (
                "STORE_O",
                &per_vec4(&|i| format!("    o_out[q_base + {i}u] = vec4<{st}>(o{i} * inv_l);\n")),
            ),
        ],
    )
}

/// One output row of `softmax(Q·Kᵀ/√d)·V` in f64 for one head (`q`, `k`, `v`: `[seq][d]`).
pub fn reference_row(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    seq: usize,
    d: usize,
    row: usize,
    causal: bool,
) -> Vec<f64> {
    let scale = 1.0 / (d as f64).sqrt();
    let keys = if causal { row + 1 } else { seq };
    let scores: Vec<f64> = (0..keys)
        .map(|j| {
            (0..d)
                .map(|x| f64::from(q[row * d + x]) * f64::from(k[j * d + x]))
                .sum::<f64>()
                * scale
        })
        .collect();
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
    let sum: f64 = weights.iter().sum();
    (0..d)
        .map(|x| {
            weights
                .iter()
                .enumerate()
                .map(|(j, w)| w * f64::from(v[j * d + x]))
                .sum::<f64>()
                / sum
        })
        .collect()
}

/// The subset of the adapter's cooperative-matrix configurations the coop kernel needs:
/// 16×16×16 with f16 A/B and f32 accumulate.
pub fn coop_supported(props: &[wgpu::CooperativeMatrixProperties]) -> bool {
    props.iter().any(|p| {
        p.m_size == FRAG
            && p.n_size == FRAG
            && p.k_size == FRAG
            && p.ab_type == wgpu::CooperativeScalarType::F16
            && p.cr_type == wgpu::CooperativeScalarType::F32
    })
}

/// One kernel tried by [`run`].
enum Candidate {
    /// The scalar kernel with this key tile.
    Scalar(u32),
    /// A cooperative-matrix kernel.
    Coop(CoopAttention),
}

impl Candidate {
    fn label(&self) -> String {
        match self {
            Candidate::Scalar(bc) => format!("scalar.kb{bc}"),
            Candidate::Coop(c) => c.label(),
        }
    }
    fn key_block(&self) -> u32 {
        match self {
            Candidate::Scalar(bc) => *bc,
            Candidate::Coop(c) => c.key_block,
        }
    }
}

/// Runs one attention configuration: every candidate kernel (the scalar one, and where the
/// adapter has cooperative matrices the coop variants) is verified against the CPU reference and
/// timed; the fastest verified one is reported, every candidate's FLOP/s or error is recorded in
/// `params.candidates`. Never panics.
pub async fn run(device: &wgpu::Device, queue: &wgpu::Queue, p: &AttentionParams) -> Measurement {
    let gpu = Gpu::new(device, queue);
    let f16 = gpu.has(wgpu::Features::SHADER_F16);
    let name = p.metric(f16);
    let mut base = params! {
        key::BATCH => p.batch, key::HEADS => p.heads, key::SEQ => p.seq, key::HEAD_DIM => p.head_dim,
        "causal" => p.causal, "storage" => if f16 { "f16" } else { "f32" }, "compute" => "f32",
    };
    if !matches!(p.head_dim, 64 | 128) || !p.seq.is_multiple_of(QUERY_BLOCK) || p.seq == 0 {
        return skipped(
            name,
            base,
            "head_dim must be 64 or 128 and seq a multiple of 64",
        );
    }
    let fit = key_block(p.head_dim, gpu.limits.max_compute_workgroup_storage_size);
    // A tile must divide the 64-row query block (the causal loop ends on a block boundary).
    let bc = p
        .key_block
        .map_or(fit, |b| b.clamp(1, fit))
        .next_power_of_two()
        .min(fit);
    let mut candidates = vec![Candidate::Scalar(bc)];
    let mut not_run = serde_json::Map::new();
    let coop_ready = f16
        && gpu.has(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
        && gpu.has(wgpu::Features::SUBGROUP)
        && coop_supported(&p.coop_properties);
    match (coop_ready, p.subgroup_size) {
        (true, Some(sg)) => {
            for c in CoopAttention::candidates(p.head_dim, p.causal, sg) {
                if c.subgroup_sync && !gpu.has(wgpu::Features::SUBGROUP_BARRIER) {
                    not_run.insert(
                        c.label(),
                        serde_json::json!("not run: the device lacks SUBGROUP_BARRIER"),
                    );
                } else if let Some(why) = c.unsupported(p.seq) {
                    not_run.insert(c.label(), serde_json::json!(format!("not run: {why}")));
                } else if c.shared_bytes() > gpu.limits.max_compute_workgroup_storage_size {
                    not_run.insert(
                        c.label(),
                        serde_json::json!(format!(
                            "not run: needs {} B of workgroup storage, the adapter has {}",
                            c.shared_bytes(),
                            gpu.limits.max_compute_workgroup_storage_size
                        )),
                    );
                } else if c.storage_scratch_bytes(p.seq, p.batch * p.heads)
                    > gpu.limits.max_storage_buffer_binding_size
                {
                    not_run.insert(
                        c.label(),
                        serde_json::json!("not run: S scratch above the storage binding limit"),
                    );
                } else if c.workgroup_size() > gpu.limits.max_compute_invocations_per_workgroup {
                    not_run.insert(
                        c.label(),
                        serde_json::json!("not run: workgroup larger than the adapter allows"),
                    );
                } else {
                    candidates.push(Candidate::Coop(c));
                }
            }
        }
        (true, None) => {
            base.insert(
                "coop".into(),
                serde_json::json!("not run: the subgroup size is not fixed"),
            );
        }
        (false, _) => {
            base.insert(
                "coop".into(),
                serde_json::json!(
                    "not run: needs SHADER_F16, SUBGROUP, EXPERIMENTAL_COOPERATIVE_MATRIX and 16x16x16 f16 with f32 accumulate"
                ),
            );
        }
    }
    let (b, h, s, d) = (
        p.batch as usize,
        p.heads as usize,
        p.seq as usize,
        p.head_dim as usize,
    );
    let elems = b * h * s * d;
    let elem_bytes = if f16 { 2 } else { 4 };
    if (elems * elem_bytes) as u64 > gpu.limits.max_storage_buffer_binding_size {
        return skipped(
            name,
            base,
            "a tensor is larger than the storage binding limit",
        );
    }
    let mut rng = Rng::new(p.seed);
    let round = |x: Vec<f32>| -> Vec<f32> {
        if f16 {
            x.iter().map(|&v| half::f16::from_f32(v).to_f32()).collect()
        } else {
            x
        }
    };
    let (q, k, v) = (
        round(rng.vec_f32(elems)),
        round(rng.vec_f32(elems)),
        round(rng.vec_f32(elems)),
    );
    let bytes = |x: &[f32]| -> Vec<u8> {
        if f16 {
            let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
            bytemuck::cast_slice(&h).to_vec()
        } else {
            bytemuck::cast_slice(x).to_vec()
        }
    };
    let work = 4.0 * (b * h) as f64 * (s as f64) * (s as f64) * d as f64;
    let flops = if p.causal { work / 2.0 } else { work };
    let result = scoped(&gpu, &name.to_string(), async {
        let qb = gpu.storage_init("q", &bytes(&q));
        let kb = gpu.storage_init("k", &bytes(&k));
        let vb = gpu.storage_init("v", &bytes(&v));
        let ob = gpu.storage("o", (elems * elem_bytes) as u64);
        let scale_log2 = std::f32::consts::LOG2_E / (p.head_dim as f32).sqrt();
        let uniform = gpu.uniform(&[p.seq, scale_log2.to_bits(), 0, 0]);
        let gy = p.batch * p.heads;
        let search = search(
            &candidates,
            Candidate::label,
            p.settings,
            async |cand: &Candidate| {
                let label = cand.label();
                let (source, gx) = match cand {
                    Candidate::Scalar(bc) => {
                        (wgsl(p.head_dim, p.causal, f16, *bc), p.seq / QUERY_BLOCK)
                    }
                    Candidate::Coop(c) => (c.wgsl(), p.seq / c.query_block()),
                };
                let pipeline = match gpu.pipeline(&format!("{name} {label}"), &source).await {
                    Ok(pipeline) => pipeline,
                    Err(err) => return Ok(Err(Rejected::NotCompiled(err.to_string()))),
                };
                let scratch_bytes = match cand {
                    Candidate::Coop(c) => c.storage_scratch_bytes(p.seq, gy),
                    Candidate::Scalar(_) => 0,
                };
                let scratch = (scratch_bytes > 0).then(|| gpu.storage("s scratch", scratch_bytes));
                let mut buffers = vec![
                    (&qb, 0, None),
                    (&kb, 0, None),
                    (&vb, 0, None),
                    (&ob, 0, None),
                    (&uniform, 0, None),
                ];
                if let Some(scratch) = &scratch {
                    buffers.push((scratch, 0, None));
                }
                let bind = gpu.bind(&pipeline, &buffers);
                gpu.clear(&ob);
                let measured = gpu
                    .measure_grid(
                        &pipeline,
                        &bind,
                        (gx, gy),
                        p.settings.target_s,
                        p.settings.max_iterations,
                    )
                    .await?;
                let out = gpu.read_back(&ob, 0, (elems * elem_bytes) as u64).await?;
                let check = verify(&q, &k, &v, &out, f16, p);
                Ok(if check.passed {
                    Ok((measured, check))
                } else {
                    Err(Rejected::Wrong(check))
                })
            },
        )
        .await?;
        // Candidates not run (missing features, limits) keep their reason beside the others.
        let mut candidates_json = search.candidates_json(flops);
        if let Some(map) = candidates_json.as_object_mut() {
            for (label, why) in &not_run {
                map.entry(label.clone()).or_insert_with(|| why.clone());
            }
        }
        base.insert("candidates".into(), candidates_json);
        if let Some(retried) = search.retried_json(flops) {
            base.insert("retried".into(), retried);
        }
        let best = search.best().and_then(|t| {
            t.verified()
                .map(|(m, v)| (t.candidate.label(), t.candidate.key_block(), *m, v.clone()))
        });
        Ok::<_, ProbeError>(best.ok_or_else(|| search.failure("attention kernel")))
    })
    .await;
    let best = match result {
        Ok(best) => best,
        Err(err) => {
            base.entry("candidates".to_owned())
                .or_insert(serde_json::Value::Object(not_run));
            return failed(name, base, &err);
        }
    };
    let (label, key_block, measured, check) = match best {
        Ok(best) => best,
        Err(err) => {
            let mut m = failed(name, base, &err);
            m.accumulator = Some("f32".to_owned());
            return m;
        }
    };
    base.insert("kernel".into(), serde_json::json!(label));
    base.insert("key_block".into(), serde_json::json!(key_block));
    Measurement {
        name,
        status: Status::Ok,
        error: None,
        params: base,
        verification: Some(check),
        timing: Some(measured.timing()),
        flops_per_s: Some(flops / measured.per_iter_s()),
        bytes_per_s: None,
        bytes_counted: None,
        tokens_per_s: None,
        accumulator: Some("f32".to_owned()),
    }
}

/// Compares sampled rows of sampled heads of the kernel's output with the f64 reference.
fn verify(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    out: &[u8],
    f16: bool,
    p: &AttentionParams,
) -> Verification {
    let (b, h, s, d) = (
        p.batch as usize,
        p.heads as usize,
        p.seq as usize,
        p.head_dim as usize,
    );
    let o: Vec<f32> = if f16 {
        bytemuck::cast_slice::<u8, half::f16>(out)
            .iter()
            .map(|x| x.to_f32())
            .collect()
    } else {
        bytemuck::cast_slice::<u8, f32>(out).to_vec()
    };
    let heads_checked: Vec<usize> = (0..b * h)
        .step_by(((b * h) / CHECK_HEADS).max(1))
        .take(CHECK_HEADS)
        .collect();
    let rows: Vec<usize> = (0..CHECK_ROWS.min(s))
        .map(|i| i * (s - 1) / (CHECK_ROWS.min(s) - 1).max(1))
        .collect();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    for &bh in &heads_checked {
        let off = bh * s * d;
        for &r in &rows {
            want.extend(reference_row(
                &q[off..off + s * d],
                &k[off..off + s * d],
                &v[off..off + s * d],
                s,
                d,
                r,
                p.causal,
            ));
            got.extend(
                o[off + r * d..off + (r + 1) * d]
                    .iter()
                    .map(|&x| f64::from(x)),
            );
        }
    }
    let err = rel_frobenius(&got, &want);
    // f16 output rounding is 2^-11 relative; the f32 online softmax adds far less (the coop
    // kernel also rounds P to f16: 2^-11 relative per weight, averaging out over the keys).
    let tolerance = if f16 { 5e-3 } else { 1e-4 };
    Verification {
        passed: err.is_finite() && err <= tolerance,
        rel_error: err,
        tolerance,
        checked_elements: got.len() as u64,
        reference: "f64 softmax attention on the CPU over sampled rows of sampled heads, same rounded inputs".to_owned(),
    }
}

//! A CPU model of the kernel's softmax arithmetic, which the tests hold to the f64 reference.

use super::RESCALE_THRESHOLD_LOG2;

/// A CPU model of the kernel's arithmetic for one query row: key blocks of `key_block`, scores
/// in log2 units, the lazy reference with [`RESCALE_THRESHOLD_LOG2`], P rounded to f16, f32
/// sums. Returns the output row (before the f16 store) and how many rescales happened. Used by
/// the tests to check the softmax scheme (not the fragment layouts) against the f64 reference.
#[allow(clippy::too_many_arguments)] // one row of one head: the tensors, its shape and the blocking
pub fn simulate_row(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    head_dim: usize,
    row: usize,
    keys: usize,
    causal: bool,
    key_block: usize,
) -> (Vec<f32>, u32) {
    let d = head_dim;
    let scale_log2 = std::f32::consts::LOG2_E / (d as f32).sqrt();
    let mut o = vec![0f32; d];
    let (mut m_ref, mut l_sum) = (-1e30f32, 0f32);
    let mut rescales = 0;
    let mut k0 = 0;
    while k0 < keys {
        let x: Vec<f32> = (k0..k0 + key_block)
            .map(|j| {
                if causal && j > row {
                    return -1e30;
                }
                // The fragments accumulate the f16 products in f32.
                let dot: f32 = (0..d).map(|t| q[row * d + t] * k[j * d + t]).sum();
                dot * scale_log2
            })
            .collect();
        let bmax = x.iter().cloned().fold(-1e30f32, f32::max);
        let mut alpha = 1.0;
        if k0 == 0 {
            m_ref = bmax;
        } else if bmax > m_ref + RESCALE_THRESHOLD_LOG2 {
            alpha = (m_ref - bmax).exp2();
            m_ref = bmax;
            rescales += 1;
        }
        l_sum *= alpha;
        o.iter_mut().for_each(|x| *x *= alpha);
        for (jj, &xj) in x.iter().enumerate() {
            let e = (xj - m_ref).exp2();
            l_sum += e;
            let p16 = half::f16::from_f32(e).to_f32();
            let j = k0 + jj;
            for t in 0..d {
                o[t] += p16 * v[j * d + t];
            }
        }
        k0 += key_block;
    }
    (o.iter().map(|x| x / l_sum).collect(), rescales)
}

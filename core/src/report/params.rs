//! Typed views of a measurement's `params`: the keys the probe writes ([`key`]) and the values
//! the front ends read from them ([`ProblemShape`], [`DecodeModel`]). The JSON keeps a free map
//! (a stage may record more than anyone reads), but every key that is read is named here once,
//! so the writer and the readers cannot drift apart.

use super::Measurement;

/// Parameter keys shared by the probe (writer) and the front ends (readers).
pub mod key {
    /// GEMM rows of A and C.
    pub const M: &str = "m";
    /// GEMM columns of B and C.
    pub const N: &str = "n";
    /// GEMM inner dimension.
    pub const K: &str = "k";
    /// Attention batch.
    pub const BATCH: &str = "batch";
    /// Attention heads.
    pub const HEADS: &str = "heads";
    /// Attention sequence length (queries = keys).
    pub const SEQ: &str = "seq";
    /// Attention head dimension.
    pub const HEAD_DIM: &str = "head_dim";
    /// Parameters of the model a decode simulation reads per token.
    pub const MODEL_PARAMS: &str = "model_params";
    /// Hidden size (the vector length) of a decode simulation.
    pub const HIDDEN: &str = "hidden";
}

/// The problem a GEMM or attention measurement timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemShape {
    /// C (m × n) = A (m × k) · B (k × n).
    Gemm {
        /// Rows.
        m: u64,
        /// Columns.
        n: u64,
        /// Inner dimension.
        k: u64,
    },
    /// Fused attention over `seq` tokens.
    Attention {
        /// Sequences.
        batch: u64,
        /// Heads.
        heads: u64,
        /// Tokens (queries = keys).
        seq: u64,
        /// Head dimension.
        head_dim: u64,
    },
}

impl ProblemShape {
    /// `4096³` for a square GEMM, `256×512×128` otherwise, `seq 2048` for attention.
    pub fn label(&self) -> String {
        match *self {
            ProblemShape::Gemm { m, n, k } if m == n && n == k => format!("{m}³"),
            ProblemShape::Gemm { m, n, k } => format!("{m}×{n}×{k}"),
            ProblemShape::Attention { seq, .. } => format!("seq {seq}"),
        }
    }
}

/// The model a decode simulation stood for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeModel {
    /// Parameters read per token.
    pub model_params: u64,
    /// Hidden size, when recorded.
    pub hidden: Option<u64>,
}

impl Measurement {
    fn param_u64(&self, key: &str) -> Option<u64> {
        self.params.get(key).and_then(|v| v.as_u64())
    }

    /// The GEMM or attention problem this measurement timed, when its parameters say.
    pub fn problem_shape(&self) -> Option<ProblemShape> {
        let get = |k| self.param_u64(k);
        if let (Some(m), Some(n), Some(k)) = (get(key::M), get(key::N), get(key::K)) {
            return Some(ProblemShape::Gemm { m, n, k });
        }
        Some(ProblemShape::Attention {
            seq: get(key::SEQ)?,
            batch: get(key::BATCH).unwrap_or(1),
            heads: get(key::HEADS).unwrap_or(1),
            head_dim: get(key::HEAD_DIM).unwrap_or(0),
        })
    }

    /// The model a decode simulation stood for, when its parameters say.
    pub fn decode_model(&self) -> Option<DecodeModel> {
        Some(DecodeModel {
            model_params: self.param_u64(key::MODEL_PARAMS)?,
            hidden: self.param_u64(key::HIDDEN),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Metric, Status};

    fn measurement(params: &[(&str, u64)]) -> Measurement {
        Measurement {
            name: Metric::all()[0],
            status: Status::Ok,
            error: None,
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::json!(v)))
                .collect(),
            verification: None,
            timing: None,
            flops_per_s: None,
            bytes_per_s: None,
            bytes_counted: None,
            tokens_per_s: None,
            accumulator: None,
        }
    }

    #[test]
    fn shapes_and_decode_models_read_back() {
        let gemm = measurement(&[(key::M, 4096), (key::N, 4096), (key::K, 4096)]);
        assert_eq!(
            gemm.problem_shape().map(|s| s.label()),
            Some("4096³".into())
        );
        let rect = measurement(&[(key::M, 256), (key::N, 512), (key::K, 128)]);
        assert_eq!(
            rect.problem_shape().map(|s| s.label()),
            Some("256×512×128".into())
        );
        let attn = measurement(&[(key::SEQ, 2048), (key::HEADS, 32), (key::HEAD_DIM, 128)]);
        assert_eq!(
            attn.problem_shape(),
            Some(ProblemShape::Attention {
                batch: 1,
                heads: 32,
                seq: 2048,
                head_dim: 128
            })
        );
        assert_eq!(measurement(&[]).problem_shape(), None);
        let decode = measurement(&[(key::MODEL_PARAMS, 16_777_216), (key::HIDDEN, 4096)]);
        assert_eq!(
            decode.decode_model(),
            Some(DecodeModel {
                model_params: 16_777_216,
                hidden: Some(4096)
            })
        );
        assert_eq!(measurement(&[(key::HIDDEN, 4096)]).decode_model(), None);
    }
}

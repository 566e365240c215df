//! [`ModelSpec`]: the shape of a transformer language model, everything the estimates need.
//!
//! A `ModelSpec` is built from a Hugging Face `config.json` by [`crate::config`] or taken from the
//! bundled [`crate::model_catalog`]. It is plain data; [`crate::tensors::tensors`] turns it into the
//! exact list of stored weights.

use serde::{Deserialize, Serialize};

/// The model families headroom knows exactly (parameter counts equal to the checkpoint's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// `llama` (Llama 1/2/3.x and many derivatives).
    Llama,
    /// `mistral`.
    Mistral,
    /// `mixtral` (sparse MoE).
    Mixtral,
    /// `qwen2` (q/k/v biases).
    Qwen2,
    /// `qwen2_moe` (routed + shared experts).
    Qwen2Moe,
    /// `qwen3` (q/k norms, explicit head_dim).
    Qwen3,
    /// `qwen3_moe`.
    Qwen3Moe,
    /// `gemma`.
    Gemma,
    /// `gemma2` (four norms per layer, alternating sliding window).
    Gemma2,
    /// `gemma3` / `gemma3_text` (q/k norms, 5 local : 1 global layers).
    Gemma3,
    /// `phi3` (fused qkv and gate_up projections).
    Phi3,
    /// `deepseek_v2` (MLA, shared experts, dense first layers).
    DeepseekV2,
    /// `deepseek_v3`.
    DeepseekV3,
    /// `gpt_oss` (attention sinks, biases, MoE).
    GptOss,
    /// `nemotron_h` (Mamba-2 / attention / MLP / MoE blocks from `hybrid_override_pattern`).
    NemotronH,
    /// `llama4` / `llama4_text` (chunked attention, interleaved MoE with a shared expert).
    Llama4,
    /// `deepseek_v32` (MLA with the sparse-attention indexer).
    DeepseekV32,
    /// `glm4_moe_lite` (MLA + MoE, GLM-4.7-Flash).
    Glm4MoeLite,
    /// `glm_moe_dsa` (GLM-5: MLA with an indexer + MoE).
    GlmMoeDsa,
    /// `qwen3_next` (Gated DeltaNet + gated attention, MoE).
    Qwen3Next,
    /// `qwen3_5` / `qwen3_5_text` (Gated DeltaNet + gated attention, dense).
    #[serde(rename = "qwen3_5")]
    Qwen35,
    /// `qwen3_5_moe` / `qwen3_5_moe_text`.
    #[serde(rename = "qwen3_5_moe")]
    Qwen35Moe,
    /// `starcoder2` (LayerNorm with biases, ungated MLP).
    Starcoder2,
    /// `cohere` (parallel block, one LayerNorm, tied embeddings).
    Cohere,
    /// `cohere2` (as Cohere, with sliding-window layers).
    Cohere2,
    /// `olmo2` (post-norms, q/k norms over the whole projection).
    Olmo2,
    /// `olmo3` (as OLMo-2, with sliding-window layers).
    Olmo3,
    /// `olmoe`.
    Olmoe,
    /// `granite`.
    Granite,
    /// `granitemoe`.
    GraniteMoe,
    /// `exaone4` (post-norms, per-head q/k norms, local/global layers).
    Exaone4,
    /// `smollm3`.
    Smollm3,
    /// `seed_oss`.
    SeedOss,
    /// `ernie4_5`.
    #[serde(rename = "ernie4_5")]
    Ernie45,
    /// `hunyuan_v1_dense`.
    HunyuanV1Dense,
    /// `hunyuan_v1_moe` (Hunyuan-A13B: per-head q/k norms, routed experts beside a shared MLP).
    HunyuanV1Moe,
    /// `apertus` (ungated xIELU MLP).
    Apertus,
    /// `glm4` (four norms, fused gate/up).
    Glm4,
    /// `glm4_moe` (GLM-4.5/4.6).
    Glm4Moe,
    /// `minimax_m2`.
    MinimaxM2,
    /// `lfm2` (short conv + attention).
    Lfm2,
    /// `lfm2_moe`.
    Lfm2Moe,
    /// `granitemoehybrid` (Granite 4: Mamba-2 and attention layers, MoE + shared MLP).
    GraniteMoeHybrid,
    /// `ernie4_5_moe`.
    #[serde(rename = "ernie4_5_moe")]
    Ernie45Moe,
    /// `phimoe` (LayerNorms with biases, Mixtral-style experts).
    Phimoe,
    /// `mistral4` (MLA + MoE).
    Mistral4,
    /// `minimax` (MiniMax-01: lightning and softmax attention layers, MoE).
    Minimax,
    /// `falcon_h1` (attention and Mamba-2 side by side in every layer).
    FalconH1,
    /// `kimi_linear` (Kimi Delta Attention and MLA layers, MoE).
    KimiLinear,
    /// `mllama` / `mllama_text_model` (Llama-3.2-Vision: gated cross-attention layers).
    Mllama,
    /// `gemma4` / `gemma4_text` (local/global layers, KV sharing, MoE beside the MLP, per-layer
    /// inputs).
    Gemma4,
    /// `gemma3n` / `gemma3n_text` (AltUp, LAuReL, per-layer inputs, KV-sharing layers, per-layer
    /// MLP widths).
    Gemma3n,
    /// `deepseek_v4` (windowed + compressed attention, hyper-connections, MoE).
    DeepseekV4,
    /// `mimo_v2_flash` (sliding layers with sinks and their own head shapes, full layers, MoE).
    MimoV2Flash,
    /// An unknown `model_type` whose generic fields sufficed: the estimate is approximate.
    Other(String),
}

/// Attention of one layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LayerAttention {
    /// Attends to every earlier token.
    Full,
    /// Attends to the last `window` tokens only (the KV cache holds at most `window` tokens).
    Sliding {
        /// Window length in tokens.
        window: u64,
    },
    /// Attends only within its chunk of `chunk` tokens (Llama 4's chunked layers): the cache holds
    /// at most `chunk` tokens.
    Chunked {
        /// Chunk length in tokens (`attention_chunk_size`).
        chunk: u64,
    },
}

impl LayerAttention {
    /// The most tokens a layer with this span attends to (`None`: all of them).
    pub fn limit(&self) -> Option<u64> {
        match self {
            LayerAttention::Full => None,
            LayerAttention::Sliding { window } => Some(*window),
            LayerAttention::Chunked { chunk } => Some(*chunk),
        }
    }
}

/// Mixture-of-experts layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoeSpec {
    /// Routed experts per MoE layer.
    pub num_experts: u64,
    /// Routed experts each token goes through.
    pub experts_per_token: u64,
    /// Intermediate size of one routed expert.
    pub expert_intermediate_size: u64,
    /// Shared experts (always active), 0 if none.
    pub num_shared_experts: u64,
    /// Intermediate size of the shared expert block (all shared experts together), 0 if none.
    pub shared_intermediate_size: u64,
    /// Layers that use a dense MLP instead of experts (e.g. DeepSeek's `first_k_dense_replace`),
    /// as layer indices.
    pub dense_layers: Vec<u64>,
}

/// Multi-head latent attention (DeepSeek-V2/V3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MlaSpec {
    /// Rank of the query compression; `None` when queries are projected directly.
    pub q_lora_rank: Option<u64>,
    /// Rank of the compressed key/value latent (what an MLA-aware cache stores).
    pub kv_lora_rank: u64,
    /// Per-head dimension that carries rotary position (shared key part, cached).
    pub qk_rope_head_dim: u64,
    /// Per-head dimension without rotary position.
    pub qk_nope_head_dim: u64,
    /// Per-head value dimension.
    pub v_head_dim: u64,
}

/// How far back an attention layer looks, which bounds how many tokens its cache holds.
/// (Kept under its old name: every layer of a [`ModelSpec`] has one in
/// [`ModelSpec::layer_attention`]; [`Mixer::Attention`] carries it per layer.)
pub type AttentionSpan = LayerAttention;

/// Which query/key normalization an attention layer applies before rotary embedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QkNorm {
    /// No query/key norm.
    #[default]
    None,
    /// One norm of `head_dim` shared by all heads (Qwen3, Gemma-3, Cohere-2 style).
    PerHead,
    /// One norm over the whole projection, `heads · head_dim` for q and `kv_heads · head_dim`
    /// for k (OLMo-2, OLMoE, MiniMax-M2).
    Whole,
}

/// A (grouped-query) softmax attention mixer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttentionSpec {
    /// Query heads.
    pub heads: u64,
    /// Key/value heads.
    pub kv_heads: u64,
    /// Width of a query/key head.
    pub head_dim: u64,
    /// Width of a value head (equal to `head_dim` in every family but a few).
    pub v_head_dim: u64,
    /// Full, sliding-window or chunked.
    pub span: AttentionSpan,
    /// Biases on the q, k and v projections.
    pub qkv_bias: bool,
    /// Bias on the output projection.
    pub output_bias: bool,
    /// Query/key normalization.
    pub qk_norm: QkNorm,
    /// One learned sink logit per head (gpt-oss).
    pub sinks: bool,
    /// The query projection also emits a per-head output gate (Qwen3-Next, Qwen3.5: `q_proj`
    /// is twice as wide).
    pub output_gate: bool,
    /// q, k and v are one fused matrix in the checkpoint (Phi-3; only the tensor names differ).
    pub fused_qkv: bool,
    /// The layer reads another layer's keys and values: it has no k/v projections (nor k norm)
    /// and caches nothing of its own (Gemma-3n / Gemma-4 KV sharing).
    pub shares_cache: bool,
    /// Values reuse the key projection: no v_proj (Gemma-4's global layers, `attention_k_eq_v`).
    #[serde(default)]
    pub values_from_keys: bool,
}

/// The sparse-attention indexer of DeepSeek-V3.2 / GLM-5: a small attention that picks the
/// `topk` keys each query attends to, with its own key cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexerSpec {
    /// Indexer heads (`index_n_heads`).
    pub heads: u64,
    /// Indexer head width (`index_head_dim`): the key cache holds one such row per token.
    pub head_dim: u64,
    /// Keys each query keeps (`index_topk`).
    pub topk: u64,
}

/// Gated DeltaNet linear attention (Qwen3-Next, Qwen3.5): a causal conv over q, k, v and a
/// recurrent state per value head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinearAttentionSpec {
    /// Key heads (`linear_num_key_heads`).
    pub key_heads: u64,
    /// Value heads (`linear_num_value_heads`).
    pub value_heads: u64,
    /// Key head width (`linear_key_head_dim`).
    pub key_head_dim: u64,
    /// Value head width (`linear_value_head_dim`).
    pub value_head_dim: u64,
    /// Causal conv kernel length (`linear_conv_kernel_dim`).
    pub conv_kernel: u64,
    /// q/k/v/z and b/a projections stored split (Qwen3.5: `in_proj_qkv`, `in_proj_z`, `in_proj_b`,
    /// `in_proj_a`) rather than fused (Qwen3-Next: `in_proj_qkvz`, `in_proj_ba`); same count.
    pub split_projections: bool,
}

impl LinearAttentionSpec {
    /// Width of q and k together: `2 · key_heads · key_head_dim`.
    pub fn qk_dim(&self) -> u64 {
        self.key_heads
            .saturating_mul(self.key_head_dim)
            .saturating_mul(2)
    }

    /// Width of v (and of the output gate z): `value_heads · value_head_dim`.
    pub fn value_dim(&self) -> u64 {
        self.value_heads.saturating_mul(self.value_head_dim)
    }

    /// Channels of the causal conv: q, k and v.
    pub fn conv_dim(&self) -> u64 {
        self.qk_dim().saturating_add(self.value_dim())
    }
}

/// A Mamba-2 mixer (Nemotron-H, Granite-4 hybrids, Falcon-H1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mamba2Spec {
    /// SSM heads (`mamba_num_heads` / `mamba_n_heads`).
    pub heads: u64,
    /// Width of one head (`mamba_head_dim` / `mamba_d_head`).
    pub head_dim: u64,
    /// State size per head channel (`ssm_state_size` / `mamba_d_state`).
    pub state_size: u64,
    /// B/C groups (`n_groups` / `mamba_n_groups`).
    pub groups: u64,
    /// Causal conv kernel length (`conv_kernel` / `mamba_d_conv`).
    pub conv_kernel: u64,
    /// Biases on `in_proj` and `out_proj` (`use_bias` / `mamba_proj_bias`).
    pub proj_bias: bool,
    /// Bias on the conv (`use_conv_bias` / `mamba_conv_bias`).
    pub conv_bias: bool,
    /// A gated RMS norm of the inner width before `out_proj` (`mamba_rms_norm`; Nemotron-H
    /// and Granite always have it).
    pub gated_norm: bool,
}

impl Mamba2Spec {
    /// Inner width: `heads · head_dim`.
    pub fn inner(&self) -> u64 {
        self.heads.saturating_mul(self.head_dim)
    }

    /// Channels of the causal conv: x, B and C (`inner + 2 · groups · state_size`).
    pub fn conv_dim(&self) -> u64 {
        self.inner().saturating_add(
            self.groups
                .saturating_mul(self.state_size)
                .saturating_mul(2),
        )
    }
}

/// MiniMax-01's lightning attention: a linear attention whose state per head is a
/// `head_dim × head_dim` matrix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightningSpec {
    /// Heads.
    pub heads: u64,
    /// Width of a head.
    pub head_dim: u64,
}

/// Kimi Delta Attention (Kimi-Linear): q, k, v projections with a causal conv each, a
/// low-rank forget gate and output gate, and a recurrent state per head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KimiDeltaSpec {
    /// Heads (`linear_num_heads`).
    pub heads: u64,
    /// Width of a head (`linear_head_dim`); also the rank of the gates' low-rank projections.
    pub head_dim: u64,
    /// Causal conv kernel length (`linear_conv_kernel_dim`).
    pub conv_kernel: u64,
}

/// DeepSeek-V4's attention: one shared key/value head of `head_dim` behind a low-rank query, a
/// grouped low-rank output, learned sinks, a sliding window of raw keys, and (when
/// `compress_ratio` > 0) a compressor that keeps one compressed row per `compress_ratio` tokens,
/// with an indexer of its own on the ratio-4 layers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedAttentionSpec {
    /// Query heads.
    pub heads: u64,
    /// Width of a head and of the shared key/value row.
    pub head_dim: u64,
    /// Rank of the query compression (`q_lora_rank`).
    pub q_lora_rank: u64,
    /// Output groups (`o_groups`).
    pub o_groups: u64,
    /// Rank of each output group (`o_lora_rank`).
    pub o_lora_rank: u64,
    /// Raw tokens kept (`sliding_window`).
    pub window: u64,
    /// Tokens per compressed row (`compress_ratios[i]`); 0: no compressor.
    pub compress_ratio: u64,
    /// The compressor's indexer (ratio-4 layers).
    pub indexer: Option<IndexerSpec>,
}

impl CompressedAttentionSpec {
    /// The compressor's windows overlap (twice the rows) on the ratio-4 layers.
    pub fn overlap(&self) -> u64 {
        if self.compress_ratio == 4 { 2 } else { 1 }
    }
}

/// LFM2's gated short convolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShortConvSpec {
    /// Conv kernel length (`conv_L_cache`); the state holds this many columns.
    pub kernel: u64,
    /// Biases on the projections and the conv (`conv_bias`).
    pub bias: bool,
}

/// What mixes information across tokens in one decoder layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mixer {
    /// Softmax attention over earlier tokens (full, sliding or chunked).
    Attention(AttentionSpec),
    /// Multi-head latent attention (DeepSeek-V2/V3 family), optionally with an indexer.
    Mla {
        /// Query heads.
        heads: u64,
        /// The low-rank shapes.
        mla: MlaSpec,
        /// The sparse-attention indexer, when the model has one.
        indexer: Option<IndexerSpec>,
    },
    /// Gated DeltaNet linear attention: state per sequence, no per-token cache.
    LinearAttention(LinearAttentionSpec),
    /// Mamba-2 selective state space: state per sequence.
    Mamba2(Mamba2Spec),
    /// Gated short convolution (LFM2): state per sequence.
    ShortConv(ShortConvSpec),
    /// MiniMax-01's lightning (linear) attention: state per sequence.
    Lightning(LightningSpec),
    /// Kimi Delta Attention (Kimi-Linear): state per sequence.
    KimiDelta(KimiDeltaSpec),
    /// DeepSeek-V4's windowed + compressed attention.
    CompressedAttention(CompressedAttentionSpec),
    /// Several mixers side by side on the same input (Falcon-H1: attention and Mamba-2).
    Parallel(Vec<Mixer>),
    /// Attention over an encoder's tokens (mllama's image tokens), with its own gates.
    CrossAttention(AttentionSpec),
    /// No mixer (Nemotron-H's MLP-only layers).
    None,
}

/// A dense feed-forward block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenseMlpSpec {
    /// Hidden width of the MLP.
    pub intermediate: u64,
    /// Gated (gate, up, down: SwiGLU/GeGLU) or ungated (up, down).
    pub gated: bool,
    /// Biases on every projection.
    pub bias: bool,
    /// Gate and up fused into one matrix in the checkpoint (Phi-3; names only).
    pub fused_gate_up: bool,
}

/// A mixture-of-experts feed-forward block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoeMlpSpec {
    /// Routed experts.
    pub experts: u64,
    /// Routed experts each token goes through.
    pub top_k: u64,
    /// Hidden width of one routed expert.
    pub expert_intermediate: u64,
    /// Experts are gated (gate, up, down) or ungated (up, down: Nemotron-H).
    pub gated: bool,
    /// Biases on the experts' projections (gpt-oss).
    pub expert_bias: bool,
    /// Bias on the router (gpt-oss).
    pub router_bias: bool,
    /// A per-expert score correction bias (DeepSeek-V3's aux-loss-free routing, GLM-4.5, ...).
    pub correction_bias: bool,
    /// Width of all shared (always active) experts together; 0 when there are none.
    pub shared_intermediate: u64,
    /// The shared expert is scaled by a sigmoid gate of a `[1, hidden]` projection (Qwen2-MoE,
    /// Qwen3-Next).
    pub shared_gate: bool,
    /// Experts run in a smaller latent width, with projections in and out (Nemotron-H
    /// `moe_latent_size`).
    pub latent: Option<u64>,
}

/// The feed-forward half of one decoder layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Mlp {
    /// A dense MLP.
    Dense(DenseMlpSpec),
    /// A mixture of experts.
    Moe(MoeMlpSpec),
    /// No MLP (Nemotron-H's mixer-only layers).
    None,
}

/// One decoder layer: a mixer, an MLP and the norms around them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// What mixes tokens.
    pub mixer: Mixer,
    /// The feed-forward block.
    pub mlp: Mlp,
    /// Norms of `hidden_size` width in the layer: 2 in most (before the mixer and before the
    /// MLP), 4 with Gemma-2/3's post-norms, 1 in a parallel block (Cohere) or a one-part layer
    /// (Nemotron-H).
    pub norms: u64,
    /// Extra weights of this layer that are neither mixer nor MLP, each `[rows, cols]` (1-D when
    /// `rows` is 0): Gemma-3n's per-layer input gate and AltUp, mllama's cross-attention gates.
    #[serde(default)]
    pub extra: Vec<ExtraWeight>,
}

/// A named extra weight of a layer or a part (see [`LayerSpec::extra`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtraWeight {
    /// What it is.
    pub what: ExtraWeightKind,
    /// Shape, outermost first (`[n]` for a vector).
    pub shape: Vec<u64>,
}

/// The kinds of [`ExtraWeight`] (each a fixed tensor name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExtraWeightKind {
    /// A learned scalar or gate vector (mllama's `cross_attn_attn_gate`, `cross_attn_mlp_gate`;
    /// Gemma-3n's `layer_scalar`).
    Gate,
    /// A norm weight other than the layer's `hidden_size` norms.
    Norm,
    /// A projection matrix.
    Projection,
}

/// The parts of a model that [`crate::components`] counts separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// Token embedding table(s).
    Embedding,
    /// The decoder layers and the final norm.
    Decoder,
    /// The output projection (`lm_head`) when it is not tied to the embedding.
    OutputHead,
    /// The image encoder (vision tower).
    VisionEncoder,
    /// Maps image features into the language model's width.
    VisionProjector,
    /// The audio encoder.
    AudioEncoder,
    /// Maps audio features into the language model's width.
    AudioProjector,
    /// Multi-token-prediction layers (not loaded by transformers; not in the total).
    Mtp,
    /// A draft model loaded beside the model for speculative decoding
    /// ([`crate::extra_models`]).
    DraftModel,
}

impl ComponentKind {
    /// A vision or audio encoder or projector: the towers llama.cpp keeps in a separate mmproj
    /// file ([`crate::extra_models`]).
    pub fn is_tower(self) -> bool {
        matches!(
            self,
            ComponentKind::VisionEncoder
                | ComponentKind::VisionProjector
                | ComponentKind::AudioEncoder
                | ComponentKind::AudioProjector
        )
    }

    /// A short name for display and JSON (`embedding`, `decoder`, `vision_encoder`, ...).
    pub fn name(self) -> &'static str {
        match self {
            ComponentKind::Embedding => "embedding",
            ComponentKind::Decoder => "decoder",
            ComponentKind::OutputHead => "output_head",
            ComponentKind::VisionEncoder => "vision_encoder",
            ComponentKind::VisionProjector => "vision_projector",
            ComponentKind::AudioEncoder => "audio_encoder",
            ComponentKind::AudioProjector => "audio_projector",
            ComponentKind::Mtp => "mtp",
            ComponentKind::DraftModel => "draft_model",
        }
    }
}

/// A transformer encoder (vision or audio tower), described generically: ViT-style patch
/// embedding, optional learned positions and class token, pre/post norms, and layers of
/// attention + MLP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncoderSpec {
    /// [`ComponentKind::VisionEncoder`] or [`ComponentKind::AudioEncoder`].
    pub kind: ComponentKind,
    /// Width.
    pub hidden: u64,
    /// Layers.
    pub layers: u64,
    /// MLP hidden width.
    pub intermediate: u64,
    /// Inputs of the patch embedding (`channels · patch² · temporal patch`), 0 when the part
    /// takes features directly.
    pub patch_inputs: u64,
    /// The patch embedding has a bias.
    pub patch_bias: bool,
    /// Learned position rows (0: rotary or none).
    pub positions: u64,
    /// A learned class token.
    pub class_token: bool,
    /// A norm before the layers (CLIP's `pre_layrnorm`).
    pub pre_norm: bool,
    /// A norm after the layers.
    pub post_norm: bool,
    /// Width of q, k and v (`heads · head_dim`; equal to `hidden` in most towers).
    pub attention_dim: u64,
    /// Biases on q, k, v and the output projection.
    pub attention_bias: bool,
    /// Gated MLP (gate, up, down) instead of fc1/fc2.
    pub mlp_gated: bool,
    /// Biases on the MLP.
    pub mlp_bias: bool,
    /// Norms are LayerNorm with a bias.
    pub norm_bias: bool,
    /// Other weights of the tower (mllama's tile embeddings and gates), each its own tensor.
    #[serde(default)]
    pub extra: Vec<ExtraWeight>,
}

/// A projector: a few linear maps and norms between an encoder and the language model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProjectorSpec {
    /// [`ComponentKind::VisionProjector`] or [`ComponentKind::AudioProjector`].
    pub kind: ComponentKind,
    /// Linear maps `(in, out, bias)` in order.
    pub linears: Vec<(u64, u64, bool)>,
    /// Norm weights `(width, bias)`.
    pub norms: Vec<(u64, bool)>,
}

/// Multi-token-prediction layers that checkpoints ship beside the decoder (DeepSeek-V3's
/// `num_nextn_predict_layers`, GLM-4.5, Qwen3-Next, MiMo). transformers does not load them;
/// vLLM and SGLang do for speculative decoding. Counted as their own component, not in the total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MtpSpec {
    /// How many MTP layers.
    pub layers: u64,
    /// The decoder layer inside each (besides `eh_proj` `[hidden, 2·hidden]` and three norms).
    pub layer: LayerSpec,
    /// Each MTP layer repeats the embedding table and the output head (DeepSeek-V3, GLM-4.5).
    pub own_embedding: bool,
}

/// The shape of a model: everything the estimates need, nothing they don't.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Display name (catalog name, Hub id or file name).
    pub name: String,
    /// Family, which decides the exact tensor list.
    pub architecture: Architecture,
    /// True when the family was not known and the counts are an estimate from generic fields.
    pub approximate: bool,
    /// `hidden_size`.
    pub hidden_size: u64,
    /// `num_hidden_layers`.
    pub num_layers: u64,
    /// `num_attention_heads`.
    pub num_attention_heads: u64,
    /// `num_key_value_heads` (equals `num_attention_heads` without grouped-query attention).
    pub num_kv_heads: u64,
    /// Per-head dimension: explicit `head_dim` when the config has one, else hidden / heads.
    pub head_dim: u64,
    /// `vocab_size`.
    pub vocab_size: u64,
    /// Dense MLP `intermediate_size`.
    pub intermediate_size: u64,
    /// Whether the output projection shares the input embedding's weights.
    pub tie_word_embeddings: bool,
    /// `max_position_embeddings`: the longest context the model was built for.
    pub max_context: u64,
    /// Attention of every layer, `num_layers` entries.
    pub layer_attention: Vec<LayerAttention>,
    /// Mixture-of-experts layout, if any.
    pub moe: Option<MoeSpec>,
    /// Multi-head latent attention, if any.
    pub mla: Option<MlaSpec>,
    /// `torch_dtype` of the checkpoint, e.g. `bfloat16`.
    pub torch_dtype: Option<String>,
    /// Checkpoint quantization method from `quantization_config.quant_method`, e.g. `mxfp4`.
    pub checkpoint_quantization: Option<String>,
    /// `attention_bias`: the q/k/v/o projections carry biases (Llama variants, gpt-oss). Qwen2's
    /// q/k/v biases are part of its architecture and do not depend on this flag.
    #[serde(default)]
    pub attention_bias: bool,
    /// `mlp_bias`: the dense MLP projections carry biases.
    #[serde(default)]
    pub mlp_bias: bool,
    /// Decoder layers in order, each a mixer and an MLP (see [`ModelSpec::layers`]). Empty in a
    /// spec written by hand or read from a GGUF header: [`ModelSpec::layers`] then derives the
    /// layers from the fields above.
    #[serde(default)]
    pub layers: Vec<LayerSpec>,
    /// Norms are LayerNorm with a bias (StarCoder2, Phi-1/2, GPT-2 style) rather than RMSNorm.
    #[serde(default)]
    pub norm_bias: bool,
    /// Encoders outside the language model (vision and audio towers).
    #[serde(default)]
    pub encoders: Vec<EncoderSpec>,
    /// Projectors between the encoders and the language model.
    #[serde(default)]
    pub projectors: Vec<ProjectorSpec>,
    /// Multi-token-prediction layers the checkpoint ships (not counted in the total).
    #[serde(default)]
    pub mtp: Option<MtpSpec>,
    /// What headroom could not count exactly and why; empty when every count is exact.
    #[serde(default)]
    pub approximations: Vec<String>,
    /// Rows the input embedding has beyond `vocab_size` (mllama: 8 image tokens), not in the
    /// output head.
    #[serde(default)]
    pub embedding_extra_rows: u64,
    /// Per-layer input embeddings (Gemma-3n / Gemma-4 "E" models), if any.
    #[serde(default)]
    pub per_layer_embedding: Option<PerLayerEmbeddingSpec>,
    /// Model-level weights after the final norm that are neither layers nor head (DeepSeek-V4's
    /// hyper-connection head `hc_head`).
    #[serde(default)]
    pub extra_weights: Vec<ExtraWeight>,
}

/// Gemma's per-layer inputs: a second embedding table giving every layer its own `width`-wide
/// input, projected from the hidden state as well (`per_layer_model_projection` and its norm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerLayerEmbeddingSpec {
    /// Rows of the table (`vocab_size_per_layer_input`).
    pub vocab: u64,
    /// Width per layer (`hidden_size_per_layer_input`).
    pub width: u64,
}

/// The context used when the user gives none: 4096 tokens, or the model's maximum if smaller.
/// Never silently the maximum (a 128K–262K default makes nothing fit).
pub const DEFAULT_CONTEXT_TOKENS: u64 = 4096;

impl ModelSpec {
    /// The model with its multi-token-prediction layers loaded as extra decoder layers, as
    /// engines load them for speculative decoding (vLLM and SGLang's MTP, llama.cpp's `nextn`
    /// blocks); the model itself when it has none. Each MTP layer is its decoder layer plus
    /// `eh_proj` `[hidden, 2·hidden]`, three `hidden_size` norms and, where the checkpoint repeats
    /// them, its own embedding and head (the same parts [`crate::components::components`]
    /// counts for [`ComponentKind::Mtp`]).
    pub fn with_mtp_layers(&self) -> ModelSpec {
        let Some(mtp) = &self.mtp else {
            return self.clone();
        };
        let h = self.hidden_size;
        let mut one = mtp.layer.clone();
        // enorm, hnorm and the shared head's norm: extras, as a layer names at most 4 norms.
        for _ in 0..3 {
            one.extra.push(ExtraWeight {
                what: ExtraWeightKind::Norm,
                shape: vec![h],
            });
        }
        one.extra.push(ExtraWeight {
            what: ExtraWeightKind::Projection,
            shape: vec![h, h.saturating_mul(2)],
        });
        if mtp.own_embedding {
            for _ in 0..2 {
                one.extra.push(ExtraWeight {
                    what: ExtraWeightKind::Projection,
                    shape: vec![self.vocab_size, h],
                });
            }
        }
        let mut layers = self.layers().into_owned();
        let count = usize::try_from(mtp.layers).unwrap_or(0);
        layers.extend(std::iter::repeat_n(one, count));
        let mut model = self.clone();
        model
            .layer_attention
            .resize(self.num_layers as usize, LayerAttention::Full);
        model
            .layer_attention
            .extend(std::iter::repeat_n(LayerAttention::Full, count));
        model.num_layers = self.num_layers.saturating_add(mtp.layers);
        model.layers = layers;
        model.mtp = None;
        model
    }

    /// True when every count is exact: a known family and no [`ModelSpec::approximations`].
    pub fn exact(&self) -> bool {
        !self.approximate && self.approximations.is_empty()
    }

    /// The decoder layers: [`ModelSpec::layers`] (the field) when the spec lists them, else
    /// derived from the summary fields (`layer_attention`, `moe`, `mla`, the family) the way
    /// [`crate::config`] maps the 14 classic families.
    pub fn layers(&self) -> std::borrow::Cow<'_, [LayerSpec]> {
        if !self.layers.is_empty() {
            return std::borrow::Cow::Borrowed(&self.layers);
        }
        std::borrow::Cow::Owned(
            (0..self.num_layers)
                .map(|i| self.derived_layer(i))
                .collect(),
        )
    }

    /// Layer `i` of a spec without an explicit layer list.
    fn derived_layer(&self, i: u64) -> LayerSpec {
        let arch = &self.architecture;
        let span = self
            .layer_attention
            .get(i as usize)
            .copied()
            .unwrap_or(LayerAttention::Full);
        let mixer = match &self.mla {
            Some(mla) => Mixer::Mla {
                heads: self.num_attention_heads,
                mla: mla.clone(),
                indexer: None,
            },
            None => Mixer::Attention(AttentionSpec {
                heads: self.num_attention_heads,
                kv_heads: self.num_kv_heads,
                head_dim: self.head_dim,
                v_head_dim: self.head_dim,
                span,
                qkv_bias: self.attention_bias
                    || matches!(arch, Architecture::Qwen2 | Architecture::Qwen2Moe),
                // Qwen2's q/k/v always carry biases and its o_proj never does, whatever
                // `attention_bias` says (Qwen2Attention ignores the flag).
                output_bias: self.attention_bias
                    && !matches!(arch, Architecture::Qwen2 | Architecture::Qwen2Moe),
                qk_norm: if matches!(
                    arch,
                    Architecture::Qwen3 | Architecture::Qwen3Moe | Architecture::Gemma3
                ) {
                    QkNorm::PerHead
                } else {
                    QkNorm::None
                },
                sinks: *arch == Architecture::GptOss,
                output_gate: false,
                fused_qkv: *arch == Architecture::Phi3,
                shares_cache: false,
                values_from_keys: false,
            }),
        };
        let moe = self.moe.as_ref().filter(|m| !m.dense_layers.contains(&i));
        let mlp = match moe {
            Some(moe) => Mlp::Moe(MoeMlpSpec {
                experts: moe.num_experts,
                top_k: moe.experts_per_token,
                expert_intermediate: moe.expert_intermediate_size,
                gated: true,
                expert_bias: *arch == Architecture::GptOss,
                router_bias: *arch == Architecture::GptOss,
                correction_bias: *arch == Architecture::DeepseekV3,
                shared_intermediate: if moe.num_shared_experts > 0 {
                    moe.shared_intermediate_size
                } else {
                    0
                },
                shared_gate: *arch == Architecture::Qwen2Moe,
                latent: None,
            }),
            None => Mlp::Dense(DenseMlpSpec {
                intermediate: self.intermediate_size,
                gated: true,
                bias: self.mlp_bias,
                fused_gate_up: *arch == Architecture::Phi3,
            }),
        };
        let norms = if matches!(arch, Architecture::Gemma2 | Architecture::Gemma3) {
            4
        } else {
            2
        };
        LayerSpec {
            mixer,
            mlp,
            norms,
            extra: Vec::new(),
        }
    }

    /// The default context for this model: [`DEFAULT_CONTEXT_TOKENS`] or `max_context` if smaller.
    pub fn default_context(&self) -> u64 {
        DEFAULT_CONTEXT_TOKENS.min(self.max_context.max(1))
    }
}

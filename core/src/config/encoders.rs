//! Vision towers and their projectors, mapped onto the generic [`EncoderSpec`] and
//! [`ProjectorSpec`] from a multimodal config's `vision_config` (and the wrapper's own fields).
//! Each function names the transformers classes it follows; a tower headroom does not know is
//! never silently left out: the model gets an approximation saying so.

use serde_json::Value;

use crate::{
    CoreError,
    model::{ComponentKind, EncoderSpec, ExtraWeight, ExtraWeightKind, ProjectorSpec},
};

use super::{Fields, MAX_DIMENSION, MAX_LAYERS, VISION_TOWER_ONLY};

/// What a wrapper adds around its language model.
pub(super) struct Parts {
    pub(super) encoders: Vec<EncoderSpec>,
    pub(super) projectors: Vec<ProjectorSpec>,
    pub(super) approximations: Vec<String>,
}

fn dim(f: &Fields<'_>, names: &[&str], default: Option<u64>) -> Result<u64, CoreError> {
    let first = names.first().copied().unwrap_or("width");
    let v = match (f.first_u64(names)?, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d,
        (None, None) => {
            return Err(f.bad(first, "is missing; the vision tower needs it"));
        }
    };
    f.check_range(first, v, MAX_DIMENSION)
}

fn depth(f: &Fields<'_>, names: &[&str], default: Option<u64>) -> Result<u64, CoreError> {
    let first = names.first().copied().unwrap_or("num_hidden_layers");
    let v = match (f.first_u64(names)?, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d,
        (None, None) => return Err(f.bad(first, "is missing; the vision tower needs it")),
    };
    f.check_range(first, v, MAX_LAYERS)
}

/// The parts of a multimodal config: `outer_type` is the wrapper's `model_type`, `root` its
/// fields, `text_hidden` the language model's width.
pub(super) fn parts(
    root: &Fields<'_>,
    outer_type: &str,
    text_hidden: u64,
) -> Result<Parts, CoreError> {
    let mut out = Parts {
        encoders: Vec::new(),
        projectors: Vec::new(),
        approximations: Vec::new(),
    };
    // A wrapper whose class always builds its tower builds it from the class defaults when the
    // config leaves `vision_config` out (Llama-4's published configs list only the text part).
    let empty = serde_json::Map::new();
    let vision = match root.map.get("vision_config") {
        Some(Value::Object(v)) => Some(Fields {
            what: root.what,
            prefix: format!("{}vision_config.", root.prefix),
            map: v,
        }),
        _ if outer_type == "llama4" => Some(Fields {
            what: root.what,
            prefix: format!("{}vision_config.", root.prefix),
            map: &empty,
        }),
        _ => None,
    };
    if let Some(v) = &vision {
        let vt = v.opt_str("model_type")?.unwrap_or_default();
        match (outer_type, vt.as_str()) {
            ("gemma3", _) => {
                let e = siglip(v, false, &mut out.approximations)?;
                // Gemma3MultiModalProjector: mm_soft_emb_norm (RMSNorm of the vision width) and
                // mm_input_projection_weight [vision, text].
                out.projectors.push(ProjectorSpec {
                    kind: ComponentKind::VisionProjector,
                    linears: vec![(e.hidden, text_hidden, false)],
                    norms: vec![(e.hidden, false)],
                });
                out.encoders.push(e);
            }
            ("llava", _) => {
                let e = match vt.as_str() {
                    "siglip_vision_model" => siglip(v, true, &mut out.approximations)?,
                    _ => clip(v)?,
                };
                // LlavaMultiModalProjector: linear_1 from the (concatenated) feature layers, GELU,
                // linear_2; biases per `multimodal_projector_bias` (default true).
                let layers = match root.map.get("vision_feature_layer") {
                    Some(Value::Array(a)) => a.len().max(1) as u64,
                    _ => 1,
                };
                let bias = root.bool_or("multimodal_projector_bias", true)?;
                out.projectors.push(ProjectorSpec {
                    kind: ComponentKind::VisionProjector,
                    linears: vec![
                        (e.hidden.saturating_mul(layers), text_hidden, bias),
                        (text_hidden, text_hidden, bias),
                    ],
                    norms: vec![],
                });
                out.encoders.push(e);
            }
            ("mistral3", _) => {
                let (e, p) = pixtral(v, root, text_hidden)?;
                out.encoders.push(e);
                out.projectors.push(p);
            }
            ("qwen2_5_vl", _) => {
                let (e, p) = qwen2_5_vl(v)?;
                out.encoders.push(e);
                out.projectors.push(p);
            }
            ("kimi_k25", _) => {
                let (e, p) = moonvit(v)?;
                out.encoders.push(e);
                out.projectors.push(p);
            }
            ("gemma4", _) => {
                let e = gemma4_vision(v)?;
                // embed_vision: one linear from the vision width to the text width.
                out.projectors.push(ProjectorSpec {
                    kind: ComponentKind::VisionProjector,
                    linears: vec![(e.hidden, text_hidden, false)],
                    norms: vec![],
                });
                out.encoders.push(e);
            }
            ("mllama", _) => {
                let (main, global, p) = mllama(v, text_hidden)?;
                out.encoders.push(main);
                out.encoders.push(global);
                out.projectors.push(p);
            }
            ("llama4", _) => {
                let (e, adapter, p) = llama4(v, text_hidden)?;
                out.encoders.push(e);
                out.projectors.push(adapter);
                out.projectors.push(p);
            }
            ("gemma3n", _) => {
                // The tower is timm's MobileNet-v5, its blocks from timm's table for the
                // config's `architecture`.
                let arch = v
                    .opt_str("architecture")?
                    .unwrap_or_else(|| "mobilenetv5_300m_enc".to_string());
                match mobilenet_v5(v, &arch)? {
                    Some(e) => out.encoders.push(e),
                    None => out.approximations.push(format!(
                        "{VISION_TOWER_ONLY}: the vision tower (`{arch}`, built by timm) is not \
                         counted: headroom knows timm's block table of mobilenetv5_300m_enc only"
                    )),
                }
                out.projectors.push(multimodal_embedder(
                    v,
                    ComponentKind::VisionProjector,
                    2048,
                    text_hidden,
                )?);
            }
            ("qwen3_vl" | "qwen3_vl_moe" | "qwen3_5" | "qwen3_5_moe", _) => {
                let (e, p) = qwen3_vl(v)?;
                out.encoders.push(e);
                out.projectors.push(p);
            }
            _ => out.approximations.push(format!(
                "the vision tower ({}) is not counted: headroom does not know its layout",
                if vt.is_empty() {
                    outer_type
                } else {
                    vt.as_str()
                }
            )),
        }
    }
    if outer_type == "gemma3n"
        && let Some(Value::Object(a)) = root.map.get("audio_config")
    {
        let a = Fields {
            what: root.what,
            prefix: format!("{}audio_config.", root.prefix),
            map: a,
        };
        out.encoders.push(usm_conformer(&a)?);
        out.projectors.push(multimodal_embedder(
            &a,
            ComponentKind::AudioProjector,
            1536,
            text_hidden,
        )?);
        return Ok(out);
    }
    for key in ["audio_config", "speech_config"] {
        if matches!(root.map.get(key), Some(Value::Object(_))) {
            out.approximations.push(format!(
                "the audio tower (`{key}`) is not counted: headroom does not know its layout"
            ));
        }
    }
    Ok(out)
}

/// SigLIP (`SiglipVisionModel`): patch conv with bias, learned positions, LayerNorms with biases,
/// biased attention and fc1/fc2, a post LayerNorm. The attention-pooling head
/// (`vision_use_head`) is not counted: `approximations` says so when the config has one.
fn siglip(
    v: &Fields<'_>,
    default_head: bool,
    approximations: &mut Vec<String>,
) -> Result<EncoderSpec, CoreError> {
    let h = dim(v, &["hidden_size"], Some(768))?;
    let patch = dim(v, &["patch_size"], Some(16))?;
    let image = dim(v, &["image_size"], Some(224))?;
    let channels = dim(v, &["num_channels"], Some(3))?;
    if v.bool_or("vision_use_head", default_head)? {
        approximations
            .push("SigLIP's attention-pooling head (vision_use_head) is not counted".to_string());
    }
    let side = image / patch;
    Ok(EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["num_hidden_layers"], Some(12))?,
        intermediate: dim(v, &["intermediate_size"], Some(3072))?,
        patch_inputs: channels.saturating_mul(patch).saturating_mul(patch),
        patch_bias: true,
        positions: side.saturating_mul(side),
        class_token: false,
        pre_norm: false,
        post_norm: true,
        attention_dim: h,
        attention_bias: true,
        mlp_gated: false,
        mlp_bias: true,
        norm_bias: true,
        extra: Vec::new(),
    })
}

/// CLIP (`CLIPVisionModel`, as Llava loads it): class token, patch conv without bias, positions
/// for every patch and the class token, `pre_layrnorm`, LayerNorms with biases, biased attention
/// and fc1/fc2, `post_layernorm`.
fn clip(v: &Fields<'_>) -> Result<EncoderSpec, CoreError> {
    let h = dim(v, &["hidden_size"], Some(1024))?;
    let patch = dim(v, &["patch_size"], Some(14))?;
    let image = dim(v, &["image_size"], Some(336))?;
    let channels = dim(v, &["num_channels"], Some(3))?;
    let side = image / patch;
    Ok(EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["num_hidden_layers"], Some(24))?,
        intermediate: dim(v, &["intermediate_size"], Some(4096))?,
        patch_inputs: channels.saturating_mul(patch).saturating_mul(patch),
        patch_bias: false,
        positions: side.saturating_mul(side).saturating_add(1),
        class_token: true,
        pre_norm: true,
        post_norm: true,
        attention_dim: h,
        attention_bias: true,
        mlp_gated: false,
        mlp_bias: true,
        norm_bias: true,
        extra: Vec::new(),
    })
}

/// Pixtral (`PixtralVisionModel`) and Mistral-3's projector (`Mistral3MultiModalProjector`:
/// RMSNorm, patch merger `[vision·m², vision]`, linear_1, linear_2).
fn pixtral(
    v: &Fields<'_>,
    root: &Fields<'_>,
    text_hidden: u64,
) -> Result<(EncoderSpec, ProjectorSpec), CoreError> {
    let h = dim(v, &["hidden_size"], Some(1024))?;
    let patch = dim(v, &["patch_size"], Some(16))?;
    let channels = dim(v, &["num_channels"], Some(3))?;
    let heads = dim(v, &["num_attention_heads"], Some(16))?;
    let head_dim = dim(v, &["head_dim"], Some(h / heads))?;
    let e = EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["num_hidden_layers"], Some(24))?,
        intermediate: dim(v, &["intermediate_size"], Some(4096))?,
        patch_inputs: channels.saturating_mul(patch).saturating_mul(patch),
        patch_bias: false,
        positions: 0,
        class_token: false,
        pre_norm: true,
        post_norm: false,
        attention_dim: heads.saturating_mul(head_dim),
        attention_bias: false,
        mlp_gated: true,
        mlp_bias: false,
        norm_bias: false,
        extra: Vec::new(),
    };
    let merge = dim(root, &["spatial_merge_size"], Some(2))?;
    let layers = match root.map.get("vision_feature_layer") {
        Some(Value::Array(a)) => a.len().max(1) as u64,
        _ => 1,
    };
    let bias = root.bool_or("multimodal_projector_bias", false)?;
    let p = ProjectorSpec {
        kind: ComponentKind::VisionProjector,
        linears: vec![
            (h.saturating_mul(merge).saturating_mul(merge), h, false),
            (h.saturating_mul(layers), text_hidden, bias),
            (text_hidden, text_hidden, bias),
        ],
        norms: vec![(h, false)],
    };
    Ok((e, p))
}

/// Qwen2.5-VL's vision tower (`Qwen2_5_VisionTransformerPretrainedModel`): 3-D patch conv
/// without bias, RMSNorms, fused biased qkv, gated biased MLP; merger `ln_q` + two linears.
fn qwen2_5_vl(v: &Fields<'_>) -> Result<(EncoderSpec, ProjectorSpec), CoreError> {
    let h = dim(v, &["hidden_size", "embed_dim"], Some(1280))?;
    let patch = dim(v, &["patch_size", "spatial_patch_size"], Some(14))?;
    let temporal = dim(v, &["temporal_patch_size"], Some(2))?;
    let channels = dim(v, &["in_channels", "in_chans"], Some(3))?;
    let merge = dim(v, &["spatial_merge_size"], Some(2))?;
    let out = dim(v, &["out_hidden_size"], Some(3584))?;
    let e = EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["depth"], Some(32))?,
        intermediate: dim(v, &["intermediate_size"], Some(3420))?,
        patch_inputs: channels
            .saturating_mul(temporal)
            .saturating_mul(patch)
            .saturating_mul(patch),
        patch_bias: false,
        positions: 0,
        class_token: false,
        pre_norm: false,
        post_norm: false,
        attention_dim: h,
        attention_bias: true,
        mlp_gated: true,
        mlp_bias: true,
        norm_bias: false,
        extra: Vec::new(),
    };
    let wide = h.saturating_mul(merge).saturating_mul(merge);
    // The merger is part of the vision model in transformers (`visual.merger`).
    let p = ProjectorSpec {
        kind: ComponentKind::VisionEncoder,
        linears: vec![(wide, wide, true), (wide, out, true)],
        norms: vec![(h, false)],
    };
    Ok((e, p))
}

/// Qwen3-VL's vision tower (`Qwen3VLVisionModel`, also Qwen3.5's): 3-D patch conv with bias,
/// learned positions, LayerNorms with biases, biased qkv and fc1/fc2; the merger (LayerNorm of
/// the vision width, two linears) and one DeepStack merger per `deepstack_visual_indexes` entry
/// (LayerNorm after the shuffle, over `vision·m²`).
fn qwen3_vl(v: &Fields<'_>) -> Result<(EncoderSpec, ProjectorSpec), CoreError> {
    let h = dim(v, &["hidden_size"], Some(1152))?;
    let patch = dim(v, &["patch_size"], Some(16))?;
    let temporal = dim(v, &["temporal_patch_size"], Some(2))?;
    let channels = dim(v, &["in_channels"], Some(3))?;
    let merge = dim(v, &["spatial_merge_size"], Some(2))?;
    let out = dim(v, &["out_hidden_size"], Some(3584))?;
    let positions = dim(v, &["num_position_embeddings"], Some(2304))?;
    let deepstack = v
        .opt_u64_list("deepstack_visual_indexes")?
        .map_or(0, |l| l.len() as u64);
    let e = EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["depth"], Some(27))?,
        intermediate: dim(v, &["intermediate_size"], Some(4304))?,
        patch_inputs: channels
            .saturating_mul(temporal)
            .saturating_mul(patch)
            .saturating_mul(patch),
        patch_bias: true,
        positions,
        class_token: false,
        pre_norm: false,
        post_norm: false,
        attention_dim: h,
        attention_bias: true,
        mlp_gated: false,
        mlp_bias: true,
        norm_bias: true,
        extra: Vec::new(),
    };
    let wide = h.saturating_mul(merge).saturating_mul(merge);
    let mut linears = vec![(wide, wide, true), (wide, out, true)];
    let mut norms = vec![(h, true)];
    for _ in 0..deepstack {
        linears.push((wide, wide, true));
        linears.push((wide, out, true));
        norms.push((wide, true));
    }
    // The mergers are part of the vision model in transformers (`visual.merger`,
    // `visual.deepstack_merger_list`).
    Ok((
        e,
        ProjectorSpec {
            kind: ComponentKind::VisionEncoder,
            linears,
            norms,
        },
    ))
}

/// Llama-4's vision tower (`Llama4VisionModel`): unfolded patch linear without bias, class token,
/// positions for every patch and the class token, LayerNorms before and after, biased attention
/// and fc1/fc2; the pixel-shuffle adapter (`vision_adapter.mlp`: fc1 `[projector_input_dim,
/// intermediate_size]`, fc2 `[projector_output_dim, projector_output_dim]`, no biases) belongs
/// to the tower; the projector (`multi_modal_projector.linear_1`) maps `vision_output_dim` to the
/// text width without bias.
fn llama4(
    v: &Fields<'_>,
    text_hidden: u64,
) -> Result<(EncoderSpec, ProjectorSpec, ProjectorSpec), CoreError> {
    let h = dim(v, &["hidden_size"], Some(768))?;
    let patch = dim(v, &["patch_size"], Some(14))?;
    let image = dim(v, &["image_size"], Some(448))?;
    let channels = dim(v, &["num_channels"], Some(3))?;
    let inter = dim(v, &["intermediate_size"], Some(5632))?;
    let side = image / patch;
    let e = EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["num_hidden_layers"], Some(34))?,
        intermediate: inter,
        patch_inputs: channels.saturating_mul(patch).saturating_mul(patch),
        patch_bias: false,
        positions: side.saturating_mul(side).saturating_add(1),
        class_token: true,
        pre_norm: true,
        post_norm: true,
        attention_dim: h,
        attention_bias: true,
        mlp_gated: false,
        mlp_bias: true,
        norm_bias: true,
        extra: Vec::new(),
    };
    let proj_in = dim(v, &["projector_input_dim"], Some(4096))?;
    let proj_out = dim(v, &["projector_output_dim"], Some(4096))?;
    let adapter = ProjectorSpec {
        kind: ComponentKind::VisionEncoder,
        linears: vec![(inter, proj_in, false), (proj_out, proj_out, false)],
        norms: vec![],
    };
    let vision_out = dim(v, &["vision_output_dim"], Some(7680))?;
    let p = ProjectorSpec {
        kind: ComponentKind::VisionProjector,
        linears: vec![(vision_out, text_hidden, false)],
        norms: vec![],
    };
    Ok((e, adapter, p))
}

/// mllama's vision tower (`MllamaVisionModel`): class token, patch conv without bias, gated
/// positional embedding (positions + a gate + a tile embedding of `max_num_tiles · positions ·
/// hidden` per aspect ratio), gated pre/post tile embeddings, LayerNorms before and after, the
/// local transformer (unbiased attention, biased fc1/fc2) and the global transformer
/// (`num_global_layers`, the same layers with an attention and an MLP gate each); the projector
/// maps `vision_output_dim` to the text width with a bias.
fn mllama(
    v: &Fields<'_>,
    text_hidden: u64,
) -> Result<(EncoderSpec, EncoderSpec, ProjectorSpec), CoreError> {
    let h = dim(v, &["hidden_size"], Some(1280))?;
    let patch = dim(v, &["patch_size"], Some(14))?;
    let image = dim(v, &["image_size"], Some(448))?;
    let channels = dim(v, &["num_channels"], Some(3))?;
    let inter = dim(v, &["intermediate_size"], Some(5120))?;
    let tiles = dim(v, &["max_num_tiles"], Some(4))?;
    // MllamaVisionConfig: max_aspect_ratio_id = len(supported_aspect_ratios); embeddings have
    // one row more.
    let ratios = match v.map.get("supported_aspect_ratios") {
        Some(Value::Array(a)) => a.len() as u64,
        _ => 8,
    };
    let side = image / patch;
    let positions = side.saturating_mul(side).saturating_add(1);
    let gate = |n: u64| ExtraWeight {
        what: ExtraWeightKind::Gate,
        shape: vec![n],
    };
    let table = |cols: u64| ExtraWeight {
        what: ExtraWeightKind::Projection,
        shape: vec![ratios.saturating_add(1), cols],
    };
    let main = EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["num_hidden_layers"], Some(32))?,
        intermediate: inter,
        patch_inputs: channels.saturating_mul(patch).saturating_mul(patch),
        patch_bias: false,
        positions,
        class_token: true,
        pre_norm: true,
        post_norm: true,
        attention_dim: h,
        attention_bias: false,
        mlp_gated: false,
        mlp_bias: true,
        norm_bias: true,
        extra: vec![
            // gated_positional_embedding: gate and tile embedding.
            gate(1),
            table(tiles.saturating_mul(positions).saturating_mul(h)),
            // pre/post tile positional embeddings and their gates.
            table(tiles.saturating_mul(h)),
            gate(1),
            table(tiles.saturating_mul(h)),
            gate(1),
        ],
    };
    let global_layers = depth(v, &["num_global_layers"], Some(8))?;
    let global = EncoderSpec {
        layers: global_layers,
        patch_inputs: 0,
        positions: 0,
        class_token: false,
        pre_norm: false,
        post_norm: false,
        // gate_attn and gate_ffn of every global layer.
        extra: vec![gate(global_layers.saturating_mul(2))],
        ..main.clone()
    };
    let out = dim(v, &["vision_output_dim"], Some(7680))?;
    Ok((
        main,
        global,
        ProjectorSpec {
            kind: ComponentKind::VisionProjector,
            linears: vec![(out, text_hidden, true)],
            norms: vec![],
        },
    ))
}

/// One stage of a timm arch def: runs of block strings, each run repeated.
type TimmStage = &'static [(&'static [&'static str], u64)];

/// timm's block table for `mobilenetv5_300m_enc` (`timm/models/mobilenetv5.py`,
/// `_gen_mobilenet_v5`), in timm's own arch-def notation (`er` edge residual, `uir` universal
/// inverted residual, `mqa` mobile multi-query attention; `a`/`k` start/middle depthwise kernels,
/// `s` stride, `e` expansion, `c` channels, `h` heads, `d` key/value width, `v` kv stride).
const MOBILENETV5_300M: &[TimmStage] = &[
    &[(&["er_r1_k3_s2_e4_c128"], 1), (&["er_r1_k3_s1_e4_c128"], 2)],
    &[
        (&["uir_r1_a3_k5_s2_e6_c256"], 1),
        (&["uir_r1_a5_k0_s1_e4_c256", "uir_r1_a3_k0_s1_e4_c256"], 2),
    ],
    &[
        (&["uir_r1_a5_k5_s2_e6_c640"], 1),
        (&["uir_r1_a5_k0_s1_e4_c640"], 7),
        (&["uir_r1_a0_k0_s1_e1_c640"], 1),
        (
            &["mqa_r1_k3_h12_v2_s1_d64_c640", "uir_r1_a0_k0_s1_e2_c640"],
            14,
        ),
    ],
    &[
        (&["uir_r1_a5_k5_s2_e6_c1280"], 1),
        (
            &["mqa_r1_k3_h16_s1_d96_c1280", "uir_r1_a0_k0_s1_e2_c1280"],
            19,
        ),
    ],
];

/// timm's `make_divisible(v, 8)`: `v` rounded to a multiple of 8, never more than 10 % down.
fn make_divisible(v: u64) -> u64 {
    let n = (v.saturating_add(4) / 8).saturating_mul(8).max(8);
    // n < 0.9 · v
    if n.saturating_mul(10) < v.saturating_mul(9) {
        n.saturating_add(8)
    } else {
        n
    }
}

/// The options of one timm block string (`uir_r1_a5_k0_s1_e4_c640` → `a` 5, `k` 0, ...); `None`
/// for a malformed one.
fn timm_block(block: &str) -> Option<(&str, impl Fn(char) -> u64 + '_)> {
    let mut parts = block.split('_');
    let kind = parts.next()?;
    let opts: Vec<(char, u64)> = parts
        .map(|p| {
            let mut chars = p.chars();
            let key = chars.next()?;
            chars.as_str().parse::<u64>().ok().map(|v| (key, v))
        })
        .collect::<Option<_>>()?;
    Some((kind, move |key: char| {
        opts.iter().find(|(k, _)| *k == key).map_or(0, |(_, v)| *v)
    }))
}

/// Gemma-3n's vision tower: timm's MobileNet-v5 encoder for `arch` (only
/// `mobilenetv5_300m_enc` is known; `None` for another), every weight from timm's block table:
/// - the stem: a 3×3 conv 3 → 64 with bias and its RMS norm;
/// - edge residuals: a k×k conv `in → make_divisible(in·e)`, a 1×1 conv to `c`, a norm after each;
/// - universal inverted residuals: an optional a×a depthwise conv, a 1×1 expansion to
///   `make_divisible(in·e)`, an optional k×k depthwise conv, a 1×1 projection to `c`, a norm
///   after each conv, and a layer scale of `c`;
/// - mobile multi-query attention: a norm, q [h·d, in], k and v [d, in] (each behind a depthwise
///   k×k conv and a norm when the kv stride `v` > 1), the output [c, h·d], a layer scale;
/// - the multi-scale fusion adapter over the last two stages: a universal inverted residual
///   (their channels together → `hidden_size`, expansion 2, no depthwise convs, no layer scale)
///   and a norm.
///
/// Conv kernels are counted as matrices `[out, in·kh·kw]` (depthwise: `[channels, kh·kw]`).
fn mobilenet_v5(v: &Fields<'_>, arch: &str) -> Result<Option<EncoderSpec>, CoreError> {
    if arch != "mobilenetv5_300m_enc" {
        return Ok(None);
    }
    let hidden = dim(v, &["hidden_size"], Some(2048))?;
    let mut extra = Vec::new();
    let mut push = |what, shape: Vec<u64>| extra.push(ExtraWeight { what, shape });
    let conv = ExtraWeightKind::Projection;
    let norm = ExtraWeightKind::Norm;
    let scale = ExtraWeightKind::Gate;
    // The stem.
    let stem = 64u64;
    push(conv, vec![stem, 3 * 3 * 3]);
    // The stem conv's bias.
    push(scale, vec![stem]);
    push(norm, vec![stem]);
    let uir = |push: &mut dyn FnMut(ExtraWeightKind, Vec<u64>),
               inp: u64,
               out: u64,
               a: u64,
               k: u64,
               mid: u64,
               layer_scale: bool| {
        if a > 0 {
            push(conv, vec![inp, a * a]);
            push(norm, vec![inp]);
        }
        push(conv, vec![mid, inp]);
        push(norm, vec![mid]);
        if k > 0 {
            push(conv, vec![mid, k * k]);
            push(norm, vec![mid]);
        }
        push(conv, vec![out, mid]);
        push(norm, vec![out]);
        if layer_scale {
            push(scale, vec![out]);
        }
    };
    let mut channels = stem;
    let mut stage_out = Vec::new();
    for stage in MOBILENETV5_300M {
        for (run, repeats) in stage.iter() {
            for _ in 0..*repeats {
                for block in run.iter() {
                    let (kind, o) = timm_block(block).ok_or_else(|| {
                        CoreError::Unsupported(format!("timm block `{block}` is malformed"))
                    })?;
                    let out = o('c');
                    match kind {
                        "er" => {
                            let mid = make_divisible(channels.saturating_mul(o('e')));
                            let k = o('k');
                            push(conv, vec![mid, channels.saturating_mul(k * k)]);
                            push(norm, vec![mid]);
                            push(conv, vec![out, mid]);
                            push(norm, vec![out]);
                        }
                        "uir" => {
                            let mid = make_divisible(channels.saturating_mul(o('e')));
                            uir(&mut push, channels, out, o('a'), o('k'), mid, true);
                        }
                        _ => {
                            let (h, d, k) = (o('h'), o('d'), o('k'));
                            push(norm, vec![channels]);
                            push(conv, vec![h.saturating_mul(d), channels]);
                            for _ in 0..2 {
                                if o('v') > 1 {
                                    push(conv, vec![channels, k * k]);
                                    push(norm, vec![channels]);
                                }
                                push(conv, vec![d, channels]);
                            }
                            push(conv, vec![out, h.saturating_mul(d)]);
                            push(scale, vec![out]);
                        }
                    }
                    channels = out;
                }
            }
        }
        stage_out.push(channels);
    }
    let fused: u64 = stage_out.iter().rev().take(2).sum();
    uir(
        &mut push,
        fused,
        hidden,
        0,
        0,
        make_divisible(fused * 2),
        false,
    );
    push(norm, vec![hidden]);
    Ok(Some(EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden,
        layers: 0,
        intermediate: 0,
        patch_inputs: 0,
        patch_bias: false,
        positions: 0,
        class_token: false,
        pre_norm: false,
        post_norm: false,
        attention_dim: 0,
        attention_bias: false,
        mlp_gated: false,
        mlp_bias: false,
        norm_bias: false,
        extra,
    }))
}

/// Gemma-3n's `Gemma3nMultimodalEmbedder` (`embed_vision`, `embed_audio`): an embedding table of
/// the part's `vocab_size` rows (default 128) and its `hidden_size` (default `default_hidden`),
/// two norms of that width, and a projection to the text width without bias (its last norm has no
/// weight). The table is counted as a linear map of `vocab_size` inputs (same size).
fn multimodal_embedder(
    p: &Fields<'_>,
    kind: ComponentKind,
    default_hidden: u64,
    text_hidden: u64,
) -> Result<ProjectorSpec, CoreError> {
    let h = dim(p, &["hidden_size"], Some(default_hidden))?;
    let vocab = dim(p, &["vocab_size"], Some(128))?;
    Ok(ProjectorSpec {
        kind,
        linears: vec![(vocab, h, false), (h, text_hidden, false)],
        norms: vec![(h, false), (h, false)],
    })
}

/// A `[rows, cols]` pair from a list of pairs (`sscp_conv_kernel_size[i]`).
fn pair_at(
    a: &Fields<'_>,
    field: &str,
    i: usize,
    default: [u64; 2],
) -> Result<[u64; 2], CoreError> {
    let Some(list) = a.get(field) else {
        return Ok(default);
    };
    let pair = list
        .as_array()
        .and_then(|l| l.get(i))
        .and_then(Value::as_array)
        .map(|p| p.iter().filter_map(Value::as_u64).collect::<Vec<_>>())
        .filter(|p| p.len() == 2)
        .ok_or_else(|| {
            a.bad(
                field,
                format!("must list [height, width] pairs of positive integers (entry {i})"),
            )
        })?;
    Ok([
        a.check_range(field, pair[0], MAX_DIMENSION)?,
        a.check_range(field, pair[1], MAX_DIMENSION)?,
    ])
}

/// Gemma-3n's audio tower (`Gemma3nAudioEncoder`, a USM conformer), from `audio_config`
/// (defaults: `Gemma3nAudioConfig`'s):
/// - the subsampling front end: two conv blocks (`sscp_conv_channel_size[0..2]` channels,
///   `sscp_conv_kernel_size`, `sscp_conv_stride_size`, no bias, each with a group norm of its
///   channels), the mel bins (`input_feat_size`) shrinking to `f = (f + 2 − kw) / sw + 1` per
///   block, then `input_proj_linear` [hidden, channels · f];
/// - `conf_num_hidden_layers` conformer blocks of width h = `hidden_size`, each: two feed-forward
///   halves (pre/post norms, `ffw_layer_1` [4h, h], `ffw_layer_2` [h, 4h]); attention (pre/post
///   norms, q/k/v and `post` [h, h], the relative-position `pos_proj` [h, h], `per_dim_scale`
///   [h / `conf_num_attention_heads`]); a light conv (pre norm, `linear_start` [2h, h], a
///   depthwise conv [h, 1, `conf_conv_kernel_size`], `conv_norm`, `linear_end` [h, h]); a final
///   norm. No biases anywhere.
///
/// Mapped onto [`EncoderSpec`]: the generic layer holds the first feed-forward half, the four
/// attention projections and two norms; `extra` stacks the rest per layer.
fn usm_conformer(a: &Fields<'_>) -> Result<EncoderSpec, CoreError> {
    let h = dim(a, &["hidden_size"], Some(1536))?;
    let layers = depth(a, &["conf_num_hidden_layers"], Some(12))?;
    let heads = dim(a, &["conf_num_attention_heads"], Some(8))?;
    let kernel = dim(a, &["conf_conv_kernel_size"], Some(5))?;
    let mut freq = dim(a, &["input_feat_size"], Some(128))?;
    let channels = a
        .opt_u64_list("sscp_conv_channel_size")?
        .unwrap_or(vec![128, 32]);
    if channels.len() < 2 {
        return Err(a.bad(
            "sscp_conv_channel_size",
            "must list the channels of both subsampling conv blocks",
        ));
    }
    let mut extra = Vec::new();
    let mut in_channels: u64 = 1;
    for (i, &out_channels) in channels.iter().take(2).enumerate() {
        let out_channels = a.check_range("sscp_conv_channel_size", out_channels, MAX_DIMENSION)?;
        let [kh, kw] = pair_at(a, "sscp_conv_kernel_size", i, [3, 3])?;
        let [_, sw] = pair_at(a, "sscp_conv_stride_size", i, [2, 2])?;
        // One bin of padding on each side of the frequency axis.
        let padded = freq.saturating_add(2);
        if padded < kw {
            return Err(a.bad(
                "sscp_conv_kernel_size",
                format!("is wider ({kw}) than the padded mel bins ({padded}) it convolves"),
            ));
        }
        freq = (padded - kw) / sw + 1;
        // The conv kernel [out, in, kh, kw], as a matrix (tensor shapes have at most 3 dims).
        extra.push(ExtraWeight {
            what: ExtraWeightKind::Projection,
            shape: vec![
                out_channels,
                in_channels.saturating_mul(kh).saturating_mul(kw),
            ],
        });
        extra.push(ExtraWeight {
            what: ExtraWeightKind::Norm,
            shape: vec![out_channels],
        });
        in_channels = out_channels;
    }
    let four = h.saturating_mul(4);
    let per_layer = |what, shape: &[u64]| ExtraWeight {
        what,
        shape: std::iter::once(layers)
            .chain(shape.iter().copied())
            .collect(),
    };
    extra.extend([
        // pos_proj and per_dim_scale.
        per_layer(ExtraWeightKind::Projection, &[h, h]),
        per_layer(ExtraWeightKind::Gate, &[h / heads]),
        // The second feed-forward half.
        per_layer(ExtraWeightKind::Projection, &[four, h]),
        per_layer(ExtraWeightKind::Projection, &[h, four]),
        // The light conv.
        per_layer(ExtraWeightKind::Projection, &[h.saturating_mul(2), h]),
        // The depthwise conv [h, 1, kernel], one input channel per group.
        per_layer(ExtraWeightKind::Projection, &[h, kernel]),
        per_layer(ExtraWeightKind::Projection, &[h, h]),
        // Nine norms per block, two of them in the generic layer.
        per_layer(ExtraWeightKind::Norm, &[7, h]),
    ]);
    Ok(EncoderSpec {
        kind: ComponentKind::AudioEncoder,
        hidden: h,
        layers,
        intermediate: four,
        patch_inputs: in_channels.saturating_mul(freq),
        patch_bias: false,
        positions: 0,
        class_token: false,
        pre_norm: false,
        post_norm: false,
        attention_dim: h,
        attention_bias: false,
        mlp_gated: false,
        mlp_bias: false,
        norm_bias: false,
        extra,
    })
}

/// Gemma 4's vision tower (`Gemma4VisionModel`): a patch linear without bias, two learned
/// position tables (one per image axis, `position_embedding_size` rows each), and layers of
/// unbiased attention with per-head q/k norms, four norms and a gated MLP; no final norm.
fn gemma4_vision(v: &Fields<'_>) -> Result<EncoderSpec, CoreError> {
    let h = dim(v, &["hidden_size"], Some(768))?;
    let patch = dim(v, &["patch_size"], Some(16))?;
    let channels = dim(v, &["num_channels"], Some(3))?;
    let heads = dim(v, &["num_attention_heads"], Some(12))?;
    let head_dim = dim(v, &["head_dim"], Some(h / heads))?;
    let layers = depth(v, &["num_hidden_layers"], Some(16))?;
    let positions = dim(v, &["position_embedding_size"], Some(10240))?;
    Ok(EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers,
        intermediate: dim(v, &["intermediate_size"], Some(3072))?,
        patch_inputs: channels.saturating_mul(patch).saturating_mul(patch),
        patch_bias: false,
        positions: positions.saturating_mul(2),
        class_token: false,
        pre_norm: false,
        post_norm: false,
        attention_dim: heads.saturating_mul(head_dim),
        attention_bias: false,
        mlp_gated: true,
        mlp_bias: false,
        norm_bias: false,
        // Per layer, beyond the two norms every tower has: two more norms and the q/k norms.
        extra: vec![ExtraWeight {
            what: ExtraWeightKind::Norm,
            shape: vec![
                layers,
                h.saturating_mul(2)
                    .saturating_add(head_dim.saturating_mul(2)),
            ],
        }],
    })
}

/// Kimi-K2.5's MoonViT: patch conv with bias, learned positions on a `init_pos_emb_height ×
/// init_pos_emb_width` grid (the temporal ones are fixed), LayerNorms with biases, biased qkv and
/// fc1/fc2, a final LayerNorm; the patch-merger projector (LayerNorm of the vision width, then
/// `vision·m² → vision·m² → text` with biases, m² = merge kernel).
fn moonvit(v: &Fields<'_>) -> Result<(EncoderSpec, ProjectorSpec), CoreError> {
    let h = dim(v, &["vt_hidden_size", "hidden_size"], Some(1152))?;
    let patch = dim(v, &["patch_size"], Some(14))?;
    let grid_h = dim(v, &["init_pos_emb_height"], Some(64))?;
    let grid_w = dim(v, &["init_pos_emb_width"], Some(64))?;
    let text = dim(v, &["text_hidden_size"], None)?;
    let merge: u64 = match v.opt_u64_list("merge_kernel_size")? {
        Some(k) if !k.is_empty() => k.iter().fold(1u64, |a, x| a.saturating_mul(*x)),
        _ => 4,
    };
    let e = EncoderSpec {
        kind: ComponentKind::VisionEncoder,
        hidden: h,
        layers: depth(v, &["vt_num_hidden_layers", "num_hidden_layers"], Some(27))?,
        intermediate: dim(
            v,
            &["vt_intermediate_size", "intermediate_size"],
            Some(4304),
        )?,
        patch_inputs: patch.saturating_mul(patch).saturating_mul(3),
        patch_bias: true,
        positions: grid_h.saturating_mul(grid_w),
        class_token: false,
        pre_norm: false,
        post_norm: true,
        attention_dim: h,
        attention_bias: true,
        mlp_gated: false,
        mlp_bias: true,
        norm_bias: true,
        extra: Vec::new(),
    };
    let wide = h.saturating_mul(merge);
    let p = ProjectorSpec {
        kind: ComponentKind::VisionProjector,
        linears: vec![(wide, wide, true), (wide, text, true)],
        norms: vec![(h, true)],
    };
    Ok((e, p))
}

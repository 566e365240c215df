//! Whole-model byte totals ([`weight_totals`]): the model's tensors grouped once into sets the
//! storage rules treat alike ([`ModelTensors`]), then summed per format group by group.

use serde::{Deserialize, Serialize};

use super::{
    WeightFormat,
    storage::{Shaped, bnb_quantizes, storage_hf},
};
use crate::{
    gguf::{self, GgmlType, LlamaFileType},
    model::ModelSpec,
    tensors::{MAX_DIMS, TensorEntry, TensorRole, shape_elements, shape_row_len, walk},
};

/// Whole-model byte totals of `model` in `format`, from [`tensor_formats`] in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightTotals {
    /// Bytes of all weights ([`weights_bytes`]).
    pub weights_bytes: u64,
    /// Bytes read to decode one token ([`active_weights_bytes`]).
    pub active_weights_bytes: u64,
    /// Bytes of the largest single tensor (for single-buffer limits).
    pub largest_tensor_bytes: u64,
}

/// Tensors of a model that every byte rule treats alike, with how many there are.
///
/// Same role, shape, active elements, GGUF category, quantizability and [`gguf::rule_class`]:
/// every format stores each member in the same bytes, so totals are `count` × one member's.
/// DeepSeek-V3's 1,025 tensors make 40 groups.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TensorGroup {
    /// Role of the members.
    pub(crate) role: TensorRole,
    dims: [u64; MAX_DIMS],
    ndims: usize,
    /// Elements one token reads of one member ([`Tensor::active_elements`]).
    pub(crate) active_elements: u64,
    /// Members.
    pub(crate) count: u64,
    category: gguf::Category,
    allowed: bool,
    /// The first member's place in llama.cpp's counters (all members give the same type).
    position: gguf::Position,
}

impl TensorGroup {
    /// Shape of each member.
    pub(crate) fn shape(&self) -> &[u64] {
        &self.dims[..self.ndims]
    }

    fn shaped(&self) -> Shaped<'_> {
        Shaped {
            role: self.role,
            shape: self.shape(),
        }
    }
}

/// A model's tensors grouped for the byte rules ([`TensorGroup`]), built once per model for all
/// the formats asked about (kept by [`crate::facts::ModelFacts`] while a question is answered).
pub struct ModelTensors {
    /// The groups, in order of first member.
    pub(crate) groups: Vec<TensorGroup>,
    /// The file has no `output.weight` (llama.cpp's tied-embedding rules).
    tied: bool,
    /// attn_v-like tensors (llama.cpp's `n_attn_v`).
    n_attn_v: u64,
    /// Totals already computed, per format. Weights do not depend on context, batch, runtime or
    /// device, so the longest-context search and the format table ask for the same ones again.
    totals: std::cell::RefCell<Vec<(WeightFormat, WeightTotals)>>,
    /// Every tensor in file order as (group index, layer): what offload needs to place the
    /// groups' bytes layer by layer ([`ModelTensors::placement`]).
    members: Vec<(u32, Option<u64>)>,
}

impl ModelTensors {
    /// `model`'s tensors, grouped.
    pub fn new(model: &ModelSpec) -> ModelTensors {
        group_tensors(model)
    }

    /// Parameters bitsandbytes leaves in 16 bits when it loads `model` (the one these groups are
    /// of) in 4 or 8 bits: embeddings, norms, the output head — what peft's kbit preparation
    /// upcasts to fp32.
    pub fn bnb_unquantized_elements(&self, model: &ModelSpec) -> u64 {
        self.groups
            .iter()
            .filter(|g| !bnb_quantizes(model, g.shaped()))
            .fold(0u64, |acc, g| {
                acc.saturating_add(g.count.saturating_mul(shape_elements(g.shape())))
            })
    }

    /// [`WeightTotals`] of `model` (the one these groups are of) in `format`, each format
    /// computed once.
    pub fn totals(&self, model: &ModelSpec, format: &WeightFormat) -> WeightTotals {
        if let Some((_, t)) = self.totals.borrow().iter().find(|(f, _)| f == format) {
            return *t;
        }
        let totals = compute_weight_totals(model, self, format);
        self.totals.borrow_mut().push((format.clone(), totals));
        totals
    }

    /// The bytes of `model` (the one these groups are of) in `format` grouped the way runtimes
    /// place them when offloading: the same per-tensor bytes as [`tensor_formats`], summed per
    /// layer from the groups.
    pub fn placement(
        &self,
        model: &ModelSpec,
        format: &WeightFormat,
    ) -> crate::offload::PlacementBytes {
        let ctx = match format {
            WeightFormat::Gguf(ftype) => {
                Some(gguf::Context::new(model, self.tied, self.n_attn_v, *ftype))
            }
            _ => None,
        };
        let per_group: Vec<(u64, u64)> = self
            .groups
            .iter()
            .map(|g| {
                let bytes = group_bytes(model, g, format, ctx.as_ref());
                (
                    bytes,
                    active_share(shape_elements(g.shape()), g.active_elements, bytes),
                )
            })
            .collect();
        let mut p = crate::offload::PlacementBytes::with_layers(model.num_layers);
        for &(g, layer) in &self.members {
            let Some((group, &(bytes, active))) =
                self.groups.get(g as usize).zip(per_group.get(g as usize))
            else {
                continue;
            };
            p.add(group.role, layer, bytes, active);
        }
        p
    }
}

/// One distinct (name, role, shape, active elements) of the walk, with its GGUF category and
/// quantizability (found from the name once, not per tensor) and its groups by rule class.
struct Kind {
    entry: TensorEntry,
    category: gguf::Category,
    allowed: bool,
    /// Group index for each rule class (`usize::MAX`: none yet).
    groups: [usize; gguf::RULE_CLASSES],
    /// The kind that followed this one last time: layers repeat, so the next tensor is almost
    /// always found on the first comparison.
    next: usize,
}

/// Whether `a` and `b` are the same tensor but for the layer.
fn same_kind(a: &TensorEntry, b: &TensorEntry) -> bool {
    a.suffix == b.suffix
        && a.component == b.component
        && a.role == b.role
        && a.ndims == b.ndims
        && a.dims == b.dims
        && a.active_elements == b.active_elements
        && a.layer.is_some() == b.layer.is_some()
}

/// Groups `model`'s tensors ([`crate::tensors::walk`], no names built) in two passes: kinds and
/// llama.cpp's counter positions in file order, then groups once the attn_v count is known.
fn group_tensors(model: &ModelSpec) -> ModelTensors {
    let mut kinds: Vec<Kind> = Vec::new();
    // (kind, position) of every tensor, in file order.
    let mut order: Vec<(usize, gguf::Position, Option<u64>)> = Vec::new();
    let mut counters = gguf::Counters::new(model);
    let mut prev = usize::MAX;
    let mut tied = true;
    walk(model, |e| {
        let hint = kinds.get(prev).map_or(usize::MAX, |k| k.next);
        let k = if kinds.get(hint).is_some_and(|k| same_kind(&k.entry, &e)) {
            hint
        } else if let Some(k) = kinds.iter().position(|k| same_kind(&k.entry, &e)) {
            k
        } else {
            let category = if e.layer.is_some() {
                gguf::layer_category(e.suffix)
            } else {
                gguf::category(e.suffix)
            };
            kinds.push(Kind {
                entry: e,
                category,
                allowed: gguf::name_allows_quantization(e.suffix, e.ndims),
                groups: [usize::MAX; gguf::RULE_CLASSES],
                next: usize::MAX,
            });
            kinds.len() - 1
        };
        if let Some(p) = kinds.get_mut(prev) {
            p.next = k;
        }
        prev = k;
        if e.layer.is_none() && e.suffix == "output.weight" {
            tied = false;
        }
        let kind = &kinds[k];
        order.push((
            k,
            counters.next(kind.category, kind.allowed, e.layer),
            e.layer,
        ));
    });
    // llama.cpp counts every attn_v-like name, quantizable or not.
    let n_attn_v = order
        .iter()
        .filter(|(k, _, _)| gguf::is_attn_v_like(kinds[*k].category))
        .count() as u64;
    // The class tests do not depend on the file type; any one gives the model's facts.
    let ctx = gguf::Context::new(model, tied, n_attn_v, LlamaFileType::F16);
    let mut groups: Vec<TensorGroup> = Vec::new();
    let mut members = Vec::with_capacity(order.len());
    for (k, position, layer) in order {
        let kind = &mut kinds[k];
        let class = gguf::rule_class(&ctx, kind.category, position);
        match kind.groups.get(class).copied() {
            Some(g) if g != usize::MAX => {
                groups[g].count += 1;
                members.push((g as u32, layer));
            }
            slot => {
                members.push((groups.len() as u32, layer));
                if slot.is_some() {
                    kind.groups[class] = groups.len();
                }
                groups.push(TensorGroup {
                    role: kind.entry.role,
                    dims: kind.entry.dims,
                    ndims: kind.entry.ndims,
                    active_elements: kind.entry.active_elements,
                    count: 1,
                    category: kind.category,
                    allowed: kind.allowed,
                    position,
                });
            }
        }
    }
    ModelTensors {
        groups,
        tied,
        n_attn_v,
        totals: std::cell::RefCell::new(Vec::new()),
        members,
    }
}

/// Bytes of one member of group `g` in `format` (the per-tensor rules of [`tensor_formats`]).
/// `ctx`: llama.cpp's rule context for a GGUF file type.
fn group_bytes(
    model: &ModelSpec,
    g: &TensorGroup,
    format: &WeightFormat,
    ctx: Option<&gguf::Context>,
) -> u64 {
    let shape = g.shape();
    match (format, ctx) {
        (WeightFormat::Gguf(ftype), Some(ctx)) => {
            let t = gguf::tensor_type(
                ctx,
                *ftype,
                ftype.default_type(),
                g.category,
                g.allowed,
                shape,
                g.position,
            );
            gguf::shape_bytes(shape, t)
        }
        (WeightFormat::GgufPure(block), _) => {
            let t = if g.allowed {
                gguf::fallback(*block, shape_row_len(shape))
            } else {
                GgmlType::F32
            };
            gguf::shape_bytes(shape, t)
        }
        _ => storage_hf(model, g.shaped(), format).1,
    }
}

/// The same sums as over [`tensor_formats`] (same per-tensor rules), once per group of tensors the
/// rules treat alike: sums of non-negative terms saturate the same either way.
fn compute_weight_totals(
    model: &ModelSpec,
    mt: &ModelTensors,
    format: &WeightFormat,
) -> WeightTotals {
    let gguf_rules = match format {
        WeightFormat::Gguf(ftype) => Some(gguf::Context::new(model, mt.tied, mt.n_attn_v, *ftype)),
        _ => None,
    };
    let mut totals = WeightTotals {
        weights_bytes: 0,
        active_weights_bytes: 0,
        largest_tensor_bytes: 0,
    };
    for g in &mt.groups {
        let shape = g.shape();
        let bytes = group_bytes(model, g, format, gguf_rules.as_ref());
        let active = active_share(shape_elements(shape), g.active_elements, bytes);
        totals.weights_bytes = totals
            .weights_bytes
            .saturating_add(g.count.saturating_mul(bytes));
        totals.active_weights_bytes = totals
            .active_weights_bytes
            .saturating_add(g.count.saturating_mul(active));
        totals.largest_tensor_bytes = totals.largest_tensor_bytes.max(bytes);
    }
    totals
}

/// Bytes one token reads of a tensor stored in `bytes`: storage is uniform per row and per
/// expert, so the active share is exact.
pub(super) fn active_share(elements: u64, active_elements: u64, bytes: u64) -> u64 {
    let elements = elements.max(1);
    (u128::from(bytes) * u128::from(active_elements) / u128::from(elements)) as u64
}

/// [`WeightTotals`] of `model` in `format`: the same numbers as summing [`tensor_formats`],
/// computed once per group of alike tensors. An answer keeps them per format in
/// [`crate::facts::ModelFacts`].
pub fn weight_totals(model: &ModelSpec, format: &WeightFormat) -> WeightTotals {
    compute_weight_totals(model, &group_tensors(model), format)
}

/// Bytes of all of `model`'s weights in `format`.
pub fn weights_bytes(model: &ModelSpec, format: &WeightFormat) -> u64 {
    weight_totals(model, format).weights_bytes
}

/// Bytes of weights read to decode one token: active experts only and one row of an untied
/// token embedding (a tied one is read in full as the output head).
pub fn active_weights_bytes(model: &ModelSpec, format: &WeightFormat) -> u64 {
    weight_totals(model, format).active_weights_bytes
}

/// Average bits per stored parameter of `model` in `format` (what llama.cpp prints as "BPW").
pub fn bits_per_weight(model: &ModelSpec, format: &WeightFormat) -> f64 {
    let params = crate::params::param_counts(model).total.max(1);
    weights_bytes(model, format) as f64 * 8.0 / params as f64
}

#[cfg(test)]
mod weight_totals_tests {
    use super::*;
    use crate::{quant::tensor_formats, tensors::tensors};

    /// The name-free walk gives the same tensors as the named list, and the category and
    /// quantizability found from a per-layer name's suffix equal those of the whole name.
    #[test]
    fn walk_matches_named_tensors() {
        for entry in crate::model_catalog::entries() {
            let Ok(model) = entry.model() else {
                panic!("catalog model {} does not parse", entry.id);
            };
            let named = tensors(&model);
            let mut entries = Vec::new();
            walk(&model, |e| entries.push(e));
            assert_eq!(named.len(), entries.len(), "{}", entry.id);
            for (t, e) in named.iter().zip(&entries) {
                assert_eq!(*t, e.to_tensor(), "{}", entry.id);
                let category = if e.layer.is_some() {
                    gguf::layer_category(e.suffix)
                } else {
                    gguf::category(e.suffix)
                };
                assert_eq!(category, gguf::category(&t.name), "{} {}", entry.id, t.name);
                assert_eq!(
                    gguf::name_allows_quantization(e.suffix, e.ndims),
                    gguf::allows_quantization(t),
                    "{} {}",
                    entry.id,
                    t.name
                );
            }
            // Every tensor is in exactly one group.
            let grouped: u64 = group_tensors(&model).groups.iter().map(|g| g.count).sum();
            assert_eq!(grouped, named.len() as u64, "{}", entry.id);
        }
    }

    /// The grouping is what makes a new model cheap: DeepSeek-V3's ~1,000 tensors fall into a
    /// few dozen groups.
    #[test]
    fn deepseek_v3_tensors_fall_into_few_groups() {
        let Ok(model) = crate::model_catalog::find("deepseek-v3") else {
            panic!("deepseek-v3 is in the catalog");
        };
        let groups = group_tensors(&model).groups.len();
        let tensors = tensors(&model).len();
        assert!(tensors > 1000, "{tensors} tensors");
        assert!(groups <= 64, "{groups} groups for {tensors} tensors");
    }

    /// The parameters bitsandbytes leaves in 16 bits, counted from the groups, equal those the
    /// per-tensor list stores outside nf4, for every catalog model.
    #[test]
    fn bnb_unquantized_elements_match_the_tensor_list() {
        let nf4 = WeightFormat::BnbNf4 { double_quant: true };
        for entry in crate::model_catalog::entries() {
            let Ok(model) = entry.model() else {
                panic!("catalog model {} does not parse", entry.id);
            };
            let expected = tensor_formats(&model, &nf4)
                .iter()
                .filter(|(_, s)| !s.dtype.starts_with("nf4"))
                .fold(0u64, |a, (t, _)| a.saturating_add(t.elements()));
            assert!(expected > 0, "{}", entry.id);
            assert_eq!(
                ModelTensors::new(&model).bnb_unquantized_elements(&model),
                expected,
                "{}",
                entry.id
            );
        }
    }

    /// The remembered one-pass totals equal the sums over the public per-tensor list, for every
    /// catalog model in every format.
    #[test]
    fn weight_totals_equal_tensor_formats_sums() {
        for entry in crate::model_catalog::entries() {
            let Ok(model) = entry.model() else {
                panic!("catalog model {} does not parse", entry.id);
            };
            for format in WeightFormat::all() {
                let list = tensor_formats(&model, &format);
                let expected = WeightTotals {
                    weights_bytes: list
                        .iter()
                        .fold(0u64, |a, (_, s)| a.saturating_add(s.bytes)),
                    active_weights_bytes: list
                        .iter()
                        .fold(0u64, |a, (_, s)| a.saturating_add(s.active_bytes)),
                    largest_tensor_bytes: list.iter().map(|(_, s)| s.bytes).max().unwrap_or(0),
                };
                assert_eq!(
                    weight_totals(&model, &format),
                    expected,
                    "{} {format}",
                    entry.id
                );
                // Asked again: the remembered answer.
                assert_eq!(
                    weight_totals(&model, &format),
                    expected,
                    "{} {format}",
                    entry.id
                );
            }
        }
    }
}

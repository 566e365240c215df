//! What every estimate of one model needs to know of it, worked out once per question.
//!
//! One answer runs about sixty estimates of the same model (the every-format table, the
//! longest-context search, the training advice's searches), and each needs the model's parameter
//! counts, its tensors grouped for the byte rules, and — in training modes — its LoRA counts.
//! None of them depends on the format, context, batch, device or runtime being asked about, so
//! [`crate::answer::answer`] builds one [`ModelFacts`] and hands it to every estimate it runs:
//! each fact is computed on first use and kept for as long as the question is being answered,
//! then dropped with it. Nothing is kept between questions.

use std::cell::{OnceCell, RefCell};

use crate::{
    CoreError,
    model::ModelSpec,
    offload::PlacementBytes,
    params::{ParamCounts, param_counts},
    quant::{ModelTensors, WeightFormat, WeightTotals},
    training::{LoraParams, LoraSettings},
};

/// The facts of one model that do not depend on the question asked about it, each computed on
/// first use. Build one per model with [`ModelFacts::new`]; every estimate made with it must be
/// of that model.
pub struct ModelFacts<'m> {
    model: &'m ModelSpec,
    counts: OnceCell<ParamCounts>,
    tensors: OnceCell<ModelTensors>,
    largest_matrix: OnceCell<u64>,
    bnb_unquantized: OnceCell<u64>,
    /// LoRA counts per settings asked (the training advice tries about twenty).
    lora: RefCell<Vec<(LoraSettings, LoraParams)>>,
    /// Weights grouped by placement for offload, per format asked.
    placement: RefCell<Vec<(WeightFormat, PlacementBytes)>>,
}

impl<'m> ModelFacts<'m> {
    /// Facts of `model`, none computed yet.
    pub fn new(model: &'m ModelSpec) -> ModelFacts<'m> {
        ModelFacts {
            model,
            counts: OnceCell::new(),
            tensors: OnceCell::new(),
            largest_matrix: OnceCell::new(),
            bnb_unquantized: OnceCell::new(),
            lora: RefCell::new(Vec::new()),
            placement: RefCell::new(Vec::new()),
        }
    }

    /// The model these facts are of.
    pub fn model(&self) -> &'m ModelSpec {
        self.model
    }

    /// Parameter counts ([`crate::params::param_counts`]).
    pub fn counts(&self) -> ParamCounts {
        *self.counts.get_or_init(|| param_counts(self.model))
    }

    /// Weight totals in `format` ([`crate::quant::weight_totals`]); the tensor groups are built
    /// once, and each format's totals once.
    pub fn weight_totals(&self, format: &WeightFormat) -> WeightTotals {
        self.tensors
            .get_or_init(|| ModelTensors::new(self.model))
            .totals(self.model, format)
    }

    /// Elements of the largest weight matrix outside the embedding and output head
    /// ([`crate::training::largest_matrix_elements`]).
    pub fn largest_matrix_elements(&self) -> u64 {
        *self
            .largest_matrix
            .get_or_init(|| crate::training::largest_matrix_elements(self.model))
    }

    /// Parameters bitsandbytes leaves in 16 bits when it loads the model in 4 bits (embeddings,
    /// norms, output head): what peft's kbit preparation upcasts to fp32 for QLoRA.
    pub fn bnb_unquantized_elements(&self) -> u64 {
        *self.bnb_unquantized.get_or_init(|| {
            self.tensors
                .get_or_init(|| ModelTensors::new(self.model))
                .bnb_unquantized_elements(self.model)
        })
    }

    /// Weights grouped the way runtimes place them when offloading
    /// ([`crate::offload::PlacementBytes`]), in `format`.
    pub fn placement(&self, format: &WeightFormat) -> PlacementBytes {
        if let Some((_, p)) = self.placement.borrow().iter().find(|(f, _)| f == format) {
            return p.clone();
        }
        let p = self
            .tensors
            .get_or_init(|| ModelTensors::new(self.model))
            .placement(self.model, format);
        self.placement
            .borrow_mut()
            .push((format.clone(), p.clone()));
        p
    }

    /// LoRA trainable parameters for `settings` ([`crate::training::lora_params`]).
    pub fn lora_params(&self, settings: &LoraSettings) -> Result<LoraParams, CoreError> {
        if let Some((_, p)) = self.lora.borrow().iter().find(|(s, _)| s == settings) {
            return Ok(*p);
        }
        let p = crate::training::lora_params(self.model, settings)?;
        self.lora.borrow_mut().push((settings.clone(), p));
        Ok(p)
    }
}

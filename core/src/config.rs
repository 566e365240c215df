//! Hugging Face `config.json` → [`ModelSpec`].

use crate::{CoreError, model::ModelSpec};

/// Parse a `config.json` text. `name` is what the model is called in output (file name, Hub id).
/// Unknown fields are ignored; a multimodal config's `text_config` is used for the language model.
pub fn model_from_config_json(name: &str, json: &str) -> Result<ModelSpec, CoreError> {
    let _ = (name, json);
    todo!("issue #2: config parsing (weights helper)")
}

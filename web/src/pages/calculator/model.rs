//! Where the calculator's model comes from — the catalog, a size, a pasted `config.json`, the
//! Hugging Face Hub, a dropped model file — resolved asynchronously into a [`ResolvedModel`] or
//! a [`WebError`] a person can act on.

use std::sync::Arc;

use headroom_core::model::ModelSpec;

use crate::{
    browser,
    catalog::{self, ExactWeights, ModelSource},
    error::WebError,
    model_files, search,
};

/// A model ready for the estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// The shape (shared: the estimate reads it on every change).
    pub spec: Arc<ModelSpec>,
    /// Where it came from, in words.
    pub source: String,
}

impl ResolvedModel {
    fn new(spec: ModelSpec, source: String) -> ResolvedModel {
        ResolvedModel {
            spec: Arc::new(spec),
            source,
        }
    }
}

/// Hugging Face's URL for a repository's `config.json`.
pub fn hub_config_url(repo_id: &str) -> String {
    format!("https://huggingface.co/{repo_id}/resolve/main/config.json")
}

/// A Hub id looks like `owner/name` (letters, digits, `-_.`).
pub fn valid_hub_id(id: &str) -> bool {
    let mut parts = id.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

/// Resolve a model source; only the Hub needs the network.
pub async fn resolve(source: ModelSource) -> Result<ResolvedModel, WebError> {
    match source {
        ModelSource::Catalog(id) => catalog::catalog_model(&id)
            .map(|spec| ResolvedModel::new(spec, format!("catalog: {id}"))),
        ModelSource::Size(size) => catalog::model_of_size(&size).map(|spec| {
            ResolvedModel::new(spec, format!("by size: {size} parameters (approximate)"))
        }),
        ModelSource::Config { name, json } => catalog::model_from_config(&name, &json)
            .map(|spec| ResolvedModel::new(spec, format!("config.json: {name}"))),
        ModelSource::Spec(json) => serde_json::from_str::<ModelSpec>(&json)
            .map(|spec| {
                let source = format!("model file header: {}", spec.name);
                ResolvedModel::new(spec, source)
            })
            .map_err(|e| {
                WebError::Model(format!(
                    "the model in this link is unreadable ({e}): drop the model file again"
                ))
            }),
        ModelSource::Hub(id) => fetch_hub(search::hub_id_of(&id)).await,
    }
}

/// Fetch a Hub model's config and resolve it.
async fn fetch_hub(repo_id: String) -> Result<ResolvedModel, WebError> {
    if !valid_hub_id(&repo_id) {
        return Err(WebError::Hub(format!(
            "`{repo_id}` is not a Hugging Face model id: write it as owner/name, e.g. \
             Qwen/Qwen3-8B, or paste the model's Hub address"
        )));
    }
    let r = browser::fetch_text(&hub_config_url(&repo_id))
        .await
        .map_err(|e| {
            WebError::Hub(format!(
                "could not reach huggingface.co for {repo_id} ({e}): you may be offline or it \
                 is blocked. Paste the model's config.json in the config.json tab instead."
            ))
        })?;
    match r.status {
        401 | 403 => Err(WebError::Hub(format!(
            "{repo_id} is gated (HTTP {}): accept its license on huggingface.co/{repo_id} — the \
             browser cannot send your token — then download config.json and paste it in the \
             config.json tab.",
            r.status
        ))),
        404 => Err(WebError::Hub(format!(
            "{repo_id} has no config.json on the Hub (HTTP 404): check the spelling (owner/name, \
             case matters) or whether the repository holds only GGUF files (drop one in the File \
             tab)."
        ))),
        s if !(200..300).contains(&s) => Err(WebError::Hub(format!(
            "the Hub answered HTTP {s} for {repo_id}; try again later or paste config.json."
        ))),
        _ => catalog::model_from_config(&repo_id, &r.body)
            .map(|spec| ResolvedModel::new(spec, format!("Hugging Face: {repo_id}")))
            .map_err(|e| WebError::Hub(format!("{repo_id}: {e}"))),
    }
}

/// Summary of a dropped model file's tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct FileSummary {
    /// File name(s).
    pub files: String,
    /// Tensor count.
    pub tensor_count: usize,
    /// `(type, elements, bytes)` per element type, largest first.
    pub by_type: Vec<(String, u64, u64)>,
    /// Notes (what the header could not say).
    pub notes: Vec<String>,
    /// Every tensor: name, shape, element type, bytes.
    pub tensors: Vec<(String, Vec<u64>, String, u64)>,
}

/// What a dropped file set gave.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutcome {
    /// The model's shape, when the header gives it (GGUF).
    pub spec: Option<ModelSpec>,
    /// The file's format in headroom's names, when known.
    pub file_type: Option<String>,
    /// The checkpoint's exact weights.
    pub exact: ExactWeights,
    /// What the header holds.
    pub summary: FileSummary,
}

async fn read_gguf(file: &web_sys::File) -> Result<FileOutcome, WebError> {
    let name = file.name();
    let header = model_files::read_gguf_header(file).await?;
    let model = model_files::spec_from_gguf(&header, &name)
        .map_err(|e| WebError::File(format!("{name}: {e}")))?;
    let by_type = header
        .type_breakdown()
        .into_iter()
        .map(|(t, e, b)| (t.to_string(), e, b))
        .collect();
    Ok(FileOutcome {
        exact: ExactWeights {
            file: name.clone(),
            bytes: header.tensor_bytes(),
            parameters: header.parameters(),
            format: model.file_type.clone(),
            parameters_exact: true,
        },
        summary: FileSummary {
            files: name,
            tensor_count: header.tensors.len(),
            by_type,
            notes: model.notes,
            tensors: header
                .tensors
                .iter()
                .map(|t| {
                    (
                        t.name.clone(),
                        t.shape.clone(),
                        t.ggml_type.name.to_string(),
                        t.bytes,
                    )
                })
                .collect(),
        },
        file_type: model.file_type,
        spec: Some(model.spec),
    })
}

async fn read_safetensors(files: &[web_sys::File]) -> Result<FileOutcome, WebError> {
    let (shards, weights) = model_files::read_safetensors_shards(files).await?;
    let tensors = shards
        .iter()
        .flat_map(|(_, h)| &h.tensors)
        .map(|t| (t.name.clone(), t.shape.clone(), t.dtype.clone(), t.bytes))
        .collect::<Vec<_>>();
    let tensor_count = tensors.len();
    let by_type = weights
        .by_dtype
        .iter()
        .map(|d| (d.dtype.clone(), d.elements, d.bytes))
        .collect();
    let names = shards.into_iter().map(|(name, _)| name).collect::<Vec<_>>();
    let files = names.join(", ");
    Ok(FileOutcome {
        spec: None,
        file_type: None,
        exact: ExactWeights {
            file: files.clone(),
            bytes: weights.bytes,
            parameters: weights.parameters,
            format: weights.format_name.clone(),
            parameters_exact: weights.parameters_exact,
        },
        summary: FileSummary {
            files,
            tensor_count,
            by_type,
            notes: vec![
                "a safetensors header lists tensors, not the model's shape: the KV cache and \
                 activations come from the model chosen in the catalog, config.json or Hub tab. \
                 Drop every shard of a sharded checkpoint together."
                    .into(),
            ],
            tensors,
        },
    })
}

/// Read dropped or chosen files: one `.gguf`, or one or more `.safetensors` shards.
pub async fn read_model_files(files: Vec<web_sys::File>) -> Result<FileOutcome, WebError> {
    let is = |f: &web_sys::File, ext: &str| f.name().to_ascii_lowercase().ends_with(ext);
    match files.as_slice() {
        [] => Err(WebError::File(
            "no file was dropped: drop a .gguf file or .safetensors shards".into(),
        )),
        all if all.iter().all(|f| is(f, ".safetensors")) => read_safetensors(all).await,
        [one] if is(one, ".gguf") => read_gguf(one).await,
        other => Err(WebError::File(format!(
            "{}: drop one .gguf file or .safetensors shards (other files are not model headers)",
            other
                .iter()
                .map(|f| f.name())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_checked_before_fetching() {
        assert!(valid_hub_id("Qwen/Qwen3-8B"));
        assert!(valid_hub_id("meta-llama/Llama-3.1-8B"));
        assert!(!valid_hub_id("Qwen3-8B"));
        assert!(!valid_hub_id("a/b/c"));
        assert!(!valid_hub_id("a/b?x=1"));
        assert_eq!(
            hub_config_url("Qwen/Qwen3-8B"),
            "https://huggingface.co/Qwen/Qwen3-8B/resolve/main/config.json"
        );
    }
}

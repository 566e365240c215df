//! Turning `headroom fit MODEL` into a [`ModelSpec`]: an existing path first, then the bundled
//! catalog, then a Hugging Face id (`owner/name`) fetched from the Hub.
//!
//! The order matters: a folder named like a Hub id (`meta-llama/Llama-3.1-8B` downloaded into the
//! working directory) is what the user meant when it exists, and a catalog model must never cost
//! a network round trip.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use headroom_core::{CoreError, config::model_from_config_json, model::ModelSpec, model_catalog};

use crate::hub;

/// Where the model came from, for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local config.json.
    File(PathBuf),
    /// The bundled catalog; the entry's Hugging Face id.
    Catalog(String),
    /// Fetched from a Hub at this URL.
    Hub(String),
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "config {}", path.display()),
            Self::Catalog(hub_id) => write!(f, "headroom's model catalog, {hub_id}"),
            Self::Hub(url) => write!(f, "{url}"),
        }
    }
}

/// A model and where it came from.
pub struct ResolvedModel {
    /// The model's shape.
    pub spec: ModelSpec,
    /// Its origin.
    pub source: ModelSource,
}

/// File name looked for inside a folder given as MODEL (what `save_pretrained` writes).
const CONFIG_FILE_NAME: &str = "config.json";

/// Resolve `arg`: an existing file or folder, a catalog name, or a Hub id.
pub fn resolve(arg: &str) -> anyhow::Result<ResolvedModel> {
    let path = Path::new(arg);
    if path.exists() {
        return from_path(path);
    }
    // A model page's URL pasted from the browser means its id.
    let from_url = hub::id_from_url(arg);
    let arg = from_url.unwrap_or(arg);
    let not_in_catalog = match model_catalog::find_entry(arg) {
        Ok(entry) => {
            let spec = entry
                .model()
                .with_context(|| format!("catalog entry `{}`", entry.id))?;
            return Ok(ResolvedModel {
                spec,
                source: ModelSource::Catalog(entry.hub_id.clone()),
            });
        }
        Err(err) => err,
    };
    // A `.json` name is a file the user expected to exist, never a Hub repo.
    let looks_like_path = from_url.is_none()
        && (arg.ends_with(".json")
            || arg.starts_with(['.', '/', '~'])
            || arg.contains('\\')
            || arg.matches('/').count() > 1);
    if looks_like_path {
        bail!(
            "no such file or folder `{arg}`; give the path of a config.json (or of a folder \
             holding one), a catalog name (`headroom models`), or a Hugging Face id owner/name"
        );
    }
    if hub::looks_like_hub_id(arg) {
        let (json, origin) = hub::config_for(arg)?;
        let source = match origin {
            hub::ConfigOrigin::Url(url) => ModelSource::Hub(url),
            hub::ConfigOrigin::Cache(file) => ModelSource::File(file),
        };
        let spec = model_from_config_json(arg, &json)
            .with_context(|| format!("`{arg}`'s config.json from {source}"))?;
        return Ok(ResolvedModel { spec, source });
    }
    // Core's message carries the close catalog matches.
    let hint = match not_in_catalog {
        CoreError::Unknown { hint, .. } => hint,
        other => other.to_string(),
    };
    bail!("unknown model `{arg}`: not a file, not in the catalog, not a Hugging Face id; {hint}")
}

/// Read a config.json, or the config.json inside a folder.
fn from_path(path: &Path) -> anyhow::Result<ResolvedModel> {
    let file = if path.is_dir() {
        let inside = path.join(CONFIG_FILE_NAME);
        if !inside.is_file() {
            bail!(
                "folder {} has no {CONFIG_FILE_NAME}; give the model's folder (where \
                 save_pretrained or a Hub download put config.json) or the file itself",
                path.display()
            );
        }
        inside
    } else {
        path.to_path_buf()
    };
    let json = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "cannot read {}; check the path and permissions",
            file.display()
        )
    })?;
    let name = display_name(&file);
    let spec =
        model_from_config_json(&name, &json).with_context(|| format!("{}", file.display()))?;
    Ok(ResolvedModel {
        spec,
        source: ModelSource::File(file),
    })
}

/// A name for a model read from `file`: the folder's name for `…/Model/config.json`, else the
/// file's stem (`Llama-3.1-8B.json` → `Llama-3.1-8B`).
fn display_name(file: &Path) -> String {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("model");
    if stem == "config"
        && let Some(folder) = file
            .canonicalize()
            .ok()
            .as_deref()
            .and_then(Path::parent)
            .and_then(Path::file_name)
            .and_then(|s| s.to_str())
    {
        return folder.to_owned();
    }
    stem.to_owned()
}

/// Lowercase letters and digits only: `Llama-3.1_8B` → `llama318b`.
pub fn normalize(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

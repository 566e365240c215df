//! Turning `headroom fit MODEL` into a [`ModelSpec`]: an existing path first, then the bundled
//! catalog, then a Hugging Face id (`owner/name`) fetched from the Hub.
//!
//! A path may be a `config.json`, a `.gguf` file (shape from its metadata, weights from its
//! tensors), or a checkpoint folder (`config.json` plus the header of every `*.safetensors`
//! shard, or of the shards `model.safetensors.index.json` lists). Only headers are read: a GGUF
//! prefix grown while core asks for more (at most [`GGUF_MAX_HEADER_BYTES`]), a safetensors
//! shard's length prefix and JSON header. The weights are never read.
//!
//! The order matters: a folder named like a Hub id (`meta-llama/Llama-3.1-8B` downloaded into the
//! working directory) is what the user meant when it exists, and a catalog model must never cost
//! a network round trip.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use headroom_core::{
    CoreError,
    config::model_from_config_json,
    files::{
        self, CheckpointWeights, FileError, GGUF_FIRST_READ_BYTES, GGUF_MAX_HEADER_BYTES,
        gguf_header::GgufHeader, safetensors_header::SafetensorsHeader,
    },
    limits::{MAX_CONFIG_JSON_BYTES, MAX_INDEX_JSON_BYTES},
    model::ModelSpec,
    model_catalog,
    units::gib,
};

use crate::hub;
use crate::user_file::read_text;

/// Where the model came from, for the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSource {
    /// A local config.json.
    File(PathBuf),
    /// The bundled catalog; the entry's Hugging Face id.
    Catalog(String),
    /// Fetched from a Hub at this URL.
    Hub(String),
    /// A GGUF file's header.
    Gguf(PathBuf),
}

impl std::fmt::Display for ModelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::File(path) => write!(f, "config {}", path.display()),
            Self::Catalog(hub_id) => write!(f, "headroom's model catalog, {hub_id}"),
            Self::Hub(url) => write!(f, "{url}"),
            Self::Gguf(path) => write!(f, "GGUF header of {}", path.display()),
        }
    }
}

/// A model and where it came from.
pub struct ResolvedModel {
    /// The model's shape.
    pub spec: ModelSpec,
    /// Its origin.
    pub source: ModelSource,
    /// The checkpoint's weights exactly as shipped, when its headers were read (a `.gguf` file,
    /// or a folder with `.safetensors` shards).
    pub checkpoint: Option<CheckpointWeights>,
}

/// File name looked for inside a folder given as MODEL (what `save_pretrained` writes).
const CONFIG_FILE_NAME: &str = "config.json";

/// Resolve `arg`: an existing file or folder, a catalog name, or a Hub id.
pub fn resolve(arg: &str) -> anyhow::Result<ResolvedModel> {
    let path = Path::new(arg);
    if path.exists() {
        return from_path(path);
    }
    // `owner/name:file.gguf`: one GGUF file of a Hub repository, read by Range requests.
    if let Some((id, file)) = arg.split_once(':')
        && hub::looks_like_hub_id(id)
        && has_extension(Path::new(file), "gguf")
    {
        return from_hub_gguf(id, file);
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
                checkpoint: None,
            });
        }
        Err(err) => err,
    };
    // A `.json`, `.gguf` or `.safetensors` name is a file the user expected to exist, never a
    // Hub repo.
    let looks_like_path = from_url.is_none()
        && ([".json", ".gguf", ".safetensors"]
            .iter()
            .any(|ext| arg.to_ascii_lowercase().ends_with(ext))
            || arg.starts_with(['.', '/', '~'])
            || arg.contains('\\')
            || arg.matches('/').count() > 1);
    if looks_like_path {
        bail!(
            "no such file or folder `{arg}`; give the path of a config.json, a .gguf file or a \
             model folder, a catalog name (`headroom models`), or a Hugging Face id owner/name"
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
        // The checkpoint's headers refine the weights; without them the config still answers.
        let checkpoint = match &source {
            ModelSource::Hub(_) => hub_safetensors_weights(arg, mlx_group_size(&json))
                .unwrap_or_else(|err| {
                    say!(
                        "note: `{arg}`'s safetensors headers could not be read ({err:#}); the \
                     weights are estimated from config.json"
                    );
                    None
                }),
            // A config from the Hugging Face cache: the shards downloaded beside it, if any.
            ModelSource::File(file) => file
                .parent()
                .map(|snapshot| {
                    let shards = safetensors_shards_in(snapshot)?;
                    if shards.is_empty() {
                        return Ok(None);
                    }
                    safetensors_weights(&shards, mlx_group_size(&json)).map(Some)
                })
                .transpose()
                .map(Option::flatten)
                .unwrap_or_else(|err| {
                    say!(
                        "note: `{arg}`'s cached safetensors headers could not be read ({err:#}); \
                         the weights are estimated from config.json"
                    );
                    None
                }),
            _ => None,
        };
        return Ok(ResolvedModel {
            spec,
            source,
            checkpoint,
        });
    }
    // Core's message carries the close catalog matches.
    let hint = match not_in_catalog {
        CoreError::Unknown { hint, .. } => hint,
        other => other.to_string(),
    };
    bail!("unknown model `{arg}`: not a file, not in the catalog, not a Hugging Face id; {hint}")
}

/// Name of the index `save_pretrained` writes beside sharded safetensors.
const SAFETENSORS_INDEX_FILE_NAME: &str = "model.safetensors.index.json";

/// Whether `path`'s extension is `ext`, case-insensitively.
fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Read a config.json, a `.gguf` file, a `.safetensors` shard (with the config.json beside it), or
/// a folder holding a config.json (and the checkpoint's shards).
fn from_path(path: &Path) -> anyhow::Result<ResolvedModel> {
    if path.is_file() && has_extension(path, "gguf") {
        return from_gguf(path);
    }
    let (file, shards) = if path.is_dir() {
        let inside = path.join(CONFIG_FILE_NAME);
        if !inside.is_file() {
            if let Some(gguf) = only_gguf_in(path)? {
                return from_gguf(&gguf);
            }
            bail!(
                "folder {} has no {CONFIG_FILE_NAME}; give the model's folder (where \
                 save_pretrained or a Hub download put config.json), a .gguf file, or the \
                 config.json itself",
                path.display()
            );
        }
        (inside, safetensors_shards_in(path)?)
    } else if has_extension(path, "safetensors") {
        let folder = path.parent().unwrap_or(Path::new("."));
        let config = folder.join(CONFIG_FILE_NAME);
        if !config.is_file() {
            bail!(
                "{} has no {CONFIG_FILE_NAME} beside it: a safetensors header lists tensors, not \
                 the model's shape; put the model's config.json in {} or give the folder",
                path.display(),
                folder.display()
            );
        }
        (config, vec![path.to_path_buf()])
    } else {
        (path.to_path_buf(), Vec::new())
    };
    let json = read_text(&file, "config", MAX_CONFIG_JSON_BYTES)?;
    let name = display_name(&file);
    let spec =
        model_from_config_json(&name, &json).with_context(|| format!("{}", file.display()))?;
    let checkpoint = if shards.is_empty() {
        None
    } else {
        Some(safetensors_weights(&shards, mlx_group_size(&json))?)
    };
    Ok(ResolvedModel {
        spec,
        source: ModelSource::File(file),
        checkpoint,
    })
}

/// The one `.gguf` file in a folder without a config.json, if there is exactly one.
fn only_gguf_in(folder: &Path) -> anyhow::Result<Option<PathBuf>> {
    let ggufs = files_with_extension(folder, "gguf")?;
    Ok(match ggufs.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    })
}

/// Files in `folder` with extension `ext`, sorted by name.
fn files_with_extension(folder: &Path, ext: &str) -> anyhow::Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder)
        .with_context(|| format!("cannot list {}; check its permissions", folder.display()))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", folder.display()))?
            .path();
        if path.is_file() && has_extension(&path, ext) {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

/// The checkpoint's shards in `folder`: those `model.safetensors.index.json` lists when it exists
/// (each must be there), else `model.safetensors`, else every `*.safetensors` file. (Mistral's
/// repositories also hold `consolidated.safetensors`, the same weights under other names: the
/// index or `model.safetensors` keeps them from being counted twice.)
fn safetensors_shards_in(folder: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let index = folder.join(SAFETENSORS_INDEX_FILE_NAME);
    if !index.is_file() {
        let single = folder.join(SINGLE_SAFETENSORS_FILE_NAME);
        if single.is_file() {
            return Ok(vec![single]);
        }
        return files_with_extension(folder, "safetensors");
    }
    let text = read_text(&index, "safetensors index", MAX_INDEX_JSON_BYTES)?;
    let names = shard_names_from_index(&text).with_context(|| format!("{}", index.display()))?;
    let mut shards = Vec::with_capacity(names.len());
    for name in names {
        let shard = folder.join(&name);
        if !shard.is_file() {
            bail!(
                "{} lists {name}, which is not in {}: download it too (only its header is read), \
                 or give config.json alone",
                index.display(),
                folder.display()
            );
        }
        shards.push(shard);
    }
    Ok(shards)
}

/// The shard file names of a `model.safetensors.index.json` (`weight_map`'s values), each once,
/// sorted. A name that is not a plain file name (a path, `..`) is an error: the index must not
/// send the reader outside the checkpoint.
pub fn shard_names_from_index(text: &str) -> anyhow::Result<Vec<String>> {
    let index: serde_json::Value =
        serde_json::from_str(text).context("not valid JSON; download the index again")?;
    let map = index
        .get("weight_map")
        .and_then(serde_json::Value::as_object)
        .context("no `weight_map` object mapping tensors to shard files")?;
    let mut names = BTreeSet::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .with_context(|| format!("`weight_map`'s `{tensor}` is not a file name"))?;
        let plain = !file.is_empty()
            && !file.contains(['/', '\\'])
            && file != ".."
            && file != "."
            && file.to_ascii_lowercase().ends_with(".safetensors");
        if !plain {
            bail!("`weight_map` sends `{tensor}` to `{file}`, not a .safetensors file name");
        }
        names.insert(file.to_owned());
    }
    if names.is_empty() {
        bail!("`weight_map` is empty");
    }
    Ok(names.into_iter().collect())
}

/// A file's name for messages.
fn file_name(path: &Path) -> String {
    path.file_name()
        .and_then(|n| n.to_str())
        .map_or_else(|| path.display().to_string(), str::to_owned)
}

/// Read a checkpoint file's first `bytes` bytes (fewer if it is shorter).
fn read_prefix(path: &Path, bytes: u64) -> anyhow::Result<Vec<u8>> {
    crate::user_file::read_prefix(path, "checkpoint", bytes)
}

fn file_size(path: &Path) -> anyhow::Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("cannot read {}'s size", path.display()))?
        .len())
}

/// Read a GGUF file's header, growing the read while core asks for more bytes.
pub fn read_gguf_header(path: &Path) -> anyhow::Result<GgufHeader> {
    let size = file_size(path)?;
    gguf_header_from(&file_name(path), size, |n| read_prefix(path, n))
}

/// A GGUF header from a reader of the file's first `n` bytes: 1 MiB first, then as much as core
/// asks for, at most [`GGUF_MAX_HEADER_BYTES`].
pub fn gguf_header_from(
    name: &str,
    size: u64,
    mut read: impl FnMut(u64) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<GgufHeader> {
    let mut want = GGUF_FIRST_READ_BYTES.min(size);
    loop {
        let bytes = read(want)?;
        match files::gguf_header::parse(&bytes, Some(size)) {
            Ok(header) => return Ok(header),
            Err(FileError::NeedMoreBytes { have, need, .. }) => {
                want = files::next_read_bytes(have, need, Some(size), GGUF_MAX_HEADER_BYTES)
                    .filter(|&next| next > have)
                    .with_context(|| {
                        format!(
                            "{name}: the GGUF header would be over {need} bytes, more than the {} \
                             MiB any real header takes: the file is corrupt",
                            GGUF_MAX_HEADER_BYTES >> 20
                        )
                    })?;
            }
            Err(err) => return Err(anyhow::Error::new(err).context(name.to_owned())),
        }
    }
}

/// A safetensors header from a reader of the file's first `n` bytes: the length prefix, then
/// exactly the header it announces (checked against the file's size first).
pub fn safetensors_header_from(
    name: &str,
    size: u64,
    mut read: impl FnMut(u64) -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<SafetensorsHeader> {
    let mut want = files::safetensors_header::LENGTH_PREFIX_BYTES;
    loop {
        let bytes = read(want)?;
        match files::safetensors_header::parse(&bytes, Some(size)) {
            Ok(header) => return Ok(header),
            Err(FileError::NeedMoreBytes { need, .. }) if need > want => want = need,
            Err(err) => return Err(anyhow::Error::new(err).context(name.to_owned())),
        }
    }
}

/// The summed weights of safetensors shards on disk.
fn safetensors_weights(
    shards: &[PathBuf],
    mlx_group_size: Option<u64>,
) -> anyhow::Result<CheckpointWeights> {
    let mut headers = Vec::with_capacity(shards.len());
    for shard in shards {
        let name = file_name(shard);
        let size = file_size(shard)?;
        let header = safetensors_header_from(&name, size, |n| read_prefix(shard, n))?;
        headers.push((name, header));
    }
    Ok(CheckpointWeights::from_safetensors_with(
        &headers,
        mlx_group_size,
    )?)
}

/// The quantization group size an MLX checkpoint's config.json gives (`quantization`, or
/// `quantization_config` as newer mlx-lm also writes), so its packed weights count exactly.
fn mlx_group_size(config_json: &str) -> Option<u64> {
    let config: serde_json::Value = serde_json::from_str(config_json).ok()?;
    ["quantization", "quantization_config"]
        .iter()
        .find_map(|key| config.get(key)?.get("group_size")?.as_u64())
}

/// A `.gguf` file: the spec from its metadata, the weights from its tensors.
fn from_gguf(path: &Path) -> anyhow::Result<ResolvedModel> {
    let header = read_gguf_header(path)?;
    let name = file_name(path);
    let model =
        files::spec_from_gguf(&header, &name).with_context(|| path.display().to_string())?;
    gguf_notes(&name, &model);
    Ok(ResolvedModel {
        spec: model.spec,
        source: ModelSource::Gguf(path.to_path_buf()),
        checkpoint: Some(CheckpointWeights::from_gguf(&header, &name)),
    })
}

/// Where Hub files are read from, and how.
struct HubAccess {
    endpoint: String,
    token: Option<String>,
    timeout: std::time::Duration,
}

impl HubAccess {
    fn from_env() -> anyhow::Result<HubAccess> {
        Ok(HubAccess {
            endpoint: hub::endpoint_from_env()?,
            token: hub::token_from_env(),
            timeout: hub::timeout_from_env()?,
        })
    }

    /// The first `bytes` of `file` in `id` (`None`: no such file).
    fn prefix(&self, id: &str, file: &str, bytes: u64) -> anyhow::Result<Option<hub::Prefix>> {
        hub::fetch_prefix(
            &self.endpoint,
            self.token.as_deref(),
            id,
            file,
            bytes,
            self.timeout,
        )
    }

    /// A reader of `file`'s first `n` bytes for the header parsers: the first response (already
    /// read to learn the file's size) answers when it holds enough.
    fn reader<'a>(
        &'a self,
        id: &'a str,
        file: &'a str,
        first: Vec<u8>,
    ) -> impl FnMut(u64) -> anyhow::Result<Vec<u8>> + 'a {
        let mut first = Some(first);
        move |n| {
            if let Some(bytes) = first.take()
                && let Some(head) = usize::try_from(n).ok().and_then(|n| bytes.get(..n))
            {
                return Ok(head.to_vec());
            }
            self.prefix(id, file, n)?.map(|p| p.bytes).with_context(|| {
                format!(
                    "{} disappeared while it was read",
                    hub::file_url(&self.endpoint, id, file)
                )
            })
        }
    }

    /// The safetensors header of `file` in `id`; `None` when there is no such file.
    fn safetensors_header(
        &self,
        id: &str,
        file: &str,
    ) -> anyhow::Result<Option<SafetensorsHeader>> {
        let first_read = files::safetensors_header::LENGTH_PREFIX_BYTES;
        let Some(first) = self.prefix(id, file, first_read)? else {
            return Ok(None);
        };
        let header =
            safetensors_header_from(file, first.file_bytes, self.reader(id, file, first.bytes))?;
        Ok(Some(header))
    }
}

/// The weights of `id`'s safetensors checkpoint on the Hub: the shards
/// `model.safetensors.index.json` lists, else `model.safetensors`; `None` when the repository
/// has neither (or `$HF_HUB_OFFLINE` is set). Two Range requests per shard, headers only.
fn hub_safetensors_weights(
    id: &str,
    mlx_group_size: Option<u64>,
) -> anyhow::Result<Option<CheckpointWeights>> {
    if hub::offline_from_env() {
        return Ok(None);
    }
    let hub = HubAccess::from_env()?;
    let index = hub::fetch_text(
        &hub.endpoint,
        hub.token.as_deref(),
        id,
        SAFETENSORS_INDEX_FILE_NAME,
        hub.timeout,
    )?;
    let names = match index {
        Some(text) => shard_names_from_index(&text)
            .with_context(|| hub::file_url(&hub.endpoint, id, SAFETENSORS_INDEX_FILE_NAME))?,
        None => vec![SINGLE_SAFETENSORS_FILE_NAME.to_owned()],
    };
    let mut headers = Vec::with_capacity(names.len());
    for name in names {
        match hub.safetensors_header(id, &name)? {
            Some(header) => headers.push((name, header)),
            None if headers.is_empty() && name == SINGLE_SAFETENSORS_FILE_NAME => return Ok(None),
            None => bail!(
                "{} is listed in the index but missing",
                hub::file_url(&hub.endpoint, id, &name)
            ),
        }
    }
    Ok(Some(CheckpointWeights::from_safetensors_with(
        &headers,
        mlx_group_size,
    )?))
}

/// `owner/name:file.gguf`: the spec and weights from one GGUF file of a Hub repository, read by
/// Range requests (1 MiB first, more while core asks; never the weights).
fn from_hub_gguf(id: &str, file: &str) -> anyhow::Result<ResolvedModel> {
    if file
        .split(['/', '\\'])
        .any(|part| part.is_empty() || part == "..")
    {
        bail!("`{file}` is not a file path inside the repository `{id}`");
    }
    if hub::offline_from_env() {
        bail!(
            "{} is set, so `{id}:{file}` cannot be read from the Hub; download the file and pass \
             its path",
            hub::OFFLINE_VAR
        );
    }
    let hub = HubAccess::from_env()?;
    let url = hub::file_url(&hub.endpoint, id, file);
    let first = hub
        .prefix(id, file, GGUF_FIRST_READ_BYTES)?
        .with_context(|| {
            format!(
                "no file `{file}` in `{id}` on {} (HTTP 404); check the name on the model page's \
             Files tab",
                hub.endpoint
            )
        })?;
    let name = file.rsplit('/').next().unwrap_or(file);
    let header = gguf_header_from(name, first.file_bytes, hub.reader(id, file, first.bytes))
        .with_context(|| url.clone())?;
    let model = files::spec_from_gguf(&header, name).with_context(|| url.clone())?;
    gguf_notes(name, &model);
    Ok(ResolvedModel {
        spec: model.spec,
        source: ModelSource::Hub(url),
        checkpoint: Some(CheckpointWeights::from_gguf(&header, name)),
    })
}

/// The file an unsharded safetensors checkpoint is saved as.
const SINGLE_SAFETENSORS_FILE_NAME: &str = "model.safetensors";

/// What the GGUF header could not say, and the file's own format.
fn gguf_notes(name: &str, model: &files::GgufModel) {
    for note in &model.notes {
        say!("note: {name}: {note}");
    }
    if let Some(file_type) = &model.file_type {
        say!("note: {name} is {file_type}; `--quant {file_type}` estimates it in its own format");
    }
}

/// One line on a checkpoint's exact weights, for the output.
pub fn describe_checkpoint(weights: &CheckpointWeights) -> String {
    let format = weights
        .format_name
        .as_deref()
        .map(|f| format!(" as {f}"))
        .unwrap_or_default();
    let approx = if weights.parameters_exact {
        ""
    } else {
        " (packed weights counted as stored)"
    };
    let mix = weights
        .by_dtype
        .iter()
        .map(|d| format!("{} {:.2} GiB", d.dtype, gib(d.bytes)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "checkpoint {}: {} tensors, {} parameters{approx}, {} bytes ({:.2} GiB){format}: {mix}",
        weights.source,
        weights.tensor_count,
        weights.parameters,
        weights.bytes,
        gib(weights.bytes)
    )
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

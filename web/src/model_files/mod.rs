//! Model files dropped on the page: only their headers are read (`File.slice`), never the
//! weights. The parsing is core's ([`headroom_core::files`]); this module reads the bytes it asks
//! for, growing the read while core says the header continues.

use headroom_core::files::{
    self, FileError, GGUF_FIRST_READ_BYTES, GGUF_MAX_HEADER_BYTES, gguf_header::GgufHeader,
    safetensors_header::SafetensorsHeader,
};

pub use headroom_core::files::{
    CheckpointWeights, GgufModel, gguf_header as gguf, llama_ftype_name, safetensors_header,
    spec_from_gguf,
};

use crate::{browser, error::WebError};

/// Read a `.gguf` file's header: 1 MiB first, more while core asks for it, at most
/// [`GGUF_MAX_HEADER_BYTES`]. Errors start with the file's name.
pub async fn read_gguf_header(file: &web_sys::File) -> Result<GgufHeader, WebError> {
    let name = file.name();
    let size = file.size() as u64;
    let mut want = GGUF_FIRST_READ_BYTES.min(size);
    loop {
        let bytes = browser::read_file_range(file, 0, want).await?;
        match files::gguf_header::parse(&bytes, Some(size)) {
            Ok(header) => return Ok(header),
            Err(FileError::NeedMoreBytes { have, need, .. }) => {
                want = files::next_read_bytes(have, need, Some(size), GGUF_MAX_HEADER_BYTES)
                    .filter(|&next| next > have)
                    .ok_or_else(|| {
                        WebError::File(format!(
                            "{name}: the GGUF header would be over {need} bytes, more than the \
                             {} MiB any real header takes: the file is corrupt",
                            GGUF_MAX_HEADER_BYTES >> 20
                        ))
                    })?;
            }
            Err(e) => return Err(WebError::File(format!("{name}: {e}"))),
        }
    }
}

/// Read a `.safetensors` file's header: its 8-byte length, then exactly the header. Errors start
/// with the file's name.
pub async fn read_safetensors_header(file: &web_sys::File) -> Result<SafetensorsHeader, WebError> {
    let name = file.name();
    let size = file.size() as u64;
    let mut want = safetensors_header::LENGTH_PREFIX_BYTES;
    // Two reads: the length prefix, then the header it announces (checked against the file's
    // size before it is read).
    for _ in 0..2 {
        let bytes = browser::read_file_range(file, 0, want).await?;
        match safetensors_header::parse(&bytes, Some(size)) {
            Ok(header) => return Ok(header),
            Err(FileError::NeedMoreBytes { need, .. }) if need > want => want = need,
            Err(e) => return Err(WebError::File(format!("{name}: {e}"))),
        }
    }
    Err(WebError::File(format!(
        "{name}: the safetensors header could not be read whole; read the file again"
    )))
}

/// Read every dropped `.safetensors` shard's header and sum them: `(file name, header)` per shard
/// and the checkpoint's exact weights (a tensor in two shards is an error).
pub async fn read_safetensors_shards(
    files: &[web_sys::File],
) -> Result<(Vec<(String, SafetensorsHeader)>, CheckpointWeights), WebError> {
    let mut shards = Vec::with_capacity(files.len());
    for file in files {
        shards.push((file.name(), read_safetensors_header(file).await?));
    }
    let weights =
        CheckpointWeights::from_safetensors(&shards).map_err(|e| WebError::File(e.to_string()))?;
    Ok((shards, weights))
}

//! Fetching `config.json` from the Hugging Face Hub (`$HF_ENDPOINT`, `$HF_TOKEN`).
//!
//! `headroom fit owner/name` reads `{endpoint}/{owner}/{name}/resolve/main/config.json`, the URL
//! the Hub's own clients use for one file of the `main` revision. Only `config.json` is fetched:
//! a few kilobytes, never weights. Every failure ends in one message that says what happened and
//! what to do (accept a license, set `HF_TOKEN`, fix the id, or pass a local `config.json`).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

#[cfg(feature = "hub")]
use anyhow::Context;
use anyhow::bail;
use headroom_core::limits::MAX_CONFIG_JSON_BYTES;
#[cfg(feature = "hub")]
use headroom_core::limits::MAX_INDEX_JSON_BYTES;

use crate::user_file::read_text;

/// The public Hub, used when `$HF_ENDPOINT` is not set (the variable `huggingface_hub` reads too).
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Environment variable that replaces [`DEFAULT_ENDPOINT`] (mirrors, self-hosted hubs, tests).
pub const ENDPOINT_VAR: &str = "HF_ENDPOINT";

/// Environment variable holding an access token, sent as `Authorization: Bearer …`.
pub const TOKEN_VAR: &str = "HF_TOKEN";

/// Set to 1/true/yes/on, the Hub is not asked; only the local cache is read (as in
/// `huggingface_hub`).
pub const OFFLINE_VAR: &str = "HF_HUB_OFFLINE";

/// Seconds allowed for the whole request, overriding [`DEFAULT_TIMEOUT`] (the variable
/// `huggingface_hub` reads for the same purpose).
pub const TIMEOUT_VAR: &str = "HF_HUB_DOWNLOAD_TIMEOUT";

/// Whole-request limit. A config.json is a few KB; 30 s covers a slow link without leaving the
/// user staring at a hung terminal.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Connect (TCP + TLS) limit, or the whole-request limit if shorter: an unreachable host should
/// fail fast.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest timeout accepted from [`TIMEOUT_VAR`] (one hour): beyond it the number is a mistake.
const MAX_TIMEOUT_S: f64 = 3600.0;

/// Largest config.json accepted, from the Hub or its cache: the same cap as for a local file.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
const MAX_CONFIG_BYTES: u64 = MAX_CONFIG_JSON_BYTES;

/// Largest `refs/main` of the cache read: it holds one 40-character commit hash.
const MAX_REF_BYTES: u64 = 4096;

/// Most characters in one part of a Hub id (the Hub's own limit is 96 for a repo name).
const MAX_ID_PART_CHARS: usize = 96;

/// Whether `text` has the shape of a Hub model id, `owner/name`: exactly one `/`, both parts
/// made of ASCII letters, digits, `-`, `_`, `.`, neither starting with `.` or `-`.
pub fn looks_like_hub_id(text: &str) -> bool {
    let Some((owner, name)) = text.split_once('/') else {
        return false;
    };
    [owner, name].iter().all(|part| {
        !part.is_empty()
            && part.len() <= MAX_ID_PART_CHARS
            && !part.starts_with(['.', '-'])
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    })
}

/// Hosts whose model-page URLs are understood as ids (`https://huggingface.co/Qwen/Qwen2.5-7B`).
const HUB_URL_PREFIXES: [&str; 4] = [
    "https://huggingface.co/",
    "http://huggingface.co/",
    "https://hf.co/",
    "huggingface.co/",
];

/// The `owner/name` in a model page's URL, e.g. `https://huggingface.co/Qwen/Qwen2.5-7B` or
/// `…/Qwen/Qwen2.5-7B/blob/main/config.json`; `None` for anything else.
pub fn id_from_url(text: &str) -> Option<&str> {
    let rest = HUB_URL_PREFIXES
        .iter()
        .find_map(|prefix| text.strip_prefix(prefix))?;
    let mut parts = rest.splitn(3, '/');
    let owner = parts.next()?;
    let name = parts.next()?;
    let id = &rest[..owner.len() + 1 + name.len()];
    looks_like_hub_id(id).then_some(id)
}

/// The Hub to ask: `$HF_ENDPOINT` without a trailing `/`, or [`DEFAULT_ENDPOINT`] when it is
/// unset or blank. A value that cannot be used (not UTF-8, not an http(s) URL with a host) is an
/// error, never a fallback to the public Hub: `$HF_TOKEN` is meant for the endpoint the user
/// set. Messages never repeat a user name or password written into the URL.
pub fn endpoint_from_env() -> anyhow::Result<String> {
    let value = match std::env::var_os(ENDPOINT_VAR) {
        None => return Ok(DEFAULT_ENDPOINT.to_owned()),
        Some(raw) => raw.into_string().map_err(|_| {
            anyhow::anyhow!(
                "{ENDPOINT_VAR} is not UTF-8 text; set it to a Hub URL such as \
                 {DEFAULT_ENDPOINT} or unset it"
            )
        })?,
    };
    if value.trim().is_empty() {
        return Ok(DEFAULT_ENDPOINT.to_owned());
    }
    let endpoint = value.trim().trim_end_matches('/').to_owned();
    check_endpoint(&endpoint)?;
    Ok(endpoint)
}

/// `endpoint` is `http://` or `https://`, then a host (with an optional port) of visible ASCII,
/// then an optional path; a user name or password in it is refused without repeating it.
fn check_endpoint(endpoint: &str) -> anyhow::Result<()> {
    let shown = redact_userinfo(endpoint);
    let Some(rest) = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
    else {
        bail!(
            "{ENDPOINT_VAR}=`{shown}` is not an http:// or https:// URL; set it to a Hub such as \
             {DEFAULT_ENDPOINT} or unset it"
        );
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        bail!(
            "{ENDPOINT_VAR}=`{shown}` holds a user name or password; remove it from the URL and \
             put an access token in {TOKEN_VAR} instead"
        );
    }
    let host = authority
        .rsplit_once(':')
        .filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit()))
        .map_or(authority, |(host, _)| host);
    let visible = |c: char| c.is_ascii_graphic();
    if host.is_empty() || !endpoint.chars().all(visible) {
        bail!(
            "{ENDPOINT_VAR}=`{shown}` is not a usable URL (no host, or spaces and control \
             characters in it); set it to a Hub such as {DEFAULT_ENDPOINT} or unset it"
        );
    }
    Ok(())
}

/// `url` with anything between `://` and an `@` of its authority replaced by `***`.
fn redact_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return match url.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => url.to_owned(),
        };
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// `$HF_TOKEN` if set and not blank.
pub fn token_from_env() -> Option<String> {
    std::env::var(TOKEN_VAR)
        .ok()
        .map(|token| token.trim().to_owned())
        .filter(|token| !token.is_empty())
}

/// The request limit: `$HF_HUB_DOWNLOAD_TIMEOUT` seconds, or [`DEFAULT_TIMEOUT`].
pub fn timeout_from_env() -> anyhow::Result<Duration> {
    let Ok(text) = std::env::var(TIMEOUT_VAR) else {
        return Ok(DEFAULT_TIMEOUT);
    };
    match text.trim().parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && seconds <= MAX_TIMEOUT_S => {
            Ok(Duration::from_secs_f64(seconds))
        }
        _ => bail!(
            "{TIMEOUT_VAR}=`{text}` is not a number of seconds between 0 and {MAX_TIMEOUT_S}; \
             set it to e.g. 30 or unset it"
        ),
    }
}

/// The URL of `id`'s `config.json` on the `main` revision.
pub fn config_url(endpoint: &str, id: &str) -> String {
    format!("{endpoint}/{id}/resolve/main/config.json")
}

/// Fetch `id`'s `config.json` from `endpoint`, sending `token` when given, giving up after
/// `timeout`.
#[cfg(feature = "hub")]
pub fn fetch_config_from(
    endpoint: &str,
    token: Option<&str>,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let url = config_url(endpoint, id);
    let mut response = match get_following_redirects(&url, token, None, timeout) {
        Ok(response) => response,
        Err(Failure::Network(err)) => return Err(network_error(endpoint, id, &err, timeout)),
        Err(Failure::Redirect(why)) => bail!(
            "{why}; fetching `{id}`'s config.json failed: check {ENDPOINT_VAR}, or download \
             config.json and pass its path instead"
        ),
    };
    let status = response.status().as_u16();
    match status {
        200 => {}
        401 | 403 => {
            let token_advice = if token.is_some() {
                format!(
                    "{TOKEN_VAR} was sent and refused: check that the token has read access \
                     and that you accepted the license"
                )
            } else {
                format!(
                    "if the model is gated, accept its license at {endpoint}/{id} and set \
                     {TOKEN_VAR} to an access token"
                )
            };
            bail!(
                "`{id}` on {endpoint} is gated, private or misspelled (HTTP {status}); \
                 {token_advice}; or pass the path of a downloaded config.json"
            );
        }
        404 => bail!(
            "no repository `{id}` with a config.json on {endpoint} (HTTP 404); check the id \
             (owner/name, as on the model page) or pass the path of a local config.json"
        ),
        _ => bail!(
            "{endpoint} answered HTTP {status} for {url}; try again later or pass the path of a \
             local config.json"
        ),
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_CONFIG_BYTES)
        .read_to_string()
        .with_context(|| {
            format!(
                "could not read `{id}`'s config.json from {url} (not UTF-8 text under {} MiB?); \
                 pass the path of a local config.json",
                MAX_CONFIG_BYTES >> 20
            )
        })
}

/// The HTTP client for the Hub: whole-request and connect limits, statuses returned as values.
#[cfg(feature = "hub")]
fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .timeout_connect(Some(CONNECT_TIMEOUT.min(timeout)))
        // Statuses are turned into messages by the callers, each with its own advice.
        .http_status_as_error(false)
        // Redirects come back as responses: `get_following_redirects` follows them itself, so
        // that a redirect to `file://` or a loop gets its own message.
        .max_redirects(0)
        .user_agent(concat!("headroom/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Most redirects followed for one request (ureq's and curl's usual limit).
#[cfg(feature = "hub")]
const MAX_REDIRECTS: usize = 10;

/// Why a request got no final response.
#[cfg(feature = "hub")]
enum Failure {
    /// The network failed (no connection, timeout, TLS).
    Network(ureq::Error),
    /// A redirect that is not followed, with the reason in words.
    Redirect(String),
}

/// GET `url`, following up to [`MAX_REDIRECTS`] http(s) redirects. `token` goes only to the
/// scheme, host and port of `url` (the Hub redirects renamed repos on its own host; a redirect
/// elsewhere, such as a CDN, gets no token). A redirect to anything but http(s) (`file://`) is
/// refused by name.
#[cfg(feature = "hub")]
fn get_following_redirects(
    url: &str,
    token: Option<&str>,
    range: Option<u64>,
    timeout: Duration,
) -> Result<ureq::http::Response<ureq::Body>, Failure> {
    let agent = agent(timeout);
    let origin = origin_of(url);
    let mut current = url.to_owned();
    for _ in 0..=MAX_REDIRECTS {
        let mut request = agent.get(&current);
        if let Some(token) = token
            && origin_of(&current) == origin
        {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        if let Some(bytes) = range {
            request = request.header("Range", format!("bytes=0-{}", bytes.saturating_sub(1)));
        }
        let response = request.call().map_err(Failure::Network)?;
        if !response.status().is_redirection() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Failure::Redirect(format!(
                    "{} answered HTTP {status} without a Location to go to",
                    redact_userinfo(&current)
                ))
            })?;
        current = follow(&current, location).map_err(Failure::Redirect)?;
    }
    Err(Failure::Redirect(format!(
        "{} redirected more than {MAX_REDIRECTS} times (a redirect loop?)",
        redact_userinfo(url)
    )))
}

/// `scheme://host[:port]` of an http(s) URL.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Where a redirect from `base` to `location` goes: an absolute http(s) URL, a scheme-relative
/// `//host/…`, an absolute `/path` or a relative path; any other scheme is an error.
#[cfg_attr(not(feature = "hub"), allow(dead_code))]
fn follow(base: &str, location: &str) -> Result<String, String> {
    let location = location.trim();
    let lower = location.to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") {
        return Ok(location.to_owned());
    }
    if let Some(rest) = location.strip_prefix("//") {
        let scheme = base.split("://").next().unwrap_or("https");
        return Ok(format!("{scheme}://{rest}"));
    }
    let scheme_like = location.split_once(':').is_some_and(|(s, _)| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if scheme_like {
        return Err(format!(
            "{} redirected to `{}`, which is not an http(s) URL; headroom follows only http(s) \
             redirects",
            redact_userinfo(base),
            redact_userinfo(location)
        ));
    }
    if location.starts_with('/') {
        return Ok(format!("{}{location}", origin_of(base)));
    }
    let path_end = base.find(['?', '#']).unwrap_or(base.len());
    let dir = base[..path_end].rfind('/').map_or(base, |i| &base[..=i]);
    Ok(format!("{dir}{location}"))
}

/// The URL of `file` (a path inside the repository) on `id`'s `main` revision.
pub fn file_url(endpoint: &str, id: &str, file: &str) -> String {
    format!("{endpoint}/{id}/resolve/main/{file}")
}

/// The first bytes of a file on the Hub and the whole file's size.
pub struct Prefix {
    /// The bytes read, from the start of the file.
    pub bytes: Vec<u8>,
    /// The whole file's size (from `Content-Range`, or `Content-Length` when the server ignored
    /// the range).
    pub file_bytes: u64,
}

/// Largest index (`model.safetensors.index.json`) read: the same cap as for a local file.
#[cfg(feature = "hub")]
const MAX_INDEX_BYTES: u64 = MAX_INDEX_JSON_BYTES;

/// GET `file` of `id`, with `range` (`bytes=0-N`) when given. `Ok(None)` for 404 (no such file);
/// other failures are errors that say what to do.
#[cfg(feature = "hub")]
fn get_file(
    endpoint: &str,
    token: Option<&str>,
    id: &str,
    file: &str,
    range: Option<u64>,
    timeout: Duration,
) -> anyhow::Result<Option<ureq::http::Response<ureq::Body>>> {
    let url = file_url(endpoint, id, file);
    let response =
        get_following_redirects(&url, token, range, timeout).map_err(|err| match err {
            Failure::Network(err) => anyhow::anyhow!(
                "could not reach {endpoint} to read {url} ({err}); check the network and \
             {ENDPOINT_VAR}"
            ),
            Failure::Redirect(why) => anyhow::anyhow!("{why}; check {ENDPOINT_VAR}"),
        })?;
    match response.status().as_u16() {
        200 | 206 => Ok(Some(response)),
        404 => Ok(None),
        401 | 403 => bail!(
            "{url} is gated or private (HTTP {}); accept the license at {endpoint}/{id} and set \
             {TOKEN_VAR}",
            response.status().as_u16()
        ),
        status => bail!("{endpoint} answered HTTP {status} for {url}; try again later"),
    }
}

/// `file` of `id` as text (`model.safetensors.index.json`), `None` when the repository has no
/// such file.
#[cfg(feature = "hub")]
pub fn fetch_text(
    endpoint: &str,
    token: Option<&str>,
    id: &str,
    file: &str,
    timeout: Duration,
) -> anyhow::Result<Option<String>> {
    let Some(mut response) = get_file(endpoint, token, id, file, None, timeout)? else {
        return Ok(None);
    };
    let text = response
        .body_mut()
        .with_config()
        .limit(MAX_INDEX_BYTES)
        .read_to_string()
        .with_context(|| {
            format!(
                "could not read {} (not UTF-8 text under {} MiB?)",
                file_url(endpoint, id, file),
                MAX_INDEX_BYTES >> 20
            )
        })?;
    Ok(Some(text))
}

/// The first `bytes` bytes of `file` of `id` by an HTTP Range request, and the file's size;
/// `None` when the repository has no such file. At most `bytes` bytes are read even from a server
/// that ignores the range: the weights are never downloaded.
#[cfg(feature = "hub")]
pub fn fetch_prefix(
    endpoint: &str,
    token: Option<&str>,
    id: &str,
    file: &str,
    bytes: u64,
    timeout: Duration,
) -> anyhow::Result<Option<Prefix>> {
    use std::io::Read;
    let url = file_url(endpoint, id, file);
    let Some(mut response) = get_file(endpoint, token, id, file, Some(bytes), timeout)? else {
        return Ok(None);
    };
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let file_bytes = if response.status().as_u16() == 206 {
        // `Content-Range: bytes 0-7/12345`.
        header("content-range").and_then(|v| {
            v.rsplit_once('/')
                .and_then(|(_, total)| total.trim().parse().ok())
        })
    } else {
        header("content-length").and_then(|v| v.trim().parse().ok())
    }
    .with_context(|| {
        format!("{url}: the server did not say the file's size (Content-Range or Content-Length)")
    })?;
    let mut out = Vec::new();
    response
        .body_mut()
        .as_reader()
        .take(bytes)
        .read_to_end(&mut out)
        .with_context(|| format!("could not read the start of {url}"))?;
    Ok(Some(Prefix {
        bytes: out,
        file_bytes,
    }))
}

/// Without the `hub` feature there is no HTTP client: no checkpoint headers from the Hub.
#[cfg(not(feature = "hub"))]
pub fn fetch_text(
    endpoint: &str,
    _token: Option<&str>,
    id: &str,
    file: &str,
    _timeout: Duration,
) -> anyhow::Result<Option<String>> {
    bail!(
        "this headroom was built without Hugging Face Hub support (cargo feature `hub`), so \
         {} cannot be read; download it and pass its folder",
        file_url(endpoint, id, file)
    )
}

/// Without the `hub` feature there is no HTTP client: no checkpoint headers from the Hub.
#[cfg(not(feature = "hub"))]
pub fn fetch_prefix(
    endpoint: &str,
    _token: Option<&str>,
    id: &str,
    file: &str,
    _bytes: u64,
    _timeout: Duration,
) -> anyhow::Result<Option<Prefix>> {
    bail!(
        "this headroom was built without Hugging Face Hub support (cargo feature `hub`), so \
         {} cannot be read; download it and pass its path",
        file_url(endpoint, id, file)
    )
}

/// The Hub could not be reached at all (as opposed to answering with an error status): the one
/// failure the local cache may stand in for.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(String);

/// Without the `hub` feature (e.g. the macOS cross-check in CI, where `ring` cannot be built
/// without Apple's SDK) there is no HTTP client: say so and point to a local file.
#[cfg(not(feature = "hub"))]
pub fn fetch_config_from(
    endpoint: &str,
    _token: Option<&str>,
    id: &str,
    _timeout: Duration,
) -> anyhow::Result<String> {
    bail!(
        "this headroom was built without Hugging Face Hub support (cargo feature `hub`), so          `{id}` cannot be fetched from {endpoint}; download its config.json and pass the path"
    )
}

/// One message for every way the request can fail before a status arrives.
#[cfg(feature = "hub")]
fn network_error(endpoint: &str, id: &str, err: &ureq::Error, timeout: Duration) -> anyhow::Error {
    use std::io::ErrorKind;
    let what = match err {
        ureq::Error::Timeout(_) => format!(
            "timed out after {} s; {TIMEOUT_VAR} sets the limit",
            timeout.as_secs_f64()
        ),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        other => other.to_string(),
    };
    anyhow::Error::new(Unreachable(format!(
        "could not reach {endpoint} to fetch `{id}`'s config.json ({what}); check the network \
         and {ENDPOINT_VAR}, or download config.json and pass its path instead"
    )))
}

/// Whether `$HF_HUB_OFFLINE` asks for no network.
pub fn offline_from_env() -> bool {
    std::env::var(OFFLINE_VAR).is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// The Hugging Face cache folder, resolved as `huggingface_hub` does: `$HF_HUB_CACHE`, else
/// `$HF_HOME/hub`, else `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub fn cache_dir_from_env() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("HF_HUB_CACHE") {
        return Some(dir);
    }
    if let Some(home) = var("HF_HOME") {
        return Some(home.join("hub"));
    }
    if let Some(xdg) = var("XDG_CACHE_HOME") {
        return Some(xdg.join("huggingface").join("hub"));
    }
    var("HOME").map(|home| home.join(".cache").join("huggingface").join("hub"))
}

/// `id`'s cached `config.json` in the `huggingface_hub` cache layout
/// (`models--{owner}--{name}/snapshots/{commit}/config.json`), preferring the commit that
/// `refs/main` names, else the most recently written snapshot.
pub fn cached_config(cache_dir: &Path, id: &str) -> Option<PathBuf> {
    let repo = cache_dir.join(format!("models--{}", id.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    if let Ok(commit) = read_text(&repo.join("refs").join("main"), "cache ref", MAX_REF_BYTES) {
        let file = snapshots.join(commit.trim()).join("config.json");
        if file.is_file() {
            return Some(file);
        }
    }
    std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|entry| {
            let file = entry.ok()?.path().join("config.json");
            let modified = std::fs::metadata(&file).ok()?.modified().ok()?;
            Some((modified, file))
        })
        .max()
        .map(|(_, file)| file)
}

/// Where a config's text came from.
pub enum ConfigOrigin {
    /// Fetched from this URL.
    Url(String),
    /// Read from the local Hugging Face cache.
    Cache(PathBuf),
}

/// `id`'s config.json: from the Hub, or from the local cache when `$HF_HUB_OFFLINE` is set or
/// the Hub cannot be reached.
pub fn config_for(id: &str) -> anyhow::Result<(String, ConfigOrigin)> {
    let cache = cache_dir_from_env();
    let from_cache = |file: PathBuf| -> anyhow::Result<(String, ConfigOrigin)> {
        let text = read_text(&file, "cached config", MAX_CONFIG_JSON_BYTES)?;
        Ok((text, ConfigOrigin::Cache(file)))
    };
    if offline_from_env() {
        if let Some(file) = cache.as_deref().and_then(|dir| cached_config(dir, id)) {
            return from_cache(file);
        }
        let place = cache.map_or_else(
            || "no cache folder found".to_owned(),
            |dir| dir.display().to_string(),
        );
        bail!(
            "{OFFLINE_VAR} is set and `{id}` is not in the Hugging Face cache ({place}); unset \
             {OFFLINE_VAR} to fetch it, or pass the path of a local config.json"
        );
    }
    let endpoint = endpoint_from_env()?;
    let timeout = timeout_from_env()?;
    match fetch_config_from(&endpoint, token_from_env().as_deref(), id, timeout) {
        Ok(text) => Ok((text, ConfigOrigin::Url(config_url(&endpoint, id)))),
        Err(err) if err.downcast_ref::<Unreachable>().is_some() => {
            match cache.as_deref().and_then(|dir| cached_config(dir, id)) {
                Some(file) => {
                    say!(
                        "note: {endpoint} unreachable; using the cached {}",
                        file.display()
                    );
                    from_cache(file)
                }
                None => Err(err),
            }
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hf_endpoint_credentials_are_refused_and_never_echoed() {
        let err = check_endpoint("https://alice:s3cret@hub.example/mirror")
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains(TOKEN_VAR), "{err}");
        assert!(!err.contains("s3cret") && !err.contains("alice"), "{err}");
        let err = check_endpoint("gopher://alice:s3cret@hub.example")
            .map(|()| String::new())
            .unwrap_or_else(|e| e.to_string());
        assert!(err.contains("http") && !err.contains("s3cret"), "{err}");
        for bad in [
            "https://",
            "http://:80",
            "http://ho st",
            "https://ho\u{1b}st",
            "ftp://x",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
        for good in [
            "https://huggingface.co",
            "http://127.0.0.1:8080",
            "https://hub.example/mirror",
        ] {
            assert!(check_endpoint(good).is_ok(), "{good}");
        }
        assert_eq!(redact_userinfo("https://u:p@h/x@y"), "https://***@h/x@y");
        assert_eq!(redact_userinfo("https://h/x"), "https://h/x");
    }

    #[test]
    fn redirects_resolve_and_file_urls_are_refused() {
        let base = "https://hub.example/a/b/resolve/main/config.json?x=1";
        assert_eq!(origin_of(base), "https://hub.example");
        assert_eq!(origin_of("http://h:8080"), "http://h:8080");
        assert_eq!(
            follow(base, "/c/d/resolve/main/config.json"),
            Ok("https://hub.example/c/d/resolve/main/config.json".to_owned())
        );
        assert_eq!(
            follow(base, "//cdn.example/x"),
            Ok("https://cdn.example/x".to_owned())
        );
        assert_eq!(
            follow(base, "other.json"),
            Ok("https://hub.example/a/b/resolve/main/other.json".to_owned())
        );
        assert_eq!(
            follow(base, "HTTPS://cdn.example/y"),
            Ok("HTTPS://cdn.example/y".to_owned())
        );
        for bad in ["file:///etc/passwd", "ftp://x/y", "javascript:alert(1)"] {
            let err = follow(base, bad).err().unwrap_or_default();
            assert!(
                err.contains("not an http(s) URL") && err.contains(bad),
                "{err}"
            );
        }
    }

    #[test]
    fn hub_ids() {
        for id in [
            "meta-llama/Llama-3.1-8B",
            "Qwen/Qwen2.5-0.5B",
            "a/b",
            "x_y/z.1",
        ] {
            assert!(looks_like_hub_id(id), "{id}");
        }
        for id in [
            "llama", "a/b/c", "/x", "x/", "./x", "a b/c", "../etc", "-a/b", "",
        ] {
            assert!(!looks_like_hub_id(id), "{id}");
        }
    }

    #[test]
    fn ids_from_urls() {
        assert_eq!(
            id_from_url("https://huggingface.co/Qwen/Qwen2.5-7B"),
            Some("Qwen/Qwen2.5-7B")
        );
        assert_eq!(
            id_from_url("https://huggingface.co/Qwen/Qwen2.5-7B/blob/main/config.json"),
            Some("Qwen/Qwen2.5-7B")
        );
        assert_eq!(id_from_url("https://huggingface.co/Qwen"), None);
        assert_eq!(id_from_url("https://example.com/a/b"), None);
        assert_eq!(id_from_url("Qwen/Qwen2.5-7B"), None);
    }

    #[test]
    fn url_shape() {
        assert_eq!(
            config_url("http://127.0.0.1:1", "o/n"),
            "http://127.0.0.1:1/o/n/resolve/main/config.json"
        );
    }
}

//! What every test module shares: running the `headroom` binary (never reaching a real network
//! or a real Hugging Face cache), reading its output, the fixture folder, scratch folders, and the
//! request side of the local stand-ins for the Hugging Face Hub.

use std::{
    io::{BufRead, BufReader},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use serde_json::Value;

/// The `headroom` binary cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_headroom");

/// Most time a local server waits on one socket read.
pub const SOCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// The workspace's one fixture folder, `tests/data` at its root: `hf-configs` (published
/// config.json files and `param_counts.json`), `bad-configs` (broken ones), `reports` (reports
/// from `headroom probe`).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the probe crate sits in the workspace")
        .join("tests/data")
}

/// The text of `data_dir()/REL`.
pub fn data(rel: &str) -> String {
    let path = data_dir().join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `headroom` against the Hub at `endpoint`, with `cache` as the Hugging Face cache, no proxy from
/// the environment (none may stand between the binary and loopback) and no `HF_*` settings.
pub fn hub_command(endpoint: &str, cache: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("HF_ENDPOINT", endpoint)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_HUB_DOWNLOAD_TIMEOUT")
        .env_remove("HF_TOKEN");
    for var in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A folder under the system temp dir that no test writes to: a Hugging Face cache that is empty.
pub fn no_cache(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("headroom-{tag}-no-cache-here"))
}

/// Run `headroom ARGS` with no network (HF_ENDPOINT at a closed port) and no cache.
pub fn headroom(args: &[&str]) -> Output {
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    hub_command(&endpoint, &no_cache("cli"))
        .args(args)
        .output()
        .expect("run headroom")
}

/// Bytes as text, invalid UTF-8 replaced.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn stdout(out: &Output) -> String {
    text(&out.stdout)
}

pub fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

/// Exit code 0 (else the assertion shows both streams): stdout.
pub fn success(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr:\n{}\nstdout:\n{}",
        stderr(out),
        stdout(out)
    );
    stdout(out)
}

/// Exit code 0 and stdout parsed as JSON.
pub fn json(out: &Output) -> Value {
    let text = success(out);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// Exit code 0: stdout parsed as JSON, and stderr (notes and warnings).
pub fn json_and_stderr(out: &Output) -> (Value, String) {
    (json(out), stderr(out))
}

/// A port on 127.0.0.1 where nothing listens: bound to learn a free one, then closed.
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1")
}

/// A fresh, empty folder under the system temp dir, unique to this test process and `tag`.
pub fn scratch(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("headroom-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// A listener on a free port of 127.0.0.1 and its `http://` address.
pub fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let endpoint = format!("http://{}", listener.local_addr().expect("local addr"));
    (listener, endpoint)
}

/// One HTTP request as a local server read it: the path and the headers.
pub struct Request {
    pub path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The value of header `name` (any case), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read one request's line and headers from `stream` (after setting its read timeout); `None`
/// when the client went away or sent no request line.
pub fn read_request(stream: &TcpStream) -> Option<Request> {
    stream.set_read_timeout(Some(SOCKET_TIMEOUT)).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let path = request_line.split_whitespace().nth(1)?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
    }
    Some(Request { path, headers })
}

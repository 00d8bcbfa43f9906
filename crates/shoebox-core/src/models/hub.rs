//! Model location: a local Hugging Face model folder, or a hub id fetched on first use into the
//! standard Hugging Face cache, with a progress bar on the terminal or progress reports to a
//! callback (the desktop app's progress bar).
//!
//! The cache is the one every Hugging Face tool shares (`HF_HOME`, else `~/.cache/huggingface`;
//! hf-hub says where): `hub/models--owner--name/` with `blobs/<etag>` (the bytes),
//! `snapshots/<commit>/<file>` (links to the blobs), `refs/<revision>` (the commit a branch was at)
//! and `hub/.locks/`. The download itself is ours, over ureq, not hf-hub's: hf-hub 0.4.3 joins the
//! server's `etag` and `x-repo-commit` headers into those paths as they come, so a hostile or broken
//! server (`HF_ENDPOINT` is any URL) could write anywhere. Here nothing the server says reaches a
//! path before it is checked: the model id and revision are checked before any request, the commit
//! must be 40 hex digits and the etag 40 (a git blob) or 64 (an LFS file's sha256), and an LFS
//! file must hash to its sha256 before it enters the cache.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fs4::fs_std::FileExt;
use hf_hub::api::Progress;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A resolved model: where its files are and the name the catalog records it under.
#[derive(Debug, Clone)]
pub struct ModelDir {
    /// Hub id, or the canonical local folder.
    pub name: String,
    pub dir: PathBuf,
}

impl ModelDir {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// One file of a model being downloaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Download {
    /// The hub id.
    pub model: String,
    pub file: String,
    /// Bytes of the file fetched so far, and its size.
    pub done: u64,
    pub total: u64,
    /// The file is complete.
    pub finished: bool,
}

/// How model downloads show their progress.
#[derive(Clone, Default)]
pub enum DownloadProgress {
    #[default]
    Quiet,
    /// Progress bars on stderr (hf-hub's style).
    Bar,
    /// Reports to a callback: when a file starts, at most every 100 ms while it downloads, and when
    /// it is complete.
    Report(Arc<dyn Fn(&Download) + Send + Sync>),
}

impl std::fmt::Debug for DownloadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DownloadProgress::Quiet => "Quiet",
            DownloadProgress::Bar => "Bar",
            DownloadProgress::Report(_) => "Report",
        })
    }
}

/// The download's progress hook, throttled into [`Download`] reports.
struct Reporter {
    report: Arc<dyn Fn(&Download) + Send + Sync>,
    state: Download,
    last: Instant,
}

impl Progress for Reporter {
    fn init(&mut self, size: usize, filename: &str) {
        self.state.file = filename.to_string();
        self.state.total = size as u64;
        self.state.done = 0;
        self.state.finished = false;
        self.last = Instant::now();
        (self.report)(&self.state);
    }

    fn update(&mut self, size: usize) {
        self.state.done += size as u64;
        if self.last.elapsed() >= Duration::from_millis(100) {
            self.last = Instant::now();
            (self.report)(&self.state);
        }
    }

    fn finish(&mut self) {
        self.state.finished = true;
        (self.report)(&self.state);
    }
}

/// How a model spec will be resolved, without touching the network.
pub fn is_local(spec: &str) -> bool {
    let p = Path::new(spec);
    p.is_dir() || spec.starts_with('.') || spec.starts_with('/') || spec.starts_with('~')
}

/// The catalog name of a spec: a hub id as written, a local folder canonicalized.
pub fn model_name(spec: &str) -> String {
    if is_local(spec) {
        std::fs::canonicalize(spec)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| spec.to_string())
    } else {
        spec.to_string()
    }
}

/// The hub when `HF_ENDPOINT` names no other.
const HUB: &str = "https://huggingface.co";
/// The branch a hub id means.
const MAIN: &str = "main";
/// Some canonical repos (openai/clip-*) carry safetensors only on a conversion branch.
const CONVERSION: &str = "refs/pr/15";
/// Redirects within the hub (a renamed repo) followed before the answer is taken for a loop.
const HUB_REDIRECTS: usize = 5;

/// The hub cache: `HF_HOME/hub`, or `~/.cache/huggingface/hub`.
fn cache_dir() -> PathBuf {
    hf_hub::Cache::from_env().path().clone()
}

/// The hub ids of the models in the Hugging Face cache (`models--owner--name` folders), sorted.
pub fn cached_ids() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(cache_dir()) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = rd
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_prefix("models--")?.replacen("--", "/", 1);
            is_repo_id(&id).then_some(id)
        })
        .collect();
    ids.sort();
    ids
}

/// A model's folder in the cache: `models--owner--name`.
fn repo_dir(cache: &Path, id: &str) -> PathBuf {
    cache.join(format!("models--{}", id.replace('/', "--")))
}

/// Whether `id` is a hub model id: `name` or `owner/name`, each part ASCII letters, digits, `.`,
/// `_` and `-`, starting with a letter or digit, at most 96 characters, without `..` or `--` (the
/// cache folder joins the parts with `--`: `a--b/c` and `a/b--c` would share one).
fn is_repo_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            p.len() <= 96
                && p.starts_with(|c: char| c.is_ascii_alphanumeric())
                && !p.contains("..")
                && !p.contains("--")
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        })
}

/// Whether `rev` is a revision to ask for: a commit hash, or a branch or tag name whose parts
/// (between `/`) are ASCII letters, digits, `.`, `_`, `-` and `+`, no part empty, starting with `.`
/// or holding `..` (so no absolute path, no `..`, no backslash, no control character).
fn is_revision(rev: &str) -> bool {
    rev.len() <= 255
        && rev.split('/').all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && !p.contains("..")
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        })
}

/// Whether `file` names a file of a model: parts (between `/`) of ASCII letters, digits, `.`, `_`
/// and `-`, no part empty, `.` or `..`.
fn is_file_name(file: &str) -> bool {
    file.split('/').all(|p| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    })
}

/// Whether `s` is a commit hash: exactly 40 lowercase hex digits.
fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The blob name an etag gives: its hex digits, without the quotes and a weak `W/` prefix, 40 of
/// them (a git blob's sha1) or 64 (an LFS file's sha256), lowercased. Anything else is no name.
fn blob_name(etag: &str) -> Option<String> {
    let e = etag.trim();
    let e = e.strip_prefix("W/").unwrap_or(e);
    let e = e
        .strip_prefix('"')
        .and_then(|e| e.strip_suffix('"'))
        .unwrap_or(e);
    ((e.len() == 40 || e.len() == 64) && e.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| e.to_ascii_lowercase())
}

/// Something a server or a user wrote, for a message: quoted, escaped, at most 80 characters.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(80).collect();
    if cut.len() < s.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

/// `file` of the model `id` at `revision`, if the cache has it. A ref that does not hold a commit
/// hash finds nothing (the download writes it again).
fn cached_file(cache: &Path, id: &str, revision: &str, file: &str) -> Option<PathBuf> {
    let repo = repo_dir(cache, id);
    let commit = if is_commit(revision) {
        revision.to_string()
    } else {
        std::fs::read_to_string(repo.join("refs").join(revision))
            .ok()?
            .trim()
            .to_string()
    };
    if !is_commit(&commit) {
        return None;
    }
    let path = repo.join("snapshots").join(commit).join(file);
    path.is_file().then_some(path)
}

/// Files in the hub cache, if every one of them is there.
pub fn cached(id: &str, files: &[&str]) -> Option<PathBuf> {
    if !is_repo_id(id) || !files.iter().all(|f| is_file_name(f)) {
        return None;
    }
    let cache = cache_dir();
    let mut dir = None;
    for f in files {
        let p = cached_file(&cache, id, MAIN, f)?;
        dir = p.parent().map(Path::to_path_buf);
    }
    dir
}

/// Resolve `spec` to a folder holding `files`: a local folder as is, or a hub id from the cache,
/// downloading what is missing (showing progress as `progress` says).
pub fn resolve(spec: &str, files: &[&str], progress: &DownloadProgress) -> Result<ModelDir> {
    if is_local(spec) {
        let dir = std::fs::canonicalize(spec)
            .map_err(|e| Error::ModelUnavailable(format!("model folder {spec}: {e}")))?;
        for f in files {
            if !dir.join(f).is_file() {
                return Err(Error::ModelUnavailable(format!(
                    "model folder {} has no {f} (a Hugging Face model folder needs: {})",
                    dir.display(),
                    files.join(", ")
                )));
            }
        }
        return Ok(ModelDir {
            name: dir.to_string_lossy().into_owned(),
            dir,
        });
    }
    if !is_repo_id(spec) {
        return Err(Error::ModelUnavailable(format!(
            "{} is neither a model folder nor a Hugging Face model id (owner/name, of letters, \
             digits, '.', '_' and '-')",
            shown(spec)
        )));
    }
    let from_cache = || {
        cached(spec, files).map(|dir| ModelDir {
            name: spec.to_string(),
            dir,
        })
    };
    if let Some(m) = from_cache() {
        return Ok(m);
    }
    // One download at a time: a model asked for by two threads (the app's search and its indexer)
    // is fetched once, and the second finds it in the cache (looked at again under the lock; a
    // cached model never waits for another's download).
    static DOWNLOADING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = DOWNLOADING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(m) = from_cache() {
        return Ok(m);
    }
    download(spec, files, progress)
}

/// Why a file could not be fetched.
enum Failure {
    /// The server's answer is not to be trusted (a header that is no hash, bytes that do not hash to
    /// the sha256 it gave, more bytes than it announced): refused, and not asked for elsewhere.
    Refused(String),
    /// The file is not there, or the server did not answer like the hub, or the connection failed.
    Failed(String),
    /// The cache could not be written.
    Local(Error),
}

fn local(path: &Path) -> impl FnOnce(std::io::Error) -> Failure + '_ {
    move |e| Failure::Local(Error::io(path, e))
}

/// What the hub says about a file, checked.
struct Remote {
    /// Where its bytes are asked for: the hub's URL, after redirects within the hub.
    url: String,
    commit: String,
    /// The blob's name in the cache: the etag's hex digits.
    blob: String,
    /// An LFS file: `blob` is its sha256.
    lfs: bool,
    /// Its size, when the answer says it.
    size: Option<u64>,
}

/// The hub's file API, `{endpoint}/{id}/resolve/{revision}/{file}`, as hf-hub and huggingface_hub
/// call it: a one-byte GET for the file's metadata (the hub's own answer, not a redirect's), then the
/// bytes.
struct Hub {
    endpoint: String,
    token: Option<String>,
    /// Follows no redirects: the metadata is the hub's answer.
    probe: ureq::Agent,
    /// Follows redirects (to the CDN that holds LFS files), with the token for the hub's host only.
    fetch: ureq::Agent,
}

impl Hub {
    fn from_env(cache: &hf_hub::Cache) -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| HUB.to_string());
        let endpoint = endpoint.trim().trim_end_matches('/').to_string();
        // A hub reached over https is never left for http.
        let https = endpoint.starts_with("https://");
        let agent = |redirects| {
            ureq::AgentBuilder::new()
                .try_proxy_from_env(true)
                .https_only(https)
                .timeout_connect(Duration::from_secs(30))
                .timeout_read(Duration::from_secs(60))
                .user_agent(concat!("shoebox/", env!("CARGO_PKG_VERSION")))
                .redirects(redirects)
                .redirect_auth_headers(ureq::RedirectAuthHeaders::SameHost)
                .build()
        };
        Hub {
            endpoint,
            token: cache.token(),
            probe: agent(0),
            fetch: agent(5),
        }
    }

    fn get(
        &self,
        agent: &ureq::Agent,
        url: &str,
        range: &str,
    ) -> std::result::Result<ureq::Response, Failure> {
        let mut req = agent.get(url).set("Range", range);
        if let Some(token) = &self.token {
            req = req.set("Authorization", &format!("Bearer {token}"));
        }
        req.call().map_err(|e| {
            Failure::Failed(match e {
                ureq::Error::Status(code, resp) => match resp.header("x-error-message") {
                    Some(m) => format!("{url}: status code {code} ({})", shown(m)),
                    None => format!("{url}: status code {code}"),
                },
                ureq::Error::Transport(t) => t.to_string(),
            })
        })
    }

    /// The metadata of `file`, checked before anything is written: the commit, the etag (the blob's
    /// name) and the size.
    fn remote(&self, id: &str, revision: &str, file: &str) -> std::result::Result<Remote, Failure> {
        let mut url = format!(
            "{}/{id}/resolve/{}/{file}",
            self.endpoint,
            revision.replace('/', "%2F")
        );
        let mut hops = 0;
        let resp = loop {
            let resp = self.get(&self.probe, &url, "bytes=0-0")?;
            // Relative redirects stay within the hub (a renamed repo): followed here, so that the
            // headers read are the hub's. An absolute one leads to the file's bytes.
            let within = match resp.header("location") {
                Some(to)
                    if (300..400).contains(&resp.status())
                        && to.starts_with('/')
                        && !to.starts_with("//") =>
                {
                    to.to_string()
                }
                _ => break resp,
            };
            hops += 1;
            if hops > HUB_REDIRECTS {
                return Err(Failure::Refused(format!(
                    "more than {HUB_REDIRECTS} redirects within the hub (the last to {})",
                    shown(&within)
                )));
            }
            url = format!("{}{within}", origin(&url));
        };
        let not_the_hub = |what: &str| {
            Failure::Failed(format!(
                "{url} does not answer like the Hugging Face hub: no {what} header"
            ))
        };
        let etag = resp
            .header("x-linked-etag")
            .or_else(|| resp.header("etag"))
            .ok_or_else(|| not_the_hub("etag"))?;
        let blob = blob_name(etag).ok_or_else(|| {
            Failure::Refused(format!(
                "etag {} is not a git or LFS hash (40 or 64 hex digits)",
                shown(etag)
            ))
        })?;
        let commit = resp
            .header("x-repo-commit")
            .ok_or_else(|| not_the_hub("x-repo-commit"))?;
        if !is_commit(commit) {
            return Err(Failure::Refused(format!(
                "x-repo-commit {} is not a commit hash (40 lowercase hex digits)",
                shown(commit)
            )));
        }
        let size = match resp.header("x-linked-size") {
            Some(s) => Some(s.trim().parse().map_err(|_| {
                Failure::Refused(format!("x-linked-size {} is not a size", shown(s)))
            })?),
            None if resp.status() == 206 => content_range(&resp)?.map(|(_, total)| total),
            None if resp.status() == 200 => content_length(&resp)?,
            None => None,
        };
        Ok(Remote {
            url,
            commit: commit.to_string(),
            lfs: blob.len() == 64,
            blob,
            size,
        })
    }

    /// One file of the model `id` at `revision`: from the cache, or fetched into it.
    fn file(
        &self,
        cache: &Path,
        id: &str,
        revision: &str,
        file: &str,
        progress: &DownloadProgress,
    ) -> std::result::Result<PathBuf, Failure> {
        if !is_revision(revision) {
            return Err(Failure::Refused(format!(
                "{} is not a revision",
                shown(revision)
            )));
        }
        if let Some(p) = cached_file(cache, id, revision, file) {
            return Ok(p);
        }
        let remote = self.remote(id, revision, file)?;
        let repo = repo_dir(cache, id);
        // Where huggingface_hub locks a blob while it downloads it.
        let locks = cache
            .join(".locks")
            .join(repo.file_name().expect("a repo folder"));
        match progress {
            DownloadProgress::Report(report) => {
                let reporter = Reporter {
                    report: Arc::clone(report),
                    state: Download {
                        model: id.to_string(),
                        file: file.to_string(),
                        done: 0,
                        total: 0,
                        finished: false,
                    },
                    last: Instant::now(),
                };
                self.blob(&remote, &repo, &locks, file, reporter)?
            }
            DownloadProgress::Bar => {
                self.blob(&remote, &repo, &locks, file, indicatif::ProgressBar::new(0))?
            }
            DownloadProgress::Quiet => self.blob(&remote, &repo, &locks, file, ())?,
        };
        let pointer = point(&repo, &remote.commit, file, &remote.blob)?;
        if !is_commit(revision) {
            let r = repo.join("refs").join(revision);
            let parent = r.parent().expect("a ref in refs/");
            std::fs::create_dir_all(parent).map_err(local(parent))?;
            std::fs::write(&r, &remote.commit).map_err(local(&r))?;
        }
        Ok(pointer)
    }

    /// `blobs/<blob>` of `remote`, fetched unless there (resuming a `.incomplete` one), its size and,
    /// for an LFS file, its sha256 checked before it takes its name. Under the lock huggingface_hub
    /// takes for that blob, so two processes never write one.
    fn blob(
        &self,
        remote: &Remote,
        repo: &Path,
        locks: &Path,
        file: &str,
        mut progress: impl Progress,
    ) -> std::result::Result<PathBuf, Failure> {
        let blobs = repo.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(local(&blobs))?;
        std::fs::create_dir_all(locks).map_err(local(locks))?;
        let lock_path = locks.join(format!("{}.lock", remote.blob));
        let lock = File::create(&lock_path).map_err(local(&lock_path))?;
        lock.lock_exclusive().map_err(local(&lock_path))?;
        let blob = blobs.join(&remote.blob);
        if blob.is_file() {
            return Ok(blob);
        }
        let part = blobs.join(format!("{}.incomplete", remote.blob));
        match self.fill(remote, &part, file, &mut progress) {
            Ok(()) => {}
            Err(Failure::Refused(why)) => {
                let _ = std::fs::remove_file(&part);
                return Err(Failure::Refused(why));
            }
            // Kept, to be resumed.
            Err(e) => return Err(e),
        }
        std::fs::rename(&part, &blob).map_err(local(&blob))?;
        progress.finish();
        Ok(blob)
    }

    /// Bring `part` to the whole of `remote`'s bytes and check them.
    fn fill(
        &self,
        remote: &Remote,
        part: &Path,
        file: &str,
        progress: &mut impl Progress,
    ) -> std::result::Result<(), Failure> {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(part)
            .map_err(local(part))?;
        let mut have = out.metadata().map_err(local(part))?.len();
        // Only what can be checked against a known size is resumed.
        if remote.size.is_none_or(|s| have > s) {
            out.set_len(0).map_err(local(part))?;
            have = 0;
        }
        let mut sha = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        if remote.lfs && have > 0 {
            let mut earlier = (&out).take(have);
            loop {
                let n = earlier.read(&mut buf).map_err(local(part))?;
                if n == 0 {
                    break;
                }
                sha.update(&buf[..n]);
            }
        }
        if remote.size == Some(have) {
            progress.init(have as usize, file);
            progress.update(have as usize);
        } else {
            let resp = self.get(&self.fetch, &remote.url, &format!("bytes={have}-"))?;
            let (first, total) = match resp.status() {
                206 => content_range(&resp)?.ok_or_else(|| {
                    Failure::Failed(format!("{}: a part without a content-range", remote.url))
                })?,
                200 => (
                    0,
                    content_length(&resp)?.ok_or_else(|| {
                        Failure::Failed(format!("{}: no content-length", remote.url))
                    })?,
                ),
                status => {
                    return Err(Failure::Failed(format!(
                        "{}: status code {status}",
                        remote.url
                    )))
                }
            };
            if first != have {
                if first != 0 {
                    return Err(Failure::Refused(format!(
                        "asked for the bytes from {have} on, the answer starts at {first}"
                    )));
                }
                // The whole file again.
                out.set_len(0).map_err(local(part))?;
                have = 0;
                sha = Sha256::new();
            }
            if let Some(size) = remote.size.filter(|&s| s != total) {
                return Err(Failure::Refused(format!(
                    "the hub gave its size as {size} bytes, the download as {total}"
                )));
            }
            progress.init(total as usize, file);
            if have > 0 {
                progress.update(have as usize);
            }
            let mut body = resp.into_reader();
            loop {
                let n = match body.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Failure::Failed(format!("{}: {e}", remote.url))),
                };
                if have + n as u64 > total {
                    return Err(Failure::Refused(format!(
                        "more bytes than the {total} announced"
                    )));
                }
                out.write_all(&buf[..n]).map_err(local(part))?;
                if remote.lfs {
                    sha.update(&buf[..n]);
                }
                have += n as u64;
                progress.update(n);
            }
            if have < total {
                return Err(Failure::Failed(format!(
                    "{}: the connection closed after {have} of {total} bytes",
                    remote.url
                )));
            }
        }
        out.sync_all().map_err(local(part))?;
        if remote.lfs {
            let got: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
            if got != remote.blob {
                return Err(Failure::Refused(format!(
                    "its bytes have the sha256 {got}, not the {} the hub gave",
                    remote.blob
                )));
            }
        }
        Ok(())
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    url[after..].find('/').map_or(url, |i| &url[..after + i])
}

/// `bytes first-last/total` of a content-range header, as (first, total).
fn content_range(resp: &ureq::Response) -> std::result::Result<Option<(u64, u64)>, Failure> {
    let Some(v) = resp.header("content-range") else {
        return Ok(None);
    };
    let parsed = || -> Option<(u64, u64)> {
        let (span, total) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
        let (first, _) = span.split_once('-')?;
        Some((first.trim().parse().ok()?, total.trim().parse().ok()?))
    };
    match parsed() {
        Some(r) => Ok(Some(r)),
        None => Err(Failure::Refused(format!(
            "content-range {} is not a byte range",
            shown(v)
        ))),
    }
}

fn content_length(resp: &ureq::Response) -> std::result::Result<Option<u64>, Failure> {
    match resp.header("content-length") {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Failure::Refused(format!("content-length {} is not a size", shown(v)))),
    }
}

/// `snapshots/<commit>/<file>` pointing at `blobs/<blob>`: a relative link as huggingface_hub makes
/// one, else a hard link, else a copy.
fn point(
    repo: &Path,
    commit: &str,
    file: &str,
    blob: &str,
) -> std::result::Result<PathBuf, Failure> {
    let pointer = repo.join("snapshots").join(commit).join(file);
    let parent = pointer.parent().expect("a file in a snapshot");
    std::fs::create_dir_all(parent).map_err(local(parent))?;
    if pointer.is_file() {
        return Ok(pointer);
    }
    if pointer.symlink_metadata().is_ok() {
        // A dangling link.
        let _ = std::fs::remove_file(&pointer);
    }
    let target = repo.join("blobs").join(blob);
    #[cfg(unix)]
    {
        let up = "../".repeat(file.matches('/').count() + 2);
        if std::os::unix::fs::symlink(format!("{up}blobs/{blob}"), &pointer).is_ok()
            || pointer.is_file()
        {
            return Ok(pointer);
        }
    }
    if std::fs::hard_link(&target, &pointer).is_err() && pointer.symlink_metadata().is_err() {
        std::fs::copy(&target, &pointer).map_err(local(&pointer))?;
    }
    Ok(pointer)
}

fn download(id: &str, files: &[&str], progress: &DownloadProgress) -> Result<ModelDir> {
    let cache = hf_hub::Cache::from_env();
    let unavailable = |reason: String| Error::NotDownloaded {
        id: id.to_string(),
        reason,
        cache: cache.path().to_path_buf(),
        files: files.iter().map(|f| f.to_string()).collect(),
    };
    if std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v == "1") {
        return Err(unavailable(format!(
            "{id} is not in the Hugging Face cache and HF_HUB_OFFLINE=1"
        )));
    }
    if let Some(f) = files.iter().find(|f| !is_file_name(f)) {
        return Err(Error::ModelUnavailable(format!(
            "{} is not a file name of a model",
            shown(f)
        )));
    }
    let hub = Hub::from_env(&cache);
    let failed = |f: &str, e: Failure| match e {
        Failure::Refused(why) => Error::ModelUnavailable(format!(
            "{f} of {id} was not saved: the hub's answer was refused: {why}"
        )),
        Failure::Failed(why) => unavailable(format!("could not fetch {f} of {id}: {why}")),
        Failure::Local(e) => e,
    };
    let mut dir = None;
    for f in files {
        let path = match hub.file(cache.path(), id, MAIN, f, progress) {
            Ok(p) => p,
            // Some canonical repos (openai/clip-*) carry safetensors only on a conversion branch.
            Err(Failure::Failed(first)) if f.ends_with(".safetensors") => {
                match hub.file(cache.path(), id, CONVERSION, f, progress) {
                    Ok(p) => p,
                    Err(Failure::Failed(_)) => return Err(failed(f, Failure::Failed(first))),
                    Err(e) => return Err(failed(f, e)),
                }
            }
            Err(e) => return Err(failed(f, e)),
        };
        // Files of one revision share a snapshot folder; a file from another revision is linked in.
        match &dir {
            None => dir = path.parent().map(Path::to_path_buf),
            Some(d) if path.parent() != Some(d.as_path()) => {
                let target = d.join(f);
                if !target.exists() {
                    link_or_copy(&path, &target)?;
                }
            }
            Some(_) => {}
        }
    }
    Ok(ModelDir {
        name: id.to_string(),
        dir: dir.ok_or_else(|| Error::ModelUnavailable(format!("{id}: no files requested")))?,
    })
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    #[cfg(unix)]
    if std::os::unix::fs::symlink(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| Error::io(to, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn download_names_are_checked() {
        for ok in [
            "openai/clip-vit-base-patch32",
            "gpt2",
            "a.b_c-d/E.9",
            &"x".repeat(96),
        ] {
            assert!(is_repo_id(ok), "{ok}");
        }
        for bad in [
            "",
            "/",
            "a/",
            "/a",
            "a/b/c",
            "a/../b",
            "..",
            "a/..",
            "a..b/c",
            "a--b/c",
            "-a/b",
            ".a/b",
            "a\\b",
            "a b/c",
            "a/b\n",
            "C:/x",
            &"x".repeat(97),
        ] {
            assert!(!is_repo_id(bad), "{bad:?}");
        }

        for ok in [
            MAIN,
            CONVERSION,
            "v1.0",
            "release/2+x",
            "0123456789abcdef0123456789abcdef01234567",
        ] {
            assert!(is_revision(ok), "{ok}");
        }
        for bad in [
            "", "/main", "main/", "a//b", "..", "a/../b", "a..b", ".hidden", "a\\b", "a\tb",
            "a\u{0}b", "C:x", "a b",
        ] {
            assert!(!is_revision(bad), "{bad:?}");
        }

        for ok in ["config.json", "onnx/model.onnx", ".gitattributes"] {
            assert!(is_file_name(ok), "{ok}");
        }
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a/./b", "a//b", "a\\b"] {
            assert!(!is_file_name(bad), "{bad:?}");
        }

        assert!(is_commit("0123456789abcdef0123456789abcdef01234567"));
        for bad in [
            "0123456789ABCDEF0123456789abcdef01234567",
            "0123456789abcdef0123456789abcdef0123456",
            "../../../../tmp/evil",
            "/tmp/evil",
            "0123456789abcdef0123456789abcdef01234567/..",
        ] {
            assert!(!is_commit(bad), "{bad:?}");
        }

        let sha1 = "0123456789abcdef0123456789abcdef01234567";
        let sha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(blob_name(&format!("\"{sha1}\"")).as_deref(), Some(sha1));
        assert_eq!(
            blob_name(&format!("W/\"{sha256}\"")).as_deref(),
            Some(sha256)
        );
        assert_eq!(
            blob_name(&sha256.to_uppercase()).as_deref(),
            Some(sha256),
            "lowercased"
        );
        for bad in [
            "\"../../x\"",
            "/tmp/evil",
            "\"config.json-1234\"",
            "",
            "\"\"",
            &format!("{sha1}0"),
            &format!("{sha1}/../x"),
            &format!("\"{}\"", "g".repeat(40)),
        ] {
            assert_eq!(blob_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn download_urls_keep_their_origin() {
        assert_eq!(origin("http://127.0.0.1:80/a/b"), "http://127.0.0.1:80");
        assert_eq!(origin("https://huggingface.co/x"), "https://huggingface.co");
        assert_eq!(origin("https://huggingface.co"), "https://huggingface.co");
    }
}

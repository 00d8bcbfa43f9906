//! Model location: a local Hugging Face model folder, or a hub id fetched on first use into the
//! standard Hugging Face cache (hf-hub), with a progress bar on the terminal or progress reports to
//! a callback (the desktop app's progress bar).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hf_hub::api::sync::Api;
use hf_hub::{Repo, RepoType};
use serde::Serialize;

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
    /// hf-hub's progress bars on stderr.
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

/// hf-hub's progress hook, throttled into [`Download`] reports.
struct Reporter {
    report: Arc<dyn Fn(&Download) + Send + Sync>,
    state: Download,
    last: Instant,
}

impl hf_hub::api::Progress for Reporter {
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

/// Files in the hub cache, if every one of them is there.
pub fn cached(id: &str, files: &[&str]) -> Option<PathBuf> {
    let repo = hf_hub::Cache::from_env().repo(Repo::new(id.to_string(), RepoType::Model));
    let mut dir = None;
    for f in files {
        let p = repo.get(f)?;
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

/// One file of `repo` (of the model `id`) from the cache, or fetched into it.
fn fetch(
    api: &Api,
    repo: Repo,
    id: &str,
    file: &str,
    progress: &DownloadProgress,
) -> std::result::Result<PathBuf, hf_hub::api::sync::ApiError> {
    let api_repo = api.repo(repo.clone());
    match progress {
        DownloadProgress::Report(report) => {
            if let Some(p) = hf_hub::Cache::from_env().repo(repo.clone()).get(file) {
                return Ok(p);
            }
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
            api_repo.download_with_progress(file, reporter)
        }
        _ => api_repo.get(file),
    }
}

fn download(id: &str, files: &[&str], progress: &DownloadProgress) -> Result<ModelDir> {
    let unavailable = |what: String| {
        Error::ModelUnavailable(format!(
            "{what}.\nShoebox needs the model {id} once; it is fetched from the Hugging Face hub into \
             the Hugging Face cache ({}). Either:\n  - connect to the internet and run `shoebox models pull {id}`, or\n  \
             - download the model folder on another machine (it needs {}) and pass it with \
             `--clip-model /path/to/folder` (or SHOEBOX_CLIP_MODEL=/path/to/folder).",
            hf_hub::Cache::from_env().path().display(),
            files.join(", ")
        ))
    };
    if std::env::var_os("HF_HUB_OFFLINE").is_some_and(|v| v == "1") {
        return Err(unavailable(format!(
            "{id} is not in the Hugging Face cache and HF_HUB_OFFLINE=1"
        )));
    }
    let api = hf_hub::api::sync::ApiBuilder::from_env()
        .with_progress(matches!(progress, DownloadProgress::Bar))
        .build()
        .map_err(|e| unavailable(format!("cannot start the hub client: {e}")))?;
    let main = Repo::new(id.to_string(), RepoType::Model);
    let mut dir = None;
    for f in files {
        let path = match fetch(&api, main.clone(), id, f, progress) {
            Ok(p) => p,
            // Some canonical repos (openai/clip-*) carry safetensors only on a conversion branch.
            Err(first) if f.ends_with(".safetensors") => {
                let conversion =
                    Repo::with_revision(id.to_string(), RepoType::Model, "refs/pr/15".to_string());
                fetch(&api, conversion, id, f, progress)
                    .map_err(|_| unavailable(format!("could not fetch {f} of {id}: {first}")))?
            }
            Err(e) => return Err(unavailable(format!("could not fetch {f} of {id}: {e}"))),
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

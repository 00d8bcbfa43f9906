//! Model location: a local Hugging Face model folder, or a hub id fetched on first use into the
//! standard Hugging Face cache (hf-hub, with a progress bar).

use std::path::{Path, PathBuf};

use hf_hub::{Repo, RepoType};

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
/// downloading what is missing (with a progress bar when `progress`).
pub fn resolve(spec: &str, files: &[&str], progress: bool) -> Result<ModelDir> {
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
    if let Some(dir) = cached(spec, files) {
        return Ok(ModelDir {
            name: spec.to_string(),
            dir,
        });
    }
    download(spec, files, progress)
}

fn download(id: &str, files: &[&str], progress: bool) -> Result<ModelDir> {
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
        .with_progress(progress)
        .build()
        .map_err(|e| unavailable(format!("cannot start the hub client: {e}")))?;
    let main = api.model(id.to_string());
    let mut dir = None;
    for f in files {
        let path = match main.get(f) {
            Ok(p) => p,
            // Some canonical repos (openai/clip-*) carry safetensors only on a conversion branch.
            Err(first) if f.ends_with(".safetensors") => api
                .repo(Repo::with_revision(
                    id.to_string(),
                    RepoType::Model,
                    "refs/pr/15".to_string(),
                ))
                .get(f)
                .map_err(|_| unavailable(format!("could not fetch {f} of {id}: {first}")))?,
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

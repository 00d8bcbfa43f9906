//! The library: one folder holding the catalog and the derived indexes, and every operation the CLI
//! and the desktop app perform on it (add/remove folders, index, status, search).
//!
//! Architecture Invariant: the CLI and the app call only these functions; neither touches the catalog,
//! the models or the index directly.

mod captions;
mod classify;
mod duplicates;
mod indexing;
mod ocr;
mod search;
mod tags;
mod thumbs;
pub mod watch;

pub use duplicates::DuplicatesRequest;
pub use ocr::{
    OcrMode, OcrOptions, OcrProgress, OcrReport, DEFAULT_GATE, ENV_OCR, ENV_OCR_LANGS,
    OTHER_PROMPTS, TEXT_PROMPTS,
};
pub use search::{Embedded, EmbeddedKind, PlaceCount};

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use fs4::fs_std::FileExt;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::files::display_path;
use crate::index::VectorIndex;
use crate::models::caption::Captioner;
use crate::models::clip::{Clip, CLIP_FILES};
use crate::models::text::TextEncoder;
use crate::models::{hub, DeviceChoice, Precision};
use crate::pipeline::PipelineReport;
use crate::scan::{self, ScanReport};

/// How to open a library.
#[derive(Debug, Clone)]
pub struct LibraryOptions {
    /// The library folder (catalog, indexes).
    pub dir: PathBuf,
    /// CLIP model: hub id or local folder.
    pub clip_model: String,
    /// Captioning model (BLIP or ViT-GPT2): hub id or local folder.
    pub caption_model: String,
    /// Sentence encoder (tags from captions, hybrid search): hub id or local folder.
    pub text_model: String,
    /// Encoder for query texts (search terms, classify labels) trained into the CLIP model's
    /// space, e.g. a multilingual one; none: CLIP's own text tower.
    pub query_model: Option<String>,
    pub device: DeviceChoice,
    /// How the encoders hold and multiply their weights (CPU).
    pub precision: Precision,
    /// How model downloads show progress (terminal bars, reports to the app, or nothing).
    pub downloads: hub::DownloadProgress,
}

/// `status` (the `status --json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub library: String,
    pub model: String,
    pub folders: Vec<FolderStatus>,
    pub photos: PhotoCounts,
    pub index: IndexStatus,
    /// Photos whose text has been read (OCR).
    pub ocr: crate::catalog::OcrStats,
    /// Image–text models with embeddings here (and the configured one): how far each has come.
    pub models: Vec<ModelCoverage>,
    /// The model searches answer from: the configured one once it covers the library.
    pub search_model: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<Failure>>,
    /// Present while a `watch` runs on this library.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<watch::WatchState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FolderStatus {
    pub path: String,
    pub photos: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhotoCounts {
    pub indexed: u64,
    pub pending: u64,
    pub failed: u64,
    /// Photos with a caption from the configured captioning model.
    pub captioned: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct IndexStatus {
    pub vectors: u64,
    pub fresh: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub path: String,
    pub reason: String,
}

/// What `index` did.
#[derive(Debug, Clone, Default)]
pub struct IndexReport {
    pub scan: ScanReport,
    pub pipeline: PipelineReport,
    /// Tags and caption embeddings made after embedding (`index` only; the watcher tags separately).
    pub tags: crate::tags::TagReport,
}

/// The value in `cell`, loaded by `load` on first use. A failed load leaves the cell empty, so the
/// next call tries again; two threads loading at once both load, and the first value stays.
pub(crate) fn get_or_load<T>(cell: &OnceLock<T>, load: impl FnOnce() -> Result<T>) -> Result<&T> {
    if let Some(v) = cell.get() {
        return Ok(v);
    }
    let v = load()?;
    Ok(cell.get_or_init(|| v))
}

/// An open library.
pub struct Library {
    pub(crate) opts: LibraryOptions,
    pub(crate) catalog: Catalog,
    clip: OnceLock<std::sync::Arc<Clip>>,
    pub(crate) captioner: OnceLock<Captioner>,
    pub(crate) text: OnceLock<TextEncoder>,
    /// The query encoder, when one is configured.
    query: OnceLock<TextEncoder>,
    /// The OCR gate's prompts, embedded by the CLIP text tower (text prompts first).
    ocr_gate: OnceLock<Vec<Vec<f32>>>,
    /// The CLIP-tag vocabulary's prompts as embedded by the text tower, with the model and
    /// prompts they came from (a watcher's every batch would otherwise embed them again).
    pub(crate) clip_tag_texts: std::sync::Mutex<Option<tags::ClipTagTexts>>,
    /// Tesseract readers kept between OCR runs (starting one costs ~0.1 s).
    ocr_engines: std::sync::Mutex<Vec<crate::ocr::OcrEngine>>,
    index: Option<VectorIndex>,
    /// The model (catalog id, name) whose vectors `index` holds.
    index_model: Option<(i64, String)>,
    /// Other image–text models opened to answer searches while the configured one is still
    /// embedding the library.
    fallback_clips: std::sync::Mutex<Vec<std::sync::Arc<Clip>>>,
    /// The last answer of [`Library::search_model`] and the catalog state it was read from
    /// (generation, photos, failed): counting embeddings per model costs milliseconds at 100k.
    serving: std::sync::Mutex<Option<((i64, u64, u64), String)>>,
    _lock: Option<std::fs::File>,
    /// What a RAW file beside a JPEG of the same name is (scans use it).
    raw_mode: scan::RawMode,
}

impl Library {
    /// Open (creating if needed) the library folder.
    pub fn open(opts: LibraryOptions) -> Result<Self> {
        std::fs::create_dir_all(&opts.dir).map_err(|e| Error::io(&opts.dir, e))?;
        let catalog = Catalog::open(&opts.dir.join("catalog.sqlite"))?;
        Ok(Library {
            opts,
            catalog,
            clip: OnceLock::new(),
            captioner: OnceLock::new(),
            text: OnceLock::new(),
            query: OnceLock::new(),
            ocr_gate: OnceLock::new(),
            clip_tag_texts: Default::default(),
            ocr_engines: Default::default(),
            index: None,
            index_model: None,
            fallback_clips: Default::default(),
            serving: Default::default(),
            _lock: None,
            raw_mode: crate::options::env_raw_mode()?.unwrap_or_default(),
        })
    }

    /// What a RAW file beside a JPEG of the same name is from now on: the JPEG's original (one
    /// photo, the default) or a photo of its own. The next scan adds or drops the RAW photos.
    pub fn set_raw_mode(&mut self, mode: scan::RawMode) {
        self.raw_mode = mode;
    }

    pub fn raw_mode(&self) -> scan::RawMode {
        self.raw_mode
    }

    /// Take the library's writer lock: one writing process (index, add, remove, watch) at a time.
    /// Readers (search, status) never need it.
    pub fn lock_for_writing(&mut self) -> Result<()> {
        if self._lock.is_some() {
            return Ok(());
        }
        let path = self.opts.dir.join("writer.lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match f.try_lock_exclusive() {
            Ok(true) => {}
            Ok(false) => {
                return Err(Error::Locked(format!(
                    "another Shoebox process (indexing, watching, or the app) is writing to {}; \
                     wait for it to finish or stop it — searching works meanwhile",
                    self.opts.dir.display()
                )))
            }
            Err(e) => return Err(Error::io(&path, e)),
        }
        self._lock = Some(f);
        Ok(())
    }

    /// Whether some process (maybe this one) holds the writer lock.
    pub fn writer_active(&self) -> bool {
        if self._lock.is_some() {
            return true;
        }
        let Ok(f) = std::fs::File::open(self.opts.dir.join("writer.lock")) else {
            return false;
        };
        !matches!(f.try_lock_exclusive(), Ok(true))
    }

    /// The running watcher's state, if a watcher runs (a state file left by a dead one is ignored).
    pub fn watch_state(&self) -> Option<watch::WatchState> {
        let text = std::fs::read_to_string(watch::state_path(&self.opts.dir)).ok()?;
        let st = serde_json::from_str(&text).ok()?;
        self.writer_active().then_some(st)
    }

    pub fn dir(&self) -> &Path {
        &self.opts.dir
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The catalog name of the configured CLIP model (no download).
    pub fn model_name(&self) -> String {
        hub::model_name(&self.opts.clip_model)
    }

    /// The catalog name of the configured captioning model (no download).
    pub fn caption_model_name(&self) -> String {
        hub::model_name(&self.opts.caption_model)
    }

    /// The CLIP model, opened (and fetched if needed) on first use; each tower's weights load when
    /// first needed.
    pub fn clip(&self) -> Result<&Clip> {
        get_or_load(&self.clip, || {
            let dir = hub::resolve(&self.opts.clip_model, CLIP_FILES, &self.opts.downloads)?;
            Clip::open(&dir, &self.opts.device.device()?)
                .map(|c| std::sync::Arc::new(c.with_precision(self.opts.precision)))
        })
        .map(|c| &**c)
    }

    /// The image–text model searches answer from: the configured one once it has embedded every
    /// photo the library can read (or when no other model has); until then the newest other model
    /// that has (switching models loses no search while the new one embeds).
    pub fn search_model(&self) -> Result<String> {
        let counts = self.catalog.counts(None)?;
        let key = (self.catalog.generation()?, counts.total, counts.failed);
        let mut cached = self.serving.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, name)) = cached.as_ref() {
            if *k == key {
                return Ok(name.clone());
            }
        }
        let name = self.search_model_now()?;
        *cached = Some((key, name.clone()));
        Ok(name)
    }

    fn search_model_now(&self) -> Result<String> {
        let configured = self.model_name();
        let coverage = self.model_coverage()?;
        let covers = |c: &ModelCoverage| c.of > 0 && c.embedded >= c.of;
        if coverage.iter().any(|c| c.id == configured && covers(c)) {
            return Ok(configured);
        }
        Ok(coverage
            .iter()
            .rev()
            .find(|c| c.id != configured && covers(c))
            .map(|c| c.id.clone())
            .unwrap_or(configured))
    }

    /// Every image–text model with embeddings in this library (and the configured one), oldest
    /// first: how many photos it has embedded of those it could.
    pub fn model_coverage(&self) -> Result<Vec<ModelCoverage>> {
        let counts = self.catalog.counts(None)?;
        let of = counts.total.saturating_sub(counts.failed);
        let configured = self.model_name();
        let mut out: Vec<ModelCoverage> = self
            .catalog
            .models()?
            .into_iter()
            .filter(|m| m.kind == crate::catalog::ModelKind::Clip.as_str())
            .map(|m| ModelCoverage {
                id: m.name,
                embedded: m.embeddings,
                of,
            })
            .collect();
        if !out.iter().any(|m| m.id == configured) {
            out.push(ModelCoverage {
                id: configured,
                embedded: 0,
                of,
            });
        }
        Ok(out)
    }

    /// The image–text model called `name`: the configured one, or another opened from its hub id
    /// or folder (kept for the next search).
    pub fn search_clip(&self, name: &str) -> Result<std::sync::Arc<Clip>> {
        if name == self.model_name() {
            self.clip()?;
            return Ok(self.clip.get().expect("loaded").clone());
        }
        let mut held = self
            .fallback_clips
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(c) = held.iter().find(|c| c.name() == name) {
            return Ok(c.clone());
        }
        let dir = hub::resolve(name, CLIP_FILES, &self.opts.downloads)?;
        let clip = std::sync::Arc::new(
            Clip::open(&dir, &self.opts.device.device()?)?.with_precision(self.opts.precision),
        );
        held.push(clip.clone());
        Ok(clip)
    }

    /// The catalog name of the configured query encoder, if one is set.
    pub fn query_model_name(&self) -> Option<String> {
        self.opts
            .query_model
            .as_deref()
            .filter(|q| !q.trim().is_empty())
            .map(hub::model_name)
    }

    /// The query encoder, loaded (and fetched) on first use; `None` when none is configured. One
    /// whose embeddings do not have the CLIP model's size is refused.
    pub fn query_encoder(&self) -> Result<Option<&TextEncoder>> {
        let Some(spec) = self
            .opts
            .query_model
            .as_deref()
            .filter(|q| !q.trim().is_empty())
        else {
            return Ok(None);
        };
        let clip = self.clip()?;
        let enc = get_or_load(&self.query, || {
            let dir = crate::models::text::resolve(spec, &self.opts.downloads)?;
            TextEncoder::load_with(&dir, &self.opts.device.device()?, self.opts.precision)
        })?;
        if enc.dim() != clip.dim() {
            return Err(Error::Model(format!(
                "the query model {} gives {}-dimensional embeddings but the CLIP model {} gives {}: \
                 a query model must be trained into its CLIP model's space",
                enc.name(),
                enc.dim(),
                clip.name(),
                clip.dim()
            )));
        }
        Ok(Some(enc))
    }

    /// Embed query texts (search terms, labels) the way the library compares them with photos:
    /// through the query encoder when one is set, else CLIP's text tower; L2-normalized.
    pub fn embed_query_texts(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>> {
        match self.query_encoder()? {
            Some(q) => q.embed(texts),
            None => self.clip()?.embed_texts(texts),
        }
    }

    pub(crate) fn index_dir(&self, model: &str) -> PathBuf {
        let slug: String = model
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let slug = slug.trim_start_matches(['_', '.']).to_string();
        let h = blake3::hash(model.as_bytes()).to_hex();
        let tail: String = slug
            .chars()
            .rev()
            .take(48)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        self.opts
            .dir
            .join("index")
            .join(format!("{tail}-{}", &h[..8]))
    }

    // ---- folders ----

    /// Add folders (canonicalized) and scan them. Nested folders are refused. Takes the writer lock.
    pub fn add_folders(&mut self, dirs: &[PathBuf]) -> Result<(Vec<(PathBuf, bool)>, ScanReport)> {
        self.lock_for_writing()?;
        let mut added = Vec::new();
        let mut ids = Vec::new();
        for d in dirs {
            let canon = match std::fs::canonicalize(d) {
                Ok(c) if c.is_dir() => c,
                Ok(_) => return Err(Error::NotAFolder(d.clone())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::NotAFolder(d.clone()))
                }
                Err(e) => return Err(Error::io(d, e)),
            };
            for r in self.catalog.roots()? {
                if r.path != canon && (canon.starts_with(&r.path) || r.path.starts_with(&canon)) {
                    return Err(Error::Invalid(format!(
                        "{} overlaps the library folder {}: remove that one first or add a folder beside it",
                        canon.display(),
                        r.path.display()
                    )));
                }
            }
            let (id, new) = self.catalog.add_root(&canon)?;
            ids.push(id);
            added.push((canon, new));
        }
        let report = scan::scan_with(&mut self.catalog, Some(&ids), self.raw_mode)?;
        Ok((added, report))
    }

    /// Remove folders and everything recorded under them. Returns the ones that were folders.
    /// Takes the writer lock.
    pub fn remove_folders(&mut self, dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
        self.lock_for_writing()?;
        let mut removed = Vec::new();
        for d in dirs {
            let canon = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
            if self.catalog.remove_root(&canon)? || self.catalog.remove_root(d)? {
                removed.push(canon);
            } else {
                return Err(Error::NotALibraryFolder(d.clone()));
            }
        }
        Ok(removed)
    }

    /// Scan every folder for changes. Takes the writer lock.
    pub fn scan(&mut self) -> Result<ScanReport> {
        self.lock_for_writing()?;
        scan::scan_with(&mut self.catalog, None, self.raw_mode)
    }

    // ---- status ----

    /// Counts per folder and for the configured model; failures when asked.
    pub fn status(&self, with_failures: bool) -> Result<Status> {
        let model = self.model_name();
        let model_id = self.catalog.find_model(&model)?.map(|m| m.id);
        let counts = self.catalog.counts(model_id)?;
        let index = self.index_status()?.unwrap_or(IndexStatus {
            vectors: 0,
            fresh: counts.indexed == 0,
        });
        let failures = if with_failures {
            Some(
                self.catalog
                    .failures()?
                    .into_iter()
                    .map(|f| Failure {
                        path: display_path(&f.path),
                        reason: f.reason,
                    })
                    .collect(),
            )
        } else {
            None
        };
        Ok(Status {
            library: display_path(&self.opts.dir),
            model,
            folders: self
                .catalog
                .root_counts()?
                .into_iter()
                .map(|r| FolderStatus {
                    path: display_path(&r.path),
                    photos: r.photos,
                })
                .collect(),
            photos: PhotoCounts {
                indexed: counts.indexed,
                pending: counts.total.saturating_sub(counts.indexed + counts.failed),
                failed: counts.failed,
                captioned: match self.catalog.find_model(&self.caption_model_name())? {
                    Some(m) => self.catalog.caption_count(m.id)?,
                    None => 0,
                },
            },
            index,
            ocr: self.catalog.ocr_stats()?,
            models: self.model_coverage()?,
            search_model: self.search_model()?,
            failures,
            watch: self.watch_state(),
        })
    }

    // ---- models ----

    /// Drop an image–text model's embeddings and its index (and anything else made with it).
    /// Takes the writer lock. Returns whether the library had it; the configured model's photos
    /// are embedded again by the next index.
    pub fn remove_model(&mut self, id: &str) -> Result<bool> {
        self.lock_for_writing()?;
        let name = hub::model_name(id);
        let known = self.catalog.find_model(&name)?.is_some();
        if known {
            self.catalog.delete_model(&name)?;
        }
        let dir = self.index_dir(&name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        if self.index_model.as_ref().is_some_and(|(_, n)| *n == name) {
            self.index = None;
            self.index_model = None;
        }
        Ok(known)
    }

    /// Fetch a model into the Hugging Face cache (or check a local folder); returns its folder.
    /// A captioner, sentence or query encoder on the model menu is fetched with its own files;
    /// anything else as an image–text model.
    pub fn pull_model(spec: &str, progress: &hub::DownloadProgress) -> Result<PathBuf> {
        use crate::models::menu::{self, MenuKind};
        let cpu = candle_core::Device::Cpu;
        // Loading proves the files are a usable model.
        match menu::known_kind(spec) {
            Some(MenuKind::Caption) => {
                let dir = hub::resolve(spec, menu::files(MenuKind::Caption), progress)?;
                Captioner::load(&dir, &cpu)?;
                Ok(dir.dir)
            }
            Some(MenuKind::Sentence | MenuKind::Query) => {
                let dir = crate::models::text::resolve(spec, progress)?;
                TextEncoder::load(&dir, &cpu)?;
                Ok(dir.dir)
            }
            _ => {
                let dir = hub::resolve(spec, CLIP_FILES, progress)?;
                Clip::load(&dir, &cpu)?;
                Ok(dir.dir)
            }
        }
    }
}

/// How far an image–text model has embedded the library (`status --json`'s `models`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelCoverage {
    /// Hub id or canonical local folder.
    pub id: String,
    /// Photos with an embedding from it.
    pub embedded: u64,
    /// Photos it could embed (every photo but those that failed to decode).
    pub of: u64,
}

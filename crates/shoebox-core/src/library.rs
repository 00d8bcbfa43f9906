//! The library: one folder holding the catalog and the derived indexes, and every operation the CLI
//! and the desktop app perform on it (add/remove folders, index, status, search).
//!
//! Architecture Invariant: the CLI and the app call only these functions; neither touches the catalog,
//! the models or the index directly.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;
use std::time::Instant;

use fs4::fs_std::FileExt;
use serde::Serialize;

use crate::catalog::Catalog;
use crate::decode::decode_file;
use crate::error::{Error, Result};
use crate::index::VectorIndex;
use crate::models::caption::Captioner;
use crate::models::clip::{normalize, Clip, CLIP_FILES};
use crate::models::text::TextEncoder;
use crate::models::{hub, DeviceChoice};
use crate::pipeline::{self, PipelineOptions, PipelineReport, Progress};
use crate::scan::{self, ScanReport};
use crate::search::{self, SearchHit, SearchMode, SearchRequest, SearchResponse, SortBy, TermKind};

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
    pub device: DeviceChoice,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failures: Option<Vec<Failure>>,
    /// Present while a `watch` runs on this library.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<crate::watch::WatchState>,
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

/// An open library.
pub struct Library {
    pub(crate) opts: LibraryOptions,
    pub(crate) catalog: Catalog,
    clip: OnceLock<Clip>,
    pub(crate) captioner: OnceLock<Captioner>,
    pub(crate) text: OnceLock<TextEncoder>,
    index: Option<VectorIndex>,
    _lock: Option<std::fs::File>,
}

/// Display form of a path (lossy for non-UTF-8 names).
pub fn display_path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
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
            index: None,
            _lock: None,
        })
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
                    "another Shoebox process is writing to {} (an `index` or `watch`); \
                     wait for it to finish or stop it — search and status work meanwhile",
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
    pub fn watch_state(&self) -> Option<crate::watch::WatchState> {
        let text = std::fs::read_to_string(crate::watch::state_path(&self.opts.dir)).ok()?;
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
        if let Some(c) = self.clip.get() {
            return Ok(c);
        }
        let dir = hub::resolve(&self.opts.clip_model, CLIP_FILES, &self.opts.downloads)?;
        let device = self.opts.device.device()?;
        let clip = Clip::open(&dir, &device)?;
        Ok(self.clip.get_or_init(|| clip))
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

    /// Add folders (canonicalized) and scan them. Nested folders are refused.
    pub fn add_folders(&mut self, dirs: &[PathBuf]) -> Result<(Vec<(PathBuf, bool)>, ScanReport)> {
        let mut added = Vec::new();
        let mut ids = Vec::new();
        for d in dirs {
            let canon = std::fs::canonicalize(d).map_err(|e| Error::io(d, e))?;
            if !canon.is_dir() {
                return Err(Error::Invalid(format!("{} is not a folder", d.display())));
            }
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
        let report = scan::scan(&mut self.catalog, Some(&ids))?;
        Ok((added, report))
    }

    /// Remove folders and everything recorded under them. Returns the ones that were folders.
    pub fn remove_folders(&mut self, dirs: &[PathBuf]) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for d in dirs {
            let canon = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
            if self.catalog.remove_root(&canon)? || self.catalog.remove_root(d)? {
                removed.push(canon);
            } else {
                return Err(Error::Invalid(format!(
                    "{} is not a library folder (see `shoebox status`)",
                    d.display()
                )));
            }
        }
        Ok(removed)
    }

    /// Scan every folder for changes.
    pub fn scan(&mut self) -> Result<ScanReport> {
        scan::scan(&mut self.catalog, None)
    }

    // ---- index ----

    /// Bring the in-memory index in step with the catalog: load the saved one, add what it lacks,
    /// filter what the catalog dropped, rebuild when it is unusable or mostly dead.
    fn ensure_index(&mut self, model_id: i64, dim: usize) -> Result<bool> {
        let model = self.clip()?.name().to_string();
        let generation = self.catalog.generation()?;
        if self.index.as_ref().is_some_and(|i| i.graph_failed()) {
            log::warn!("rebuilding the index: its saved graph could not be loaded");
            self.index = Some(VectorIndex::new(dim, 0));
        }
        if self
            .index
            .as_ref()
            .is_some_and(|i| i.generation == generation && i.dim() == dim)
        {
            return Ok(false);
        }
        let dir = self.index_dir(&model);
        let mut idx = match self.index.take() {
            Some(i) if i.dim() == dim => i,
            _ => match VectorIndex::load(&dir, &model, dim) {
                Ok(i) => i,
                Err(e) => {
                    if dir.join("manifest.json").exists() {
                        log::warn!("rebuilding the index: {e}");
                    }
                    VectorIndex::new(dim, 0)
                }
            },
        };
        let mut changed = false;
        if idx.generation != generation {
            // Vectors written since the index last looked (new or re-embedded photos) …
            let mut fresh = Vec::new();
            let last_row = self.catalog.last_embedding_row()?;
            self.catalog
                .for_each_embedding_since(model_id, idx.last_row, |id, v| {
                    fresh.push((id, v));
                    Ok(())
                })?;
            // … and photos whose vectors the catalog no longer has.
            let in_catalog: HashSet<i64> =
                self.catalog.embedding_ids(model_id)?.into_iter().collect();
            let gone: Vec<i64> = idx
                .live_ids()
                .into_iter()
                .filter(|id| !in_catalog.contains(id))
                .collect();
            idx.remove(gone);
            idx.insert_many(fresh)?;
            if idx.dead_count() * 5 > idx.len() + idx.dead_count() {
                // Mostly dead: rebuild from the catalog.
                let mut all = Vec::with_capacity(in_catalog.len());
                self.catalog
                    .for_each_embedding_since(model_id, 0, |id, v| {
                        all.push((id, v));
                        Ok(())
                    })?;
                idx = VectorIndex::build(dim, all)?;
            }
            idx.generation = generation;
            idx.last_row = last_row;
            changed = true;
        }
        self.index = Some(idx);
        Ok(changed)
    }

    /// Get ready for CLIP searches: open the saved index (mapped: searches walk it at once) and load
    /// the text tower.
    pub fn prepare_search(&mut self) -> Result<()> {
        if let Some((model_id, dim)) = self.catalog.find_model(&self.model_name())? {
            self.ensure_index(model_id, dim)?;
        }
        self.clip()?.load_text()
    }

    /// Wait until searches walk the index graph (a saved index without its flat copy answers by
    /// exact scans while its graph loads).
    pub fn wait_for_index(&self) -> Result<()> {
        match &self.index {
            Some(idx) => idx.wait_for_search(),
            None => Ok(()),
        }
    }

    fn save_index(&mut self) -> Result<()> {
        let Ok(name) = self.clip().map(|c| c.name().to_string()) else {
            return Ok(());
        };
        let dir = self.index_dir(&name);
        if let Some(idx) = &mut self.index {
            idx.save(&dir, &name)?;
        }
        Ok(())
    }

    /// Scan, then embed every photo that lacks an embedding for the model; save the index.
    /// Takes the writer lock. Stops cleanly when `cancel` is set.
    pub fn index(
        &mut self,
        opts: PipelineOptions,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<IndexReport> {
        let mut report = self.absorb(None, opts, cancel, on_progress)?;
        self.save_index_if_stale()?;
        if !cancel.load(std::sync::atomic::Ordering::Relaxed) {
            report.tags = self.tag_library(cancel)?;
        }
        Ok(report)
    }

    /// Scan some roots (all when `only` is None) and embed every pending photo, without saving the
    /// index (the watcher saves it now and then: the catalog is the truth, and a later open catches
    /// the index up from it).
    pub(crate) fn absorb(
        &mut self,
        only: Option<&[i64]>,
        opts: PipelineOptions,
        cancel: &AtomicBool,
        on_progress: &mut dyn FnMut(Progress),
    ) -> Result<IndexReport> {
        self.lock_for_writing()?;
        let scan = scan::scan(&mut self.catalog, only)?;
        let work = self
            .catalog
            .pending_work(self.catalog.find_model(&self.model_name())?.map(|m| m.0))?;
        let mut report = IndexReport {
            scan,
            ..Default::default()
        };
        let (model_id, dim) = {
            let clip = self.clip()?;
            let id = self.catalog.model_id(clip.name(), "clip", clip.dim())?;
            (id, clip.dim())
        };
        self.ensure_index(model_id, dim)?;
        if !work.is_empty() {
            let clip = self.clip.get().expect("loaded by ensure_index");
            let index = self.index.as_mut().expect("ensured");
            let sink = pipeline::Sink {
                catalog: &mut self.catalog,
                model_id,
                index,
            };
            report.pipeline = pipeline::run(sink, clip, work, opts, cancel, on_progress)?;
        }
        Ok(report)
    }

    /// Save the in-memory index when the saved one is missing or behind the catalog.
    pub(crate) fn save_index_if_stale(&mut self) -> Result<()> {
        if self.index_status()?.map(|s| !s.fresh).unwrap_or(true) {
            self.save_index()?;
        }
        Ok(())
    }

    fn index_status(&self) -> Result<Option<IndexStatus>> {
        #[derive(serde::Deserialize)]
        struct M {
            count: u64,
            generation: i64,
        }
        let path = self.index_dir(&self.model_name()).join("manifest.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(None);
        };
        let Ok(m) = serde_json::from_str::<M>(&text) else {
            return Ok(None);
        };
        Ok(Some(IndexStatus {
            vectors: m.count,
            fresh: m.generation == self.catalog.generation()?,
        }))
    }

    // ---- status ----

    /// Counts per folder and for the configured model; failures when asked.
    pub fn status(&self, with_failures: bool) -> Result<Status> {
        let model = self.model_name();
        let model_id = self.catalog.find_model(&model)?.map(|m| m.0);
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
                    .map(|(p, reason)| Failure {
                        path: display_path(&p),
                        reason,
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
                    Some((id, _)) => self.catalog.caption_count(id)?,
                    None => 0,
                },
            },
            index,
            failures,
            watch: self.watch_state(),
        })
    }

    // ---- search ----

    /// The stored embedding of a library photo at `path` for the configured model, if any.
    pub fn stored_embedding(&self, path: &Path) -> Result<Option<Vec<f32>>> {
        let Ok(canon) = std::fs::canonicalize(path) else {
            return Ok(None);
        };
        let model = self.model_name();
        match (
            self.catalog.photo_id_at(&canon)?,
            self.catalog.find_model(&model)?,
        ) {
            (Some(pid), Some((mid, _))) => self.catalog.embedding(mid, pid),
            _ => Ok(None),
        }
    }

    /// The embedding of an image file: the stored one when the file is in the library, else computed.
    pub fn embed_image_file(&self, path: &Path) -> Result<Vec<f32>> {
        if let Some(v) = self.stored_embedding(path)? {
            return Ok(v);
        }
        let clip = self.clip()?;
        let d = decode_file(path, clip.decode_short_side()).map_err(|reason| Error::Decode {
            path: path.to_path_buf(),
            reason,
        })?;
        let px = clip.preprocess(&d.image)?;
        Ok(clip.embed_pixels(&[px])?.remove(0))
    }

    /// The combined, normalized query vector of a request.
    pub fn query_vector(&self, req: &SearchRequest) -> Result<Vec<f32>> {
        let clip = self.clip()?;
        let mut terms = match &req.query {
            Some(q) if !q.trim().is_empty() => search::parse_query(q)?,
            _ => Vec::new(),
        };
        terms.extend(req.like.iter().map(|p| search::Term {
            weight: 1.0,
            kind: TermKind::Image(p.clone()),
        }));
        if terms.is_empty() {
            return Err(Error::Invalid(
                "nothing to search for: give a query or --like IMAGE".into(),
            ));
        }
        let texts: Vec<&str> = terms
            .iter()
            .filter_map(|t| match &t.kind {
                TermKind::Text(s) => Some(s.as_str()),
                TermKind::Image(_) => None,
            })
            .collect();
        let mut text_vecs = clip.embed_texts(&texts)?.into_iter();
        let mut acc = vec![0f32; clip.dim()];
        for t in &terms {
            let v = match &t.kind {
                TermKind::Text(_) => text_vecs.next().expect("one vector per text"),
                TermKind::Image(p) => self.embed_image_file(p)?,
            };
            for (a, x) in acc.iter_mut().zip(&v) {
                *a += t.weight * x;
            }
        }
        Ok(normalize(acc))
    }

    /// Answer a search request.
    /// `took_ms` counts the query itself: the model is loaded (once per process) before the clock starts.
    pub fn search(&mut self, req: &SearchRequest) -> Result<SearchResponse> {
        let mode = self.search_mode(req)?;
        // The index and models load (once per process) before the clock starts.
        if mode != SearchMode::Text {
            self.prepare_search()?;
        }
        if mode != SearchMode::Clip {
            self.text_encoder()?;
        }
        let start = Instant::now();
        let model = match mode {
            SearchMode::Text => self.text_model_name(),
            _ => self.model_name(),
        };
        let empty = |start: Instant| SearchResponse {
            query: req.query.clone().unwrap_or_default(),
            model: model.clone(),
            mode,
            took_ms: start.elapsed().as_secs_f64() * 1e3,
            results: Vec::new(),
        };
        let Some((model_id, dim)) = self.catalog.find_model(&self.model_name())? else {
            return Ok(empty(start));
        };
        let limit = req.limit.max(1);
        // Each ranking looks deeper than `limit` when two are fused.
        let depth = match mode {
            SearchMode::Clip | SearchMode::Text => limit,
            SearchMode::Hybrid => (limit * 4).max(100),
        };
        let allowed = if req.filters.is_empty() {
            None
        } else {
            let infos = self.catalog.embedded_infos(model_id)?;
            let mut allowed = search::allowed_ids(&infos, &req.filters);
            if !req.filters.tags.is_empty() {
                let tagged = self.catalog.photos_with_tags(&req.filters.tags)?;
                allowed.retain(|id| tagged.contains(id));
            }
            Some(allowed)
        };
        let above = |v: Vec<(i64, f32)>| -> Vec<(i64, f32)> {
            v.into_iter()
                .filter(|(_, s)| req.min_score.is_none_or(|m| *s >= m))
                .collect()
        };
        let clip_ranked = if mode == SearchMode::Text {
            Vec::new()
        } else {
            let query = self.query_vector(req)?;
            self.ensure_index(model_id, dim)?;
            above(self.clip_rank(model_id, &query, depth, allowed.as_ref())?)
        };
        let text_ranked = if mode == SearchMode::Clip {
            Vec::new()
        } else {
            above(self.text_rank(req, depth, allowed.as_ref())?)
        };
        let scored = match mode {
            SearchMode::Clip => clip_ranked,
            SearchMode::Text => text_ranked,
            SearchMode::Hybrid => search::rrf(&[&clip_ranked, &text_ranked], limit),
        };
        let ids: Vec<i64> = scored.iter().map(|s| s.0).collect();
        let infos = self.catalog.photo_infos(&ids)?;
        let mut hits: Vec<(SearchHit, String)> = scored
            .into_iter()
            .filter_map(|(id, score)| {
                let p = infos.get(&id)?;
                Some((
                    SearchHit {
                        rank: 0,
                        path: display_path(&p.path),
                        score,
                        width: p.width,
                        height: p.height,
                        taken_at: p.taken_at.clone(),
                        caption: None,
                        tags: Vec::new(),
                        photo_id: id,
                    },
                    search::photo_date(p),
                ))
            })
            .collect();
        if req.sort == SortBy::Date {
            hits.sort_by(|a, b| b.1.cmp(&a.1));
        }
        let ids: Vec<i64> = hits.iter().map(|h| h.0.photo_id).collect();
        let caption_model = self
            .catalog
            .find_model(&self.caption_model_name())?
            .map(|m| m.0);
        let mut captions = self.catalog.captions(&ids, caption_model)?;
        let mut results = Vec::with_capacity(hits.len());
        for (i, (mut h, _)) in hits.into_iter().enumerate() {
            h.rank = i + 1;
            h.caption = captions.remove(&h.photo_id);
            for (t, _, _) in self.catalog.photo_tags(h.photo_id)? {
                if !h.tags.contains(&t) {
                    h.tags.push(t);
                }
            }
            results.push(h);
        }
        Ok(SearchResponse {
            took_ms: start.elapsed().as_secs_f64() * 1e3,
            results,
            ..empty(start)
        })
    }

    /// The ranking a request gets: as asked, else hybrid when the query is text only and captions
    /// have been embedded by the configured sentence encoder, else CLIP.
    pub fn search_mode(&self, req: &SearchRequest) -> Result<SearchMode> {
        if let Some(m) = req.mode {
            return Ok(m);
        }
        let text_only = req.like.is_empty()
            && match &req.query {
                Some(q) if !q.trim().is_empty() => search::parse_query(q)?
                    .iter()
                    .all(|t| matches!(t.kind, TermKind::Text(_))),
                _ => false,
            };
        let has_captions = match self.catalog.find_model(&self.text_model_name())? {
            Some((id, _)) => self.catalog.has_text_embeddings(id)?,
            None => false,
        };
        Ok(if text_only && has_captions {
            SearchMode::Hybrid
        } else {
            SearchMode::Clip
        })
    }

    /// CLIP ranking: HNSW without filters; with filters, exact over a small allowed set or HNSW
    /// with a filter.
    fn clip_rank(
        &self,
        model_id: i64,
        query: &[f32],
        depth: usize,
        allowed: Option<&std::collections::HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>> {
        let index = self.index.as_ref().expect("ensured");
        Ok(match allowed {
            None => index.search(query, depth, None),
            Some(allowed) if allowed.len() <= 4096 => {
                let mut items = Vec::with_capacity(allowed.len());
                for id in allowed {
                    if let Some(v) = self.catalog.embedding(model_id, *id)? {
                        items.push((*id, v));
                    }
                }
                search::exact_top_k(query, items, depth)
            }
            Some(allowed) => {
                let keep = |id: i64| allowed.contains(&id);
                index.search(query, depth, Some(&keep))
            }
        })
    }

    /// Caption ranking: the query's sentence embedding against every caption embedding (exact).
    fn text_rank(
        &self,
        req: &SearchRequest,
        depth: usize,
        allowed: Option<&std::collections::HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>> {
        let Some((text_model, _)) = self.catalog.find_model(&self.text_model_name())? else {
            return Ok(Vec::new());
        };
        let terms = match &req.query {
            Some(q) if !q.trim().is_empty() => search::parse_query(q)?,
            _ => Vec::new(),
        };
        if terms.is_empty()
            || !req.like.is_empty()
            || terms.iter().any(|t| matches!(t.kind, TermKind::Image(_)))
        {
            return Err(Error::Invalid(
                "text search needs a text query (no images): use --mode clip for images".into(),
            ));
        }
        let enc = self.text_encoder()?;
        let texts: Vec<&str> = terms
            .iter()
            .filter_map(|t| match &t.kind {
                TermKind::Text(s) => Some(s.as_str()),
                TermKind::Image(_) => None,
            })
            .collect();
        let vecs = enc.embed(&texts)?;
        let mut q = vec![0f32; enc.dim()];
        for (t, v) in terms.iter().zip(&vecs) {
            for (a, x) in q.iter_mut().zip(v) {
                *a += t.weight * x;
            }
        }
        let q = normalize(q);
        let mut items = self.catalog.text_embeddings(text_model)?;
        if let Some(allowed) = allowed {
            items.retain(|(id, _)| allowed.contains(id));
        }
        Ok(search::exact_top_k(&q, items, depth))
    }

    // ---- models ----

    /// Fetch a model into the Hugging Face cache (or check a local folder); returns its folder.
    pub fn pull_model(spec: &str, progress: &hub::DownloadProgress) -> Result<PathBuf> {
        let dir = hub::resolve(spec, CLIP_FILES, progress)?;
        // Loading proves the files are a usable CLIP model.
        Clip::load(&dir, &candle_core::Device::Cpu)?;
        Ok(dir.dir)
    }
}

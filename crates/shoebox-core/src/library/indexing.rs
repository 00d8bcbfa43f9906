//! Keeping the vector index in step with the catalog: scan, embed what is pending, load, repair and
//! save the HNSW index.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

use super::{IndexReport, IndexStatus, Library};
use crate::catalog::{ModelKind, ModelRef};
use crate::error::Result;
use crate::index::VectorIndex;
use crate::pipeline::{self, PipelineOptions, Progress};
use crate::scan;

impl Library {
    /// Bring the in-memory index in step with the catalog: load the saved one, add what it lacks,
    /// filter what the catalog dropped, rebuild when it is unusable or mostly dead.
    pub(super) fn ensure_index(&mut self, model: &str, model_id: i64, dim: usize) -> Result<bool> {
        // The index in memory belongs to one model; another's is loaded in its place.
        if self
            .index_model
            .as_ref()
            .is_some_and(|(id, _)| *id != model_id)
        {
            self.index = None;
        }
        self.index_model = Some((model_id, model.to_string()));
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
        let dir = self.index_dir(model);
        let mut idx = match self.index.take() {
            Some(i) if i.dim() == dim => i,
            _ => match VectorIndex::load(&dir, model, dim) {
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
        let model = self.search_model()?;
        self.prepare_search_for(&model)
    }

    pub(super) fn prepare_search_for(&mut self, model: &str) -> Result<()> {
        if let Some(ModelRef { id: model_id, dim }) = self.catalog.find_model(model)? {
            self.ensure_index(model, model_id, dim)?;
        }
        self.search_clip(model)?.load_text()
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
        let Some((_, name)) = self.index_model.clone() else {
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
        let raw = self.raw_mode();
        let scan = scan::scan_with(&mut self.catalog, only, raw)?;
        let work = self
            .catalog
            .pending_work(self.catalog.find_model(&self.model_name())?.map(|m| m.id))?;
        let mut report = IndexReport {
            scan,
            ..Default::default()
        };
        let (model, model_id, dim) = {
            let clip = self.clip()?;
            let id = self
                .catalog
                .model_id(clip.name(), ModelKind::Clip, clip.dim())?;
            (clip.name().to_string(), id, clip.dim())
        };
        self.ensure_index(&model, model_id, dim)?;
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
        self.locate_photos(cancel)?;
        Ok(report)
    }

    /// Give photos their places: read the position of photos indexed before positions were kept,
    /// then reverse-geocode every position not geocoded yet (offline; the GeoNames table loads on
    /// first need). Both steps commit in batches and resume where they stopped.
    pub(crate) fn locate_photos(&mut self, cancel: &AtomicBool) -> Result<usize> {
        const BATCH: usize = 500;
        let stop = || cancel.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            let rows = self.catalog.photos_to_reread(BATCH)?;
            if rows.is_empty() || stop() {
                break;
            }
            let found: Vec<_> = rows
                .into_iter()
                .map(|(id, path)| {
                    (
                        id,
                        crate::decode::read_file_exif(&path).map(|e| (e.gps, e.taken_offset)),
                    )
                })
                .collect();
            self.catalog.set_reread(&found)?;
        }
        let mut located = 0;
        loop {
            let rows = self.catalog.photos_to_geocode(BATCH)?;
            if rows.is_empty() || stop() {
                break;
            }
            let places: Vec<_> = rows
                .into_iter()
                .map(|(id, lat, lon)| (id, crate::places::locate(lat, lon)))
                .collect();
            located += places.iter().filter(|p| p.1.is_some()).count();
            self.catalog.set_places(&places)?;
        }
        Ok(located)
    }

    /// Save the in-memory index when the saved one is missing or behind the catalog.
    pub(crate) fn save_index_if_stale(&mut self) -> Result<()> {
        if self.index_status()?.map(|s| !s.fresh).unwrap_or(true) {
            self.save_index()?;
        }
        Ok(())
    }

    pub(super) fn index_status(&self) -> Result<Option<IndexStatus>> {
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
}

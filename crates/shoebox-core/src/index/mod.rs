//! The vector index: an HNSW graph (hnsw_rs) over one model's embeddings, derived from the catalog,
//! persisted in the library folder for a fast start.
//!
//! Architecture Invariant: the index is never the source of truth. It is saved atomically (a new dump
//! folder, then a manifest swapped in by rename) and, on open, checked against the catalog generation;
//! anything it lacks is added from SQLite, anything it holds that the catalog no longer has is filtered
//! out of results (and the index is rebuilt when too much of it is dead).
//!
//! The graph is built over 8-bit codes of the vectors (a quarter of the memory traffic per distance,
//! which is what an HNSW search spends its time on); the candidates it finds are re-ranked with the
//! full f32 vectors, so scores are exact cosines.
//!
//! hnsw_rs builds the graph, saves and reloads it; searches walk a flat copy of it (`walk`),
//! saved beside it. Opening is instant: a saved index memory-maps its f32 vectors and that flat copy
//! and searches at once; hnsw_rs's own graph is loaded only when the graph must change (a save after
//! new photos). Until then new vectors wait in a short list that searches scan exactly.
//! A saved index without a usable flat copy loads the graph on a background thread and answers by
//! exact scans of the mapped vectors meanwhile.
//!
//! The pieces, bottom up: `kernels` (dot products, i8 codes), `walk` (the flat copy and its
//! search), `graph` (hnsw_rs's graph: parameters, build, save, load), `persist` (manifest, dump
//! files, the mapped vectors); this module ties them into [`VectorIndex`].

#[cfg(test)]
mod damage_tests;
mod graph;
mod kernels;
mod persist;
#[cfg(test)]
mod tests;
mod walk;

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};
use graph::{new_graph, save_graph, Graph, GraphCell, SavedGraph, GRAPH_FILES};
use persist::{Manifest, Vectors, VECTORS_FILE, WALK_FILE};
use walk::{FlatGraph, WalkCell};

pub use graph::{HnswParams, EF_CONSTRUCTION, EF_SEARCH, HNSW_M};
#[cfg(feature = "testing")]
pub use kernels::force_portable_dot;
use kernels::{code_scale, quantize};
pub use kernels::{dot, dot_i8, CodeDistance};

/// Graph candidates re-ranked with the f32 vectors per result asked for (at least `RERANK_MIN`, at
/// most the search's ef).
const RERANK_PER_RESULT: usize = 4;
const RERANK_MIN: usize = 40;

/// An HNSW index over photo ids.
///
/// hnsw_rs cannot delete or replace a point, so every insertion gets a fresh slot (the graph's data
/// id); `slots` maps slots to photo ids and `live` names the one slot per photo that counts. A photo
/// re-embedded or deleted leaves a dead slot behind, filtered out of results until the next rebuild.
pub struct VectorIndex {
    /// The graph over the vectors' i8 codes.
    graph: GraphCell,
    /// The graph's flat copy that searches walk (made on demand; dropped when the graph changes).
    walk: WalkCell,
    /// The f32 vectors, for exact scans and re-ranking.
    vectors: Vectors,
    /// Set once the mapped rows' pages touched by exact scans have been handed back after the graph
    /// came in (re-ranking reads only a few rows per search).
    released: AtomicBool,
    /// The i8 codes' scale (0 until the first vectors arrive).
    scale: f32,
    /// Slots added while the saved graph was not loaded: not in the graph yet, scanned exactly by
    /// searches, put in the graph by the next save.
    pending: Vec<usize>,
    /// The dump this index was loaded from (its graph files are reused while the graph is unchanged).
    source: Option<PathBuf>,
    slots: Vec<i64>,
    live: HashMap<i64, usize>,
    dim: usize,
    ef_search: usize,
    /// Search with hnsw_rs's own search instead of the flat walk when the graph is in memory.
    hnsw_rs_search: bool,
    /// The catalog generation this index was last brought in step with.
    pub generation: i64,
    /// The last catalog embedding row this index has seen.
    pub last_row: i64,
}

impl VectorIndex {
    /// An empty index.
    pub fn new(dim: usize, capacity: usize) -> Self {
        Self::with_params(dim, capacity, HnswParams::default())
    }

    /// An empty index with other HNSW parameters (benchmarks, tuning).
    pub fn with_params(dim: usize, capacity: usize, params: HnswParams) -> Self {
        VectorIndex {
            graph: GraphCell::ready(new_graph(capacity, params)),
            walk: Arc::default(),
            vectors: Vectors::new(dim),
            released: AtomicBool::new(true),
            scale: 0.0,
            pending: Vec::new(),
            source: None,
            slots: Vec::new(),
            live: HashMap::new(),
            dim,
            ef_search: params.ef_search,
            hnsw_rs_search: false,
            generation: -1,
            last_row: 0,
        }
    }

    /// Build from (id, vector) pairs in parallel.
    pub fn build(dim: usize, items: Vec<(i64, Vec<f32>)>) -> Result<Self> {
        let mut idx = VectorIndex::new(dim, items.len());
        idx.insert_many(items)?;
        Ok(idx)
    }

    /// Whether the HNSW graph is in memory (a loaded index answers by exact scan until it is).
    pub fn graph_ready(&self) -> bool {
        self.graph.get().is_some()
    }

    /// Whether loading the saved graph failed (the index still answers, by exact scan; rebuild it).
    pub fn graph_failed(&self) -> bool {
        self.graph.cell.get().is_some_and(|r| r.is_err())
    }

    /// Wait until the graph is in memory (loading it if it was not asked for yet); an error means
    /// the saved graph is unusable (the next change rebuilds it from the vectors).
    pub fn wait_for_graph(&self) -> Result<()> {
        self.graph.wait().map(|_| ())
    }

    /// Wait until searches walk the graph rather than scanning every vector.
    pub fn wait_for_search(&self) -> Result<()> {
        if self.walk.lock().map(|w| w.flat.is_some()).unwrap_or(false) {
            return Ok(());
        }
        self.wait_for_graph()?;
        self.prepare_walk();
        Ok(())
    }

    /// Whether searches walk a flat copy of the graph mapped from the saved index.
    pub fn walk_is_mapped(&self) -> bool {
        self.walk
            .lock()
            .map(|w| w.flat.as_ref().is_some_and(|f| f.is_mapped()))
            .unwrap_or(false)
    }

    /// Load the graph if it is not in memory; if the saved one is unusable, rebuild it from the
    /// vectors of every slot it should hold (all but the pending ones, which come last).
    fn ensure_graph(&mut self) {
        if let Err(e) = self.graph.wait() {
            log::warn!("rebuilding the index graph from its vectors: {e}");
            let graph = new_graph(self.slots.len(), HnswParams::default());
            self.insert_codes(&graph, 0..self.slots.len() - self.pending.len());
            self.graph = GraphCell::ready(graph);
        }
    }

    /// Put the codes of `slots`' vectors into `graph` (in parallel for more than a few).
    fn insert_codes(&self, graph: &Graph, slots: impl Iterator<Item = usize>) {
        let coded: Vec<(Vec<i8>, usize)> = slots
            .map(|s| (quantize(self.vectors.row(s), self.scale), s))
            .collect();
        if coded.len() > 64 {
            let refs: Vec<(&Vec<i8>, usize)> = coded.iter().map(|(c, s)| (c, *s)).collect();
            graph.parallel_insert(&refs);
        } else {
            for (c, s) in &coded {
                graph.insert((c.as_slice(), *s));
            }
        }
    }

    /// Put the pending vectors into the graph: wait for a flat copy being made from it, forget the
    /// current one, and load the graph if needed (rebuilding it from the vectors if the saved one is
    /// unusable).
    fn graph_for_change(&mut self) {
        let builder = {
            let mut w = self.walk.lock().unwrap_or_else(|p| p.into_inner());
            w.flat = None;
            w.version += 1;
            w.builder.take()
        };
        if let Some(b) = builder {
            let _ = b.join();
        }
        self.ensure_graph();
        let graph = self.graph.get().expect("loaded or rebuilt above");
        self.insert_codes(graph, self.pending.iter().copied());
        self.pending.clear();
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The search candidate list size.
    pub fn ef_search(&self) -> usize {
        self.ef_search
    }

    /// Set the search candidate list size (at least `k` is used).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = ef.max(1);
    }

    /// Search with hnsw_rs's own search (`true`) instead of the flat walk (the default) whenever the
    /// graph is in memory: to measure what the walk brings.
    #[cfg(feature = "testing")]
    pub fn use_hnsw_rs_search(&mut self, on: bool) {
        self.hnsw_rs_search = on;
    }

    /// Live vectors.
    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Photo ids with a live vector.
    pub fn live_ids(&self) -> HashSet<i64> {
        self.live.keys().copied().collect()
    }

    /// Slots that no longer count (replaced or deleted photos).
    pub fn dead_count(&self) -> usize {
        self.slots.len() - self.live.len()
    }

    /// Insert vectors; a photo already present gets its new vector (the old one goes dead).
    pub fn insert_many(&mut self, items: Vec<(i64, Vec<f32>)>) -> Result<()> {
        for (id, v) in &items {
            if v.len() != self.dim {
                return Err(Error::Index(format!(
                    "vector for photo {id} has {} dimensions, index has {}",
                    v.len(),
                    self.dim
                )));
            }
        }
        if self.scale <= 0.0 {
            // The first vectors fix the codes' scale; later outliers are clipped (the re-ranking
            // with f32 vectors keeps scores exact).
            self.scale = code_scale(items.iter().map(|(_, v)| v.as_slice()));
        }
        let first = self.slots.len();
        for (i, (id, v)) in items.iter().enumerate() {
            self.vectors.push(v);
            self.slots.push(*id);
            self.live.insert(*id, first + i);
            self.pending.push(first + i);
        }
        // A saved graph not loaded yet stays on disk: the new vectors wait for the next save.
        if !self.graph.is_deferred() {
            self.graph_for_change();
        }
        Ok(())
    }

    /// Forget photos: they never appear in results again.
    pub fn remove(&mut self, ids: impl IntoIterator<Item = i64>) {
        for id in ids {
            self.live.remove(&id);
        }
    }

    /// The `k` nearest live vectors accepted by `keep`, as (photo id, cosine similarity), best first.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        keep: Option<&dyn Fn(i64) -> bool>,
    ) -> Vec<(i64, f32)> {
        if self.live.is_empty() || k == 0 {
            return Vec::new();
        }
        let ef = self.ef_search.max(k);
        let walk = self.walk();
        let graph = self.graph.get();
        if walk.is_none() && graph.is_none() {
            return self.exact_search(query, k, keep);
        }
        if !self.released.swap(true, Ordering::Relaxed) {
            self.release_scanned_pages();
        }
        let filter = |slot: &usize| {
            let id = self.slots[*slot];
            self.live.get(&id) == Some(slot) && keep.is_none_or(|f| f(id))
        };
        let code = quantize(query, self.scale);
        let candidates = (k * RERANK_PER_RESULT).max(RERANK_MIN).min(ef).max(k);
        let all = self.dead_count() == 0 && keep.is_none();
        let walked = |w: Arc<FlatGraph>| -> Vec<usize> {
            w.search(&code, candidates, ef, &|slot| all || filter(&slot))
                .into_iter()
                .map(|(slot, _)| slot)
                .collect()
        };
        let mut found: Vec<usize> = match (walk, graph) {
            (Some(w), None) => walked(w),
            (Some(w), Some(_)) if !self.hnsw_rs_search => walked(w),
            (_, Some(g)) if all => g
                .search(&code, candidates, ef)
                .into_iter()
                .map(|n| n.d_id)
                .collect(),
            (_, Some(g)) => g
                .search_filter(&code, candidates, ef, Some(&filter))
                .into_iter()
                .map(|n| n.d_id)
                .collect(),
            (None, None) => unreachable!("answered by exact search above"),
        };
        // Vectors not in the graph yet are scored exactly.
        found.extend(self.pending.iter().copied().filter(|s| filter(s)));
        let mut out: Vec<(i64, f32)> = found
            .into_iter()
            .map(|slot| (self.slots[slot], dot(query, self.vectors.row(slot))))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(k);
        out
    }

    /// The graph's flat copy if it is up to date; if not, one is made on a background thread (and
    /// searches use hnsw_rs's search meanwhile: about 1 s for a copy of 100k photos, against a few
    /// ms per search).
    fn walk(&self) -> Option<Arc<FlatGraph>> {
        let mut w = self.walk.lock().unwrap_or_else(|p| p.into_inner());
        if w.flat.is_none()
            && !w.building()
            && self.graph.get().is_some()
            && self.pending.is_empty()
        {
            let version = w.version;
            let (walk, cell) = (Arc::clone(&self.walk), Arc::clone(&self.graph.cell));
            let (slots, dim) = (self.slots.len(), self.dim);
            let started = std::thread::Builder::new()
                .name("hnsw-walk".into())
                .spawn(move || {
                    let flat = match cell.get() {
                        Some(Ok(g)) => FlatGraph::from_hnsw(g, slots, dim).map(Arc::new),
                        _ => None,
                    };
                    let mut w = walk.lock().unwrap_or_else(|p| p.into_inner());
                    if w.version == version {
                        if flat.is_none() {
                            log::warn!("the HNSW graph does not match its slots");
                        }
                        w.flat = flat;
                    }
                });
            w.builder = started.ok();
        }
        w.flat.clone()
    }

    /// Make the graph's flat copy now if it is not up to date (searches make it in the background
    /// otherwise). Returns whether searches walk it.
    pub fn prepare_walk(&self) -> bool {
        let mut w = self.walk.lock().unwrap_or_else(|p| p.into_inner());
        if w.flat.is_some() {
            return true;
        }
        let Some(graph) = self.graph.get() else {
            return false;
        };
        if self.pending.is_empty() {
            w.flat = FlatGraph::from_hnsw(graph, self.slots.len(), self.dim).map(Arc::new);
        }
        w.flat.is_some()
    }

    /// Bytes held by the flat copy of the graph, if made.
    pub fn walk_bytes(&self) -> Option<usize> {
        self.walk
            .lock()
            .ok()
            .and_then(|w| w.flat.as_ref().map(|f| f.bytes()))
    }

    /// Hand back the pages of the mapped vectors that exact scans read in: once the graph answers,
    /// only a few rows per search are read again (from the page cache, on demand).
    fn release_scanned_pages(&self) {
        self.vectors.release_mapped_pages();
    }

    /// Exact top-`k` over the mapped vectors (while the graph loads).
    fn exact_search(
        &self,
        query: &[f32],
        k: usize,
        keep: Option<&dyn Fn(i64) -> bool>,
    ) -> Vec<(i64, f32)> {
        // Min-heap of the best k so far, by similarity.
        let mut best: BinaryHeap<std::cmp::Reverse<Scored>> = BinaryHeap::with_capacity(k + 1);
        for (&id, &slot) in &self.live {
            if keep.is_some_and(|f| !f(id)) {
                continue;
            }
            best.push(std::cmp::Reverse(Scored(
                dot(query, self.vectors.row(slot)),
                id,
            )));
            if best.len() > k {
                best.pop();
            }
        }
        let mut out: Vec<(i64, f32)> = best
            .into_iter()
            .map(|std::cmp::Reverse(Scored(s, id))| (id, s))
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    // ---- persistence ----

    /// Save atomically under `dir`: dump into a fresh folder, then swap the manifest in by rename.
    /// Vectors waiting for the graph go into it first; a graph never loaded is reused as saved.
    pub fn save(&mut self, dir: &Path, model: &str) -> Result<()> {
        let (dump, dump_dir) = persist::new_dump(dir)?;
        if !self.slots.is_empty() {
            if !self.pending.is_empty() {
                self.graph_for_change();
            }
            persist::write_slots(&dump_dir, &self.slots, &self.live)?;
            self.vectors
                .write(&dump_dir.join(VECTORS_FILE), self.slots.len())?;
            match (&self.source, self.graph.is_deferred()) {
                (Some(src), true) => {
                    // The graph is as loaded: its files (and its flat copy) carry over.
                    for f in GRAPH_FILES.iter().chain([&WALK_FILE]) {
                        persist::link_or_copy(&src.join(f), &dump_dir.join(f))?;
                    }
                }
                _ => {
                    self.ensure_graph();
                    if !self.prepare_walk() {
                        return Err(Error::Index("the graph does not match its slots".into()));
                    }
                    if let Some(flat) = &self.walk.lock().unwrap_or_else(|p| p.into_inner()).flat {
                        let path = dump_dir.join(WALK_FILE);
                        flat.save(&path).map_err(|e| Error::io(&path, e))?;
                    }
                    save_graph(self.graph.wait()?, &dump_dir)?;
                }
            }
            persist::sync_dump(&dump_dir)?;
        }
        Manifest::new(
            model,
            self.dim,
            self.live.len(),
            self.generation,
            self.last_row,
            dump.clone(),
            self.scale,
        )
        .write(dir)?;
        // The old dump goes: a graph still to be loaded is loaded from the new one.
        if let Some(d) = self
            .graph
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            d.dir = dump_dir.clone();
        }
        self.source = Some(dump_dir);
        persist::remove_other_dumps(dir, &dump);
        Ok(())
    }

    /// Load the index saved under `dir` for `model`. Any problem is an error: the caller rebuilds.
    ///
    /// Its vectors and flat graph are memory-mapped unless `dir` is on a network or FUSE file
    /// system (`persist::may_map`): a mapped file truncated behind the process's back kills it.
    pub fn load(dir: &Path, model: &str, dim: usize) -> Result<Self> {
        Self::load_with(dir, model, dim, persist::may_map(dir))
    }

    /// [`Self::load`], mapping the files (`map`) or reading them into memory.
    fn load_with(dir: &Path, model: &str, dim: usize, map: bool) -> Result<Self> {
        let m = Manifest::read(dir, model, dim)?;
        let Some(saved) = persist::read_dump(dir, &m, dim, map)? else {
            let mut idx = VectorIndex::new(dim, 0);
            idx.generation = m.generation;
            idx.last_row = m.last_row;
            return Ok(idx);
        };
        let dump_dir = dir.join(&m.dump);
        let slots = saved.slots.len();
        let walk: WalkCell = Arc::default();
        let graph_files = SavedGraph {
            dir: dump_dir.clone(),
            points: slots,
            dim,
            map,
        };
        let graph = match FlatGraph::load(&dump_dir.join(WALK_FILE), slots, dim, map) {
            Ok(flat) => {
                walk.lock().unwrap_or_else(|p| p.into_inner()).flat = Some(Arc::new(flat));
                GraphCell::deferred(graph_files)
            }
            Err(e) => {
                log::info!("loading the index graph to search it: {e}");
                GraphCell::load_in_background(graph_files, Arc::clone(&walk))
            }
        };
        Ok(VectorIndex {
            graph,
            walk,
            vectors: saved.vectors,
            released: AtomicBool::new(false),
            scale: m.scale,
            pending: Vec::new(),
            source: Some(dump_dir),
            slots: saved.slots,
            live: saved.live,
            dim,
            ef_search: EF_SEARCH,
            hnsw_rs_search: false,
            generation: m.generation,
            last_row: m.last_row,
        })
    }
}

/// A similarity and its photo id, ordered by similarity (ties: the smaller id ranks higher).
#[derive(PartialEq)]
struct Scored(f32, i64);

impl Eq for Scored {}

impl PartialOrd for Scored {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Scored {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// Exact top-k by dot product over given (id, vector) pairs.
pub fn exact_top_k(
    query: &[f32],
    items: impl IntoIterator<Item = (i64, Vec<f32>)>,
    k: usize,
) -> Vec<(i64, f32)> {
    let mut scored: Vec<(i64, f32)> = items
        .into_iter()
        .map(|(id, v)| (id, dot(query, &v)))
        .collect();
    scored.sort_by(crate::rank::by_score_desc);
    scored.truncate(k);
    scored
}

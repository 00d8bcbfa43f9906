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
//! hnsw_rs builds the graph, saves and reloads it; searches walk a flat copy of it ([`crate::walk`]),
//! saved beside it. Opening is instant: a saved index memory-maps its f32 vectors and that flat copy
//! and searches at once; hnsw_rs's own graph is loaded only when the graph must change (a save after
//! new photos). Until then new vectors wait in a short list that searches scan exactly.
//! A saved index without a usable flat copy loads the graph on a background thread and answers by
//! exact scans of the mapped vectors meanwhile.

use std::collections::{BinaryHeap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo, ReloadOptions};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::walk::FlatGraph;

/// Max neighbours per node per layer (HNSW M).
pub const HNSW_M: usize = 16;
/// Candidate list size while building.
pub const EF_CONSTRUCTION: usize = 128;
/// Minimum candidate list size while searching. Measured with `shoebox bench --hnsw-sweep` on
/// 100,000 photo-like 512-d vectors (M 16, ef_construction 128): ef 96 → recall@10 0.953, ef 192 →
/// 0.985, ef 256 → 0.9925 at about twice the latency of ef 96 (a few ms, against ~60 ms to embed
/// the query text). Higher M or ef_construction gained little for 2-3× the build time.
pub const EF_SEARCH: usize = 256;
const MAX_LAYER: usize = 16;

/// HNSW parameters: graph degree and build candidate list (fixed when the graph is built) and the
/// search candidate list (per search; at least `k`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    pub m: usize,
    pub ef_construction: usize,
    pub ef_search: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: HNSW_M,
            ef_construction: EF_CONSTRUCTION,
            ef_search: EF_SEARCH,
        }
    }
}
const BASENAME: &str = "hnsw";
/// Format 2 added `vectors.f32`: every slot's vector, row after row, little-endian. Format 3 builds
/// the graph over i8 codes (the manifest records their scale) and adds `walk.bin`.
const FORMAT: u32 = 3;
const VECTORS_FILE: &str = "vectors.f32";
const WALK_FILE: &str = "walk.bin";
const GRAPH_FILES: [&str; 2] = ["hnsw.hnsw.graph", "hnsw.hnsw.data"];
/// Graph candidates re-ranked with the f32 vectors per result asked for (at least `RERANK_MIN`, at
/// most the search's ef).
const RERANK_PER_RESULT: usize = 4;
const RERANK_MIN: usize = 40;

#[cfg(target_endian = "big")]
compile_error!("the saved index maps little-endian f32 rows directly");

/// Distance between i8 codes: `dim·127² − dot`, which orders pairs as 1 − cosine does (a shift and
/// a scale of it) and never goes negative (hnsw_rs asserts that), whatever the codes' scale.
#[derive(Default, Clone, Copy, Debug)]
pub struct CodeDistance;

impl Distance<i8> for CodeDistance {
    fn eval(&self, a: &[i8], b: &[i8]) -> f32 {
        (a.len() as i64 * 127 * 127 - dot_i8(a, b) as i64) as f32
    }
}

/// The i8 code of a vector: each component times `scale`, rounded, clipped to ±127.
fn quantize(v: &[f32], scale: f32) -> Vec<i8> {
    v.iter()
        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// The scale that maps the largest component magnitude among `items` to 127.
fn code_scale<'a>(items: impl IntoIterator<Item = &'a [f32]>) -> f32 {
    let max = items
        .into_iter()
        .flat_map(|v| v.iter())
        .fold(0f32, |m, x| m.max(x.abs()));
    if max.is_finite() && max > 1e-6 {
        127.0 / max
    } else {
        127.0
    }
}

/// Integer dot product of two codes: AVX2 when the CPU has it.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && !PORTABLE_DOT.load(Ordering::Relaxed) {
        // SAFETY: the CPU has the feature dot_i8_avx2 is compiled for.
        return unsafe { dot_i8_avx2(a, b) };
    }
    dot_i8_portable(a, b)
}

fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += *x as i32 * *y as i32;
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut i = 0;
    // 32 components per step: sign-extend 16 at a time to i16, multiply and add pairs into i32.
    while i + 32 <= n {
        let a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i) as *const __m128i));
        let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i) as *const __m128i));
        let a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i + 16) as *const __m128i));
        let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i + 16) as *const __m128i));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a1, b1));
        i += 32;
    }
    let mut lanes = [0i32; 8];
    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, _mm256_add_epi32(s0, s1));
    let mut total: i32 = lanes.iter().sum();
    while i < n {
        total += a[i] as i32 * b[i] as i32;
        i += 1;
    }
    total
}

/// When set, searches use hnsw_rs's own search instead of [`crate::walk`] (to measure the gain).
static HNSW_RS_SEARCH: AtomicBool = AtomicBool::new(false);

/// Search with hnsw_rs's own search (`true`) or the flat walk (the default).
pub fn force_hnsw_rs_search(on: bool) {
    HNSW_RS_SEARCH.store(on, Ordering::Relaxed);
}

/// When set, [`dot`] uses the portable code even where AVX2/FMA is available (to measure the gain).
static PORTABLE_DOT: AtomicBool = AtomicBool::new(false);

/// Use the portable dot product only (`true`), or AVX2/FMA where the CPU has it (the default).
pub fn force_portable_dot(on: bool) {
    PORTABLE_DOT.store(on, Ordering::Relaxed);
}

/// Dot product: AVX2 + FMA when the CPU has them, else portable code the compiler vectorizes for
/// the baseline target (SSE2 on x86-64).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && !PORTABLE_DOT.load(Ordering::Relaxed)
    {
        // SAFETY: the CPU has the features dot_avx2 is compiled for.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // Four accumulators hide the FMA latency.
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let mut i = 0;
    while i + 32 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        s1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 8)),
            _mm256_loadu_ps(pb.add(i + 8)),
            s1,
        );
        s2 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 16)),
            _mm256_loadu_ps(pb.add(i + 16)),
            s2,
        );
        s3 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 24)),
            _mm256_loadu_ps(pb.add(i + 24)),
            s3,
        );
        i += 32;
    }
    while i + 8 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), s);
    let mut total: f32 = lanes.iter().sum();
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    model: String,
    dim: usize,
    /// Live vectors.
    count: usize,
    generation: i64,
    last_row: i64,
    dump: String,
    /// The i8 codes' scale (format 3).
    #[serde(default)]
    scale: f32,
}

type Graph = Hnsw<'static, i8, CodeDistance>;
type WalkCell = Arc<Mutex<Walk>>;

/// The graph's flat copy for searching, and its upkeep.
#[derive(Default)]
struct Walk {
    flat: Option<Arc<FlatGraph>>,
    /// Bumped whenever the graph changes: a copy made from an older graph is thrown away.
    version: u64,
    /// The thread making a copy in the background (joined before the graph changes: it reads it).
    builder: Option<std::thread::JoinHandle<()>>,
}

impl Walk {
    fn building(&self) -> bool {
        self.builder.as_ref().is_some_and(|h| !h.is_finished())
    }
}

/// Every slot's f32 vector: the rows of a saved index memory-mapped, then rows added since, owned.
struct Vectors {
    dim: usize,
    mapped: Option<memmap2::Mmap>,
    mapped_rows: usize,
    owned: Vec<f32>,
}

impl Vectors {
    fn new(dim: usize) -> Self {
        Vectors {
            dim,
            mapped: None,
            mapped_rows: 0,
            owned: Vec::new(),
        }
    }

    /// The mapped file's rows (checked for alignment and size by the caller).
    fn mapped_f32(&self) -> &[f32] {
        self.mapped
            .as_ref()
            .and_then(|m| bytemuck::try_cast_slice(&m[..]).ok())
            .unwrap_or(&[])
    }

    fn row(&self, slot: usize) -> &[f32] {
        if slot < self.mapped_rows {
            &self.mapped_f32()[slot * self.dim..(slot + 1) * self.dim]
        } else {
            let r = slot - self.mapped_rows;
            &self.owned[r * self.dim..(r + 1) * self.dim]
        }
    }

    fn push(&mut self, v: &[f32]) {
        self.owned.extend_from_slice(v);
    }

    fn rows(&self) -> usize {
        self.mapped_rows + self.owned.len() / self.dim.max(1)
    }
}

/// The HNSW graph, built here or being loaded from disk on a background thread.
struct GraphCell {
    cell: Arc<OnceLock<std::result::Result<Graph, String>>>,
    loader: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// A saved graph not loaded yet (it is when first needed): dump folder, points, dimensions.
    deferred: Mutex<Option<(PathBuf, usize, usize)>>,
}

impl GraphCell {
    fn ready(graph: Graph) -> Self {
        GraphCell {
            cell: Arc::new(OnceLock::from(Ok(graph))),
            loader: Mutex::new(None),
            deferred: Mutex::new(None),
        }
    }

    /// The graph saved in `dump_dir`, loaded when first waited for.
    fn deferred(dump_dir: PathBuf, points: usize, dim: usize) -> Self {
        GraphCell {
            cell: Arc::new(OnceLock::new()),
            loader: Mutex::new(None),
            deferred: Mutex::new(Some((dump_dir, points, dim))),
        }
    }

    /// Whether the saved graph has not been asked for yet.
    fn is_deferred(&self) -> bool {
        self.deferred.lock().map(|d| d.is_some()).unwrap_or(false)
    }

    /// Load the graph saved in `dump_dir` on a new thread, and its flat copy for searching.
    fn load_in_background(dump_dir: PathBuf, points: usize, dim: usize, walk: WalkCell) -> Self {
        let cell = Arc::new(OnceLock::new());
        let out = Arc::clone(&cell);
        let loader = std::thread::Builder::new()
            .name("hnsw-load".into())
            .spawn(move || {
                let loaded = load_graph(&dump_dir, points, dim);
                if let Ok(g) = &loaded {
                    let flat = FlatGraph::from_hnsw(g, points, dim).map(Arc::new);
                    walk.lock().unwrap_or_else(|p| p.into_inner()).flat = flat;
                }
                let _ = out.set(loaded);
            })
            .ok();
        let cell = GraphCell {
            cell,
            loader: Mutex::new(loader),
            deferred: Mutex::new(None),
        };
        if cell.loader.lock().map(|l| l.is_none()).unwrap_or(true) {
            let _ = cell
                .cell
                .set(Err("could not start the index loader thread".into()));
        }
        cell
    }

    /// The graph if it is in memory now.
    fn get(&self) -> Option<&Graph> {
        self.cell.get().and_then(|r| r.as_ref().ok())
    }

    /// The graph, loading a deferred one now or waiting for the loader if it is still running.
    fn wait(&self) -> Result<&Graph> {
        loop {
            if let Some(r) = self.cell.get() {
                return r.as_ref().map_err(|e| Error::Index(e.clone()));
            }
            let deferred = self
                .deferred
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some((dir, points, dim)) = deferred {
                let _ = self.cell.set(load_graph(&dir, points, dim));
                continue;
            }
            let handle = self.loader.lock().unwrap_or_else(|p| p.into_inner()).take();
            match handle {
                Some(h) => {
                    let _ = h.join();
                    let _ = self.cell.set(Err("the index loader thread died".into()));
                }
                None => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    }
}

/// Load an hnsw_rs dump of `points` codes of `dim` dimensions, the codes memory-mapped rather than
/// copied.
fn load_graph(dump_dir: &Path, points: usize, dim: usize) -> std::result::Result<Graph, String> {
    for f in GRAPH_FILES {
        // hnsw_rs exits the process on a missing file: check first.
        if !dump_dir.join(f).is_file() {
            return Err(format!("{} is missing", dump_dir.join(f).display()));
        }
    }
    // hnsw_rs asserts on malformed files: contain a panic and report it as a damaged index.
    std::panic::catch_unwind(|| {
        // The loaded graph borrows its loader (which holds the map) for its whole life; loaders are
        // small and an index is loaded once per process and model, so the loader is kept for good.
        let mut io = HnswIo::new(dump_dir, BASENAME);
        io.set_options(ReloadOptions::default().set_mmap(true));
        let io: &'static mut HnswIo = Box::leak(Box::new(io));
        io.load_hnsw::<i8, CodeDistance>()
            .map_err(|e| format!("{}: {e}", dump_dir.display()))
    })
    .unwrap_or_else(|_| Err(format!("{} is damaged", dump_dir.display())))
    .and_then(|g| {
        let held = g.get_point_indexation().get_nb_point();
        let data_dim = g.get_point_indexation().get_data_dimension();
        if held == points && data_dim == dim {
            Ok(g)
        } else {
            Err(format!(
                "{} holds {held} vectors of {data_dim} dimensions, expected {points} of {dim}",
                dump_dir.display()
            ))
        }
    })
}

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
    /// The catalog generation this index was last brought in step with.
    pub generation: i64,
    /// The last catalog embedding row this index has seen.
    pub last_row: i64,
}

fn new_graph(capacity: usize, p: HnswParams) -> Graph {
    Hnsw::new(
        p.m,
        capacity.max(1024),
        MAX_LAYER,
        p.ef_construction,
        CodeDistance,
    )
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

    /// Set the search candidate list size (at least `k` is used).
    pub fn set_ef_search(&mut self, ef: usize) {
        self.ef_search = ef.max(1);
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
            (Some(w), Some(_)) if !HNSW_RS_SEARCH.load(Ordering::Relaxed) => walked(w),
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
        if let Some(m) = &self.vectors.mapped {
            // SAFETY: a read-only shared file mapping; dropped pages are read back from the file,
            // which is never modified (dumps are written once).
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
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

    fn manifest_path(dir: &Path) -> PathBuf {
        dir.join("manifest.json")
    }

    /// Save atomically under `dir`: dump into a fresh folder, then swap the manifest in by rename.
    /// Vectors waiting for the graph go into it first; a graph never loaded is reused as saved.
    pub fn save(&mut self, dir: &Path, model: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dump = format!("dump-{stamp}-{}", std::process::id());
        let dump_dir = dir.join(&dump);
        std::fs::create_dir_all(&dump_dir).map_err(|e| Error::io(&dump_dir, e))?;
        if !self.slots.is_empty() {
            if !self.pending.is_empty() {
                self.graph_for_change();
            }
            write_i64s(&dump_dir.join("slots.bin"), &self.slots)?;
            self.write_vectors(&dump_dir.join(VECTORS_FILE))?;
            let mut live: Vec<i64> = self.live.values().map(|s| *s as i64).collect();
            live.sort_unstable();
            write_i64s(&dump_dir.join("live.bin"), &live)?;
            match (&self.source, self.graph.is_deferred()) {
                (Some(src), true) => {
                    // The graph is as loaded: its files (and its flat copy) carry over.
                    for f in GRAPH_FILES.iter().chain([&WALK_FILE]) {
                        link_or_copy(&src.join(f), &dump_dir.join(f))?;
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
                    let graph = self.graph.wait()?;
                    let written = graph.file_dump(&dump_dir, BASENAME).map_err(|e| {
                        Error::Index(format!("writing {}: {e}", dump_dir.display()))
                    })?;
                    if written != BASENAME {
                        return Err(Error::Index(format!("unexpected dump name {written}")));
                    }
                }
            }
            for f in std::fs::read_dir(&dump_dir).map_err(|e| Error::io(&dump_dir, e))? {
                let f = f.map_err(|e| Error::io(&dump_dir, e))?;
                std::fs::File::open(f.path())
                    .and_then(|h| h.sync_all())
                    .map_err(|e| Error::io(f.path(), e))?;
            }
        }
        let manifest = Manifest {
            format: FORMAT,
            model: model.to_string(),
            dim: self.dim,
            count: self.live.len(),
            generation: self.generation,
            last_row: self.last_row,
            dump: dump.clone(),
            scale: self.scale,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
        serde_json::to_writer_pretty(&mut tmp, &manifest)
            .map_err(|e| Error::Index(format!("manifest: {e}")))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(dir, e))?;
        tmp.persist(Self::manifest_path(dir))
            .map_err(|e| Error::io(dir, e.error))?;
        // The old dump goes: a graph still to be loaded is loaded from the new one.
        if let Some(d) = self
            .graph
            .deferred
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            d.0 = dump_dir.clone();
        }
        self.source = Some(dump_dir.clone());
        // Old dumps (and dumps left by a crash) are no longer referenced.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name();
                let name = name.to_string_lossy();
                if name.starts_with("dump-") && name != dump.as_str() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        Ok(())
    }

    /// Load the index saved under `dir` for `model`. Any problem is an error: the caller rebuilds.
    pub fn load(dir: &Path, model: &str, dim: usize) -> Result<Self> {
        let mpath = Self::manifest_path(dir);
        let text = std::fs::read_to_string(&mpath).map_err(|e| Error::io(&mpath, e))?;
        let m: Manifest = serde_json::from_str(&text)
            .map_err(|e| Error::Index(format!("{}: {e}", mpath.display())))?;
        if m.format != FORMAT || m.model != model || m.dim != dim {
            return Err(Error::Index(format!(
                "{} is for {} ({}-d, format {}), not {model} ({dim}-d, format {FORMAT})",
                mpath.display(),
                m.model,
                m.dim,
                m.format
            )));
        }
        let dump_dir = dir.join(&m.dump);
        if m.count == 0 && !dump_dir.join("slots.bin").exists() {
            let mut idx = VectorIndex::new(dim, 0);
            idx.generation = m.generation;
            idx.last_row = m.last_row;
            return Ok(idx);
        }
        let slots = read_i64s(&dump_dir.join("slots.bin"))?;
        let live_slots = read_i64s(&dump_dir.join("live.bin"))?;
        let vpath = dump_dir.join(VECTORS_FILE);
        let vfile = std::fs::File::open(&vpath).map_err(|e| Error::io(&vpath, e))?;
        // SAFETY: dumps are written once into a fresh folder and never modified; a folder is only
        // deleted once no manifest names it (Unix keeps a deleted file's pages while mapped).
        let flat = unsafe { memmap2::Mmap::map(&vfile) }.map_err(|e| Error::io(&vpath, e))?;
        if flat.len() != slots.len() * dim * 4
            || bytemuck::try_cast_slice::<u8, f32>(&flat[..]).is_err()
            || live_slots.len() != m.count
            || !(m.scale > 0.0 && m.scale.is_finite())
        {
            return Err(Error::Index(format!(
                "{} holds {} bytes of vectors for {} slots of {dim} dimensions, {} live; manifest says {} live at scale {}",
                dump_dir.display(),
                flat.len(),
                slots.len(),
                live_slots.len(),
                m.count,
                m.scale
            )));
        }
        let mut live = HashMap::with_capacity(live_slots.len());
        for s in live_slots {
            let s = usize::try_from(s)
                .ok()
                .filter(|s| *s < slots.len())
                .ok_or_else(|| Error::Index(format!("{}: bad live slot", dump_dir.display())))?;
            live.insert(slots[s], s);
        }
        let walk: WalkCell = Arc::default();
        let graph = match FlatGraph::load(&dump_dir.join(WALK_FILE), slots.len(), dim) {
            Ok(flat) => {
                walk.lock().unwrap_or_else(|p| p.into_inner()).flat = Some(Arc::new(flat));
                GraphCell::deferred(dump_dir.clone(), slots.len(), dim)
            }
            Err(e) => {
                log::info!("loading the index graph to search it: {e}");
                GraphCell::load_in_background(dump_dir.clone(), slots.len(), dim, Arc::clone(&walk))
            }
        };
        Ok(VectorIndex {
            graph,
            walk,
            vectors: Vectors {
                dim,
                mapped: Some(flat),
                mapped_rows: slots.len(),
                owned: Vec::new(),
            },
            released: AtomicBool::new(false),
            scale: m.scale,
            pending: Vec::new(),
            source: Some(dump_dir),
            slots,
            live,
            dim,
            ef_search: EF_SEARCH,
            generation: m.generation,
            last_row: m.last_row,
        })
    }

    /// Every slot's vector, in slot order, as little-endian f32 rows.
    fn write_vectors(&self, path: &Path) -> Result<()> {
        if self.vectors.rows() != self.slots.len() {
            return Err(Error::Index(format!(
                "{} vectors for {} slots",
                self.vectors.rows(),
                self.slots.len()
            )));
        }
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        for slot in 0..self.slots.len() {
            w.write_all(bytemuck::cast_slice(self.vectors.row(slot)))
                .map_err(|e| Error::io(path, e))?;
        }
        let file = w
            .into_inner()
            .map_err(|e| Error::io(path, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(path, e))
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

/// A hard link to `from` at `to` (the same file, no copy), or a copy where links are refused.
fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    std::fs::copy(from, to).map_err(|e| Error::io(from, e))?;
    Ok(())
}

fn write_i64s(path: &Path, v: &[i64]) -> Result<()> {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))?;
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

fn read_i64s(path: &Path) -> Result<Vec<i64>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    if bytes.len() % 8 != 0 {
        return Err(Error::Index(format!("{} is truncated", path.display())));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The dump folder the saved index under `dir` names.
    fn dump_in(dir: &Path) -> PathBuf {
        let text = std::fs::read_to_string(VectorIndex::manifest_path(dir)).unwrap();
        let m: Manifest = serde_json::from_str(&text).unwrap();
        dir.join(m.dump)
    }

    fn unit(seed: u64, dim: usize) -> Vec<f32> {
        // xorshift: deterministic pseudo-random unit vectors.
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..dim)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x % 2000) as f32 / 1000.0 - 1.0
            })
            .collect();
        crate::models::clip::normalize(v)
    }

    #[test]
    fn replace_remove_and_round_trip() {
        let dim = 16;
        let mut idx =
            VectorIndex::build(dim, (0..200).map(|i| (i, unit(i as u64, dim))).collect()).unwrap();
        assert_eq!(idx.search(&unit(7, dim), 1, None)[0].0, 7);
        // Photo 7 gets photo 500's vector: searching 500's vector now finds 7, and 7's old one does not.
        idx.insert_many(vec![(7, unit(500, dim))]).unwrap();
        assert_eq!(idx.search(&unit(500, dim), 1, None)[0].0, 7);
        assert!(idx
            .search(&unit(7, dim), 5, None)
            .iter()
            .all(|h| h.1 < 0.999));
        idx.remove([8]);
        assert!(idx
            .search(&unit(8, dim), 200, None)
            .iter()
            .all(|h| h.0 != 8));
        assert_eq!((idx.len(), idx.dead_count()), (199, 2));
        // A filter restricts results.
        let keep = |id: i64| id % 2 == 0;
        assert!(idx
            .search(&unit(9, dim), 10, Some(&keep))
            .iter()
            .all(|h| h.0 % 2 == 0));

        let tmp = tempfile::tempdir().unwrap();
        idx.generation = 42;
        idx.last_row = 9;
        idx.save(tmp.path(), "m").unwrap();
        let mut back = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        assert_eq!(
            (
                back.generation,
                back.last_row,
                back.len(),
                back.dead_count()
            ),
            (42, 9, 199, 2)
        );
        assert_eq!(back.search(&unit(500, dim), 1, None)[0].0, 7);
        assert!(back
            .search(&unit(8, dim), 200, None)
            .iter()
            .all(|h| h.0 != 8));
        assert!(VectorIndex::load(tmp.path(), "other-model", dim).is_err());
        assert!(VectorIndex::load(tmp.path(), "m", dim + 1).is_err());
        // Saving again replaces the dump atomically and removes the old one.
        back.save(tmp.path(), "m").unwrap();
        let dumps = std::fs::read_dir(tmp.path())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("dump-")
            })
            .count();
        assert_eq!(dumps, 1);
    }

    #[test]
    fn a_loaded_index_answers_exactly_until_its_graph_is_in() {
        let dim = 32;
        let n = 2000;
        let vecs: Vec<(i64, Vec<f32>)> = (0..n).map(|i| (i, unit(i as u64 + 1, dim))).collect();
        let mut idx = VectorIndex::build(dim, vecs.clone()).unwrap();
        idx.remove([5]);
        idx.insert_many(vec![(6, unit(9_999, dim))]).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        idx.save(tmp.path(), "m").unwrap();
        // The live vectors as the catalog would have them.
        let mut truth: Vec<(i64, Vec<f32>)> = vecs.into_iter().filter(|(id, _)| *id != 5).collect();
        truth.iter_mut().find(|(id, _)| *id == 6).unwrap().1 = unit(9_999, dim);

        let loaded = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        let keep = |id: i64| id % 3 != 0;
        for q in 0..20u64 {
            // What searches answer while the graph loads (called directly: the graph of 2,000
            // vectors may well be in before the first search).
            let query = unit(50_000 + q, dim);
            let exact = crate::search::exact_top_k(&query, truth.iter().cloned(), 10);
            let got = loaded.exact_search(&query, 10, None);
            let ids: Vec<i64> = got.iter().map(|h| h.0).collect();
            let want: Vec<i64> = exact.iter().map(|h| h.0).collect();
            assert_eq!(ids, want, "an exact scan returns the exact top 10");
            assert!((got[0].1 - exact[0].1).abs() < 1e-5);
            let kept = loaded.exact_search(&query, 10, Some(&keep));
            assert_eq!(kept.len(), 10);
            assert!(kept.iter().all(|h| h.0 % 3 != 0));
        }
        loaded.wait_for_graph().unwrap();
        assert!(loaded.graph_ready());
        assert_eq!(loaded.search(&unit(9_999, dim), 1, None)[0].0, 6);
        assert!(
            loaded.released.load(Ordering::Relaxed),
            "pages read by exact scans are handed back once the graph answers"
        );
        assert!(loaded
            .search(&unit(6, dim), 50, None)
            .iter()
            .all(|h| h.0 != 5));

        // A damaged graph file: searches still answer; a change rebuilds the graph.
        let dump = dump_in(tmp.path());
        let graph_file = dump.join("hnsw.hnsw.graph");
        let len = std::fs::metadata(&graph_file).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&graph_file)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
        let mut damaged = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        let query = unit(60_000, dim);
        let exact = crate::search::exact_top_k(&query, truth.iter().cloned(), 10);
        assert!(damaged.wait_for_graph().is_err());
        assert_eq!(damaged.search(&query, 10, None)[0].0, exact[0].0);
        // A change rebuilds the graph from the saved vectors.
        damaged.insert_many(vec![(7, unit(77_777, dim))]).unwrap();
        assert!(damaged.graph_ready());
        assert!(damaged.prepare_walk());
        assert_eq!(damaged.search(&unit(77_777, dim), 1, None)[0].0, 7);
        assert_eq!(damaged.search(&unit(9_999, dim), 1, None)[0].0, 6);
        assert!(damaged
            .search(&unit(6, dim), 50, None)
            .iter()
            .all(|h| h.0 != 5));

        // Vectors that do not match the slots: refused at load (the caller rebuilds).
        std::fs::write(dump.join(VECTORS_FILE), [0u8; 12]).unwrap();
        assert!(VectorIndex::load(tmp.path(), "m", dim).is_err());
    }

    #[test]
    fn a_loaded_index_searches_its_mapped_walk_and_keeps_new_vectors_aside_until_saved() {
        let dim = 32;
        let n = 3000;
        let mut idx =
            VectorIndex::build(dim, (0..n).map(|i| (i, unit(i as u64 + 1, dim))).collect())
                .unwrap();
        let tmp = tempfile::tempdir().unwrap();
        idx.save(tmp.path(), "m").unwrap();

        let mut loaded = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        assert!(loaded.walk_is_mapped(), "the saved flat copy is mapped");
        assert!(
            !loaded.graph_ready(),
            "hnsw_rs's graph is not loaded to search"
        );
        let truth: Vec<(i64, Vec<f32>)> = (0..n).map(|i| (i, unit(i as u64 + 1, dim))).collect();
        let mut hits = 0;
        for q in 0..30u64 {
            let query = unit(70_000 + q, dim);
            let exact = crate::search::exact_top_k(&query, truth.iter().cloned(), 10);
            let got = loaded.search(&query, 10, None);
            hits += got
                .iter()
                .filter(|g| exact.iter().any(|e| e.0 == g.0))
                .count();
            assert!((got[0].1 - dot(&query, &unit(got[0].0 as u64 + 1, dim))).abs() < 1e-5);
        }
        assert!(
            hits >= 285,
            "{hits}/300 of the exact top 10 from the mapped walk"
        );

        // New vectors wait beside the graph (still not loaded) and are found at once.
        loaded
            .insert_many(vec![(n, unit(123_456, dim)), (3, unit(654_321, dim))])
            .unwrap();
        assert!(!loaded.graph_ready());
        assert_eq!(loaded.search(&unit(123_456, dim), 1, None)[0].0, n);
        assert_eq!(loaded.search(&unit(654_321, dim), 1, None)[0].0, 3);
        assert!(loaded
            .search(&unit(4, dim), 20, None)
            .iter()
            .all(|h| h.0 != 3 || h.1 < 0.99));
        let odd = |id: i64| id % 2 == 1;
        assert!(loaded
            .search(&unit(123_456, dim), 5, Some(&odd))
            .iter()
            .all(|h| h.0 % 2 == 1));
        // Saving puts them in the graph; the reloaded index walks them.
        loaded.save(tmp.path(), "m").unwrap();
        assert!(loaded.graph_ready());
        let again = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        assert!(again.walk_is_mapped());
        assert_eq!(again.search(&unit(123_456, dim), 1, None)[0].0, n);
        assert_eq!(again.search(&unit(654_321, dim), 1, None)[0].0, 3);
        assert_eq!((again.len(), again.dead_count()), (n as usize + 1, 1));

        // Saving an unchanged graph reuses its files: the graph is never loaded.
        let mut third = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        third.remove([10]);
        third.save(tmp.path(), "m").unwrap();
        assert!(!third.graph_ready());
        let fourth = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        assert!(fourth.walk_is_mapped());
        assert!(fourth
            .search(&unit(11, dim), 5, None)
            .iter()
            .all(|h| h.0 != 10));
        assert_eq!(fourth.search(&unit(123_456, dim), 1, None)[0].0, n);
        // … and a graph left deferred loads from the new dump (the old one is gone).
        third
            .insert_many(vec![(n + 1, unit(424_242, dim))])
            .unwrap();
        third.save(tmp.path(), "m").unwrap();
        third.wait_for_graph().unwrap();

        // Links pointing outside the graph (a damaged file with an intact header) are skipped.
        let dump = dump_in(tmp.path());
        let mut bytes = std::fs::read(dump.join(WALK_FILE)).unwrap();
        let word = |i: usize| u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap());
        let (dim_w, slots) = (word(2) as usize, word(3) as usize);
        // Header (8 words), codes, offsets (slots + 1), then the links.
        let links_at = (8 + (slots * dim_w).div_ceil(4) + slots + 1) * 4;
        bytes[links_at..links_at + 4000].fill(0xFF);
        std::fs::remove_file(dump.join(WALK_FILE)).unwrap();
        std::fs::write(dump.join(WALK_FILE), &bytes).unwrap();
        let scrambled = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        assert!(scrambled.walk_is_mapped());
        for q in 0..20u64 {
            // No panic and no bogus ids; a walk cut off by the damage may find fewer than 10.
            let got = scrambled.search(&unit(80_000 + q, dim), 10, None);
            assert!(!got.is_empty() && got.len() <= 10);
            assert!(got.iter().all(|h| h.0 >= 0 && h.0 <= n + 1));
        }

        // A damaged flat copy: the graph loads in the background and searches scan meanwhile.
        let dump = dump_in(tmp.path());
        std::fs::write(dump.join(WALK_FILE), b"not a walk").unwrap();
        let fallback = VectorIndex::load(tmp.path(), "m", dim).unwrap();
        assert!(!fallback.walk_is_mapped());
        assert_eq!(fallback.search(&unit(424_242, dim), 1, None)[0].0, n + 1);
        fallback.wait_for_search().unwrap();
        assert!(fallback.graph_ready());
        assert_eq!(fallback.search(&unit(424_242, dim), 1, None)[0].0, n + 1);
    }

    #[test]
    fn simd_dot_matches_the_portable_one() {
        for dim in [0, 1, 7, 8, 31, 32, 33, 64, 512, 515] {
            let (a, b) = (
                unit(dim as u64 + 1, dim.max(1)),
                unit(dim as u64 + 99, dim.max(1)),
            );
            let (a, b) = (&a[..dim], &b[..dim]);
            let exact: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
            assert!((dot(a, b) as f64 - exact).abs() < 1e-5, "dim {dim}");
            assert!(
                (dot_portable(a, b) as f64 - exact).abs() < 1e-5,
                "dim {dim}"
            );
        }
    }

    #[test]
    fn simd_code_dot_matches_the_portable_one_and_codes_keep_the_order() {
        for dim in [0, 1, 15, 16, 31, 32, 33, 512, 515] {
            let (a, b) = (unit(dim as u64 + 3, dim), unit(dim as u64 + 77, dim));
            let scale = code_scale([a.as_slice(), b.as_slice()]);
            let (qa, qb) = (quantize(&a, scale), quantize(&b, scale));
            let exact: i32 = qa.iter().zip(&qb).map(|(x, y)| *x as i32 * *y as i32).sum();
            assert_eq!(dot_i8(&qa, &qb), exact, "dim {dim}");
            assert_eq!(dot_i8_portable(&qa, &qb), exact, "dim {dim}");
        }
        // The largest component maps to ±127, and a code's dot tracks the cosine.
        let dim = 512;
        let vs: Vec<Vec<f32>> = (0..50).map(|i| unit(i + 1, dim)).collect();
        let scale = code_scale(vs.iter().map(|v| v.as_slice()));
        let codes: Vec<Vec<i8>> = vs.iter().map(|v| quantize(v, scale)).collect();
        assert!(codes.iter().flatten().any(|c| c.unsigned_abs() == 127));
        for i in 1..50 {
            let cos = dot(&vs[0], &vs[i]);
            let approx = dot_i8(&codes[0], &codes[i]) as f32 / (scale * scale);
            assert!((cos - approx).abs() < 0.01, "{cos} vs {approx}");
            let d = CodeDistance.eval(&codes[0], &codes[i]);
            assert!(d >= 0.0);
        }
        assert_eq!(
            CodeDistance.eval(&[127i8; 8], &[127i8; 8]),
            0.0,
            "identical extreme codes are at distance 0"
        );
    }

    #[test]
    fn recall_against_exact_search() {
        let dim = 64;
        let n = 3000;
        let idx = VectorIndex::build(dim, (0..n).map(|i| (i, unit(i as u64 + 1, dim))).collect())
            .unwrap();
        let mut hits = 0;
        let queries = 50;
        for q in 0..queries {
            let query = unit(100_000 + q, dim);
            let exact = crate::search::exact_top_k(
                &query,
                (0..n).map(|i| (i, unit(i as u64 + 1, dim))),
                10,
            );
            let approx = idx.search(&query, 10, None);
            // Scores are the exact cosines (re-ranked with the f32 vectors).
            for a in &approx {
                let want = dot(&query, &unit(a.0 as u64 + 1, dim));
                assert!((a.1 - want).abs() < 1e-5);
            }
            hits += approx
                .iter()
                .filter(|a| exact.iter().any(|e| e.0 == a.0))
                .count();
        }
        let recall = hits as f64 / (queries as f64 * 10.0);
        assert!(recall >= 0.95, "recall@10 {recall}");
        // The flat walk (made in the background) finds the same as hnsw_rs's search, or better.
        assert!(idx.prepare_walk());
        let mut walk_hits = 0;
        for q in 0..queries {
            let query = unit(100_000 + q, dim);
            let exact = crate::search::exact_top_k(
                &query,
                (0..n).map(|i| (i, unit(i as u64 + 1, dim))),
                10,
            );
            let keep_odd = |id: i64| id % 2 == 1;
            let odd = idx.search(&query, 10, Some(&keep_odd));
            assert_eq!(odd.len(), 10);
            assert!(odd.iter().all(|h| h.0 % 2 == 1));
            walk_hits += idx
                .search(&query, 10, None)
                .iter()
                .filter(|a| exact.iter().any(|e| e.0 == a.0))
                .count();
        }
        let walk_recall = walk_hits as f64 / (queries as f64 * 10.0);
        assert!(
            walk_recall >= recall - 0.02,
            "walk {walk_recall} vs {recall}"
        );
    }
}

//! The vector index: an HNSW graph (hnsw_rs) over one model's embeddings, derived from the catalog,
//! persisted in the library folder for a fast start.
//!
//! Architecture Invariant: the index is never the source of truth. It is saved atomically (a new dump
//! folder, then a manifest swapped in by rename) and, on open, checked against the catalog generation;
//! anything it lacks is added from SQLite, anything it holds that the catalog no longer has is filtered
//! out of results (and the index is rebuilt when too much of it is dead).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use hnsw_rs::prelude::{AnnT, Distance, Hnsw, HnswIo};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

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
const FORMAT: u32 = 1;

/// Cosine distance on L2-normalized vectors: 1 − dot, clamped at 0 (rounding can push a vector's
/// dot with itself just above 1, which hnsw_rs's own DistDot turns into a panic).
#[derive(Default, Clone, Copy, Debug)]
pub struct CosineDistance;

impl Distance<f32> for CosineDistance {
    fn eval(&self, a: &[f32], b: &[f32]) -> f32 {
        (1.0 - dot(a, b)).max(0.0)
    }
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
}

type Graph = Hnsw<'static, f32, CosineDistance>;

/// An HNSW index over photo ids.
///
/// hnsw_rs cannot delete or replace a point, so every insertion gets a fresh slot (the graph's data
/// id); `slots` maps slots to photo ids and `live` names the one slot per photo that counts. A photo
/// re-embedded or deleted leaves a dead slot behind, filtered out of results until the next rebuild.
pub struct VectorIndex {
    graph: Graph,
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
        CosineDistance,
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
            graph: new_graph(capacity, params),
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
        let first = self.slots.len();
        if items.len() > 64 {
            let refs: Vec<(&Vec<f32>, usize)> = items
                .iter()
                .enumerate()
                .map(|(i, (_, v))| (v, first + i))
                .collect();
            self.graph.parallel_insert(&refs);
        } else {
            for (i, (_, v)) in items.iter().enumerate() {
                self.graph.insert((v.as_slice(), first + i));
            }
        }
        for (i, (id, _)) in items.iter().enumerate() {
            self.slots.push(*id);
            self.live.insert(*id, first + i);
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
        let filter = |slot: &usize| {
            let id = self.slots[*slot];
            self.live.get(&id) == Some(slot) && keep.is_none_or(|f| f(id))
        };
        let ef = self.ef_search.max(k);
        let found = if self.dead_count() == 0 && keep.is_none() {
            self.graph.search(query, k, ef)
        } else {
            self.graph.search_filter(query, k, ef, Some(&filter))
        };
        found
            .into_iter()
            .map(|n| (self.slots[n.d_id], 1.0 - n.distance))
            .collect()
    }

    // ---- persistence ----

    fn manifest_path(dir: &Path) -> PathBuf {
        dir.join("manifest.json")
    }

    /// Save atomically under `dir`: dump into a fresh folder, then swap the manifest in by rename.
    pub fn save(&self, dir: &Path, model: &str) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dump = format!("dump-{stamp}-{}", std::process::id());
        let dump_dir = dir.join(&dump);
        std::fs::create_dir_all(&dump_dir).map_err(|e| Error::io(&dump_dir, e))?;
        if !self.slots.is_empty() {
            write_i64s(&dump_dir.join("slots.bin"), &self.slots)?;
            let mut live: Vec<i64> = self.live.values().map(|s| *s as i64).collect();
            live.sort_unstable();
            write_i64s(&dump_dir.join("live.bin"), &live)?;
            let written = self
                .graph
                .file_dump(&dump_dir, BASENAME)
                .map_err(|e| Error::Index(format!("writing {}: {e}", dump_dir.display())))?;
            if written != BASENAME {
                return Err(Error::Index(format!("unexpected dump name {written}")));
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
        };
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
        serde_json::to_writer_pretty(&mut tmp, &manifest)
            .map_err(|e| Error::Index(format!("manifest: {e}")))?;
        tmp.as_file().sync_all().map_err(|e| Error::io(dir, e))?;
        tmp.persist(Self::manifest_path(dir))
            .map_err(|e| Error::io(dir, e.error))?;
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
        // hnsw_rs asserts on malformed files: contain a panic and report it as a damaged index.
        let graph = std::panic::catch_unwind(|| -> Result<Graph> {
            // The loaded graph borrows its loader for its whole life; loaders are small and an
            // index is loaded once per process and model, so the loader is kept for good.
            let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(&dump_dir, BASENAME)));
            io.load_hnsw::<f32, CosineDistance>()
                .map_err(|e| Error::Index(format!("{}: {e}", dump_dir.display())))
        })
        .map_err(|_| Error::Index(format!("{} is damaged", dump_dir.display())))??;
        let points = graph.get_point_indexation().get_nb_point();
        let data_dim = graph.get_point_indexation().get_data_dimension();
        if points != slots.len() || data_dim != dim || live_slots.len() != m.count {
            return Err(Error::Index(format!(
                "{} holds {points} vectors of {data_dim} dimensions for {} slots, {} live; manifest says {} of {dim}",
                dump_dir.display(),
                slots.len(),
                live_slots.len(),
                m.count
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
        Ok(VectorIndex {
            graph,
            slots,
            live,
            dim,
            ef_search: EF_SEARCH,
            generation: m.generation,
            last_row: m.last_row,
        })
    }
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
        let back = VectorIndex::load(tmp.path(), "m", dim).unwrap();
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
            hits += approx
                .iter()
                .filter(|a| exact.iter().any(|e| e.0 == a.0))
                .count();
        }
        let recall = hits as f64 / (queries as f64 * 10.0);
        assert!(recall >= 0.95, "recall@10 {recall}");
    }
}

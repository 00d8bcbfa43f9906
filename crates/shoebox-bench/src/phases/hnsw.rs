//! The query library and the HNSW figures: a catalog of photo-like embeddings, an index over them
//! built with the bench's parameters, its recall and speed against exact search (with the flat walk
//! and with hnsw_rs's own search, with SIMD and portable dot products), the uniform worst case, an
//! optional sweep over HNSW parameters; the index is then saved as `index` would save it.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{json, Value};
use shoebox_core::catalog::ModelKind;
use shoebox_core::catalog::{Catalog, FoundFile, Outcome, ScanChanges};
use shoebox_core::decode::PhotoMeta;
use shoebox_core::index::{self, dot, HnswParams, VectorIndex};
use shoebox_core::{testing, Error, Library, Result};

use super::queries::QueryLibrary;
use super::Run;
use crate::files::{fresh_dir, io};
use crate::photos::{PHOTO_H, PHOTO_W};
use crate::report::{round, HnswFigures};
use crate::vectors::{photo_like_queries, photo_like_vectors, random_unit_vectors};

impl Run<'_> {
    /// Fill the query library's catalog with `opts.vectors` photo-like embeddings, build and measure
    /// its index, and save it where the library finds it.
    pub(super) fn query_library(&mut self, dim: usize) -> Result<(QueryLibrary, HnswFigures)> {
        let n = self.opts.vectors;
        self.progress(&format!(
            "{n} photo-like random unit vectors of {dim} dimensions"
        ));
        let flat = photo_like_vectors(n, dim, 0x5EED);
        let dir = fresh_dir(&self.work.join("library-query"))?;
        let t = Instant::now();
        let (ids, generation, last_row) =
            fill_catalog(&dir, &self.work, &self.clip.name, &flat, dim)?;
        self.note("catalog_fill_s", json!(round(t.elapsed().as_secs_f64(), 2)));
        self.measure_places(&dir, n)?;
        self.measure_keywords(&dir, n)?;

        let params = self.opts.hnsw;
        self.progress(&format!(
            "building HNSW over {n} vectors (M {}, ef_construction {})",
            params.m, params.ef_construction
        ));
        let t = Instant::now();
        let mut idx = build_index(&flat, dim, &ids, params)?;
        let build_s = t.elapsed().as_secs_f64();
        self.note("hnsw_build_s", json!(round(build_s, 2)));
        self.note(
            "hnsw_params",
            json!({"m": params.m, "ef_construction": params.ef_construction, "ef_search": params.ef_search}),
        );
        let hnsw = self.measure_index(&mut idx, &flat, dim, &ids, build_s)?;
        self.note(
            "vectors",
            json!(
                "photo-like: events of ~20 similar photos in a 64-d semantic subspace plus noise \
                   (mean pairwise cosine ~0.5); queries drawn alike around another mean"
            ),
        );
        self.uniform_worst_case(n.min(10_000), dim)?;

        // Persist the index for the library, as `index` would.
        idx.generation = generation;
        idx.last_row = last_row;
        let lib = Library::open(self.lib_opts(dir.clone()))?;
        let index_dir = testing::index_dir(&lib, &self.clip.name);
        idx.save(&index_dir, &self.clip.name)?;
        Ok((QueryLibrary { dir, index_dir }, hnsw))
    }

    /// Recall and speed of `idx` (built over `flat` in `build_s`) against exact search, and what
    /// the flat walk and the SIMD dot products bring; the sweep over parameters if asked for.
    fn measure_index(
        &mut self,
        idx: &mut VectorIndex,
        flat: &[f32],
        dim: usize,
        ids: &[i64],
        build_s: f64,
    ) -> Result<HnswFigures> {
        self.progress("timing HNSW against exact search");
        let queries = photo_like_queries(200, dim, 0x5EED);
        let exact = ExactSearch::new(flat, dim, ids);
        let (truth, exact_us) = exact.top10_all(&queries);
        {
            // The flat copy of the graph that searches walk (made in the background after a change).
            let t = Instant::now();
            idx.prepare_walk();
            self.note(
                "walk_copy_ms",
                json!(round(t.elapsed().as_secs_f64() * 1e3, 1)),
            );
            self.note(
                "walk_copy_mb",
                json!(idx.walk_bytes().map(|b| round(b as f64 / 1048576.0, 1))),
            );
        }
        let (recall_at_10, search_us) = measure_hnsw(idx, &queries, dim, &truth);
        {
            // What the flat walk brings: the same searches with hnsw_rs's own search.
            idx.use_hnsw_rs_search(true);
            let (recall, us) = measure_hnsw(idx, &queries, dim, &truth);
            idx.use_hnsw_rs_search(false);
            self.note(
                "hnsw_rs_search",
                json!({"recall_at_10": round(recall, 4), "search_us": round(us, 1)}),
            );
        }
        {
            // What the SIMD dot product brings: the same searches with the portable one.
            let portable = self.opts.portable_dot;
            index::force_portable_dot(!portable);
            let (_, exact_other) = exact.top10_all(&queries);
            let (_, search_other) = measure_hnsw(idx, &queries, dim, &truth);
            index::force_portable_dot(portable);
            let other = if portable { "avx2" } else { "portable" };
            self.note(
                "dot_comparison",
                json!({
                    "other": other,
                    "search_us_other": round(search_other, 1),
                    "exact_us_other": round(exact_other, 1),
                }),
            );
        }
        if self.opts.hnsw_sweep {
            self.progress("sweeping HNSW parameters (slow)");
            let curve = sweep(
                flat,
                dim,
                ids,
                &queries,
                &truth,
                idx,
                self.opts.hnsw,
                build_s,
                &mut *self.progress,
            )?;
            self.note("hnsw_curve", Value::Array(curve));
        }
        Ok(HnswFigures {
            vectors: ids.len(),
            recall_at_10,
            search_us,
            exact_us,
        })
    }

    /// The worst case for any graph index: uniform random vectors have no neighbourhood structure
    /// at all (every pair is nearly orthogonal).
    fn uniform_worst_case(&mut self, m: usize, dim: usize) -> Result<()> {
        self.progress(&format!(
            "HNSW over {m} uniform random unit vectors (worst case)"
        ));
        let flat_u = random_unit_vectors(m, dim, 0xA11);
        let ids_u: Vec<i64> = (1..=m as i64).collect();
        let t = Instant::now();
        let idx_u = build_index(&flat_u, dim, &ids_u, self.opts.hnsw)?;
        let build_s = t.elapsed().as_secs_f64();
        let q_u = random_unit_vectors(100, dim, 0xB22);
        let (truth_u, exact_u) = ExactSearch::new(&flat_u, dim, &ids_u).top10_all(&q_u);
        let (recall_u, us_u) = measure_hnsw(&idx_u, &q_u, dim, &truth_u);
        self.note(
            "hnsw_uniform",
            json!({"vectors": m, "recall_at_10": round(recall_u, 4), "search_us": round(us_u, 1),
                   "exact_us": round(exact_u, 1), "build_s": round(build_s, 2)}),
        );
        Ok(())
    }
}

/// A catalog with one photo row per vector (files that need not exist: nothing scans this library)
/// and their embeddings. Returns (photo ids in vector order, generation, last embedding row).
fn fill_catalog(
    lib_dir: &Path,
    work: &Path,
    model: &str,
    flat: &[f32],
    dim: usize,
) -> Result<(Vec<i64>, i64, i64)> {
    let n = flat.len() / dim;
    let root = work.join("library-query-photos");
    std::fs::create_dir_all(&root).map_err(|e| io(&root, e))?;
    let mut cat = Catalog::open(&lib_dir.join("catalog.sqlite"))?;
    let (root_id, _) = cat.add_root(&root)?;
    let base_ns: i64 = 1_600_000_000_000_000_000;
    let added: Vec<FoundFile> = (0..n)
        .map(|i| FoundFile {
            root_id,
            rel_path: PathBuf::from(format!("{:03}/IMG_{:06}.jpg", i / 1000, i)),
            ext: "jpg".into(),
            size: 3_000_000 + i as u64,
            mtime_ns: base_ns + i as i64 * 1_000_000_000,
        })
        .collect();
    cat.apply_scan(&ScanChanges {
        roots: vec![root_id],
        added,
        ..Default::default()
    })?;
    let work_items = cat.pending_work(None)?;
    if work_items.len() != n {
        return Err(Error::Invalid(format!(
            "expected {n} photo rows, found {}",
            work_items.len()
        )));
    }
    let model_id = cat.model_id(model, ModelKind::Clip, dim)?;
    let ids: Vec<i64> = work_items.iter().map(|w| w.id).collect();
    for (c, chunk) in ids.chunks(5000).enumerate() {
        let outcomes: Vec<Outcome> = chunk
            .iter()
            .enumerate()
            .map(|(j, &id)| {
                let i = c * 5000 + j;
                Outcome::Embedded {
                    id,
                    meta: PhotoMeta {
                        size: 3_000_000 + i as u64,
                        mtime_ns: base_ns + i as i64 * 1_000_000_000,
                        hash: blake3::hash(&(i as u64).to_le_bytes()).as_bytes().to_vec(),
                        width: PHOTO_W,
                        height: PHOTO_H,
                        orientation: Some(1),
                        taken_at: Some(format!("20{:02}-06-01T12:00:00", 10 + i % 15)),
                        camera_make: Some("Shoebox".into()),
                        camera_model: Some("Bench Camera 12MP".into()),
                        gps: super::places::bench_position(i),
                        taken_offset: Some("+01:00".into()),
                        phash: Some(
                            blake3::hash(&(i as u64 ^ 0x5EED).to_le_bytes()).as_bytes()[..16]
                                .to_vec(),
                        ),
                    },
                    vector: flat[i * dim..(i + 1) * dim].to_vec(),
                }
            })
            .collect();
        cat.record(model_id, &outcomes)?;
    }
    Ok((ids, cat.generation()?, cat.last_embedding_row()?))
}

/// Build an index over `flat` (photo `ids[i]` ↔ row `i`), inserting in chunks to bound memory.
fn build_index(flat: &[f32], dim: usize, ids: &[i64], params: HnswParams) -> Result<VectorIndex> {
    let n = ids.len();
    let mut idx = VectorIndex::with_params(dim, n, params);
    for (c, chunk) in ids.chunks(10_000).enumerate() {
        let items: Vec<(i64, Vec<f32>)> = chunk
            .iter()
            .enumerate()
            .map(|(j, &id)| {
                let i = c * 10_000 + j;
                (id, flat[i * dim..(i + 1) * dim].to_vec())
            })
            .collect();
        idx.insert_many(items)?;
    }
    Ok(idx)
}

/// Brute-force top-k by dot product over a contiguous matrix, on one thread.
struct ExactSearch<'a> {
    flat: &'a [f32],
    dim: usize,
    ids: &'a [i64],
}

impl<'a> ExactSearch<'a> {
    fn new(flat: &'a [f32], dim: usize, ids: &'a [i64]) -> Self {
        ExactSearch { flat, dim, ids }
    }

    fn top_k(&self, q: &[f32], k: usize) -> Vec<i64> {
        let mut scored: Vec<(f32, usize)> = self
            .flat
            .chunks_exact(self.dim)
            .enumerate()
            .map(|(i, v)| (dot(q, v), i))
            .collect();
        let k = k.min(scored.len());
        if k == 0 {
            return Vec::new();
        }
        scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        scored.truncate(k);
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(_, i)| self.ids[i]).collect()
    }

    /// The exact top 10 of every query, and the mean µs per query.
    fn top10_all(&self, queries: &[f32]) -> (Vec<Vec<i64>>, f64) {
        let t = Instant::now();
        let truth: Vec<Vec<i64>> = queries
            .chunks_exact(self.dim)
            .map(|q| self.top_k(q, 10))
            .collect();
        let us = t.elapsed().as_secs_f64() * 1e6 / truth.len().max(1) as f64;
        (truth, us)
    }
}

/// (recall@10, mean µs per search) of an index against the exact answers.
fn measure_hnsw(idx: &VectorIndex, queries: &[f32], dim: usize, truth: &[Vec<i64>]) -> (f64, f64) {
    // The flat copy searches walk, then a warm-up (first touches of the graph).
    idx.prepare_walk();
    for q in queries.chunks_exact(dim).take(10) {
        idx.search(q, 10, None);
    }
    let t = Instant::now();
    let found: Vec<Vec<(i64, f32)>> = queries
        .chunks_exact(dim)
        .map(|q| idx.search(q, 10, None))
        .collect();
    let us = t.elapsed().as_secs_f64() * 1e6 / found.len().max(1) as f64;
    let mut hits = 0usize;
    for (f, t) in found.iter().zip(truth) {
        let t: HashSet<i64> = t.iter().copied().collect();
        hits += f.iter().filter(|h| t.contains(&h.0)).count();
    }
    (hits as f64 / (truth.len() * 10).max(1) as f64, us)
}

/// Recall and latency for several (M, ef_construction) builds and ef_search values; `main` (built
/// with `main_params` in `main_build_s`) stands for its own combination.
#[allow(clippy::too_many_arguments)]
fn sweep(
    flat: &[f32],
    dim: usize,
    ids: &[i64],
    queries: &[f32],
    truth: &[Vec<i64>],
    main: &mut VectorIndex,
    main_params: HnswParams,
    main_build_s: f64,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Value>> {
    let mut curve = Vec::new();
    for (m, efc) in [(16, 128), (16, 256), (24, 256), (32, 256)] {
        let mut built;
        let (idx, build_s) = if (m, efc) == (main_params.m, main_params.ef_construction) {
            (&mut *main, main_build_s)
        } else {
            progress(&format!("  build M {m}, ef_construction {efc}"));
            let t = Instant::now();
            let p = HnswParams {
                m,
                ef_construction: efc,
                ef_search: 64,
            };
            built = build_index(flat, dim, ids, p)?;
            (&mut built, t.elapsed().as_secs_f64())
        };
        for ef in [32, 64, 96, 128, 192, 256, 384, 512] {
            idx.set_ef_search(ef);
            let (recall, us) = measure_hnsw(idx, queries, dim, truth);
            progress(&format!(
                "    M {m}, ef_construction {efc}, ef_search {ef}: recall@10 {recall:.4}, {us:.0} µs"
            ));
            curve.push(json!({
                "m": m, "ef_construction": efc, "ef_search": ef,
                "recall_at_10": round(recall, 4), "search_us": round(us, 1),
                "build_s": round(build_s, 1),
            }));
        }
    }
    main.set_ef_search(main_params.ef_search);
    Ok(curve)
}

//! Tests of the index: replacing, removing, saving and loading, searching while the graph loads,
//! the mapped walk, the SIMD kernels against the portable ones, recall against exact search.

use super::kernels::{dot_i8_portable, dot_portable};
use super::*;
use hnsw_rs::prelude::Distance;

/// The dump folder the saved index under `dir` names.
fn dump_in(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    dir.join(m["dump"].as_str().unwrap())
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
        let exact = super::exact_top_k(&query, truth.iter().cloned(), 10);
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
    let exact = super::exact_top_k(&query, truth.iter().cloned(), 10);
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
        VectorIndex::build(dim, (0..n).map(|i| (i, unit(i as u64 + 1, dim))).collect()).unwrap();
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
        let exact = super::exact_top_k(&query, truth.iter().cloned(), 10);
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
    let idx =
        VectorIndex::build(dim, (0..n).map(|i| (i, unit(i as u64 + 1, dim))).collect()).unwrap();
    let mut hits = 0;
    let queries = 50;
    for q in 0..queries {
        let query = unit(100_000 + q, dim);
        let exact = super::exact_top_k(&query, (0..n).map(|i| (i, unit(i as u64 + 1, dim))), 10);
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
        let exact = super::exact_top_k(&query, (0..n).map(|i| (i, unit(i as u64 + 1, dim))), 10);
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

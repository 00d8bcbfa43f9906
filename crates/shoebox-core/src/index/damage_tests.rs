//! Damaged index files: hnsw_rs's dump, `walk.bin`, `vectors.f32`, `slots.bin`, `live.bin`. Each
//! damage ends in an error (the index is rebuilt from the catalog or its saved vectors) and never
//! in a panic, an abort, an exit or a read out of bounds. Targeted cases first, then seeded fuzz
//! loops (truncations, flipped bytes, huge counts) with a small deterministic generator.

use super::walk::FlatGraph;
use super::*;

/// xorshift64*: a deterministic generator for the fuzz loops.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn unit(seed: u64, dim: usize) -> Vec<f32> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let v: Vec<f32> = (0..dim)
        .map(|_| (r.next() % 2000) as f32 / 1000.0 - 1.0)
        .collect();
    crate::models::clip::normalize(v)
}

/// An index of `n` vectors of `dim` dimensions saved in a fresh folder: the folder and its dump.
fn saved(n: i64, dim: usize) -> (tempfile::TempDir, PathBuf) {
    let mut idx = VectorIndex::build(dim, (0..n).map(|i| (i, unit(i as u64 + 1, dim))).collect())
        .expect("build");
    let tmp = tempfile::tempdir().expect("tempdir");
    idx.save(tmp.path(), "m").expect("save");
    let dump = dump_in(tmp.path());
    (tmp, dump)
}

fn dump_in(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(dir.join("manifest.json")).expect("manifest");
    let m: serde_json::Value = serde_json::from_str(&text).expect("json");
    dir.join(m["dump"].as_str().expect("dump"))
}

/// Replace a file by new bytes (a new file: a mapping of the old one is left alone).
fn rewrite(path: &Path, bytes: &[u8]) {
    let _ = std::fs::remove_file(path);
    std::fs::write(path, bytes).expect("write");
}

const GRAPH: &str = "hnsw.hnsw.graph";
const DATA: &str = "hnsw.hnsw.data";
const USIZE: usize = std::mem::size_of::<usize>();

/// Where the first layer's point count sits in an hnsw_rs graph file: after the description
/// (magic, mode, M, level scale, layers, ef, points, dimension, two length-prefixed names) and the
/// layer count and magic.
fn first_layer_count_at(graph: &[u8]) -> usize {
    let names_at = 4 + 1 + 1 + 8 + 1 + 3 * USIZE;
    let len = |at: usize| usize::from_ne_bytes(graph[at..at + USIZE].try_into().expect("usize"));
    let t_at = names_at + USIZE + len(names_at);
    t_at + USIZE + len(t_at) + 1 + 4
}

/// The saved index under `dir` loads (its graph may not), searches without panicking, and a change
/// rebuilds a graph that could not be loaded.
fn loads_and_recovers(dir: &Path, dim: usize, n: i64) {
    let mut idx = VectorIndex::load(dir, "m", dim).expect("the catalog side of the dump is intact");
    assert!(
        idx.wait_for_graph().is_err(),
        "the damaged graph is refused"
    );
    assert_eq!(idx.search(&unit(5, dim), 1, None)[0].0, 4);
    idx.insert_many(vec![(n, unit(777_777, dim))])
        .expect("insert");
    assert!(idx.graph_ready(), "rebuilt from the saved vectors");
    assert_eq!(idx.search(&unit(777_777, dim), 1, None)[0].0, n);
    idx.save(dir, "m").expect("save");
    let back = VectorIndex::load(dir, "m", dim).expect("reload");
    back.wait_for_graph().expect("the rebuilt graph loads");
}

#[test]
fn index_hnsw_dump_of_an_old_format_is_refused_not_exited_on() {
    // hnsw_rs exits the process on a point of a format-2 dump read without its map (which a
    // description claiming no points makes it do).
    let (dim, n) = (8, 100);
    let (tmp, dump) = saved(n, dim);
    let graph = std::fs::read(dump.join(GRAPH)).expect("graph");
    let mut old = Vec::new();
    old.extend_from_slice(&0x002a_677fu32.to_ne_bytes()); // MAGICDESCR_2
    old.extend_from_slice(&graph[4..6]); // mode, M
    old.push(graph[14]); // layers (no level scale in format 2)
    old.extend_from_slice(&graph[15..15 + USIZE]); // ef
    old.extend_from_slice(&0usize.to_ne_bytes()); // points
    old.extend_from_slice(&graph[15 + 2 * USIZE..]); // dimension, names, the graph
    rewrite(&dump.join(GRAPH), &old);
    loads_and_recovers(tmp.path(), dim, n);
}

#[test]
fn index_hnsw_dump_with_a_huge_layer_is_refused_not_allocated() {
    // hnsw_rs reserves a layer's point count before reading it: 2^40 points abort the process.
    let (dim, n) = (8, 100);
    let (tmp, dump) = saved(n, dim);
    let mut graph = std::fs::read(dump.join(GRAPH)).expect("graph");
    let at = first_layer_count_at(&graph);
    let count = usize::from_ne_bytes(graph[at..at + USIZE].try_into().unwrap());
    assert!(
        count > 0 && count <= n as usize,
        "the layout this test assumes"
    );
    graph[at..at + USIZE].copy_from_slice(&(1usize << 40).to_ne_bytes());
    rewrite(&dump.join(GRAPH), &graph);
    loads_and_recovers(tmp.path(), dim, n);
}

#[test]
fn index_hnsw_data_with_a_huge_record_is_refused_not_allocated() {
    // hnsw_rs allocates a data record's length before reading it: 2^44 bytes abort the process.
    let (dim, n) = (8, 100);
    let (tmp, dump) = saved(n, dim);
    let mut data = std::fs::read(dump.join(DATA)).expect("data");
    // magic, dimension, then the first record: magic, origin id, length.
    let at = 4 + USIZE + 4 + 8;
    assert_eq!(
        u64::from_ne_bytes(data[at..at + 8].try_into().unwrap()),
        dim as u64
    );
    data[at..at + 8].copy_from_slice(&(1u64 << 44).to_ne_bytes());
    rewrite(&dump.join(DATA), &data);
    loads_and_recovers(tmp.path(), dim, n);
}

#[test]
fn index_walk_with_huge_counts_is_refused_not_allocated() {
    let (dim, n) = (8, 300);
    let (_tmp, dump) = saved(n, dim);
    let path = dump.join(WALK_FILE);
    let good = std::fs::read(&path).expect("walk");
    let word = |b: &[u8], i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
    // Upper layers: 2^32 - 1 of them (the header's word 5).
    let mut bad = good.clone();
    bad[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
    rewrite(&path, &bad);
    assert!(FlatGraph::load(&path, n as usize, dim, true).is_err());
    // The first upper layer's node count: 2^32 - 1.
    let (slots, links) = (word(&good, 3) as usize, word(&good, 6) as usize);
    let upper_at = 8 + (slots * dim).div_ceil(4) + slots + 1 + links;
    assert!(word(&good, 5) > 0, "the test graph has upper layers");
    let mut bad = good.clone();
    bad[4 * upper_at..4 * upper_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    rewrite(&path, &bad);
    assert!(FlatGraph::load(&path, n as usize, dim, true).is_err());
    rewrite(&path, &good);
    assert!(FlatGraph::load(&path, n as usize, dim, true).is_ok());
}

#[test]
fn index_walk_and_vectors_of_the_wrong_length_are_refused() {
    let (dim, n) = (8, 300);
    let (tmp, dump) = saved(n, dim);
    for name in [WALK_FILE, VECTORS_FILE] {
        let path = dump.join(name);
        let good = std::fs::read(&path).expect("file");
        for bad in [
            good[..good.len() - 1].to_vec(),
            good[..good.len() - 4].to_vec(),
            good[..good.len() / 2].to_vec(),
            Vec::new(),
            [good.as_slice(), &[0; 4]].concat(),
            [good.as_slice(), &[0; 1]].concat(),
        ] {
            rewrite(&path, &bad);
            if name == WALK_FILE {
                assert!(FlatGraph::load(&path, n as usize, dim, true).is_err());
                // The index still loads: its graph comes from hnsw_rs's dump.
                let idx = VectorIndex::load(tmp.path(), "m", dim).expect("load");
                assert!(!idx.walk_is_mapped());
                idx.wait_for_search().expect("the graph loads");
                assert_eq!(idx.search(&unit(5, dim), 1, None)[0].0, 4);
            } else {
                assert!(VectorIndex::load(tmp.path(), "m", dim).is_err());
            }
        }
        rewrite(&path, &good);
    }
    assert!(VectorIndex::load(tmp.path(), "m", dim).is_ok());
}

#[test]
fn index_slots_and_live_slots_that_disagree_are_refused() {
    let (dim, n) = (8, 50);
    let (tmp, dump) = saved(n, dim);
    let live = std::fs::read(dump.join("live.bin")).expect("live");
    let slots = std::fs::read(dump.join("slots.bin")).expect("slots");
    let i64s = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // One slot live twice (the manifest's count still matches).
        (
            "live.bin",
            i64s(&[[0i64, 0].as_slice(), &(2..n).collect::<Vec<_>>()].concat()),
        ),
        // A live slot past the slots.
        (
            "live.bin",
            i64s(&[(0..n - 1).collect::<Vec<_>>(), vec![n]].concat()),
        ),
        (
            "live.bin",
            i64s(&[(0..n - 1).collect::<Vec<_>>(), vec![-1]].concat()),
        ),
        ("live.bin", live[..live.len() - 3].to_vec()),
        // Two slots of the same photo, both live.
        (
            "slots.bin",
            i64s(&[vec![1i64], (1..n).collect::<Vec<_>>()].concat()),
        ),
        ("slots.bin", slots[..slots.len() - 8].to_vec()),
        ("slots.bin", slots[..slots.len() - 1].to_vec()),
    ];
    for (name, bytes) in cases {
        rewrite(&dump.join(name), &bytes);
        assert!(
            VectorIndex::load(tmp.path(), "m", dim).is_err(),
            "{name} {:?}",
            &bytes[..16.min(bytes.len())]
        );
        rewrite(&dump.join("live.bin"), &live);
        rewrite(&dump.join("slots.bin"), &slots);
    }
    assert!(VectorIndex::load(tmp.path(), "m", dim).is_ok());
}

/// A copy of `good` damaged at random: cut short, bytes flipped, or a huge count written over a
/// word.
fn mutate(good: &[u8], r: &mut Rng) -> Vec<u8> {
    let mut b = good.to_vec();
    match r.below(5) {
        0 => b.truncate(r.below(b.len())),
        1 => {
            for _ in 0..1 + r.below(4) {
                let i = r.below(b.len());
                b[i] ^= 1 << r.below(8);
            }
        }
        2 => {
            let i = r.below(b.len());
            b[i] = r.next() as u8;
        }
        3 => {
            // A huge or random count over an aligned word, 4 or 8 bytes wide.
            let width = if r.below(2) == 0 { 4 } else { 8 };
            let at = r.below(b.len() / width) * width;
            let v: u64 = match r.below(4) {
                0 => u64::MAX,
                1 => 1 << (20 + r.below(40)),
                2 => r.next(),
                _ => r.below(64) as u64,
            };
            let end = (at + width).min(b.len());
            b[at..end].copy_from_slice(&v.to_le_bytes()[..end - at]);
        }
        _ => b.extend((0..1 + r.below(16)).map(|_| r.next() as u8)),
    }
    b
}

#[test]
fn index_walk_loader_fuzz_ends_in_ok_or_err() {
    let (dim, n) = (12, 200);
    let (_tmp, dump) = saved(n, dim);
    let path = dump.join(WALK_FILE);
    let good = std::fs::read(&path).expect("walk");
    let mut r = Rng(0x5EED_0001);
    let (mut ok, mut err) = (0, 0);
    let queries: Vec<Vec<i8>> = (0..4)
        .map(|q| {
            unit(9_000 + q, dim)
                .iter()
                .map(|x| (x * 100.0) as i8)
                .collect()
        })
        .collect();
    for _ in 0..3000 {
        let bad = mutate(&good, &mut r);
        rewrite(&path, &bad);
        match FlatGraph::load(&path, n as usize, dim, true) {
            Ok(g) => {
                ok += 1;
                for q in &queries {
                    let got = g.search(q, 10, 32, &|_| true);
                    assert!(got.len() <= 10 && got.iter().all(|(s, _)| *s < n as usize));
                }
            }
            Err(_) => err += 1,
        }
    }
    assert!(ok > 0 && err > 0, "{ok} loaded, {err} refused");
}

#[test]
fn index_hnsw_dump_check_accepts_what_hnsw_rs_writes() {
    // Pins hnsw_rs's dump format: a release writing anything else fails here, not by making every
    // load of a saved graph rebuild it.
    for (n, dim) in [(1, 4), (2, 3), (300, 8), (3000, 16)] {
        let (tmp, dump) = saved(n, dim);
        graph::check_dump(&dump, n as usize, dim).expect("a fresh dump passes");
        assert!(graph::check_dump(&dump, n as usize + 1, dim).is_err());
        assert!(graph::check_dump(&dump, n as usize, dim + 1).is_err());
        let idx = VectorIndex::load(tmp.path(), "m", dim).expect("load");
        idx.wait_for_graph().expect("the graph loads");
    }
}

/// Load a dump that passed [`graph::check_dump`] with hnsw_rs directly, no panic contained: it
/// loads, and a flat copy, searches and an insertion work on it.
fn load_checked(dump: &Path, n: usize, dim: usize, map: bool) {
    let mut io = hnsw_rs::prelude::HnswIo::new(dump, "hnsw");
    io.set_options(hnsw_rs::prelude::ReloadOptions::default().set_mmap(map));
    let g: hnsw_rs::prelude::Hnsw<i8, kernels::CodeDistance> = io
        .load_hnsw::<i8, kernels::CodeDistance>()
        .expect("a checked dump loads");
    assert_eq!(g.get_point_indexation().get_nb_point(), n);
    let q: Vec<i8> = (0..dim).map(|i| (i * 37 % 255) as i8).collect();
    assert!(g.search(&q, 5, 16).iter().all(|h| h.d_id < n));
    if let Some(flat) = FlatGraph::from_hnsw(&g, n, dim) {
        assert!(flat.search(&q, 5, 16, &|_| true).len() <= 5);
    }
    g.insert((q.as_slice(), n));
    assert!(!g.search(&q, 1, 16).is_empty());
}

#[test]
fn index_hnsw_dump_fuzz_is_refused_or_loads_without_panicking() {
    let (dim, n) = (8, 60);
    let (_tmp, dump) = saved(n, dim);
    let (graph_path, data_path) = (dump.join(GRAPH), dump.join(DATA));
    let (graph, data) = (
        std::fs::read(&graph_path).expect("graph"),
        std::fs::read(&data_path).expect("data"),
    );
    let mut r = Rng(0x5EED_0002);
    let (mut ok, mut err) = (0, 0);
    for i in 0..2500 {
        let (bad_graph, bad_data) = if r.below(4) == 0 {
            (graph.clone(), mutate(&data, &mut r))
        } else {
            (mutate(&graph, &mut r), data.clone())
        };
        rewrite(&graph_path, &bad_graph);
        rewrite(&data_path, &bad_data);
        let map = i % 2 == 0;
        match graph::check_dump(&dump, n as usize, dim) {
            Ok(()) => {
                ok += 1;
                load_checked(&dump, n as usize, dim, map);
            }
            Err(_) => {
                err += 1;
                let saved = graph::SavedGraph {
                    dir: dump.clone(),
                    points: n as usize,
                    dim,
                    map,
                };
                assert!(graph::load_graph(&saved).is_err());
            }
        }
    }
    assert!(ok > 100 && err > 100, "{ok} passed, {err} refused");
}

#[test]
fn index_dump_files_fuzz_load_or_refuse() {
    // slots.bin, live.bin, vectors.f32 and the manifest damaged at random: the load is refused, or
    // the index answers searches.
    let (dim, n) = (8, 80);
    let (tmp, dump) = saved(n, dim);
    let names = ["slots.bin", "live.bin", VECTORS_FILE];
    let goods: Vec<Vec<u8>> = names
        .iter()
        .map(|f| std::fs::read(dump.join(f)).expect("file"))
        .collect();
    let manifest = std::fs::read(tmp.path().join("manifest.json")).expect("manifest");
    let mut r = Rng(0x5EED_0003);
    let (mut ok, mut err) = (0, 0);
    for i in 0..1500 {
        let which = r.below(names.len() + 1);
        if which == names.len() {
            rewrite(
                &tmp.path().join("manifest.json"),
                &mutate(&manifest, &mut r),
            );
        } else {
            rewrite(&dump.join(names[which]), &mutate(&goods[which], &mut r));
        }
        match VectorIndex::load_with(tmp.path(), "m", dim, i % 2 == 0) {
            Ok(idx) => {
                ok += 1;
                for q in 0..3 {
                    let got = idx.search(&unit(50_000 + q, dim), 10, None);
                    assert!(got.len() <= 10);
                }
            }
            Err(_) => err += 1,
        }
        for (f, good) in names.iter().zip(&goods) {
            rewrite(&dump.join(f), good);
        }
        rewrite(&tmp.path().join("manifest.json"), &manifest);
    }
    assert!(ok > 50 && err > 50, "{ok} loaded, {err} refused");
}

#[test]
fn index_files_read_instead_of_mapped_answer_the_same() {
    // What a library on a network file system gets (`persist::may_map`): nothing mapped.
    let (dim, n) = (16, 1500);
    let (tmp, _dump) = saved(n, dim);
    let mapped = VectorIndex::load_with(tmp.path(), "m", dim, true).expect("mapped");
    let mut read = VectorIndex::load_with(tmp.path(), "m", dim, false).expect("read");
    assert!(mapped.walk_is_mapped() && !read.walk_is_mapped());
    assert!(read.walk_bytes().is_some(), "the flat copy is read in");
    for q in 0..20 {
        let query = unit(90_000 + q, dim);
        assert_eq!(
            mapped.search(&query, 10, None),
            read.search(&query, 10, None)
        );
    }
    // The graph loads without a map too, takes new vectors and saves.
    read.insert_many(vec![(n, unit(31_337, dim))])
        .expect("insert");
    read.save(tmp.path(), "m").expect("save");
    assert!(read.graph_ready());
    let back = VectorIndex::load_with(tmp.path(), "m", dim, false).expect("reload");
    assert_eq!(back.search(&unit(31_337, dim), 1, None)[0].0, n);
    back.wait_for_graph().expect("the graph loads unmapped");
    // The file system of a temporary folder is told (or not) without failing.
    let _ = persist::may_map(tmp.path());
}

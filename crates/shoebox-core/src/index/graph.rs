//! The HNSW graph hnsw_rs builds over the vectors' i8 codes: its parameters, building, saving and
//! loading it (an hnsw_rs dump, the codes memory-mapped), and the cell that holds it while it loads
//! in the background or waits on disk until first needed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use hnsw_rs::prelude::{AnnT, Hnsw, HnswIo, ReloadOptions};

use super::kernels::CodeDistance;
use super::walk::{FlatGraph, WalkCell};
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

/// The name hnsw_rs gives its dump files, and those files.
const BASENAME: &str = "hnsw";
pub(super) const GRAPH_FILES: [&str; 2] = ["hnsw.hnsw.graph", "hnsw.hnsw.data"];

pub(super) type Graph = Hnsw<'static, i8, CodeDistance>;

pub(super) fn new_graph(capacity: usize, p: HnswParams) -> Graph {
    Hnsw::new(
        p.m,
        capacity.max(1024),
        MAX_LAYER,
        p.ef_construction,
        CodeDistance,
    )
}

/// Write `graph` as an hnsw_rs dump (`GRAPH_FILES`) into `dump_dir`.
pub(super) fn save_graph(graph: &Graph, dump_dir: &Path) -> Result<()> {
    let written = graph
        .file_dump(dump_dir, BASENAME)
        .map_err(|e| Error::Index(format!("writing {}: {e}", dump_dir.display())))?;
    if written != BASENAME {
        return Err(Error::Index(format!("unexpected dump name {written}")));
    }
    Ok(())
}

/// The HNSW graph, built here or being loaded from disk on a background thread.
pub(super) struct GraphCell {
    pub(super) cell: Arc<OnceLock<std::result::Result<Graph, String>>>,
    loader: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// A saved graph not loaded yet (it is when first needed): dump folder, points, dimensions.
    pub(super) deferred: Mutex<Option<(PathBuf, usize, usize)>>,
}

impl GraphCell {
    pub(super) fn ready(graph: Graph) -> Self {
        GraphCell {
            cell: Arc::new(OnceLock::from(Ok(graph))),
            loader: Mutex::new(None),
            deferred: Mutex::new(None),
        }
    }

    /// The graph saved in `dump_dir`, loaded when first waited for.
    pub(super) fn deferred(dump_dir: PathBuf, points: usize, dim: usize) -> Self {
        GraphCell {
            cell: Arc::new(OnceLock::new()),
            loader: Mutex::new(None),
            deferred: Mutex::new(Some((dump_dir, points, dim))),
        }
    }

    /// Whether the saved graph has not been asked for yet.
    pub(super) fn is_deferred(&self) -> bool {
        self.deferred.lock().map(|d| d.is_some()).unwrap_or(false)
    }

    /// Load the graph saved in `dump_dir` on a new thread, and its flat copy for searching.
    pub(super) fn load_in_background(
        dump_dir: PathBuf,
        points: usize,
        dim: usize,
        walk: WalkCell,
    ) -> Self {
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
    pub(super) fn get(&self) -> Option<&Graph> {
        self.cell.get().and_then(|r| r.as_ref().ok())
    }

    /// The graph, loading a deferred one now or waiting for the loader if it is still running.
    pub(super) fn wait(&self) -> Result<&Graph> {
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

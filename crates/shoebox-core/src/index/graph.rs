//! The HNSW graph hnsw_rs builds over the vectors' i8 codes: its parameters, building, saving and
//! loading it (an hnsw_rs dump, checked in full before hnsw_rs reads it, the codes memory-mapped
//! unless the library is on a network file system), and the cell that holds it while it loads in
//! the background or waits on disk until first needed.

use std::io::Read;
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
    /// A saved graph not loaded yet (it is when first needed).
    pub(super) deferred: Mutex<Option<SavedGraph>>,
}

/// A saved graph: its dump folder, the points and dimensions it must hold, and whether its codes
/// may be memory-mapped (`persist::may_map`).
pub(super) struct SavedGraph {
    pub(super) dir: PathBuf,
    pub(super) points: usize,
    pub(super) dim: usize,
    pub(super) map: bool,
}

impl GraphCell {
    pub(super) fn ready(graph: Graph) -> Self {
        GraphCell {
            cell: Arc::new(OnceLock::from(Ok(graph))),
            loader: Mutex::new(None),
            deferred: Mutex::new(None),
        }
    }

    /// The saved graph, loaded when first waited for.
    pub(super) fn deferred(saved: SavedGraph) -> Self {
        GraphCell {
            cell: Arc::new(OnceLock::new()),
            loader: Mutex::new(None),
            deferred: Mutex::new(Some(saved)),
        }
    }

    /// Whether the saved graph has not been asked for yet.
    pub(super) fn is_deferred(&self) -> bool {
        self.deferred.lock().map(|d| d.is_some()).unwrap_or(false)
    }

    /// Load the saved graph on a new thread, and its flat copy for searching.
    pub(super) fn load_in_background(saved: SavedGraph, walk: WalkCell) -> Self {
        let cell = Arc::new(OnceLock::new());
        let out = Arc::clone(&cell);
        let loader = std::thread::Builder::new()
            .name("hnsw-load".into())
            .spawn(move || {
                let loaded = load_graph(&saved);
                if let Ok(g) = &loaded {
                    let flat = FlatGraph::from_hnsw(g, saved.points, saved.dim).map(Arc::new);
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
            if let Some(saved) = deferred {
                let _ = self.cell.set(load_graph(&saved));
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

/// Load a saved hnsw_rs dump, its codes memory-mapped rather than copied if `saved.map`.
///
/// hnsw_rs 0.3.5's loader trusts its files: it reserves memory by counts and lengths read from
/// them (an absurd one aborts the process), asserts and unwraps on what it reads (panics, contained
/// below), builds slices of the dimension it read over shorter records (reads out of bounds), and
/// exits the process on some old formats. [`check_dump`] reads both files first and hands them over
/// only if they hold exactly what hnsw_rs will read without any of that.
pub(super) fn load_graph(saved: &SavedGraph) -> std::result::Result<Graph, String> {
    let SavedGraph {
        dir: dump_dir,
        points,
        dim,
        map,
    } = saved;
    let (points, dim) = (*points, *dim);
    check_dump(dump_dir, points, dim)
        .map_err(|e| format!("{} is damaged: {e}", dump_dir.display()))?;
    // Nothing checked above should make hnsw_rs panic; should it anyway, contain it and report a
    // damaged index.
    std::panic::catch_unwind(|| {
        // The loaded graph borrows its loader (which holds the map) for its whole life; loaders are
        // small and an index is loaded once per process and model, so the loader is kept for good.
        let mut io = HnswIo::new(dump_dir, BASENAME);
        io.set_options(ReloadOptions::default().set_mmap(*map));
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

// hnsw_rs 0.3.5's dump format (hnswio.rs), as `Hnsw::file_dump` writes it in `DumpMode::Full`. A
// test saves a graph and checks it here, so a release of hnsw_rs that writes anything else fails
// that test rather than making every load rebuild.
const MAGIC_DESCRIPTION: u32 = 0x002a_6779; // MAGICDESCR_4
const MAGIC_LAYER: u32 = 0x000a_676f;
const MAGIC_POINT: u32 = 0x000a_678f;
const MAGIC_DATA: u32 = 0xa67f_0000;
/// hnsw_rs's NB_LAYER_MAX: every point has this many neighbour lists, and a graph this many layers.
const LAYERS: usize = 16;
/// The most `ef_construction` a saved graph may claim (each insertion's search works with that many
/// candidates).
const MAX_EF: usize = 1 << 16;
const USIZE: usize = std::mem::size_of::<usize>();
/// Bytes of a neighbour in a full dump: data id, layer, rank, distance.
const NEIGHBOUR: usize = USIZE + 1 + 4 + 4;

/// Check the hnsw_rs dump in `dump_dir` against what it must hold (`points` codes of `dim`
/// dimensions, the data ids `0..points` once each) and against everything hnsw_rs 0.3.5's loader
/// takes on trust, with buffered reads of both files (no mapping):
///
/// - the graph file: the description (magic of the current format, full mode, M, a finite positive
///   level scale, 16 layers, a bounded ef, the point count, the dimension, the distance and type
///   names); 16 layers, each with its magic and a point count within what is left; each point with
///   its magic, a data id below `points` never seen before, its layer and rank as stored, and per
///   layer at most 2·M neighbours, each with a data id below `points`, a layer and rank that exist
///   and a distance that is a number; the entry point that exists; nothing after it;
/// - the data file: exactly as long as its header and `points` records of `dim` bytes make it,
///   each record with its magic, the data id of the graph's point in the same place, and `dim`
///   bytes.
///
/// Cost: one sequential read of each file (tens of MB for 100,000 photos), beside hnsw_rs's own.
pub(super) fn check_dump(
    dump_dir: &Path,
    points: usize,
    dim: usize,
) -> std::result::Result<(), String> {
    let graph_path = dump_dir.join(GRAPH_FILES[0]);
    let mut g = Reader::open(&graph_path)?;
    if g.u32()? != MAGIC_DESCRIPTION {
        return Err("not a current hnsw_rs graph file".into());
    }
    if g.u8()? != 1 {
        return Err("not a full dump".into());
    }
    let m = g.u8()? as usize;
    let scale = g.f64()?;
    if m < 2 || !(scale.is_finite() && scale > 0.0) {
        return Err(format!("M {m}, level scale {scale}"));
    }
    let (layers, ef) = (g.u8()? as usize, g.usize()?);
    if layers != LAYERS || ef == 0 || ef > MAX_EF {
        return Err(format!("{layers} layers, ef {ef}"));
    }
    let (held, held_dim) = (g.usize()?, g.usize()?);
    if held != points || held_dim != dim || points == 0 {
        return Err(format!(
            "{held} points of {held_dim} dimensions, expected {points} of {dim}"
        ));
    }
    // hnsw_rs compares the last path segment of the distance's type name, and the data type whole.
    let distance = g.name()?;
    let want = std::any::type_name::<CodeDistance>();
    if distance.rsplit("::").next() != want.rsplit("::").next() {
        return Err(format!("distance {distance:?}, not {want}"));
    }
    let data_type = g.name()?;
    if data_type != std::any::type_name::<i8>() {
        return Err(format!("data type {data_type:?}"));
    }
    if g.u8()? as usize != LAYERS {
        return Err("layer count".into());
    }
    // The data id of every point in file order (the data file follows that order), whether each
    // was seen, each layer's point count, and the points each layer must have for the neighbours
    // that name it.
    let mut order: Vec<usize> = Vec::with_capacity(points);
    let mut seen = vec![false; points];
    let mut layer_len = [0usize; LAYERS];
    let mut needed = [0usize; LAYERS];
    let mut neighbours = vec![0u8; 2 * m * NEIGHBOUR];
    for (l, len) in layer_len.iter_mut().enumerate() {
        if g.u32()? != MAGIC_LAYER {
            return Err(format!("layer {l}: bad magic"));
        }
        let n = g.usize()?;
        if n > points - order.len() {
            return Err(format!("layer {l}: {n} points"));
        }
        *len = n;
        for r in 0..n {
            if g.u32()? != MAGIC_POINT {
                return Err(format!("layer {l}, point {r}: bad magic"));
            }
            let id = g.usize()?;
            if id >= points || std::mem::replace(&mut seen[id], true) {
                return Err(format!("layer {l}, point {r}: data id {id}"));
            }
            order.push(id);
            if g.u8()? as usize != l || usize::try_from(g.i32()?).ok() != Some(r) {
                return Err(format!("layer {l}, point {r}: misplaced"));
            }
            for _ in 0..LAYERS {
                let count = g.usize()?;
                if count > 2 * m {
                    return Err(format!("layer {l}, point {r}: {count} neighbours"));
                }
                let list = &mut neighbours[..count * NEIGHBOUR];
                g.fill(list)?;
                for n in list.chunks_exact(NEIGHBOUR) {
                    // Data id, layer, rank, distance.
                    let word = |at: usize, len: usize| &n[at..at + len];
                    let nid = usize::from_ne_bytes(word(0, USIZE).try_into().expect("usize"));
                    let nl = n[USIZE] as usize;
                    let nr = i32::from_ne_bytes(word(USIZE + 1, 4).try_into().expect("i32"));
                    let d = f32::from_ne_bytes(word(USIZE + 5, 4).try_into().expect("f32"));
                    let nr = usize::try_from(nr)
                        .ok()
                        .filter(|_| nl < LAYERS && nid < points);
                    let Some(nr) = nr.filter(|_| !d.is_nan()) else {
                        return Err(format!("layer {l}, point {r}: bad neighbour"));
                    };
                    needed[nl] = needed[nl].max(nr + 1);
                }
            }
        }
    }
    if order.len() != points {
        return Err(format!("the layers hold {} points", order.len()));
    }
    if needed.iter().zip(&layer_len).any(|(n, len)| n > len) {
        return Err("neighbours name points that are not there".into());
    }
    let (entry, el, er) = (g.usize()?, g.u8()? as usize, g.i32()?);
    let at = usize::try_from(er)
        .ok()
        .filter(|r| el < LAYERS && *r < layer_len[el])
        .map(|r| layer_len[..el].iter().sum::<usize>() + r);
    if at.map(|at| order[at]) != Some(entry) {
        return Err("bad entry point".into());
    }
    if g.left != 0 {
        return Err(format!("{} bytes after the graph", g.left));
    }

    let data_path = dump_dir.join(GRAPH_FILES[1]);
    let mut d = Reader::open(&data_path)?;
    let want_len = (4 + 8 + 8 + dim as u64)
        .checked_mul(points as u64)
        .and_then(|n| n.checked_add(4 + USIZE as u64));
    if Some(d.left) != want_len {
        return Err(format!(
            "{} bytes of data for {points} codes of {dim} dimensions",
            d.left
        ));
    }
    if d.u32()? != MAGIC_DATA || d.usize()? != dim {
        return Err("bad data header".into());
    }
    for (i, &id) in order.iter().enumerate() {
        if d.u32()? != MAGIC_DATA || d.u64()? != id as u64 || d.u64()? != dim as u64 {
            return Err(format!("data record {i}"));
        }
        d.skip(dim)?;
    }
    Ok(())
}

/// Buffered reads of native-endian numbers (as hnsw_rs writes them) that never go past the file's
/// length as it was opened.
struct Reader {
    file: std::io::BufReader<std::fs::File>,
    left: u64,
    path: PathBuf,
}

impl Reader {
    fn open(path: &Path) -> std::result::Result<Self, String> {
        let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let left = f
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        Ok(Reader {
            file: std::io::BufReader::with_capacity(1 << 16, f),
            left,
            path: path.to_path_buf(),
        })
    }

    fn fill(&mut self, b: &mut [u8]) -> std::result::Result<(), String> {
        if self.left < b.len() as u64 {
            return Err(format!("{} is cut short", self.path.display()));
        }
        self.file
            .read_exact(b)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.left -= b.len() as u64;
        Ok(())
    }

    fn bytes<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }

    fn skip(&mut self, n: usize) -> std::result::Result<(), String> {
        if self.left < n as u64 {
            return Err(format!("{} is cut short", self.path.display()));
        }
        self.file
            .seek_relative(n as i64)
            .map_err(|e| format!("{}: {e}", self.path.display()))?;
        self.left -= n as u64;
        Ok(())
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.bytes::<1>()?[0])
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        self.bytes().map(u32::from_ne_bytes)
    }

    fn i32(&mut self) -> std::result::Result<i32, String> {
        self.bytes().map(i32::from_ne_bytes)
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        self.bytes().map(u64::from_ne_bytes)
    }

    fn f64(&mut self) -> std::result::Result<f64, String> {
        self.bytes().map(f64::from_ne_bytes)
    }

    fn usize(&mut self) -> std::result::Result<usize, String> {
        self.bytes().map(usize::from_ne_bytes)
    }

    /// A length-prefixed UTF-8 name (hnsw_rs refuses lengths over 256 and unwraps the UTF-8).
    fn name(&mut self) -> std::result::Result<String, String> {
        let len = self.usize()?;
        if len > 256 {
            return Err(format!("a name of {len} bytes"));
        }
        let mut b = vec![0; len];
        self.fill(&mut b)?;
        String::from_utf8(b).map_err(|_| "a name that is not UTF-8".to_string())
    }
}

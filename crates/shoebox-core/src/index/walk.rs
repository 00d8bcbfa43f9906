//! A flat, read-only copy of an HNSW graph (links in plain arrays, i8 codes row after row) and the
//! HNSW search over it, prefetching every neighbour's code before scoring them.
//!
//! hnsw_rs builds and saves the graph; its own search keeps every candidate behind reference-counted
//! pointers and locks, so a query spends more time on bookkeeping and waiting for memory than on
//! distances. This walk visits the same graph in the same order with none of that.
//!
//! [`WalkCell`] holds an index's current copy and its upkeep (made in the background, thrown away
//! when the graph changes).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use hnsw_rs::prelude::Hnsw;

use super::kernels::{dot_i8, CodeDistance};

const MAGIC: [u8; 8] = *b"SBWALK02";
/// Header words: magic (2), dim, slots, entry, upper layers, links, upper-layer words.
const HEADER: usize = 8;

pub(super) type WalkCell = Arc<Mutex<Walk>>;

/// The graph's flat copy for searching, and its upkeep.
#[derive(Default)]
pub(super) struct Walk {
    pub(super) flat: Option<Arc<FlatGraph>>,
    /// Bumped whenever the graph changes: a copy made from an older graph is thrown away.
    pub(super) version: u64,
    /// The thread making a copy in the background (joined before the graph changes: it reads it).
    pub(super) builder: Option<std::thread::JoinHandle<()>>,
}

impl Walk {
    pub(super) fn building(&self) -> bool {
        self.builder.as_ref().is_some_and(|h| !h.is_finished())
    }
}

/// The graph's links and codes, by slot (hnsw_rs data id), in one buffer laid out as the file
/// `walk.bin` is (so a saved one is memory-mapped as is): the header, the codes row after row
/// (padded to whole words), layer 0's offsets (slots + 1) and links, then the upper layers (per
/// layer: a count, then node, length, links).
pub(crate) struct FlatGraph {
    dim: usize,
    slots: usize,
    entry: u32,
    links_len: usize,
    /// Layers 1..: links of the few slots that reach them (parsed out of the buffer).
    upper: Vec<HashMap<u32, Vec<u32>>>,
    buf: Buf,
}

enum Buf {
    Owned(Vec<u32>),
    Mapped(memmap2::Mmap),
}

impl Buf {
    fn bytes(&self) -> &[u8] {
        match self {
            Buf::Owned(w) => bytemuck::cast_slice(w),
            Buf::Mapped(m) => &m[..],
        }
    }

    fn words(&self) -> &[u32] {
        match self {
            Buf::Owned(w) => w,
            // Checked at load: a mapping is page-aligned and its length a multiple of 4.
            Buf::Mapped(m) => bytemuck::try_cast_slice(&m[..]).unwrap_or(&[]),
        }
    }
}

/// Words holding `slots` codes of `dim` bytes.
fn code_words(slots: usize, dim: usize) -> usize {
    (slots * dim).div_ceil(4)
}

/// Upper layers a flat copy may have (hnsw_rs's graphs have 16 layers at most).
const MAX_UPPER_LAYERS: usize = 64;

/// Where the parts of a flat copy lie, in words, by its header (in checked arithmetic: a damaged
/// header gives `None`, never a wrapped length).
struct Layout {
    dim: usize,
    slots: usize,
    entry: u32,
    top: usize,
    links_len: usize,
    offsets_at: usize,
    upper_at: usize,
    /// The whole buffer.
    words: usize,
}

impl Layout {
    fn of(head: &[u32]) -> Option<Self> {
        if head.len() < HEADER || bytemuck::cast_slice::<u32, u8>(&head[..2]) != MAGIC {
            return None;
        }
        let (dim, slots, entry) = (head[2] as usize, head[3] as usize, head[4]);
        let (top, links_len, upper_words) = (head[5] as usize, head[6] as usize, head[7] as usize);
        // A graph has a node to enter it by, and few layers.
        if entry as usize >= slots || top > MAX_UPPER_LAYERS {
            return None;
        }
        let offsets_at = HEADER.checked_add(slots.checked_mul(dim)?.div_ceil(4))?;
        let upper_at = offsets_at
            .checked_add(slots)?
            .checked_add(1)?
            .checked_add(links_len)?;
        let words = upper_at.checked_add(upper_words)?;
        // Its length in bytes fits too.
        words.checked_mul(4)?;
        Some(Layout {
            dim,
            slots,
            entry,
            top,
            links_len,
            offsets_at,
            upper_at,
            words,
        })
    }
}

impl FlatGraph {
    /// Copy the links and codes out of `graph`, whose data ids are `0..slots`.
    pub(crate) fn from_hnsw(
        graph: &Hnsw<'_, i8, CodeDistance>,
        slots: usize,
        dim: usize,
    ) -> Option<Self> {
        let points = graph.get_point_indexation();
        let top = points.get_max_level_observed() as usize;
        // The header is filled in at the end; the codes go straight to their place after it.
        let mut w: Vec<u32> = vec![0; HEADER + code_words(slots, dim)];
        let mut layer0: Vec<Vec<u32>> = vec![Vec::new(); slots];
        let mut upper: Vec<Vec<(u32, Vec<u32>)>> = vec![Vec::new(); top];
        let mut entry = None;
        let mut seen = 0usize;
        for p in points {
            let slot = p.get_origin_id();
            let v = p.get_v();
            if slot >= slots || v.len() != dim {
                return None;
            }
            seen += 1;
            let codes = &mut bytemuck::cast_slice_mut::<u32, i8>(&mut w[HEADER..])[..slots * dim];
            codes[slot * dim..(slot + 1) * dim].copy_from_slice(v);
            if p.get_point_id().0 as usize == top && entry.is_none() {
                entry = Some(slot as u32);
            }
            for (layer, ns) in p.get_neighborhood_id().into_iter().enumerate() {
                let ids: Vec<u32> = ns.iter().map(|n| n.d_id as u32).collect();
                if layer == 0 {
                    layer0[slot] = ids;
                } else if layer <= top && !ids.is_empty() {
                    upper[layer - 1].push((slot as u32, ids));
                }
            }
        }
        if seen != slots {
            return None;
        }
        let links_len: usize = layer0.iter().map(Vec::len).sum();
        let upper_words: usize = upper
            .iter()
            .map(|l| 1 + l.iter().map(|(_, ids)| 2 + ids.len()).sum::<usize>())
            .sum();
        w[..2].copy_from_slice(bytemuck::cast_slice::<u8, u32>(&MAGIC));
        w[2..HEADER].copy_from_slice(&[
            dim as u32,
            slots as u32,
            entry?,
            top as u32,
            links_len as u32,
            upper_words as u32,
        ]);
        w.reserve(slots + 1 + links_len + upper_words);
        let mut at = 0u32;
        w.push(0);
        for l in &layer0 {
            at += l.len() as u32;
            w.push(at);
        }
        for l in &layer0 {
            w.extend_from_slice(l);
        }
        for layer in &upper {
            w.push(layer.len() as u32);
            for (node, ids) in layer {
                w.push(*node);
                w.push(ids.len() as u32);
                w.extend_from_slice(ids);
            }
        }
        Self::parse(Buf::Owned(w))
    }

    /// Load a saved `walk.bin` of `slots` codes of `dim` dimensions: memory-mapped if `map`, read
    /// into memory otherwise. Any damage is an error (the caller loads hnsw_rs's graph instead).
    ///
    /// A mapped file must not change while mapped: a truncation makes the next read of a lost page
    /// kill the process (SIGBUS). Dumps are written once and never modified; a library on a network
    /// or FUSE file system is read instead (`persist::may_map`), and the README asks to keep the
    /// library folder out of sync tools.
    pub(crate) fn load(path: &Path, slots: usize, dim: usize, map: bool) -> Result<Self, String> {
        let damaged = |why: &str| format!("{} is damaged: {why}", path.display());
        let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The header says how long the file must be: check that before mapping or reading it.
        let mut head = [0u32; HEADER];
        f.read_exact(bytemuck::cast_slice_mut(&mut head))
            .map_err(|_| damaged("no header"))?;
        let len = f
            .metadata()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let layout = Layout::of(&head).ok_or_else(|| damaged("bad header"))?;
        if layout.slots != slots || layout.dim != dim {
            return Err(format!(
                "{} holds {} codes of {} dimensions, expected {slots} of {dim}",
                path.display(),
                layout.slots,
                layout.dim
            ));
        }
        if len != 4 * layout.words as u64 {
            return Err(damaged(&format!(
                "{len} bytes, {} expected",
                4 * layout.words
            )));
        }
        let buf = if map {
            // SAFETY: dump files are written once into a fresh folder and never modified (see above
            // for a file truncated behind our back).
            let map = unsafe { memmap2::Mmap::map(&f) }
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if bytemuck::try_cast_slice::<u8, u32>(&map[..]).is_err() {
                return Err(damaged("misaligned"));
            }
            Buf::Mapped(map)
        } else {
            let mut w = vec![0u32; layout.words];
            f.seek(std::io::SeekFrom::Start(0))
                .and_then(|_| f.read_exact(bytemuck::cast_slice_mut(&mut w)))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            Buf::Owned(w)
        };
        Self::parse(buf).ok_or_else(|| damaged("bad layout"))
    }

    /// Check a buffer's layout and read its upper layers.
    fn parse(buf: Buf) -> Option<Self> {
        let w = buf.words();
        let layout = Layout::of(w.get(..HEADER)?)?;
        let Layout {
            dim,
            slots,
            entry,
            top,
            links_len,
            ..
        } = layout;
        if w.len() != layout.words {
            return None;
        }
        // Links and offsets are not scanned here (that would read the whole file at open): the
        // search skips any that point outside the graph.
        if w[layout.offsets_at + slots] as usize != links_len {
            return None;
        }
        let mut rest = &w[layout.upper_at..];
        let mut upper = Vec::with_capacity(top);
        for _ in 0..top {
            let (&count, r) = rest.split_first()?;
            rest = r;
            // A node takes two words at least and a layer holds a slot once at most: no count
            // read from the file reserves more than the file backs.
            let count = count as usize;
            if count > slots || count > rest.len() / 2 {
                return None;
            }
            let mut layer = HashMap::with_capacity(count);
            for _ in 0..count {
                let (&node, r) = rest.split_first()?;
                let (&len, r) = r.split_first()?;
                let ids = r.get(..len as usize)?;
                if node as usize >= slots || ids.iter().any(|&n| n as usize >= slots) {
                    return None;
                }
                layer.insert(node, ids.to_vec());
                rest = &r[len as usize..];
            }
            upper.push(layer);
        }
        if !rest.is_empty() {
            return None;
        }
        Some(FlatGraph {
            dim,
            slots,
            entry,
            links_len,
            upper,
            buf,
        })
    }

    /// Write the buffer as `walk.bin`.
    pub(crate) fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut f = std::fs::File::create(path)?;
        f.write_all(self.buf.bytes())?;
        f.sync_all()
    }

    fn offsets(&self) -> &[u32] {
        let at = HEADER + code_words(self.slots, self.dim);
        &self.buf.words()[at..at + self.slots + 1]
    }

    fn links(&self) -> &[u32] {
        let at = HEADER + code_words(self.slots, self.dim) + self.slots + 1;
        &self.buf.words()[at..at + self.links_len]
    }

    fn codes(&self) -> &[i8] {
        bytemuck::cast_slice(&self.buf.bytes()[4 * HEADER..4 * HEADER + self.slots * self.dim])
    }

    fn code(&self, slot: u32) -> &[i8] {
        let s = slot as usize * self.dim;
        &self.codes()[s..s + self.dim]
    }

    /// Larger is closer.
    fn score(&self, q: &[i8], slot: u32) -> i32 {
        dot_i8(q, self.code(slot))
    }

    fn prefetch(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = self.codes().as_ptr().wrapping_add(slot as usize * self.dim);
            let mut off = 0;
            while off < self.dim {
                // SAFETY: prefetching is a hint and never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off)) };
                off += 64;
            }
        }
    }

    /// The best `want` slots accepted by `keep` among an `ef`-wide search, best first, with their
    /// code scores.
    pub(crate) fn search(
        &self,
        q: &[i8],
        want: usize,
        ef: usize,
        keep: &dyn Fn(usize) -> bool,
    ) -> Vec<(usize, i32)> {
        let ef = ef.max(want).max(1);
        // Greedy descent through the upper layers.
        let mut ep = self.entry;
        let mut best = self.score(q, ep);
        for layer in self.upper.iter().rev() {
            loop {
                let mut moved = false;
                if let Some(ns) = layer.get(&ep) {
                    for &n in ns {
                        self.prefetch(n);
                    }
                    for &n in ns {
                        let s = self.score(q, n);
                        if s > best {
                            best = s;
                            ep = n;
                            moved = true;
                        }
                    }
                }
                if !moved {
                    break;
                }
            }
        }
        // Layer 0: best-first search with an ef-wide result list.
        let (offsets, links) = (self.offsets(), self.links());
        let slots = self.slots;
        let mut visited = vec![0u64; slots.div_ceil(64)];
        let mark = |visited: &mut Vec<u64>, s: u32| {
            let (w, b) = (s as usize / 64, s as usize % 64);
            let was = visited[w] >> b & 1 == 1;
            visited[w] |= 1 << b;
            was
        };
        mark(&mut visited, ep);
        // Candidates: max-heap by score. Results: min-heap by score (the worst on top).
        let mut candidates: BinaryHeap<(i32, u32)> = BinaryHeap::with_capacity(ef * 4);
        let mut results: BinaryHeap<Reverse<(i32, u32)>> = BinaryHeap::with_capacity(ef + 1);
        candidates.push((best, ep));
        if keep(ep as usize) {
            results.push(Reverse((best, ep)));
        }
        let mut fresh: Vec<u32> = Vec::with_capacity(64);
        while let Some((s, c)) = candidates.pop() {
            if results.len() >= ef && s < results.peek().map(|r| r.0 .0).unwrap_or(i32::MIN) {
                break;
            }
            let (a, b) = (
                offsets[c as usize] as usize,
                offsets[c as usize + 1] as usize,
            );
            fresh.clear();
            for &n in links.get(a..b).unwrap_or(&[]) {
                if (n as usize) < slots && !mark(&mut visited, n) {
                    self.prefetch(n);
                    fresh.push(n);
                }
            }
            for &n in &fresh {
                let sn = self.score(q, n);
                let worst = results.peek().map(|r| r.0 .0).unwrap_or(i32::MIN);
                if results.len() < ef || sn > worst {
                    candidates.push((sn, n));
                    if keep(n as usize) {
                        results.push(Reverse((sn, n)));
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
        }
        let mut out: Vec<(usize, i32)> = results
            .into_iter()
            .map(|Reverse((s, n))| (n as usize, s))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        out.truncate(want);
        out
    }

    /// Bytes of the buffer (mapped or owned) and the parsed upper layers.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.bytes().len()
            + self
                .upper
                .iter()
                .flat_map(|l| l.values())
                .map(|v| 4 * v.len() + 32)
                .sum::<usize>()
    }

    /// Whether the buffer is a mapped file.
    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self.buf, Buf::Mapped(_))
    }
}

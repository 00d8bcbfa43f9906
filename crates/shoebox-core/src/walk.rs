//! A flat, read-only copy of an HNSW graph (links in plain arrays, i8 codes row after row) and the
//! HNSW search over it, prefetching every neighbour's code before scoring them.
//!
//! hnsw_rs builds and saves the graph; its own search keeps every candidate behind reference-counted
//! pointers and locks, so a query spends more time on bookkeeping and waiting for memory than on
//! distances. This walk visits the same graph in the same order with none of that.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use hnsw_rs::prelude::Hnsw;

use crate::index::{dot_i8, CodeDistance};

/// The graph's links and codes, by slot (hnsw_rs data id).
pub(crate) struct FlatGraph {
    dim: usize,
    codes: Vec<i8>,
    /// Layer 0: slot `s` links to `links[offsets[s]..offsets[s + 1]]`.
    offsets: Vec<u32>,
    links: Vec<u32>,
    /// Layers 1..: links of the few slots that reach them.
    upper: Vec<HashMap<u32, Vec<u32>>>,
    entry: u32,
}

impl FlatGraph {
    /// Copy the links and codes out of `graph`, whose data ids are `0..slots`.
    pub(crate) fn from_hnsw(
        graph: &Hnsw<'static, i8, CodeDistance>,
        slots: usize,
        dim: usize,
    ) -> Option<Self> {
        let points = graph.get_point_indexation();
        let top = points.get_max_level_observed() as usize;
        let mut codes = vec![0i8; slots * dim];
        let mut layer0: Vec<Vec<u32>> = vec![Vec::new(); slots];
        let mut upper: Vec<HashMap<u32, Vec<u32>>> = vec![HashMap::new(); top];
        let mut entry = None;
        let mut seen = 0usize;
        for p in points {
            let slot = p.get_origin_id();
            let v = p.get_v();
            if slot >= slots || v.len() != dim {
                return None;
            }
            seen += 1;
            codes[slot * dim..(slot + 1) * dim].copy_from_slice(v);
            let level = p.get_point_id().0 as usize;
            if level == top && entry.is_none() {
                entry = Some(slot as u32);
            }
            for (layer, ns) in p.get_neighborhood_id().into_iter().enumerate() {
                let ids: Vec<u32> = ns.iter().map(|n| n.d_id as u32).collect();
                if layer == 0 {
                    layer0[slot] = ids;
                } else if layer <= top && !ids.is_empty() {
                    upper[layer - 1].insert(slot as u32, ids);
                }
            }
        }
        if seen != slots {
            return None;
        }
        let mut offsets = Vec::with_capacity(slots + 1);
        let mut links = Vec::with_capacity(layer0.iter().map(Vec::len).sum());
        offsets.push(0u32);
        for l in layer0 {
            links.extend_from_slice(&l);
            offsets.push(links.len() as u32);
        }
        Some(FlatGraph {
            dim,
            codes,
            offsets,
            links,
            upper,
            entry: entry?,
        })
    }

    fn code(&self, slot: u32) -> &[i8] {
        let s = slot as usize * self.dim;
        &self.codes[s..s + self.dim]
    }

    /// Larger is closer.
    fn score(&self, q: &[i8], slot: u32) -> i32 {
        dot_i8(q, self.code(slot))
    }

    fn prefetch(&self, slot: u32) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let p = self.codes.as_ptr().wrapping_add(slot as usize * self.dim);
            let mut off = 0;
            while off < self.dim {
                // SAFETY: prefetching is a hint and never faults.
                unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off) as *const i8) };
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
        let slots = self.offsets.len() - 1;
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
                self.offsets[c as usize] as usize,
                self.offsets[c as usize + 1] as usize,
            );
            fresh.clear();
            for &n in &self.links[a..b] {
                if !mark(&mut visited, n) {
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

    /// Heap bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.codes.len()
            + 4 * (self.offsets.len() + self.links.len())
            + self
                .upper
                .iter()
                .flat_map(|l| l.values())
                .map(|v| 4 * v.len() + 32)
                .sum::<usize>()
    }
}

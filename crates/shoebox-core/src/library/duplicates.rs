//! Finding duplicates in the library (exact copies by content hash; near-duplicates by neighbours
//! in the HNSW index, confirmed by perceptual hashes), and putting unwanted copies in the system
//! trash through a signed journal that undo replays.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::Library;
use crate::catalog::{DuplicateRow, ModelRef};
use crate::decode::decode_file;
use crate::duplicates::{
    keeper, phash, phash_distance, similar_aspect, DuplicateGroup, DuplicateKind, DuplicatePhoto,
    DuplicatesReport, UnionFind, DEFAULT_THRESHOLD, MAX_PHASH_DISTANCE, NEIGHBOURS, PHASH_BYTES,
};
use crate::error::{Error, Result};
use crate::files::display_path;
use crate::journal::{self, Journal, JournalKey, UndoReport};

/// What to look for duplicates in, and how alike near-duplicates must be.
#[derive(Debug, Clone, Default)]
pub struct DuplicatesRequest {
    /// Only photos under these folders (all when empty).
    pub in_dirs: Vec<PathBuf>,
    /// CLIP cosine for near-duplicates; None: [`DEFAULT_THRESHOLD`].
    pub threshold: Option<f32>,
    /// Most perceptual-hash bits near-duplicates may differ in; None: [`MAX_PHASH_DISTANCE`].
    pub max_hash_distance: Option<u32>,
}

/// Candidate search breadth for duplicate queries: neighbours this close need no deep search.
const DUPLICATE_EF: usize = 48;

impl Library {
    /// Group the library's exact copies and near-duplicates, each group with a suggested keeper.
    pub fn duplicates(&mut self, req: &DuplicatesRequest) -> Result<DuplicatesReport> {
        let start = Instant::now();
        let threshold = req.threshold.unwrap_or(DEFAULT_THRESHOLD);
        if !(threshold > 0.0 && threshold <= 1.0) {
            return Err(Error::Invalid(format!(
                "bad threshold {threshold}: use a cosine between 0 and 1 (default {DEFAULT_THRESHOLD})"
            )));
        }
        let dirs: Vec<PathBuf> = req
            .in_dirs
            .iter()
            .map(|d| std::fs::canonicalize(d).unwrap_or_else(|_| d.clone()))
            .collect();
        let mut rows: Vec<DuplicateRow> = self
            .catalog
            .duplicate_rows()?
            .into_iter()
            .filter(|r| dirs.is_empty() || dirs.iter().any(|d| r.path.starts_with(d)))
            .collect();
        let pos: HashMap<i64, usize> = rows.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let mut sets = UnionFind::new(rows.len());
        let mut first_with_hash: HashMap<Vec<u8>, usize> = HashMap::new();
        for (i, r) in rows.iter().enumerate() {
            if let Some(h) = &r.hash {
                match first_with_hash.get(h) {
                    Some(&j) => sets.union(i, j),
                    None => {
                        first_with_hash.insert(h.clone(), i);
                    }
                }
            }
        }
        let max_bits = req.max_hash_distance.unwrap_or(MAX_PHASH_DISTANCE);
        for (a, b) in self.near_pairs(&rows, &pos, threshold)? {
            let shape = |r: &DuplicateRow| (r.width, r.height);
            if !similar_aspect(shape(&rows[a]), shape(&rows[b])) {
                continue;
            }
            if self
                .phash_of(&mut rows, a)?
                .zip(self.phash_of(&mut rows, b)?)
                .is_some_and(|(x, y)| phash_distance(&x, &y) <= max_bits)
            {
                sets.union(a, b);
            }
        }
        let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
        for i in 0..rows.len() {
            members.entry(sets.find(i)).or_default().push(i);
        }
        let mut groups: Vec<DuplicateGroup> = members
            .into_values()
            .filter(|m| m.len() > 1)
            .map(|m| {
                let exact = m
                    .iter()
                    .all(|&i| rows[i].hash.is_some() && rows[i].hash == rows[m[0]].hash);
                let mut photos: Vec<DuplicatePhoto> = m
                    .iter()
                    .map(|&i| {
                        let r = &rows[i];
                        DuplicatePhoto {
                            path: display_path(&r.path),
                            width: r.width,
                            height: r.height,
                            size: r.size,
                            taken_at: r.taken_at.clone(),
                            keep: false,
                            photo_id: r.id,
                            abs_path: r.path.clone(),
                            ext: r.ext.clone(),
                            date: crate::search::date_key(r.taken_at.as_deref(), r.mtime_ns),
                        }
                    })
                    .collect();
                let k = keeper(&photos);
                photos[k].keep = true;
                photos.sort_by(|a, b| b.keep.cmp(&a.keep).then(a.path.cmp(&b.path)));
                DuplicateGroup {
                    kind: if exact {
                        DuplicateKind::Exact
                    } else {
                        DuplicateKind::Near
                    },
                    photos,
                }
            })
            .collect();
        groups.sort_by(|a, b| a.photos[0].path.cmp(&b.photos[0].path));
        Ok(DuplicatesReport {
            threshold,
            groups,
            took_ms: start.elapsed().as_secs_f64() * 1e3,
        })
    }

    /// Pairs (as positions in `rows`, lower first) of different files whose CLIP vectors are at
    /// least `threshold` alike: each photo asks the index for its nearest neighbours.
    fn near_pairs(
        &mut self,
        rows: &[DuplicateRow],
        pos: &HashMap<i64, usize>,
        threshold: f32,
    ) -> Result<Vec<(usize, usize)>> {
        let model = self.model_name();
        let Some(ModelRef { id: model_id, dim }) = self.catalog.find_model(&model)? else {
            return Ok(Vec::new());
        };
        self.ensure_index(&model, model_id, dim)?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut pairs: HashSet<(usize, usize)> = HashSet::new();
        let index = self.index.as_mut().expect("ensured");
        let ef = index.ef_search();
        index.set_ef_search(DUPLICATE_EF);
        let index = &*index;
        let keep = |id: i64| pos.contains_key(&id);
        for chunk in ids.chunks(4096) {
            let vectors = self.catalog.embeddings(model_id, chunk)?;
            let work: Vec<(i64, &Vec<f32>)> = chunk
                .iter()
                .filter_map(|id| vectors.get(id).map(|v| (*id, v)))
                .collect();
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(8);
            let per = work.len().div_ceil(threads).max(1);
            let found: Vec<Vec<(usize, usize)>> = std::thread::scope(|s| {
                let handles: Vec<_> = work
                    .chunks(per)
                    .map(|part| {
                        s.spawn(move || {
                            let mut out = Vec::new();
                            for (id, v) in part {
                                let a = pos[id];
                                for (other, score) in index.search(v, NEIGHBOURS, Some(&keep)) {
                                    if other != *id && score >= threshold {
                                        let b = pos[&other];
                                        out.push((a.min(b), a.max(b)));
                                    }
                                }
                            }
                            out
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            });
            pairs.extend(found.into_iter().flatten());
        }
        self.index.as_mut().expect("ensured").set_ef_search(ef);
        let mut pairs: Vec<(usize, usize)> = pairs
            .into_iter()
            .filter(|(a, b)| rows[*a].hash.is_none() || rows[*a].hash != rows[*b].hash)
            .collect();
        pairs.sort_unstable();
        Ok(pairs)
    }

    /// A photo's perceptual hash: stored, or computed now (photos indexed before hashes were kept)
    /// and stored. None when the file cannot be read any more.
    fn phash_of(&mut self, rows: &mut [DuplicateRow], i: usize) -> Result<Option<Vec<u8>>> {
        if let Some(h) = rows[i].phash.as_ref().filter(|h| h.len() == PHASH_BYTES) {
            return Ok(Some(h.clone()));
        }
        let Ok(d) = decode_file(&rows[i].path, 64) else {
            return Ok(None);
        };
        let h = phash(&d.image);
        self.catalog.set_phashes(&[(rows[i].id, h.clone())])?;
        rows[i].phash = Some(h.clone());
        Ok(Some(h))
    }

    /// Put library photos in the system trash (never deleted outright), journaling each first in a
    /// journal signed with this library's key (in `<library>/journals/`), then rescan. Files that
    /// are not library photos are refused before anything moves.
    pub fn trash_photos(&mut self, paths: &[PathBuf]) -> Result<Journal> {
        self.lock_for_writing()?;
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let canon = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
            if self.catalog.photo_id_at(&canon)?.is_none() {
                return Err(Error::NotInLibrary(p.clone()));
            }
            files.push(canon);
        }
        let key = JournalKey::open_or_create(self.dir())?;
        let trashed = journal::trash_files(&key, &self.journals_dir(), &files);
        let rescanned = self.scan();
        let journal = match trashed {
            Ok(j) => j,
            Err((error, Some(j))) => {
                return Err(Error::PartlyApplied {
                    done: j.entries.len().saturating_sub(1),
                    journal: j.path,
                    source: Box::new(error),
                })
            }
            Err((error, None)) => return Err(error),
        };
        rescanned?;
        Ok(journal)
    }

    /// Take the files of a trash journal of this library back out of the trash, then rescan.
    pub fn undo_trash_file(&mut self, journal_path: &Path) -> Result<UndoReport> {
        self.lock_for_writing()?;
        let key = JournalKey::open_or_create(self.dir())?;
        let j = journal::read(journal_path, &key)?;
        self.undo_trash(&j)
    }

    /// [`Library::undo_trash_file`] from the journal in memory (the app keeps the last one).
    pub fn undo_trash(&mut self, j: &Journal) -> Result<UndoReport> {
        self.lock_for_writing()?;
        let report = journal::untrash(j)?;
        self.scan()?;
        Ok(report)
    }

    /// Where trash journals are kept.
    pub fn journals_dir(&self) -> PathBuf {
        self.dir().join("journals")
    }
}

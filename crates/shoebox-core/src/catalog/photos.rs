//! The catalog's photos: what scans record, what the pipeline reads and writes (metadata,
//! embeddings, failures, in one transaction per batch), and what the index and searches read back.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, OptionalExtension, Transaction};

use super::*;
use crate::error::Result;
use crate::places::Place;

impl Catalog {
    // ---- scan ----

    /// Every photo under a root, keyed by relative path.
    pub fn known_files(&self, root_id: i64) -> Result<HashMap<PathBuf, KnownFile>> {
        let mut st = self
            .conn
            .prepare("SELECT id, rel_path, size, mtime_ns, hash FROM photos WHERE root_id = ?1")?;
        let rows = st.query_map([root_id], |r| {
            Ok((
                bytes_to_path(r.get(1)?),
                KnownFile {
                    id: r.get(0)?,
                    size: r.get::<_, i64>(2)? as u64,
                    mtime_ns: r.get(3)?,
                    hash: r.get(4)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Apply a scan's findings atomically.
    pub fn apply_scan(&mut self, c: &ScanChanges) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut del_issues = tx.prepare("DELETE FROM scan_issues WHERE root_id = ?1")?;
            for r in &c.roots {
                del_issues.execute([r])?;
            }
            let mut ins_issue = tx.prepare(
                "INSERT OR REPLACE INTO scan_issues (root_id, rel_path, reason) VALUES (?1, ?2, ?3)",
            )?;
            for (root, rel, reason) in &c.issues {
                ins_issue.execute(params![root, path_to_bytes(rel), reason])?;
            }
            let mut del = tx.prepare("DELETE FROM photos WHERE id = ?1")?;
            for id in &c.removed {
                del.execute([id])?;
            }
            // Moves first: a moved file may take the path of a removed one.
            let mut mv = tx.prepare(
                "UPDATE photos SET root_id = ?2, rel_path = ?3, ext = ?4, mtime_ns = ?5 WHERE id = ?1",
            )?;
            for (id, f) in &c.moved {
                mv.execute(params![
                    id,
                    f.root_id,
                    path_to_bytes(&f.rel_path),
                    f.ext,
                    f.mtime_ns
                ])?;
            }
            let mut ch = tx.prepare(
                "UPDATE photos SET size = ?2, mtime_ns = ?3, hash = NULL, status = 'pending', failure = NULL \
                 WHERE id = ?1",
            )?;
            let mut drop_emb = tx.prepare("DELETE FROM embeddings WHERE photo_id = ?1")?;
            for (id, f) in &c.changed {
                ch.execute(params![id, f.size as i64, f.mtime_ns])?;
                drop_emb.execute([id])?;
            }
            let mut ins = tx.prepare(
                "INSERT INTO photos (root_id, rel_path, ext, size, mtime_ns) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for f in &c.added {
                ins.execute(params![
                    f.root_id,
                    path_to_bytes(&f.rel_path),
                    f.ext,
                    f.size as i64,
                    f.mtime_ns
                ])?;
            }
            let mut clear =
                tx.prepare("UPDATE photos SET raw_original = NULL WHERE root_id = ?1 AND raw_original IS NOT NULL")?;
            for r in &c.walked {
                clear.execute([r])?;
            }
            let mut orig = tx.prepare(
                "UPDATE photos SET raw_original = ?3 WHERE root_id = ?1 AND rel_path = ?2",
            )?;
            for (root, jpeg, raw) in &c.originals {
                orig.execute(params![root, path_to_bytes(jpeg), path_to_bytes(raw)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- pipeline ----

    /// Photos that still need work for `model_id`: never read, changed, or lacking its embedding.
    /// Failed photos wait until the file changes.
    pub fn pending_work(&self, model_id: Option<i64>) -> Result<Vec<WorkItem>> {
        let mut st = self.conn.prepare(
            "SELECT p.id, r.path, p.rel_path FROM photos p JOIN roots r ON r.id = p.root_id \
             WHERE p.status != 'failed' AND NOT EXISTS \
               (SELECT 1 FROM embeddings e WHERE e.photo_id = p.id AND e.model_id = ?1) \
             ORDER BY p.id",
        )?;
        let rows = st.query_map([model_id.unwrap_or(-1)], |r| {
            let root = bytes_to_path(r.get(1)?);
            let rel = bytes_to_path(r.get(2)?);
            Ok(WorkItem {
                id: r.get(0)?,
                path: root.join(rel),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Record a batch of pipeline outcomes in one transaction. Photos deleted meanwhile are skipped.
    pub fn record(&mut self, model_id: i64, outcomes: &[Outcome]) -> Result<()> {
        let tx = self.conn.transaction()?;
        record_in(&tx, model_id, outcomes)?;
        tx.commit()?;
        Ok(())
    }

    // ---- index ----

    /// Ids of photos that have an embedding for the model, ascending.
    pub fn embedding_ids(&self, model_id: i64) -> Result<Vec<i64>> {
        let mut st = self
            .conn
            .prepare("SELECT photo_id FROM embeddings WHERE model_id = ?1 ORDER BY photo_id")?;
        let rows = st.query_map([model_id], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Call `f` for every (photo id, vector) of the model written after embedding row `since`
    /// (0: all), in write order.
    pub fn for_each_embedding_since(
        &self,
        model_id: i64,
        since: i64,
        mut f: impl FnMut(i64, Vec<f32>) -> Result<()>,
    ) -> Result<()> {
        let mut st = self.conn.prepare(
            "SELECT photo_id, vector FROM embeddings WHERE model_id = ?1 AND id > ?2 ORDER BY id",
        )?;
        let mut rows = st.query([model_id, since])?;
        while let Some(r) = rows.next()? {
            let blob: Vec<u8> = r.get(1)?;
            f(r.get(0)?, blob_to_vec(&blob))?;
        }
        Ok(())
    }

    /// The newest embedding row id (0 when there are none): with AUTOINCREMENT it only grows.
    pub fn last_embedding_row(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT COALESCE(MAX(id), 0) FROM embeddings", [], |r| {
                r.get(0)
            })?)
    }

    /// The vector of one photo for a model.
    pub fn embedding(&self, model_id: i64, photo_id: i64) -> Result<Option<Vec<f32>>> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT vector FROM embeddings WHERE model_id = ?1 AND photo_id = ?2",
                [model_id, photo_id],
                |r| r.get(0),
            )
            .optional()?;
        Ok(blob.map(|b| blob_to_vec(&b)))
    }

    /// The vectors of several photos for a model, in one query (photos without one are left out).
    pub fn embeddings(&self, model_id: i64, photo_ids: &[i64]) -> Result<HashMap<i64, Vec<f32>>> {
        if photo_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut st = self.conn.prepare_cached(
            "SELECT photo_id, vector FROM embeddings \
             WHERE model_id = ?1 AND photo_id IN (SELECT value FROM json_each(?2))",
        )?;
        let rows = st.query_map(params![model_id, id_list(photo_ids)], |r| {
            Ok((r.get(0)?, blob_to_vec(&r.get::<_, Vec<u8>>(1)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The indexed photo at an absolute path, if any (used to reuse stored embeddings).
    pub fn photo_id_at(&self, path: &Path) -> Result<Option<i64>> {
        for root in self.roots()? {
            if let Ok(rel) = path.strip_prefix(&root.path) {
                return Ok(self
                    .conn
                    .query_row(
                        "SELECT id FROM photos WHERE root_id = ?1 AND rel_path = ?2",
                        params![root.id, path_to_bytes(rel)],
                        |r| r.get(0),
                    )
                    .optional()?);
            }
        }
        Ok(None)
    }

    // ---- search ----

    const INFO_SELECT: &'static str = "SELECT p.id, r.path, p.rel_path, p.ext, p.width, p.height, \
        p.taken_at, p.mtime_ns, p.camera_make, p.camera_model, p.lat, p.lon, p.taken_offset, \
        pl.city, pl.region, pl.cc FROM photos p JOIN roots r ON r.id = p.root_id \
        LEFT JOIN places pl ON pl.id = p.place_id";

    fn info_row(r: &rusqlite::Row) -> rusqlite::Result<PhotoInfo> {
        let root = bytes_to_path(r.get(1)?);
        Ok(PhotoInfo {
            id: r.get(0)?,
            path: root.join(bytes_to_path(r.get(2)?)),
            ext: r.get(3)?,
            width: r.get(4)?,
            height: r.get(5)?,
            taken_at: r.get(6)?,
            mtime_ns: r.get(7)?,
            camera_make: r.get(8)?,
            camera_model: r.get(9)?,
            lat: r.get(10)?,
            lon: r.get(11)?,
            taken_offset: r.get(12)?,
            place: match (r.get(13)?, r.get(14)?, r.get(15)?) {
                (Some(city), Some(region), Some(cc)) => Some(Place { city, region, cc }),
                _ => None,
            },
        })
    }

    /// Rows for the given photo ids (missing ids — deleted photos — are left out), in one query.
    pub fn photo_infos(&self, ids: &[i64]) -> Result<HashMap<i64, PhotoInfo>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut st = self.conn.prepare_cached(&format!(
            "{} WHERE p.id IN (SELECT value FROM json_each(?1))",
            Self::INFO_SELECT
        ))?;
        let rows = st.query_map([id_list(ids)], |r| {
            let info = Self::info_row(r)?;
            Ok((info.id, info))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every indexed photo (status ok), for the filtered timeline.
    pub fn ok_infos(&self) -> Result<Vec<PhotoInfo>> {
        let mut st = self
            .conn
            .prepare(&format!("{} WHERE p.status = 'ok'", Self::INFO_SELECT))?;
        let rows = st.query_map([], Self::info_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The unfiltered timeline: how many indexed photos each month has ('YYYY-MM', newest first).
    pub fn months(&self) -> Result<Vec<(String, usize)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT substr(date_key, 1, 7) AS m, COUNT(*) FROM photos \
             WHERE status = 'ok' AND date_key IS NOT NULL GROUP BY m ORDER BY m DESC",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// A page of the unfiltered timeline: photo ids and dates, newest first.
    pub fn timeline_page(&self, offset: usize, limit: usize) -> Result<Vec<(i64, String)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, date_key FROM photos WHERE status = 'ok' AND date_key IS NOT NULL \
             ORDER BY date_key DESC, id DESC LIMIT ?1 OFFSET ?2",
        )?;
        let rows = st.query_map([limit as i64, offset as i64], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The RAW file a JPEG was shot with (absolute path), when the scan paired them.
    pub fn raw_original(&self, id: i64) -> Result<Option<PathBuf>> {
        Ok(self
            .conn
            .query_row(
                "SELECT r.path, p.raw_original FROM photos p JOIN roots r ON r.id = p.root_id \
                 WHERE p.id = ?1 AND p.raw_original IS NOT NULL",
                [id],
                |r| Ok(bytes_to_path(r.get(0)?).join(bytes_to_path(r.get(1)?))),
            )
            .optional()?)
    }

    // ---- duplicates ----

    /// Every indexed photo with what the duplicate finder needs.
    pub fn duplicate_rows(&self) -> Result<Vec<DuplicateRow>> {
        let mut st = self.conn.prepare(
            "SELECT p.id, r.path, p.rel_path, p.ext, p.width, p.height, p.size, p.taken_at, \
             p.mtime_ns, p.hash, p.phash FROM photos p JOIN roots r ON r.id = p.root_id \
             WHERE p.status = 'ok' ORDER BY p.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(DuplicateRow {
                id: r.get(0)?,
                path: bytes_to_path(r.get(1)?).join(bytes_to_path(r.get(2)?)),
                ext: r.get(3)?,
                width: r.get(4)?,
                height: r.get(5)?,
                size: r.get::<_, i64>(6)? as u64,
                taken_at: r.get(7)?,
                mtime_ns: r.get(8)?,
                hash: r.get(9)?,
                phash: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Store perceptual hashes computed after indexing.
    pub fn set_phashes(&mut self, rows: &[(i64, Vec<u8>)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached("UPDATE photos SET phash = ?2 WHERE id = ?1")?;
            for (id, h) in rows {
                st.execute(params![id, h])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    // ---- places ----

    /// Indexed photos read before positions were kept: their EXIF is read again once.
    pub fn photos_to_reread(&self, limit: usize) -> Result<Vec<(i64, PathBuf)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT p.id, r.path, p.rel_path FROM photos p JOIN roots r ON r.id = p.root_id \
             WHERE p.status = 'ok' AND p.meta_version = 0 LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| {
            Ok((
                r.get(0)?,
                bytes_to_path(r.get(1)?).join(bytes_to_path(r.get(2)?)),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Store what a second read of EXIF found (None: the file could not be read; it stays as it was).
    pub fn set_reread(
        &mut self,
        rows: &[(i64, Option<(Option<(f64, f64)>, Option<String>)>)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut found = tx.prepare_cached(
                "UPDATE photos SET lat = ?2, lon = ?3, taken_offset = ?4, place_id = NULL, geocoded = 0, \
                 meta_version = 1 WHERE id = ?1",
            )?;
            let mut unread =
                tx.prepare_cached("UPDATE photos SET meta_version = 1 WHERE id = ?1")?;
            for (id, r) in rows {
                match r {
                    Some((gps, offset)) => {
                        found.execute(params![id, gps.map(|g| g.0), gps.map(|g| g.1), offset])?
                    }
                    None => unread.execute([id])?,
                };
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Photos with a position that has not been reverse-geocoded yet.
    pub fn photos_to_geocode(&self, limit: usize) -> Result<Vec<(i64, f64, f64)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, lat, lon FROM photos WHERE lat IS NOT NULL AND lon IS NOT NULL \
             AND geocoded = 0 LIMIT ?1",
        )?;
        let rows = st.query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Store places found for photos (None: no town near its position).
    pub fn set_places(&mut self, rows: &[(i64, Option<Place>)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO places (city, region, cc) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (city, region, cc) DO UPDATE SET city = city RETURNING id",
            )?;
            let mut set =
                tx.prepare_cached("UPDATE photos SET place_id = ?2, geocoded = 1 WHERE id = ?1")?;
            for (id, place) in rows {
                let pid: Option<i64> = match place {
                    Some(p) => {
                        Some(upsert.query_row(params![p.city, p.region, p.cc], |r| r.get(0))?)
                    }
                    None => None,
                };
                set.execute(params![id, pid])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Places some photo of the library was taken at (cheap: one index probe per place).
    pub fn places_in_use(&self) -> Result<Vec<Place>> {
        let mut st = self.conn.prepare_cached(
            "SELECT city, region, cc FROM places pl \
             WHERE EXISTS (SELECT 1 FROM photos p WHERE p.place_id = pl.id)",
        )?;
        let rows = st.query_map([], |r| {
            Ok(Place {
                city: r.get(0)?,
                region: r.get(1)?,
                cc: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The library's places with how many indexed photos each has, most photos first.
    pub fn place_counts(&self) -> Result<Vec<(Place, usize)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT pl.city, pl.region, pl.cc, COUNT(*) AS n FROM photos p \
             JOIN places pl ON pl.id = p.place_id WHERE p.status = 'ok' \
             GROUP BY pl.id ORDER BY n DESC, pl.cc, pl.city",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                Place {
                    city: r.get(0)?,
                    region: r.get(1)?,
                    cc: r.get(2)?,
                },
                r.get::<_, i64>(3)? as usize,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every photo with an embedding for the model (for filtered search).
    pub fn embedded_infos(&self, model_id: i64) -> Result<Vec<PhotoInfo>> {
        let mut st = self.conn.prepare(&format!(
            "{} JOIN embeddings e ON e.photo_id = p.id AND e.model_id = ?1",
            Self::INFO_SELECT
        ))?;
        let rows = st.query_map([model_id], Self::info_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn record_in(tx: &Transaction, model_id: i64, outcomes: &[Outcome]) -> Result<()> {
    let mut ok = tx.prepare_cached(
        "UPDATE photos SET size = ?2, mtime_ns = ?3, hash = ?4, width = ?5, height = ?6, orientation = ?7, \
         taken_at = ?8, camera_make = ?9, camera_model = ?10, status = 'ok', failure = NULL, \
         lat = ?11, lon = ?12, taken_offset = ?13, date_key = ?14, place_id = NULL, geocoded = 0, \
         meta_version = 1, phash = ?15 WHERE id = ?1",
    )?;
    let mut emb = tx.prepare_cached(
        "INSERT OR REPLACE INTO embeddings (photo_id, model_id, vector) VALUES (?1, ?2, ?3)",
    )?;
    let mut fail = tx.prepare_cached(
        "UPDATE photos SET status = 'failed', failure = ?2, size = COALESCE(?3, size), \
         mtime_ns = COALESCE(?4, mtime_ns) WHERE id = ?1",
    )?;
    for o in outcomes {
        match o {
            Outcome::Embedded { id, meta, vector } => {
                let n = ok.execute(params![
                    id,
                    meta.size as i64,
                    meta.mtime_ns,
                    meta.hash,
                    meta.width,
                    meta.height,
                    meta.orientation,
                    meta.taken_at,
                    meta.camera_make,
                    meta.camera_model,
                    meta.gps.map(|g| g.0),
                    meta.gps.map(|g| g.1),
                    meta.taken_offset,
                    crate::search::date_key(meta.taken_at.as_deref(), meta.mtime_ns),
                    meta.phash,
                ])?;
                if n > 0 {
                    emb.execute(params![id, model_id, vec_to_blob(vector)])?;
                }
            }
            Outcome::Failed {
                id,
                reason,
                size,
                mtime_ns,
            } => {
                fail.execute(params![id, reason, size.map(|s| s as i64), mtime_ns])?;
            }
        }
    }
    Ok(())
}

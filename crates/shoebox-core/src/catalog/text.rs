//! Text the catalog keeps about photos for keyword search: OCR results, and queries against the
//! `photo_text` FTS5 index (file path, captions, tags, recognised text) that triggers keep in step.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::*;
use crate::error::Result;
use crate::ocr::OcrText;

/// Where a library's OCR stands (`status --json` "ocr").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct OcrStats {
    /// Photos read (with or without text found).
    pub read: u64,
    /// Of those, photos in which text was found.
    pub with_text: u64,
    /// Photos OCR failed on (the reason is recorded).
    pub failed: u64,
}

/// What the catalog knows of one photo's OCR.
#[derive(Debug, Clone, PartialEq)]
pub enum OcrState {
    Read { text: String, langs: String },
    Failed { reason: String },
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl Catalog {
    /// Indexed photos (status ok) with no OCR result in `langs`, newest first (what was just added
    /// is what a person looks for next). With `gated_by`
    /// (a CLIP model id), photos the gate already judged text-free for that model are left out.
    pub fn ocr_work(&self, langs: &str, gated_by: Option<i64>) -> Result<Vec<WorkItem>> {
        let mut st = self.conn.prepare(
            "SELECT p.id, r.path, p.rel_path FROM photos p JOIN roots r ON r.id = p.root_id \
             WHERE p.status = 'ok' \
               AND NOT EXISTS (SELECT 1 FROM ocr o WHERE o.photo_id = p.id AND o.langs = ?1) \
               AND NOT EXISTS (SELECT 1 FROM derived d WHERE d.photo_id = p.id \
                               AND d.kind = 'ocr_gate' AND d.model_id = ?2) \
             ORDER BY p.id DESC",
        )?;
        let rows = st.query_map(params![langs, gated_by.unwrap_or(-1)], |r| {
            Ok(WorkItem {
                id: r.get(0)?,
                path: bytes_to_path(r.get(1)?).join(bytes_to_path(r.get(2)?)),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Mark photos the OCR gate judged text-free for CLIP model `model_id` (a changed file loses
    /// the mark with everything else derived from it).
    pub fn mark_ocr_gated(&mut self, model_id: i64, ids: &[i64]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT OR IGNORE INTO derived (photo_id, kind, model_id) \
                 SELECT id, ?2, ?3 FROM photos WHERE id = ?1",
            )?;
            for id in ids {
                st.execute(params![id, DerivedKind::OcrGate, model_id])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Store what OCR read in a photo (a photo deleted meanwhile is skipped).
    pub fn set_ocr(&self, photo_id: i64, langs: &str, read: &OcrText) -> Result<bool> {
        let words = serde_json::to_string(
            &read
                .words
                .iter()
                .map(|w| (w.text.as_str(), (w.conf * 10.0).round() / 10.0))
                .collect::<Vec<_>>(),
        )
        .expect("words serialize");
        let n = self.conn.execute(
            "INSERT OR REPLACE INTO ocr (photo_id, langs, text, words, error, created_at) \
             SELECT id, ?2, ?3, ?4, NULL, ?5 FROM photos WHERE id = ?1",
            params![photo_id, langs, read.text, words, unix_now()],
        )?;
        Ok(n > 0)
    }

    /// Record why OCR failed on a photo, so it is not tried again until the file changes.
    pub fn set_ocr_failure(&self, photo_id: i64, langs: &str, reason: &str) -> Result<bool> {
        let n = self.conn.execute(
            "INSERT OR REPLACE INTO ocr (photo_id, langs, text, words, error, created_at) \
             SELECT id, ?2, '', '[]', ?3, ?4 FROM photos WHERE id = ?1",
            params![photo_id, langs, reason, unix_now()],
        )?;
        Ok(n > 0)
    }

    /// A photo's OCR result, if it has one.
    pub fn ocr_state(&self, photo_id: i64) -> Result<Option<OcrState>> {
        Ok(self
            .conn
            .query_row(
                "SELECT text, langs, error FROM ocr WHERE photo_id = ?1",
                [photo_id],
                |r| {
                    let error: Option<String> = r.get(2)?;
                    Ok(match error {
                        Some(reason) => OcrState::Failed { reason },
                        None => OcrState::Read {
                            text: r.get(0)?,
                            langs: r.get(1)?,
                        },
                    })
                },
            )
            .optional()?)
    }

    /// The recognised text of the given photos that have any.
    pub fn ocr_texts(&self, ids: &[i64]) -> Result<HashMap<i64, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut st = self.conn.prepare_cached(
            "SELECT photo_id, text FROM ocr \
             WHERE photo_id IN (SELECT value FROM json_each(?1)) AND text != ''",
        )?;
        let rows = st.query_map([id_list(ids)], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Counts for `status`.
    pub fn ocr_stats(&self) -> Result<OcrStats> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FILTER (WHERE error IS NULL), \
                    COUNT(*) FILTER (WHERE error IS NULL AND text != ''), \
                    COUNT(*) FILTER (WHERE error IS NOT NULL) FROM ocr",
            [],
            |r| {
                Ok(OcrStats {
                    read: r.get::<_, i64>(0)? as u64,
                    with_text: r.get::<_, i64>(1)? as u64,
                    failed: r.get::<_, i64>(2)? as u64,
                })
            },
        )?)
    }

    /// Indexed photos whose words match an FTS5 query, best first by bm25 (scores: higher is
    /// better), at most `limit`.
    pub fn keyword_rank(&self, fts_query: &str, limit: usize) -> Result<Vec<(i64, f32)>> {
        let mut st = self.conn.prepare_cached(
            "SELECT t.rowid, bm25(photo_text) FROM photo_text t \
             JOIN photos p ON p.id = t.rowid AND p.status = 'ok' \
             WHERE photo_text MATCH ?1 ORDER BY bm25(photo_text), t.rowid LIMIT ?2",
        )?;
        let rows = st.query_map(params![fts_query, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, -(r.get::<_, f64>(1)? as f32)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// In how many photos a word (as the keyword index folds it: lower case, no accents) is.
    pub fn word_frequency(&self, word: &str) -> Result<u64> {
        let docs: i64 = self
            .conn
            .prepare_cached("SELECT doc FROM photo_text_terms WHERE term = ?1")?
            .query_row([word], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        Ok(docs as u64)
    }

    /// Leave out of a keyword query's ranking words that are in more than
    /// [`COMMON_WORD_SHARE`](crate::search::COMMON_WORD_SHARE) of the photos (and more than 50): a
    /// word of most photos ("img" of IMG_1234.jpg) tells them apart no better than bm25's
    /// near-zero weight for it says, and scoring all its photos is what a keyword query costs.
    /// Returns the words left out.
    pub fn drop_common_words(&self, k: &mut crate::search::KeywordQuery) -> Result<Vec<String>> {
        let mut common = Vec::new();
        if k.words.is_empty() {
            return Ok(common);
        }
        let total: i64 = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM photos")?
            .query_row([], |r| r.get(0))?;
        for w in &k.words {
            let docs = self.word_frequency(w)?;
            if docs > 50 && docs as f64 > crate::search::COMMON_WORD_SHARE * total as f64 {
                common.push(w.clone());
            }
        }
        k.words.retain(|w| !common.contains(w));
        Ok(common)
    }

    /// Every indexed photo whose words match an FTS5 query.
    pub fn keyword_matches(&self, fts_query: &str) -> Result<HashSet<i64>> {
        let mut st = self.conn.prepare_cached(
            "SELECT t.rowid FROM photo_text t JOIN photos p ON p.id = t.rowid AND p.status = 'ok' \
             WHERE photo_text MATCH ?1",
        )?;
        let rows = st.query_map([fts_query], |r| r.get::<_, i64>(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

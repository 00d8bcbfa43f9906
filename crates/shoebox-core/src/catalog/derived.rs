//! What the catalog derives from photos besides embeddings: captions, tags (automatic and the
//! user's), the passes that made them, and caption embeddings.

use std::collections::HashMap;

use rusqlite::params;

use super::*;
use crate::error::Result;
use crate::tags::{Tag, TagCount, TagSource};

impl Catalog {
    // ---- captions ----

    /// Indexed photos (status ok) that lack a caption from `model_id`, in id order.
    pub fn caption_work(&self, model_id: i64) -> Result<Vec<WorkItem>> {
        let mut st = self.conn.prepare(
            "SELECT p.id, r.path, p.rel_path FROM photos p JOIN roots r ON r.id = p.root_id \
             WHERE p.status = 'ok' AND NOT EXISTS \
               (SELECT 1 FROM captions c WHERE c.photo_id = p.id AND c.model_id = ?1) \
             ORDER BY p.id",
        )?;
        let rows = st.query_map([model_id], |r| {
            Ok(WorkItem {
                id: r.get(0)?,
                path: bytes_to_path(r.get(1)?).join(bytes_to_path(r.get(2)?)),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Store a photo's caption (a photo deleted meanwhile is skipped). Returns whether it was stored.
    pub fn set_caption(&self, photo_id: i64, model_id: i64, text: &str) -> Result<bool> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let n = self.conn.execute(
            "INSERT OR REPLACE INTO captions (photo_id, model_id, text, created_at) \
             SELECT id, ?2, ?3, ?4 FROM photos WHERE id = ?1",
            params![photo_id, model_id, text, now],
        )?;
        Ok(n > 0)
    }

    /// Captions of the given photos: from `model_id` when it has one, else the newest from any model.
    /// One query for all of them.
    pub fn captions(&self, ids: &[i64], model_id: Option<i64>) -> Result<HashMap<i64, String>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut st = self.conn.prepare_cached(
            "SELECT photo_id, text FROM (SELECT photo_id, text, ROW_NUMBER() OVER \
               (PARTITION BY photo_id ORDER BY (model_id = ?2) DESC, created_at DESC, model_id DESC) AS n \
               FROM captions WHERE photo_id IN (SELECT value FROM json_each(?1))) \
             WHERE n = 1",
        )?;
        let rows = st.query_map(params![id_list(ids), model_id.unwrap_or(-1)], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// How many photos have a caption from `model_id`.
    pub fn caption_count(&self, model_id: i64) -> Result<u64> {
        Ok(self.conn.query_row(
            "SELECT COUNT(*) FROM captions WHERE model_id = ?1",
            [model_id],
            |r| r.get::<_, i64>(0),
        )? as u64)
    }

    // ---- tags ----

    /// Photo ids with a row in `table` for `model_id` but no `derived` mark of `kind` for
    /// `mark_model`.
    pub fn undone(
        &self,
        table: DerivedFrom,
        model_id: i64,
        kind: DerivedKind,
        mark_model: i64,
    ) -> Result<Vec<i64>> {
        // The table name is one of the enum's fixed names, never text from outside.
        let table = table.as_str();
        let mut st = self.conn.prepare(&format!(
            "SELECT t.photo_id FROM {table} t WHERE t.model_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM derived d WHERE d.photo_id = t.photo_id AND d.kind = ?2 AND d.model_id = ?3) \
             ORDER BY t.photo_id"
        ))?;
        let rows = st.query_map(params![model_id, kind, mark_model], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Store automatic tags of photos (replacing that source's earlier ones) and mark the pass
    /// done, in one transaction. Tags the user removed from a photo are skipped; photos deleted
    /// meanwhile are skipped.
    pub fn set_auto_tags(
        &mut self,
        source: TagSource,
        kind: DerivedKind,
        mark_model: i64,
        items: &[(i64, Vec<(String, f32)>)],
    ) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut del =
                tx.prepare_cached("DELETE FROM tags WHERE photo_id = ?1 AND source = ?2")?;
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO tags (photo_id, tag, source, score) \
                 SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM photos WHERE id = ?1) \
                 AND NOT EXISTS (SELECT 1 FROM removed_tags WHERE photo_id = ?1 AND tag = ?2)",
            )?;
            let mut mark = tx.prepare_cached(
                "INSERT OR IGNORE INTO derived (photo_id, kind, model_id) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM photos WHERE id = ?1)",
            )?;
            for (photo_id, tags) in items {
                del.execute(params![photo_id, source])?;
                for (tag, score) in tags {
                    ins.execute(params![photo_id, tag, source, *score as f64])?;
                }
                mark.execute(params![photo_id, kind, mark_model])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Add a user tag to photos (and forget an earlier removal of it), in one transaction.
    pub fn add_user_tag(&mut self, photo_ids: &[i64], tag: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut unremove =
                tx.prepare("DELETE FROM removed_tags WHERE photo_id = ?1 AND tag = ?2")?;
            let mut ins = tx.prepare(
                "INSERT OR REPLACE INTO tags (photo_id, tag, source, score) VALUES (?1, ?2, ?3, 1.0)",
            )?;
            for id in photo_ids {
                unremove.execute(params![id, tag])?;
                ins.execute(params![id, tag, TagSource::User])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Remove a tag from photos, whatever its source, for good, in one transaction. Returns how many
    /// had it.
    pub fn remove_tag(&mut self, photo_ids: &[i64], tag: &str) -> Result<usize> {
        let tx = self.conn.transaction()?;
        let mut had = 0;
        {
            let mut del = tx.prepare("DELETE FROM tags WHERE photo_id = ?1 AND tag = ?2")?;
            let mut forget =
                tx.prepare("INSERT OR IGNORE INTO removed_tags (photo_id, tag) VALUES (?1, ?2)")?;
            for id in photo_ids {
                had += (del.execute(params![id, tag])? > 0) as usize;
                forget.execute(params![id, tag])?;
            }
        }
        tx.commit()?;
        Ok(had)
    }

    /// A photo's tags, best first (user tags, then by score).
    pub fn photo_tags(&self, photo_id: i64) -> Result<Vec<Tag>> {
        Ok(self
            .photos_tags(&[photo_id])?
            .remove(&photo_id)
            .unwrap_or_default())
    }

    /// The tags of several photos, each photo's best first (as [`Catalog::photo_tags`]), in one
    /// query. Photos without tags are left out.
    pub fn photos_tags(&self, ids: &[i64]) -> Result<HashMap<i64, Vec<Tag>>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut st = self.conn.prepare_cached(
            "SELECT photo_id, tag, source, score FROM tags \
             WHERE photo_id IN (SELECT value FROM json_each(?1)) \
             ORDER BY photo_id, source = 'user' DESC, score DESC, tag, source",
        )?;
        let rows = st.query_map([id_list(ids)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                Tag {
                    tag: r.get(1)?,
                    source: r.get(2)?,
                    score: r.get::<_, f64>(3)? as f32,
                },
            ))
        })?;
        let mut out: HashMap<i64, Vec<Tag>> = HashMap::new();
        for row in rows {
            let (id, tag) = row?;
            out.entry(id).or_default().push(tag);
        }
        Ok(out)
    }

    /// Every tag with how many photos carry it, most common first.
    pub fn tag_counts(&self) -> Result<Vec<TagCount>> {
        let mut st = self.conn.prepare(
            "SELECT tag, COUNT(DISTINCT photo_id) AS n FROM tags GROUP BY tag ORDER BY n DESC, tag",
        )?;
        let rows = st.query_map([], |r| {
            Ok(TagCount {
                tag: r.get(0)?,
                count: r.get::<_, i64>(1)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Photos carrying every one of `tags` (none for no tags), in one query.
    pub fn photos_with_tags(&self, tags: &[String]) -> Result<std::collections::HashSet<i64>> {
        let wanted: std::collections::BTreeSet<&str> = tags.iter().map(String::as_str).collect();
        if wanted.is_empty() {
            return Ok(Default::default());
        }
        let mut st = self.conn.prepare_cached(
            "SELECT photo_id FROM tags WHERE tag IN (SELECT value FROM json_each(?1)) \
             GROUP BY photo_id HAVING COUNT(DISTINCT tag) = ?2",
        )?;
        let list = serde_json::to_string(&wanted).expect("strings serialize");
        let rows = st.query_map(params![list, wanted.len() as i64], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Photos with a caption from `caption_model` but no text embedding from `text_model`:
    /// (photo id, caption).
    pub fn unembedded_captions(
        &self,
        caption_model: i64,
        text_model: i64,
    ) -> Result<Vec<(i64, String)>> {
        let mut st = self.conn.prepare(
            "SELECT c.photo_id, c.text FROM captions c WHERE c.model_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM text_embeddings e WHERE e.photo_id = c.photo_id AND e.model_id = ?2) \
             ORDER BY c.photo_id",
        )?;
        let rows = st.query_map([caption_model, text_model], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Store caption embeddings from a text encoder, in one transaction.
    pub fn set_text_embeddings(&mut self, text_model: i64, rows: &[(i64, Vec<f32>)]) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT OR REPLACE INTO text_embeddings (photo_id, model_id, vector) \
                 SELECT ?1, ?2, ?3 WHERE EXISTS (SELECT 1 FROM photos WHERE id = ?1)",
            )?;
            for (id, v) in rows {
                ins.execute(params![id, text_model, vec_to_blob(v)])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Whether a text encoder has embedded any caption.
    pub fn has_text_embeddings(&self, text_model: i64) -> Result<bool> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM text_embeddings WHERE model_id = ?1)",
            [text_model],
            |r| r.get(0),
        )?)
    }

    /// Every caption embedding of a text encoder: (photo id, vector).
    pub fn text_embeddings(&self, text_model: i64) -> Result<Vec<(i64, Vec<f32>)>> {
        let mut st = self
            .conn
            .prepare("SELECT photo_id, vector FROM text_embeddings WHERE model_id = ?1")?;
        let rows = st.query_map([text_model], |r| {
            Ok((r.get(0)?, blob_to_vec(&r.get::<_, Vec<u8>>(1)?)))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

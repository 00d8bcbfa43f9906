//! The SQLite catalog: roots, photos, models, embeddings and failures — the library's source of truth.
//!
//! Architecture Invariant: every write that changes what search can return happens inside one SQLite
//! transaction, so a crash or kill at any moment leaves a consistent catalog (WAL mode).

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use rusqlite_migration::{Migrations, M};

use crate::error::{Error, Result};
use crate::tags::TagSource;
// The decoder produces a photo's metadata; the catalog stores it.
use crate::decode::PhotoMeta;

mod derived;
mod photos;
mod text;

pub use text::{OcrState, OcrStats};

const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_captions.sql"),
    include_str!("../../migrations/0003_tags.sql"),
    include_str!("../../migrations/0004_places.sql"),
    include_str!("../../migrations/0005_originals_duplicates.sql"),
    include_str!("../../migrations/0006_ocr_keywords.sql"),
    include_str!("../../migrations/0007_failed_index.sql"),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// Raw bytes of a path as stored in the catalog (file names need not be UTF-8).
#[cfg(unix)]
pub(crate) fn path_to_bytes(p: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    p.as_os_str().as_bytes().to_vec()
}
#[cfg(not(unix))]
pub(crate) fn path_to_bytes(p: &Path) -> Vec<u8> {
    p.to_string_lossy().into_owned().into_bytes()
}

/// Inverse of [`path_to_bytes`].
#[cfg(unix)]
pub(crate) fn bytes_to_path(b: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(b))
}
#[cfg(not(unix))]
pub(crate) fn bytes_to_path(b: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&b).into_owned())
}

/// What a registered model does (the `kind` column of `models`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    /// An image–text model whose image embeddings the index holds.
    Clip,
    /// A captioner.
    Caption,
    /// A sentence encoder (caption embeddings).
    Text,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Clip => "clip",
            ModelKind::Caption => "caption",
            ModelKind::Text => "text",
        }
    }
}

/// A registered model: its catalog id and the size of its vectors (0 for captioners).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelRef {
    pub id: i64,
    pub dim: usize,
}

/// A library folder.
#[derive(Debug, Clone)]
pub struct Root {
    pub id: i64,
    pub path: PathBuf,
}

/// What a scan needs to know about a photo already in the catalog.
#[derive(Debug, Clone)]
pub struct KnownFile {
    pub id: i64,
    pub size: u64,
    pub mtime_ns: i64,
    pub hash: Option<Vec<u8>>,
}

/// A file found on disk by a scan.
#[derive(Debug, Clone)]
pub struct FoundFile {
    pub root_id: i64,
    pub rel_path: PathBuf,
    pub ext: String,
    pub size: u64,
    pub mtime_ns: i64,
}

/// The changes one scan found, applied by [`Catalog::apply_scan`] in one transaction.
#[derive(Debug, Default)]
pub struct ScanChanges {
    /// Roots that were walked (their scan issues are replaced by `issues`).
    pub roots: Vec<i64>,
    pub added: Vec<FoundFile>,
    /// Known photos whose size or mtime changed: re-read and re-embed.
    pub changed: Vec<(i64, FoundFile)>,
    /// Known photos found at a new path with the same content: keep id, embeddings and metadata.
    pub moved: Vec<(i64, FoundFile)>,
    pub removed: Vec<i64>,
    /// (root, relative path, reason) for things met during the walk that could not be read.
    pub issues: Vec<(i64, PathBuf, String)>,
    /// Roots walked in full: their JPEGs' RAW originals are replaced by `originals`.
    pub walked: Vec<i64>,
    /// (root, JPEG's relative path, its RAW original's relative path).
    pub originals: Vec<(i64, PathBuf, PathBuf)>,
}

/// A photo waiting for the pipeline.
#[derive(Debug, Clone)]
pub struct WorkItem {
    pub id: i64,
    pub path: PathBuf,
}

/// What the pipeline learned about one photo.
#[derive(Debug)]
pub enum Outcome {
    Embedded {
        id: i64,
        meta: PhotoMeta,
        vector: Vec<f32>,
    },
    Failed {
        id: i64,
        reason: String,
        size: Option<u64>,
        mtime_ns: Option<i64>,
    },
}

/// A photo as search results and filters see it.
#[derive(Debug, Clone)]
pub struct PhotoInfo {
    pub id: i64,
    pub path: PathBuf,
    pub ext: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub taken_at: Option<String>,
    pub mtime_ns: i64,
    pub camera_make: Option<String>,
    pub camera_model: Option<String>,
    /// EXIF GPS position.
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Time zone offset of `taken_at` ('+01:00'), when the camera wrote one.
    pub taken_offset: Option<String>,
    /// Where the photo was taken (reverse-geocoded from its position).
    pub place: Option<crate::places::Place>,
}

impl PhotoInfo {
    /// The place as results show it (None without a place).
    pub fn place_info(&self) -> Option<crate::places::PlaceInfo> {
        let p = self.place.as_ref()?;
        Some(crate::places::PlaceInfo {
            city: p.city.clone(),
            region: p.region.clone(),
            country: p.country(),
            lat: self.lat?,
            lon: self.lon?,
        })
    }
}

/// A photo as the duplicate finder sees it.
#[derive(Debug, Clone)]
pub struct DuplicateRow {
    pub id: i64,
    pub path: PathBuf,
    pub ext: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub size: u64,
    pub taken_at: Option<String>,
    pub mtime_ns: i64,
    pub hash: Option<Vec<u8>>,
    pub phash: Option<Vec<u8>>,
}

/// Per-folder photo counts for `status`.
#[derive(Debug, Clone)]
pub struct RootCounts {
    pub path: PathBuf,
    pub photos: u64,
}

/// Library-wide counts for one model.
#[derive(Debug, Clone, Default)]
pub struct Counts {
    pub total: u64,
    pub indexed: u64,
    pub failed: u64,
}

/// A registered model with how many photos it embedded (`models list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRow {
    pub name: String,
    /// What the model makes: "clip", "caption" or "text".
    pub kind: String,
    pub dim: usize,
    /// Photos with an embedding from it.
    pub embeddings: u64,
}

/// A photo that failed to be read or a problem met during a scan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct FailureRow {
    /// Absolute path.
    pub path: PathBuf,
    pub reason: String,
}

/// The tables an automatic pass reads from: each row (photo, model) is one input of the pass.
/// Named by this enum so no string ever reaches the SQL that [`Catalog::undone`] builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivedFrom {
    /// Image embeddings (CLIP tags).
    Embeddings,
    /// Captions (caption keyphrase tags).
    Captions,
}

impl DerivedFrom {
    /// The table's name in the schema.
    pub fn as_str(self) -> &'static str {
        match self {
            DerivedFrom::Embeddings => "embeddings",
            DerivedFrom::Captions => "captions",
        }
    }
}

/// An automatic pass over photos, marked done per photo and model in the `derived` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DerivedKind {
    /// CLIP tags from the photo's image embedding.
    ClipTags,
    /// Keyphrase tags from the photo's caption.
    CaptionTags,
    /// The OCR gate judged the photo (by its image embedding) unlikely to hold text.
    OcrGate,
}

impl DerivedKind {
    /// The name stored in `derived.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            DerivedKind::ClipTags => "clip_tags",
            DerivedKind::CaptionTags => "caption_tags",
            DerivedKind::OcrGate => "ocr_gate",
        }
    }
}

impl rusqlite::types::ToSql for DerivedKind {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::ToSql for TagSource {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(self.as_str().into())
    }
}

impl rusqlite::types::FromSql for TagSource {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        let s = v.as_str()?;
        s.parse()
            .map_err(|e: Error| rusqlite::types::FromSqlError::Other(e.to_string().into()))
    }
}

/// Ids as one SQL parameter, a JSON array read with `json_each(?)`: a list of any length is one
/// query.
fn id_list(ids: &[i64]) -> String {
    serde_json::to_string(ids).expect("integers serialize")
}

/// The catalog: one SQLite connection.
pub struct Catalog {
    conn: Connection,
}

impl Catalog {
    /// Open (creating if needed) the catalog at `path`, apply migrations, refuse a newer schema.
    pub fn open(path: &Path) -> Result<Self> {
        // Two connections setting up a new (or older) catalog at once must not race: turning on
        // WAL and migrating happen under an exclusive lock on a file beside the catalog (SQLite
        // answers "database is locked" without waiting when both try to upgrade their locks).
        // Where that file cannot be made (a read-only folder), there is nothing to migrate either.
        use fs4::fs_std::FileExt;
        let lock_path = path.with_extension("migrate.lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .ok();
        if let Some(l) = &lock {
            l.lock_exclusive().map_err(|e| Error::io(&lock_path, e))?;
        }
        let opened = Self::open_locked(path);
        if let Some(l) = &lock {
            let _ = FileExt::unlock(l);
        }
        opened
    }

    fn open_locked(path: &Path) -> Result<Self> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let known = MIGRATIONS.len() as i64;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > known {
            return Err(Error::SchemaTooNew(format!(
                "the catalog {} has schema version {version}, newer than the {known} this Shoebox knows; \
                 it was written by a newer Shoebox: upgrade Shoebox (the catalog was not changed)",
                path.display()
            )));
        }
        if version < known {
            migrations()
                .to_latest(&mut conn)
                .map_err(|e| Error::Migration(e.to_string()))?;
        }
        Ok(Catalog { conn })
    }

    /// The schema version this build writes.
    pub fn schema_version() -> usize {
        MIGRATIONS.len()
    }

    /// Direct access for checks (integrity_check, tests).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Catalog generation: changes whenever the set of embeddings changes.
    pub fn generation(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'generation'", [], |r| {
                r.get(0)
            })?)
    }

    // ---- roots ----

    pub fn roots(&self) -> Result<Vec<Root>> {
        let mut st = self
            .conn
            .prepare("SELECT id, path FROM roots ORDER BY id")?;
        let rows = st.query_map([], |r| {
            Ok(Root {
                id: r.get(0)?,
                path: bytes_to_path(r.get(1)?),
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Add a root; returns its id and whether it was new.
    pub fn add_root(&self, path: &Path) -> Result<(i64, bool)> {
        let bytes = path_to_bytes(path);
        if let Some(id) = self
            .conn
            .query_row("SELECT id FROM roots WHERE path = ?1", [&bytes], |r| {
                r.get(0)
            })
            .optional()?
        {
            return Ok((id, false));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.conn.execute(
            "INSERT INTO roots (path, added_at) VALUES (?1, ?2)",
            params![bytes, now],
        )?;
        Ok((self.conn.last_insert_rowid(), true))
    }

    /// Remove a root and everything under it. Returns false when it was not a root.
    pub fn remove_root(&self, path: &Path) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM roots WHERE path = ?1", [path_to_bytes(path)])?;
        Ok(n > 0)
    }

    // ---- models ----

    /// Id of a model, registering it on first use. Refuses a dimension that disagrees with the record.
    pub fn model_id(&self, name: &str, kind: ModelKind, dim: usize) -> Result<i64> {
        if let Some(ModelRef { id, dim: d }) = self.find_model(name)? {
            if d != dim {
                return Err(Error::Model(format!(
                    "model {name} produced {dim}-d vectors but the catalog holds {d}-d vectors for it"
                )));
            }
            return Ok(id);
        }
        self.conn.execute(
            "INSERT INTO models (name, kind, dim) VALUES (?1, ?2, ?3)",
            params![name, kind.as_str(), dim as i64],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// A registered model.
    pub fn find_model(&self, name: &str) -> Result<Option<ModelRef>> {
        Ok(self
            .conn
            .query_row("SELECT id, dim FROM models WHERE name = ?1", [name], |r| {
                Ok(ModelRef {
                    id: r.get(0)?,
                    dim: r.get::<_, i64>(1)? as usize,
                })
            })
            .optional()?)
    }

    /// Forget a model and everything made with it (embeddings, captions, caption embeddings: the
    /// foreign keys cascade). Returns whether it was registered.
    pub fn delete_model(&mut self, name: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM models WHERE name = ?1", [name])?;
        Ok(n > 0)
    }

    /// Every registered model with its embedding count.
    pub fn models(&self) -> Result<Vec<ModelRow>> {
        let mut st = self.conn.prepare(
            "SELECT m.name, m.kind, m.dim, (SELECT COUNT(*) FROM embeddings e WHERE e.model_id = m.id) \
             FROM models m ORDER BY m.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ModelRow {
                name: r.get(0)?,
                kind: r.get(1)?,
                dim: r.get::<_, i64>(2)? as usize,
                embeddings: r.get::<_, i64>(3)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    // ---- status ----

    pub fn root_counts(&self) -> Result<Vec<RootCounts>> {
        let mut st = self.conn.prepare(
            "SELECT r.path, (SELECT COUNT(*) FROM photos p WHERE p.root_id = r.id) FROM roots r ORDER BY r.id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(RootCounts {
                path: bytes_to_path(r.get(0)?),
                photos: r.get::<_, i64>(1)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the catalog holds any photo (one index probe; `counts` scans the table).
    pub fn has_photos(&self) -> Result<bool> {
        Ok(self
            .conn
            .query_row("SELECT EXISTS (SELECT 1 FROM photos)", [], |r| r.get(0))?)
    }

    pub fn counts(&self, model_id: Option<i64>) -> Result<Counts> {
        let total: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM photos", [], |r| r.get(0))?;
        let failed: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM photos WHERE status = 'failed'",
            [],
            |r| r.get(0),
        )?;
        let indexed: i64 = match model_id {
            Some(m) => self.conn.query_row(
                "SELECT COUNT(*) FROM embeddings WHERE model_id = ?1",
                [m],
                |r| r.get(0),
            )?,
            None => 0,
        };
        Ok(Counts {
            total: total as u64,
            indexed: indexed as u64,
            failed: failed as u64,
        })
    }

    /// Failed photos and scan issues, sorted by path.
    pub fn failures(&self) -> Result<Vec<FailureRow>> {
        let mut out = Vec::new();
        let mut st = self.conn.prepare(
            "SELECT r.path, p.rel_path, COALESCE(p.failure, 'failed') FROM photos p JOIN roots r ON r.id = p.root_id \
             WHERE p.status = 'failed' \
             UNION ALL SELECT r.path, s.rel_path, s.reason FROM scan_issues s JOIN roots r ON r.id = s.root_id",
        )?;
        let rows = st.query_map([], |r| {
            let root = bytes_to_path(r.get(0)?);
            let rel = bytes_to_path(r.get(1)?);
            Ok(FailureRow {
                path: root.join(rel),
                reason: r.get(2)?,
            })
        })?;
        for row in rows {
            out.push(row?);
        }
        out.sort();
        Ok(out)
    }
}

/// Vectors are stored as little-endian f32.
pub(crate) fn vec_to_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn blob_to_vec(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catalog with one root and photos 1..=n (ids in insertion order).
    fn catalog_with_photos(n: usize) -> (tempfile::TempDir, Catalog, Vec<i64>) {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = Catalog::open(&tmp.path().join("catalog.sqlite")).unwrap();
        let (root, _) = c.add_root(Path::new("/photos")).unwrap();
        let added = (0..n)
            .map(|i| FoundFile {
                root_id: root,
                rel_path: PathBuf::from(format!("p{i}.jpg")),
                ext: "jpg".into(),
                size: 1,
                mtime_ns: 0,
            })
            .collect();
        c.apply_scan(&ScanChanges {
            added,
            ..Default::default()
        })
        .unwrap();
        let ids = c.pending_work(None).unwrap().iter().map(|w| w.id).collect();
        (tmp, c, ids)
    }

    #[test]
    fn undone_reads_only_the_named_tables() {
        // The only table names that can reach the SQL are the enum's, and each is a real table.
        let (_tmp, mut c, ids) = catalog_with_photos(3);
        for t in [DerivedFrom::Embeddings, DerivedFrom::Captions] {
            let exists: bool = c
                .connection()
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
                    [t.as_str()],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(exists, "{}", t.as_str());
        }
        let clip = c.model_id("clip-model", ModelKind::Clip, 2).unwrap();
        let cap = c.model_id("cap-model", ModelKind::Caption, 0).unwrap();
        let outcomes: Vec<Outcome> = ids[..2]
            .iter()
            .map(|&id| Outcome::Embedded {
                id,
                meta: PhotoMeta::default(),
                vector: vec![1.0, 0.0],
            })
            .collect();
        c.record(clip, &outcomes).unwrap();
        c.set_caption(ids[1], cap, "a dog").unwrap();
        c.set_caption(ids[2], cap, "a cat").unwrap();
        let clip_todo = |c: &Catalog| {
            c.undone(DerivedFrom::Embeddings, clip, DerivedKind::ClipTags, clip)
                .unwrap()
        };
        let caption_todo = |c: &Catalog| {
            c.undone(DerivedFrom::Captions, cap, DerivedKind::CaptionTags, cap)
                .unwrap()
        };
        assert_eq!(clip_todo(&c), ids[..2]);
        assert_eq!(caption_todo(&c), ids[1..]);
        // Marking one pass done leaves the other pass's work alone.
        let tags = vec![(ids[0], vec![("dog".to_string(), 0.5)])];
        c.set_auto_tags(TagSource::Clip, DerivedKind::ClipTags, clip, &tags)
            .unwrap();
        assert_eq!(clip_todo(&c), [ids[1]]);
        assert_eq!(caption_todo(&c), ids[1..]);
        // A mark with another model does not count.
        c.set_auto_tags(
            TagSource::Caption,
            DerivedKind::CaptionTags,
            clip,
            &[(ids[1], vec![])],
        )
        .unwrap();
        assert_eq!(caption_todo(&c), ids[1..]);
    }

    #[test]
    fn batched_lookups_answer_as_one_by_one() {
        let (_tmp, mut c, ids) = catalog_with_photos(4);
        let clip = c.model_id("clip-model", ModelKind::Clip, 2).unwrap();
        let outcomes: Vec<Outcome> = ids[..3]
            .iter()
            .map(|&id| Outcome::Embedded {
                id,
                meta: PhotoMeta::default(),
                vector: vec![id as f32, 1.0],
            })
            .collect();
        c.record(clip, &outcomes).unwrap();
        let old = c.model_id("old-cap", ModelKind::Caption, 0).unwrap();
        let new = c.model_id("new-cap", ModelKind::Caption, 0).unwrap();
        c.set_caption(ids[0], old, "old words").unwrap();
        c.set_caption(ids[0], new, "new words").unwrap();
        c.set_caption(ids[1], old, "only old").unwrap();
        c.set_auto_tags(
            TagSource::Clip,
            DerivedKind::ClipTags,
            clip,
            &[
                (ids[0], vec![("dog".into(), 0.2), ("beach".into(), 0.7)]),
                (ids[1], vec![("dog".into(), 0.9)]),
            ],
        )
        .unwrap();
        c.add_user_tag(&[ids[0], ids[2]], "mine").unwrap();
        let missing = 999_999;
        let asked = [ids[0], ids[1], ids[2], ids[3], missing, ids[0]];

        let infos = c.photo_infos(&asked).unwrap();
        assert_eq!(infos.len(), 4);
        assert!(infos[&ids[3]].path.ends_with("p3.jpg"));
        assert!(c.photo_infos(&[]).unwrap().is_empty());

        let vecs = c.embeddings(clip, &asked).unwrap();
        assert_eq!(vecs.len(), 3);
        for id in &ids[..3] {
            assert_eq!(vecs[id], c.embedding(clip, *id).unwrap().unwrap());
        }

        let caps = c.captions(&asked, Some(new)).unwrap();
        assert_eq!(caps.len(), 2);
        assert_eq!(caps[&ids[0]], "new words");
        assert_eq!(caps[&ids[1]], "only old");
        assert_eq!(c.captions(&asked, Some(old)).unwrap()[&ids[0]], "old words");

        let tags = c.photos_tags(&asked).unwrap();
        assert_eq!(tags.len(), 3);
        for id in &ids {
            assert_eq!(
                tags.get(id).cloned().unwrap_or_default(),
                c.photo_tags(*id).unwrap()
            );
        }
        let names = |id: i64| -> Vec<String> { tags[&id].iter().map(|t| t.tag.clone()).collect() };
        // User tags first, then by score.
        assert_eq!(names(ids[0]), ["mine", "beach", "dog"]);
        assert_eq!(tags[&ids[0]][0].source, TagSource::User);

        let with = |c: &Catalog, t: &[&str]| {
            let t: Vec<String> = t.iter().map(|s| s.to_string()).collect();
            let mut v: Vec<i64> = c.photos_with_tags(&t).unwrap().into_iter().collect();
            v.sort();
            v
        };
        assert_eq!(with(&c, &["dog"]), ids[..2]);
        assert_eq!(with(&c, &["dog", "mine"]), [ids[0]]);
        assert_eq!(with(&c, &["dog", "dog"]), ids[..2]);
        assert_eq!(with(&c, &["dog", "cat"]), Vec::<i64>::new());
        assert_eq!(with(&c, &[]), Vec::<i64>::new());

        assert_eq!(c.remove_tag(&[ids[0], ids[1], ids[0]], "dog").unwrap(), 2);
        assert_eq!(with(&c, &["dog"]), Vec::<i64>::new());
    }

    #[test]
    fn a_new_catalog_opened_by_several_at_once_is_migrated_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("catalog.sqlite");
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || super::Catalog::open(&p).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let c = super::Catalog::open(&path).unwrap();
        let v: i64 = c
            .connection()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, super::Catalog::schema_version());
    }
}

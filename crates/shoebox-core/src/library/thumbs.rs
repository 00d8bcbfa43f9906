//! The library's side of thumbnails and the photo view: pruning the cache, photo details.

use std::path::{Path, PathBuf};

use super::Library;
use crate::error::{Error, Result};
use crate::files::display_path;
use crate::tags::Tag;
use crate::thumbs::{cache_path, thumbnail, thumbs_dir, PhotoDetails, PruneReport};

impl Library {
    /// Delete cached thumbnails that belong to no library photo as it is now (deleted, changed or
    /// moved files, files dropped on the app). Thumbnails are made again on demand.
    pub fn prune_thumbnails(&self) -> Result<PruneReport> {
        let mut keep = std::collections::HashSet::new();
        for root in self.catalog.roots()? {
            for rel in self.catalog.known_files(root.id)?.keys() {
                if let Ok(p) = cache_path(self.dir(), &root.path.join(rel)) {
                    keep.insert(p);
                }
            }
        }
        let mut report = PruneReport::default();
        let top = thumbs_dir(self.dir());
        let Ok(shards) = std::fs::read_dir(&top) else {
            return Ok(report);
        };
        for shard in shards.flatten() {
            let shard = shard.path();
            let Ok(files) = std::fs::read_dir(&shard) else {
                continue;
            };
            for f in files.flatten() {
                let f = f.path();
                if keep.contains(&f) {
                    report.kept += 1;
                } else if std::fs::remove_file(&f).is_ok() {
                    report.removed += 1;
                }
            }
            // Only succeeds when the shard is empty now.
            let _ = std::fs::remove_dir(&shard);
        }
        Ok(report)
    }

    /// Whether `path` (after following links) is a photo of this library.
    pub fn is_photo(&self, path: &Path) -> Result<bool> {
        let Ok(canon) = std::fs::canonicalize(path) else {
            return Ok(false);
        };
        Ok(self.catalog.photo_id_at(&canon)?.is_some())
    }

    /// The cached thumbnail of an image file (see [`thumbnail`]), in this library's `thumbs/`.
    pub fn thumbnail(&self, path: &Path) -> Result<PathBuf> {
        thumbnail(self.dir(), path)
    }

    /// Details of a library photo for the photo view.
    pub fn photo_details(&self, path: &Path) -> Result<PhotoDetails> {
        let canon = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        let not_found = || Error::NotInLibrary(path.to_path_buf());
        let id = self.catalog.photo_id_at(&canon)?.ok_or_else(not_found)?;
        let info = self
            .catalog
            .photo_infos(&[id])?
            .remove(&id)
            .ok_or_else(not_found)?;
        let caption_model = self
            .catalog
            .find_model(&self.caption_model_name())?
            .map(|m| m.id);
        let caption = self.catalog.captions(&[id], caption_model)?.remove(&id);
        let mut tags: Vec<Tag> = Vec::new();
        for t in self.catalog.photo_tags(id)? {
            if !tags.iter().any(|have| have.tag == t.tag) {
                tags.push(t);
            }
        }
        let camera = match (&info.camera_make, &info.camera_model) {
            (Some(make), Some(model)) if model.starts_with(make.as_str()) => Some(model.clone()),
            (Some(make), Some(model)) => Some(format!("{make} {model}")),
            (a, b) => a.clone().or_else(|| b.clone()),
        };
        Ok(PhotoDetails {
            path: display_path(&info.path),
            name: info
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            folder: info.path.parent().map(display_path).unwrap_or_default(),
            size_bytes: std::fs::metadata(&info.path).ok().map(|m| m.len()),
            width: info.width,
            height: info.height,
            date: crate::search::photo_date(&info),
            place: info.place_info(),
            original: self.catalog.raw_original(id)?.map(|p| display_path(&p)),
            taken_offset: info.taken_offset,
            taken_at: info.taken_at,
            camera,
            caption,
            tags,
            text: self.catalog.ocr_texts(&[id])?.remove(&id),
        })
    }
}

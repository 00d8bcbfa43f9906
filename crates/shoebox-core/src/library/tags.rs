//! Tagging the library (CLIP tags, caption keyphrases, caption embeddings) and user tags.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::{get_or_load, Library};
use crate::catalog::{DerivedFrom, DerivedKind};
use crate::catalog::{ModelKind, ModelRef};
use crate::error::{Error, Result};
use crate::files::display_path;
use crate::keyphrase;
use crate::models::hub;
use crate::models::text::{TextEncoder, TEXT_FILES};
use crate::tags::*;
use crate::vocabulary;

/// The CLIP-tag prompts embedded by one model's text tower.
pub(crate) struct ClipTagTexts {
    model: String,
    prompts: Vec<String>,
    texts: std::sync::Arc<Vec<Vec<f32>>>,
}

impl Library {
    /// The sentence encoder, loaded (and fetched if needed) on first use.
    pub fn text_encoder(&self) -> Result<&TextEncoder> {
        get_or_load(&self.text, || {
            let dir = hub::resolve(&self.opts.text_model, TEXT_FILES, &self.opts.downloads)?;
            TextEncoder::load_with(&dir, &self.opts.device.device()?, self.opts.precision)
        })
    }

    /// The catalog name of the configured sentence encoder (no download).
    pub fn text_model_name(&self) -> String {
        hub::model_name(&self.opts.text_model)
    }

    /// Tag what is not tagged yet: CLIP tags for embedded photos; caption keyphrases and caption
    /// embeddings for captioned photos (loading the sentence encoder only when there is such work).
    pub fn tag_library(&mut self, cancel: &AtomicBool) -> Result<TagReport> {
        self.lock_for_writing()?;
        let mut report = TagReport::default();
        report.clip_tagged = self.clip_tags(cancel)?;
        if let Some(ModelRef { id: cap_model, .. }) =
            self.catalog.find_model(&self.caption_model_name())?
        {
            let work = |lib: &mut Library| -> Result<(usize, usize)> {
                Ok((
                    lib.caption_tags(cap_model, cancel)?,
                    lib.embed_captions(cap_model, cancel)?,
                ))
            };
            match work(self) {
                Ok((t, e)) => {
                    report.caption_tagged = t;
                    report.captions_embedded = e;
                }
                // Offline without the sentence encoder: CLIP tags still work; say what is missing.
                Err(e @ (Error::ModelUnavailable(_) | Error::NotDownloaded { .. })) => {
                    let why = match e {
                        Error::NotDownloaded { id, reason, .. } => {
                            format!("{reason} (the sentence encoder {id} is needed once)")
                        }
                        other => other.to_string(),
                    };
                    log::warn!("caption tags skipped: {why}");
                    report.skipped = Some(why);
                }
                Err(e) => return Err(e),
            }
        }
        report.interrupted = cancel.load(Ordering::Relaxed);
        Ok(report)
    }

    fn clip_tags(&mut self, cancel: &AtomicBool) -> Result<usize> {
        let Some(ModelRef { id: model_id, .. }) = self.catalog.find_model(&self.model_name())?
        else {
            return Ok(0);
        };
        let todo = self.catalog.undone(
            DerivedFrom::Embeddings,
            model_id,
            DerivedKind::ClipTags,
            model_id,
        )?;
        if todo.is_empty() {
            return Ok(0);
        }
        let concepts = vocabulary(self.dir());
        let clip = self.clip()?;
        let prompts: Vec<String> = concepts.iter().map(|c| vocabulary::prompt(c)).collect();
        let model = clip.name().to_string();
        let cached = self
            .clip_tag_texts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|c| c.model == model && c.prompts == prompts)
            .map(|c| c.texts.clone());
        let text = match cached {
            Some(t) => t,
            None => {
                let mut text = Vec::with_capacity(prompts.len());
                for chunk in prompts.chunks(64) {
                    let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                    text.extend(clip.embed_texts(&refs)?);
                }
                let text = std::sync::Arc::new(text);
                *self
                    .clip_tag_texts
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(ClipTagTexts {
                    model,
                    prompts,
                    texts: text.clone(),
                });
                text
            }
        };
        let scale = clip.logit_scale();
        let mut done = 0;
        for chunk in todo.chunks(256) {
            let vectors = self.catalog.embeddings(model_id, chunk)?;
            let mut batch = Vec::with_capacity(chunk.len());
            for id in chunk {
                let Some(v) = vectors.get(id) else {
                    continue;
                };
                let cos: Vec<f32> = text.iter().map(|t| crate::index::dot(v, t)).collect();
                batch.push((*id, pick_clip_tags(&cos, scale, &concepts)));
            }
            self.catalog
                .set_auto_tags(TagSource::Clip, DerivedKind::ClipTags, model_id, &batch)?;
            done += batch.len();
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(done)
    }

    fn caption_tags(&mut self, cap_model: i64, cancel: &AtomicBool) -> Result<usize> {
        let todo = self.catalog.undone(
            DerivedFrom::Captions,
            cap_model,
            DerivedKind::CaptionTags,
            cap_model,
        )?;
        if todo.is_empty() {
            return Ok(0);
        }
        self.text_encoder()?;
        let enc = self.text.get().expect("loaded above");
        let mut done = 0;
        for chunk in todo.chunks(64) {
            let captions = self.catalog.captions(chunk, Some(cap_model))?;
            let mut batch = Vec::with_capacity(chunk.len());
            for id in chunk {
                let Some(c) = captions.get(id) else { continue };
                let picks = keyphrase::keyphrases(
                    enc,
                    c,
                    CAPTION_TAG_TOP_N,
                    CAPTION_TAG_DIVERSITY,
                    CAPTION_TAG_THRESHOLD,
                )?;
                batch.push((*id, picks));
            }
            self.catalog.set_auto_tags(
                TagSource::Caption,
                DerivedKind::CaptionTags,
                cap_model,
                &batch,
            )?;
            done += batch.len();
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(done)
    }

    fn embed_captions(&mut self, cap_model: i64, cancel: &AtomicBool) -> Result<usize> {
        let text_name = self.text_model_name();
        let known = self.catalog.find_model(&text_name)?.map(|m| m.id);
        let todo = self
            .catalog
            .unembedded_captions(cap_model, known.unwrap_or(-1))?;
        if todo.is_empty() {
            return Ok(0);
        }
        self.text_encoder()?;
        let enc = self.text.get().expect("loaded above");
        let text_model = self
            .catalog
            .model_id(enc.name(), ModelKind::Text, enc.dim())?;
        let mut done = 0;
        for chunk in todo.chunks(32) {
            let texts: Vec<&str> = chunk.iter().map(|(_, t)| t.as_str()).collect();
            let vecs = enc.embed(&texts)?;
            let rows: Vec<(i64, Vec<f32>)> = chunk.iter().map(|(id, _)| *id).zip(vecs).collect();
            self.catalog.set_text_embeddings(text_model, &rows)?;
            done += rows.len();
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(done)
    }

    fn photo_id_of(&self, path: &Path) -> Result<i64> {
        let canon = std::fs::canonicalize(path).map_err(|e| Error::io(path, e))?;
        self.catalog
            .photo_id_at(&canon)?
            .ok_or_else(|| Error::NotInLibrary(path.to_path_buf()))
    }

    fn photo_ids_of(&self, paths: &[PathBuf]) -> Result<Vec<i64>> {
        paths.iter().map(|p| self.photo_id_of(p)).collect()
    }

    /// Add a user tag to photos of the library.
    pub fn add_tag(&mut self, paths: &[PathBuf], tag: &str) -> Result<usize> {
        self.lock_for_writing()?;
        let tag = normalize_tag(tag)?;
        let ids = self.photo_ids_of(paths)?;
        self.catalog.add_user_tag(&ids, &tag)?;
        Ok(ids.len())
    }

    /// Remove a tag (any source) from photos for good; returns how many had it.
    pub fn remove_tag(&mut self, paths: &[PathBuf], tag: &str) -> Result<usize> {
        self.lock_for_writing()?;
        let tag = normalize_tag(tag)?;
        let ids = self.photo_ids_of(paths)?;
        self.catalog.remove_tag(&ids, &tag)
    }

    /// The tags of library photos.
    pub fn photo_tags(&self, paths: &[PathBuf]) -> Result<Vec<PhotoTags>> {
        let photos = paths
            .iter()
            .map(|p| {
                let id = self.photo_id_of(p)?;
                let canon = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
                Ok((id, canon))
            })
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<i64> = photos.iter().map(|(id, _)| *id).collect();
        let tags = self.catalog.photos_tags(&ids)?;
        Ok(photos
            .into_iter()
            .map(|(id, canon)| PhotoTags {
                path: display_path(&canon),
                // A photo named twice gets its tags twice.
                tags: tags.get(&id).cloned().unwrap_or_default(),
            })
            .collect())
    }

    /// Every tag in the library with its photo count, most common first.
    pub fn all_tags(&self) -> Result<Vec<TagCount>> {
        self.catalog.tag_counts()
    }
}

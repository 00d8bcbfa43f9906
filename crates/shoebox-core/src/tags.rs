//! Tags: CLIP zero-shot tags from a vocabulary of everyday concepts, keyphrases of captions chosen
//! with the sentence encoder (KeyBERT-style), and the user's own; plus caption embeddings for
//! hybrid search. All automatic work is resumable: the catalog marks each pass done per photo.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::keyphrase;
use crate::library::{display_path, Library};
use crate::models::hub;
use crate::models::text::{TextEncoder, TEXT_FILES};
use crate::vocabulary;

/// CLIP tags: a concept is kept when its probability (softmax over the whole vocabulary at CLIP's
/// logit scale) reaches this. Chosen from the curve in tests/tags.rs (README "Tags"): fewer than one
/// unrelated tag per image, since caption keyphrases supply the precise tags.
pub const CLIP_TAG_THRESHOLD: f32 = 0.1;
/// At most this many CLIP tags per photo.
pub const CLIP_TAG_MAX: usize = 5;
/// Caption keyphrases: at most this many per caption …
pub const CAPTION_TAG_TOP_N: usize = 5;
/// … chosen with this MMR diversity …
pub const CAPTION_TAG_DIVERSITY: f32 = 0.5;
/// … and kept when their cosine with the whole caption reaches this.
pub const CAPTION_TAG_THRESHOLD: f32 = 0.3;

/// One tag of a photo (the `tags --json` element shape).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tag {
    pub tag: String,
    pub source: String,
    pub score: f32,
}

/// A photo's tags (the `tags PATH --json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct PhotoTags {
    pub path: String,
    pub tags: Vec<Tag>,
}

/// A tag and how many photos carry it (the `tags --all --json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct TagCount {
    pub tag: String,
    pub count: u64,
}

/// What a tagging run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TagReport {
    /// Photos given CLIP tags.
    pub clip_tagged: usize,
    /// Photos given caption tags.
    pub caption_tagged: usize,
    /// Captions embedded for hybrid search.
    pub captions_embedded: usize,
    pub interrupted: bool,
    /// Why caption tags and caption embeddings were skipped (the sentence encoder is unavailable).
    pub skipped: Option<String>,
}

/// A tag as stored: trimmed, lower case, inner whitespace collapsed.
pub fn normalize_tag(t: &str) -> Result<String> {
    let t = t
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    if t.is_empty() {
        return Err(Error::Invalid("a tag cannot be empty".into()));
    }
    Ok(t)
}

/// The file in a library folder that extends the CLIP tag vocabulary: one concept per line,
/// `#` starts a comment.
pub fn vocabulary_file(libdir: &Path) -> PathBuf {
    libdir.join("vocabulary.txt")
}

/// The built-in vocabulary plus the library's own concepts.
pub fn vocabulary(libdir: &Path) -> Vec<String> {
    let mut v: Vec<String> = vocabulary::CONCEPTS.iter().map(|s| s.to_string()).collect();
    if let Ok(text) = std::fs::read_to_string(vocabulary_file(libdir)) {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if let Ok(t) = normalize_tag(line) {
                if !v.contains(&t) {
                    v.push(t);
                }
            }
        }
    }
    v
}

/// Softmax at `scale` over cosines, then the concepts at or above the threshold, best first.
pub fn pick_clip_tags(cosines: &[f32], scale: f32, concepts: &[String]) -> Vec<(String, f32)> {
    let m = cosines.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = cosines.iter().map(|c| ((c - m) * scale).exp()).collect();
    let z: f32 = exps.iter().sum();
    let mut picks: Vec<(String, f32)> = exps
        .iter()
        .zip(concepts)
        .map(|(e, c)| (c.clone(), e / z))
        .filter(|(_, p)| *p >= CLIP_TAG_THRESHOLD)
        .collect();
    picks.sort_by(|a, b| b.1.total_cmp(&a.1));
    picks.truncate(CLIP_TAG_MAX);
    picks
}

impl Library {
    /// The sentence encoder, loaded (and fetched if needed) on first use.
    pub fn text_encoder(&self) -> Result<&TextEncoder> {
        if let Some(t) = self.text.get() {
            return Ok(t);
        }
        let dir = hub::resolve(&self.opts.text_model, TEXT_FILES, &self.opts.downloads)?;
        let enc = TextEncoder::load(&dir, &self.opts.device.device()?)?;
        Ok(self.text.get_or_init(|| enc))
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
        if let Some((cap_model, _)) = self.catalog.find_model(&self.caption_model_name())? {
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
                Err(Error::ModelUnavailable(why)) => {
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
        let Some((model_id, _)) = self.catalog.find_model(&self.model_name())? else {
            return Ok(0);
        };
        let todo = self
            .catalog
            .undone("embeddings", model_id, "clip_tags", model_id)?;
        if todo.is_empty() {
            return Ok(0);
        }
        let concepts = vocabulary(self.dir());
        let clip = self.clip()?;
        let prompts: Vec<String> = concepts.iter().map(|c| vocabulary::prompt(c)).collect();
        let mut text = Vec::with_capacity(prompts.len());
        for chunk in prompts.chunks(64) {
            let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
            text.extend(clip.embed_texts(&refs)?);
        }
        let scale = clip.logit_scale();
        let mut done = 0;
        for chunk in todo.chunks(256) {
            let mut batch = Vec::with_capacity(chunk.len());
            for id in chunk {
                let Some(v) = self.catalog.embedding(model_id, *id)? else {
                    continue;
                };
                let cos: Vec<f32> = text.iter().map(|t| crate::index::dot(&v, t)).collect();
                batch.push((*id, pick_clip_tags(&cos, scale, &concepts)));
            }
            self.catalog
                .set_auto_tags("clip", "clip_tags", model_id, &batch)?;
            done += batch.len();
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(done)
    }

    fn caption_tags(&mut self, cap_model: i64, cancel: &AtomicBool) -> Result<usize> {
        let todo = self
            .catalog
            .undone("captions", cap_model, "caption_tags", cap_model)?;
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
            self.catalog
                .set_auto_tags("caption", "caption_tags", cap_model, &batch)?;
            done += batch.len();
            if cancel.load(Ordering::Relaxed) {
                break;
            }
        }
        Ok(done)
    }

    fn embed_captions(&mut self, cap_model: i64, cancel: &AtomicBool) -> Result<usize> {
        let text_name = self.text_model_name();
        let known = self.catalog.find_model(&text_name)?.map(|m| m.0);
        let todo = self
            .catalog
            .unembedded_captions(cap_model, known.unwrap_or(-1))?;
        if todo.is_empty() {
            return Ok(0);
        }
        self.text_encoder()?;
        let enc = self.text.get().expect("loaded above");
        let text_model = self.catalog.model_id(enc.name(), "text", enc.dim())?;
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
        self.catalog.photo_id_at(&canon)?.ok_or_else(|| {
            Error::Invalid(format!(
                "{} is not in the library (add its folder and run `shoebox index`)",
                path.display()
            ))
        })
    }

    /// Add a user tag to photos of the library.
    pub fn add_tag(&mut self, paths: &[PathBuf], tag: &str) -> Result<usize> {
        self.lock_for_writing()?;
        let tag = normalize_tag(tag)?;
        let ids = paths
            .iter()
            .map(|p| self.photo_id_of(p))
            .collect::<Result<Vec<_>>>()?;
        for id in &ids {
            self.catalog.add_user_tag(*id, &tag)?;
        }
        Ok(ids.len())
    }

    /// Remove a tag (any source) from photos for good; returns how many had it.
    pub fn remove_tag(&mut self, paths: &[PathBuf], tag: &str) -> Result<usize> {
        self.lock_for_writing()?;
        let tag = normalize_tag(tag)?;
        let ids = paths
            .iter()
            .map(|p| self.photo_id_of(p))
            .collect::<Result<Vec<_>>>()?;
        let mut n = 0;
        for id in &ids {
            n += self.catalog.remove_tag(*id, &tag)? as usize;
        }
        Ok(n)
    }

    /// The tags of library photos.
    pub fn photo_tags(&self, paths: &[PathBuf]) -> Result<Vec<PhotoTags>> {
        paths
            .iter()
            .map(|p| {
                let id = self.photo_id_of(p)?;
                let canon = std::fs::canonicalize(p).map_err(|e| Error::io(p, e))?;
                Ok(PhotoTags {
                    path: display_path(&canon),
                    tags: self
                        .catalog
                        .photo_tags(id)?
                        .into_iter()
                        .map(|(tag, source, score)| Tag { tag, source, score })
                        .collect(),
                })
            })
            .collect()
    }

    /// Every tag in the library with its photo count, most common first.
    pub fn all_tags(&self) -> Result<Vec<TagCount>> {
        Ok(self
            .catalog
            .tag_counts()?
            .into_iter()
            .map(|(tag, count)| TagCount { tag, count })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_normalized() {
        assert_eq!(normalize_tag("  Sunset   Beach ").unwrap(), "sunset beach");
        assert!(normalize_tag("   ").is_err());
    }

    #[test]
    fn clip_tags_keep_probable_concepts_only() {
        let concepts: Vec<String> = ["dog", "cat", "beach", "car"].map(String::from).to_vec();
        // Two clear winners at CLIP's scale 100: dog and beach.
        let picks = pick_clip_tags(&[0.30, 0.20, 0.29, 0.10], 100.0, &concepts);
        let names: Vec<&str> = picks.iter().map(|p| p.0.as_str()).collect();
        assert_eq!(names, ["dog", "beach"]);
        assert!(picks[0].1 > picks[1].1);
    }
}

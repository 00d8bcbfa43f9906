//! Tags: CLIP zero-shot tags from a vocabulary of everyday concepts, keyphrases of captions chosen
//! with the sentence encoder (KeyBERT-style), and the user's own; plus caption embeddings for
//! hybrid search. All automatic work is resumable: the catalog marks each pass done per photo.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::rank::{higher_first, softmax};
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

/// Where a tag came from (stored in `tags.source`; the `source` of the `tags --json` shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TagSource {
    /// A keyphrase of the photo's caption.
    Caption,
    /// A CLIP zero-shot concept of the vocabulary.
    Clip,
    /// Added by the user.
    User,
}

impl TagSource {
    /// The name stored in the catalog and shown to people.
    pub fn as_str(self) -> &'static str {
        match self {
            TagSource::Caption => "caption",
            TagSource::Clip => "clip",
            TagSource::User => "user",
        }
    }
}

impl std::fmt::Display for TagSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for TagSource {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "caption" => Ok(TagSource::Caption),
            "clip" => Ok(TagSource::Clip),
            "user" => Ok(TagSource::User),
            other => Err(Error::UnknownValue {
                what: "tag source",
                value: other.to_string(),
                expected: "caption, clip, user",
            }),
        }
    }
}

/// One tag of a photo (the `tags --json` element shape).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tag {
    pub tag: String,
    pub source: TagSource,
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
    let logits: Vec<f32> = cosines.iter().map(|c| c * scale).collect();
    let mut picks: Vec<(String, f32)> = softmax(&logits)
        .into_iter()
        .zip(concepts)
        .map(|(p, c)| (c.clone(), p))
        .filter(|(_, p)| *p >= CLIP_TAG_THRESHOLD)
        .collect();
    picks.sort_by(|a, b| higher_first(a.1, b.1));
    picks.truncate(CLIP_TAG_MAX);
    picks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_sources_read_back_as_written() {
        for s in [TagSource::Caption, TagSource::Clip, TagSource::User] {
            assert_eq!(s.as_str().parse::<TagSource>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("Clip".parse::<TagSource>().is_err());
    }

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

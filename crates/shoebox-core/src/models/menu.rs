//! The model menu: the models Shoebox knows to load and what each is good for (`shoebox models
//! list`, the app's Settings), plus what the local Hugging Face cache holds.
//!
//! Retrieval figures are quoted only where a public benchmark gives them: Immich's multilingual
//! CLIP benchmark (README, "Choosing a model"); a model without one says so.

use serde::Serialize;

use super::caption::CAPTION_FILES;
use super::clip::CLIP_FILES;
use super::hub;
use super::text::TEXT_FILES;

/// What a model does in Shoebox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MenuKind {
    /// Embeds photos and queries into one space (`--clip-model`).
    ImageText,
    /// Writes captions (`--caption-model`).
    Caption,
    /// Sentence encoder for caption tags and caption search (`--text-model`).
    Sentence,
    /// Embeds queries into an image–text model's space, e.g. in other languages (`--query-model`).
    Query,
}

/// One entry of `shoebox models list --json`.
#[derive(Debug, Clone, Serialize)]
pub struct MenuEntry {
    pub id: String,
    pub kind: MenuKind,
    /// Embedding size (null for captioners).
    pub dims: Option<usize>,
    /// Download size of the weights, about.
    pub size_mb: Option<u32>,
    /// Languages its queries or captions may be in.
    pub languages: String,
    /// Its files are in the local Hugging Face cache.
    pub cached: bool,
    pub note: String,
}

/// (id, kind, dims, size MB, languages, note)
type Known = (
    &'static str,
    MenuKind,
    Option<usize>,
    u32,
    &'static str,
    &'static str,
);

const KNOWN: &[Known] = &[
    (
        "openai/clip-vit-base-patch32",
        MenuKind::ImageText,
        Some(512),
        605,
        "en",
        "the default: fast on a CPU; Immich's benchmark 59.4 % (the weakest of the three measured here)",
    ),
    (
        "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
        MenuKind::ImageText,
        Some(512),
        605,
        "en",
        "OpenCLIP (GELU), same size and speed as the default, better results: Immich's benchmark 68.8 %",
    ),
    (
        "openai/clip-vit-large-patch14",
        MenuKind::ImageText,
        Some(768),
        1710,
        "en",
        "larger OpenAI CLIP: better on fine detail; about 18× the default's compute per photo",
    ),
    (
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        MenuKind::ImageText,
        Some(1024),
        3940,
        "en",
        "large OpenCLIP (GELU); about 38× the default's compute per photo: for a GPU",
    ),
    (
        "google/siglip2-base-patch16-224",
        MenuKind::ImageText,
        Some(768),
        1500,
        "multilingual",
        "SigLIP 2 (fixed resolution): the best results here, Immich's benchmark 75.2 % (B/16); queries \
         are lower-cased as it was trained",
    ),
    (
        "sentence-transformers/clip-ViT-B-32-multilingual-v1",
        MenuKind::Query,
        Some(512),
        540,
        "50+ languages",
        "queries in other languages for openai/clip-vit-base-patch32, without re-indexing \
         (--query-model)",
    ),
    (
        "Salesforce/blip-image-captioning-base",
        MenuKind::Caption,
        None,
        990,
        "en",
        "the default captioner",
    ),
    (
        "nlpconnect/vit-gpt2-image-captioning",
        MenuKind::Caption,
        None,
        980,
        "en",
        "faster, plainer captions",
    ),
    (
        "sentence-transformers/all-MiniLM-L6-v2",
        MenuKind::Sentence,
        Some(384),
        90,
        "en",
        "the default sentence encoder: caption tags and caption search",
    ),
];

/// What kind of model a known id is.
pub fn known_kind(id: &str) -> Option<MenuKind> {
    KNOWN.iter().find(|k| k.0 == id).map(|k| k.1)
}

/// The files a kind of model needs (what `cached` looks for).
pub fn files(kind: MenuKind) -> &'static [&'static str] {
    match kind {
        MenuKind::ImageText => CLIP_FILES,
        MenuKind::Caption => CAPTION_FILES,
        MenuKind::Sentence | MenuKind::Query => TEXT_FILES,
    }
}

/// What a cached model is, from its config.json (None: not one Shoebox loads).
fn kind_of_cached(id: &str) -> Option<(MenuKind, Option<usize>)> {
    let dir = hub::cached(id, &["config.json"])?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    match v["model_type"].as_str()? {
        "clip" => Some((
            MenuKind::ImageText,
            v["projection_dim"].as_u64().map(|d| d as usize),
        )),
        "siglip" => Some((
            MenuKind::ImageText,
            v["vision_config"]["hidden_size"]
                .as_u64()
                .map(|d| d as usize),
        )),
        "blip" | "vision-encoder-decoder" => Some((MenuKind::Caption, None)),
        "bert" | "distilbert" => Some((MenuKind::Sentence, None)),
        _ => None,
    }
}

/// The known-good models, then any other model in the local cache that Shoebox can load.
pub fn menu() -> Vec<MenuEntry> {
    let mut out: Vec<MenuEntry> = KNOWN
        .iter()
        .map(|&(id, kind, dims, size, languages, note)| MenuEntry {
            id: id.into(),
            kind,
            dims,
            size_mb: Some(size),
            languages: languages.into(),
            cached: hub::cached(id, files(kind)).is_some(),
            note: note.into(),
        })
        .collect();
    for id in hub::cached_ids() {
        if out.iter().any(|e| e.id == id) {
            continue;
        }
        let Some((kind, dims)) = kind_of_cached(&id) else {
            continue;
        };
        out.push(MenuEntry {
            cached: hub::cached(&id, files(kind)).is_some(),
            id,
            kind,
            dims,
            size_mb: None,
            languages: String::new(),
            note: "in the local Hugging Face cache".into(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_model_has_its_kind_files_and_a_note() {
        let m = menu();
        assert!(m.len() >= KNOWN.len());
        for e in &m[..KNOWN.len()] {
            assert!(!e.note.is_empty(), "{}", e.id);
            assert_eq!(e.dims.is_none(), e.kind == MenuKind::Caption, "{}", e.id);
        }
        let json = serde_json::to_value(&m[0]).unwrap();
        for k in [
            "id",
            "kind",
            "dims",
            "size_mb",
            "languages",
            "cached",
            "note",
        ] {
            assert!(json.get(k).is_some(), "{k}");
        }
        assert_eq!(json["kind"], "image-text");
    }
}

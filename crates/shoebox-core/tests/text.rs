//! Sentence-encoder parity with sentence-transformers on the real all-MiniLM-L6-v2 (token ids and
//! embeddings from tests/fixtures/reference/minilm.json), and keyphrases on that model.
//!
//! The model (about 90 MB) is not in the repository: `scripts/fetch-minilm.sh` fetches it and prints
//! its folder; point SHOEBOX_MINILM_DIR there (scripts/test.sh does). Without it the tests skip,
//! except under CI, where they fail.

mod common;

use std::path::PathBuf;

use common::*;
use shoebox_core::keyphrase::{candidates, keyphrases};
use shoebox_core::models::hub;
use shoebox_core::models::text::{TextEncoder, TEXT_FILES};
use shoebox_core::models::Precision;

/// The folder fetch-minilm.sh fills by default.
fn default_cache_dir() -> Option<PathBuf> {
    // As the script's `${VAR:-default}`: an empty variable counts as unset.
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let base = match var("SHOEBOX_TEST_CACHE") {
        Some(d) => PathBuf::from(d),
        None => match var("XDG_CACHE_HOME") {
            Some(d) => PathBuf::from(d).join("shoebox-test"),
            None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/shoebox-test"),
        },
    };
    Some(base.join("all-MiniLM-L6-v2"))
}

fn minilm_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("SHOEBOX_MINILM_DIR").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(d));
    }
    default_cache_dir().filter(|d| TEXT_FILES.iter().all(|f| d.join(f).is_file()))
}

/// The encoder, or None (after saying why) when the model is absent outside CI.
fn load_minilm() -> Option<TextEncoder> {
    load_minilm_at(Precision::F32)
}

fn load_minilm_at(precision: Precision) -> Option<TextEncoder> {
    let Some(dir) = minilm_dir() else {
        let msg = "all-MiniLM-L6-v2 not found: run scripts/fetch-minilm.sh and set \
                   SHOEBOX_MINILM_DIR to the folder it prints";
        if std::env::var_os("CI").is_some() {
            panic!("{msg} (CI is set, so this test may not skip)");
        }
        eprintln!("skipping: {msg}");
        return None;
    };
    let dir = hub::resolve(dir.to_str().unwrap(), TEXT_FILES, &Default::default()).unwrap();
    Some(TextEncoder::load_with(&dir, &candle_core::Device::Cpu, precision).unwrap())
}

fn minilm_reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("reference/minilm.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn minilm_matches_sentence_transformers() {
    let Some(enc) = load_minilm() else { return };
    let r = minilm_reference();
    assert_eq!(enc.dim(), 384);
    assert_eq!(r["embedding_dim"].as_u64(), Some(384));
    assert_eq!(enc.max_seq_length(), 256);

    let sentences = r["sentences"].as_array().unwrap();
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let batched = enc.embed(&texts).unwrap();
    assert_eq!(batched.len(), texts.len());
    for (i, s) in sentences.iter().enumerate() {
        let text = texts[i];
        let want_ids: Vec<u32> = s["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(enc.tokenize(text).unwrap(), want_ids, "tokens of {text:?}");

        let want = floats(&s["embedding"]);
        let single = enc.embed(&[text]).unwrap().remove(0);
        assert_eq!(single.len(), 384);
        let norm = single.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{text:?}: norm {norm}");
        let c_single = cosine(&single, &want);
        let c_batch = cosine(&batched[i], &want);
        let c_agree = cosine(&single, &batched[i]);
        eprintln!("{text:?}: cosine {c_single} alone, {c_batch} in the batch");
        assert!(
            c_single >= 0.9999 && c_batch >= 0.9999 && c_agree >= 0.9999,
            "{text:?}: cosine {c_single} alone, {c_batch} in the batch, {c_agree} between them"
        );
    }
    assert!(enc.embed(&[]).unwrap().is_empty());
}

/// Real weights at q8 (int8 BERT layers): every reference sentence within cosine 0.995 of
/// sentence-transformers' f32 embedding.
#[test]
fn minilm_q8_stays_close_to_sentence_transformers() {
    let Some(enc) = load_minilm_at(Precision::Q8) else {
        return;
    };
    let r = minilm_reference();
    let sentences = r["sentences"].as_array().unwrap();
    let texts: Vec<&str> = sentences
        .iter()
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    let got = enc.embed(&texts).unwrap();
    let mut worst = 1f32;
    for (s, g) in sentences.iter().zip(&got) {
        worst = worst.min(cosine(g, &floats(&s["embedding"])));
    }
    eprintln!("all-MiniLM-L6-v2 q8: worst cosine to sentence-transformers {worst:.5}");
    assert!(worst >= 0.995, "{worst}");
}

/// A copy of the model folder with the weights renamed by `rename` (None drops the tensor).
fn rewritten_copy(
    src: &std::path::Path,
    rename: impl Fn(&str) -> Option<String>,
) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["config.json", "tokenizer.json", "sentence_bert_config.json"] {
        if src.join(f).is_file() {
            std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
        }
    }
    let tensors =
        candle_core::safetensors::load(src.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap();
    let renamed: std::collections::HashMap<String, candle_core::Tensor> = tensors
        .into_iter()
        .filter_map(|(k, v)| rename(&k).map(|k| (k, v)))
        .collect();
    candle_core::safetensors::save(&renamed, tmp.path().join("model.safetensors")).unwrap();
    tmp
}

#[test]
fn minilm_loads_with_a_bert_prefix_and_names_a_missing_tensor() {
    let Some(enc) = load_minilm() else { return };
    let src = minilm_dir().unwrap();
    let bare = src.join("model.safetensors");
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(&bare) }.unwrap();
    assert!(
        st.get("embeddings.word_embeddings.weight").is_ok(),
        "the sentence-transformers checkpoint has no `bert.` prefix"
    );
    let text = "a cute puppy playing in the park";
    let want = enc.embed(&[text]).unwrap().remove(0);

    // The same weights as BertModel saves them, under `bert.`.
    let prefixed = rewritten_copy(&src, |k| Some(format!("bert.{k}")));
    let dir = hub::resolve(
        prefixed.path().to_str().unwrap(),
        TEXT_FILES,
        &Default::default(),
    )
    .unwrap();
    let enc2 = TextEncoder::load(&dir, &candle_core::Device::Cpu).unwrap();
    let got = enc2.embed(&[text]).unwrap().remove(0);
    assert!(cosine(&got, &want) >= 0.99999);

    // A missing tensor is refused and named, not filled with random values.
    let missing = "encoder.layer.3.attention.self.key.weight";
    let broken = rewritten_copy(&src, |k| (k != missing).then(|| k.to_string()));
    let dir = hub::resolve(
        broken.path().to_str().unwrap(),
        TEXT_FILES,
        &Default::default(),
    )
    .unwrap();
    let err = TextEncoder::load(&dir, &candle_core::Device::Cpu)
        .err()
        .expect("a checkpoint without a key projection must not load")
        .to_string();
    assert!(err.contains(missing), "{err}");
}

#[test]
fn minilm_truncates_long_input_at_max_seq_length() {
    let Some(enc) = load_minilm() else { return };
    let long = "word ".repeat(1000);
    let ids = enc.tokenize(&long).unwrap();
    assert_eq!(ids.len(), enc.max_seq_length());
    assert_eq!(ids.first(), Some(&101), "[CLS] first");
    assert_eq!(ids.last(), Some(&102), "[SEP] kept last");
    let v = enc.embed(&[&long, "short"]).unwrap();
    assert_eq!(v.len(), 2);
    assert!(v.iter().flatten().all(|x| x.is_finite()));
}

#[test]
fn keyphrases_of_a_caption_on_minilm() {
    let Some(enc) = load_minilm() else { return };
    let caption = "two dogs playing on a sandy beach at sunset";
    let cands = candidates(caption);
    let picks = keyphrases(&enc, caption, 5, 0.5, 0.2).unwrap();
    eprintln!("keyphrases of {caption:?}: {picks:?}");
    assert!(!picks.is_empty());
    assert!(picks.len() <= 5);
    for (p, s) in &picks {
        assert!(cands.contains(p), "{p:?} is not a candidate");
        assert!(*s >= 0.2 && *s <= 1.0001, "{p:?}: score {s}");
    }
    assert!(
        picks
            .iter()
            .any(|(p, _)| p.contains("dog") || p.contains("beach")),
        "no dog/beach phrase in {picks:?}"
    );
    // Returned in KeyBERT's order: by cosine with the caption, highest first.
    assert!(picks.windows(2).all(|w| w[0].1 >= w[1].1), "{picks:?}");
    // Diversity: the five picks are not five variants of one phrase.
    let distinct_heads: std::collections::HashSet<&str> = picks
        .iter()
        .filter_map(|(p, _)| p.split(' ').next_back())
        .collect();
    assert!(distinct_heads.len() >= 2, "{picks:?}");

    // A caption of stop words only has no keyphrases.
    assert!(keyphrases(&enc, "a photo of it", 5, 0.5, 0.0)
        .unwrap()
        .is_empty());
}

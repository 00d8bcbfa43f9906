//! The other models: a captioner (seconds per caption, greedy) and a sentence encoder (sentences
//! per second), each built with random weights when asked for, else timed only when available
//! without a download.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use serde_json::{json, Value};
use shoebox_core::captions;
use shoebox_core::decode::decode_file;
use shoebox_core::models::caption::{CaptionOptions, Captioner, CAPTION_FILES};
use shoebox_core::models::hub;
use shoebox_core::models::text::{TextEncoder, TEXT_FILES};
use shoebox_core::{Error, Result};

use super::Run;
use crate::random_weights::{random_model, Arch};
use crate::report::round;

impl Run<'_> {
    /// Seconds per caption of `photo`, with the random-weight captioner asked for or the configured
    /// one if it is available offline; `None` when neither is.
    pub(super) fn time_captioner(&mut self, photo: &Path) -> Result<Option<f64>> {
        let cap_arch = self
            .opts
            .random_weights
            .iter()
            .copied()
            .find(|a| a.is_captioner());
        let captioner = match cap_arch {
            Some(arch) => {
                self.progress(&format!("building {} with random weights", arch.name()));
                let d = random_model(arch, &self.work)?;
                self.note(
                    "caption_model",
                    json!(format!("{} (random weights)", arch.hub_id())),
                );
                Some(Captioner::load_with(&d, &self.device, self.opts.precision)?)
            }
            None => match &self.opts.caption_model {
                Some(spec) if available_offline(spec, CAPTION_FILES) => {
                    self.note("caption_model", json!(hub::model_name(spec)));
                    Some(captions::load_captioner(
                        spec,
                        self.opts.device,
                        self.opts.precision,
                        &Default::default(),
                    )?)
                }
                Some(spec) => {
                    self.note(
                        "caption_model",
                        json!(format!("{spec}: not available offline, not timed")),
                    );
                    None
                }
                None => None,
            },
        };
        let Some(cap) = captioner else {
            return Ok(None);
        };
        self.progress("timing captions (greedy, 20 new tokens at most)");
        Ok(Some(time_captions(&cap, photo, &mut self.notes)?))
    }

    /// Sentences per second of the random-weight all-MiniLM-L6-v2 asked for or the configured
    /// sentence encoder if it is available offline; `None` when neither is.
    pub(super) fn time_sentence_encoder(&mut self) -> Result<Option<f64>> {
        let encoder = if self.opts.random_weights.contains(&Arch::MiniLmL6) {
            self.progress("building minilm-l6 with random weights");
            let d = random_model(Arch::MiniLmL6, &self.work)?;
            self.note(
                "bert_model",
                json!(format!("{} (random weights)", Arch::MiniLmL6.hub_id())),
            );
            Some(TextEncoder::load_with(
                &d,
                &self.device,
                self.opts.precision,
            )?)
        } else {
            match &self.opts.text_model {
                Some(spec) if available_offline(spec, TEXT_FILES) => {
                    let d = hub::resolve(spec, TEXT_FILES, &Default::default())?;
                    self.note("bert_model", json!(d.name.clone()));
                    Some(TextEncoder::load_with(
                        &d,
                        &self.device,
                        self.opts.precision,
                    )?)
                }
                Some(spec) => {
                    self.note(
                        "bert_model",
                        json!(format!("{spec}: not available offline, not timed")),
                    );
                    None
                }
                None => None,
            }
        };
        let Some(enc) = encoder else {
            return Ok(None);
        };
        self.progress("timing sentence embeddings (batches of 32)");
        Ok(Some(time_sentences(&enc)?))
    }
}

/// A local folder, or a hub id already in the Hugging Face cache (the bench never downloads these).
fn available_offline(spec: &str, files: &[&str]) -> bool {
    hub::is_local(spec) || hub::cached(spec, files).is_some()
}

/// Mean seconds of `f` over at least `min` runs, more while under `budget_s` (at most `max`).
fn mean_secs<T>(
    min: usize,
    max: usize,
    budget_s: f64,
    mut f: impl FnMut() -> Result<T>,
) -> Result<(f64, T)> {
    let start = Instant::now();
    let mut runs = 0;
    let mut last;
    loop {
        last = f()?;
        runs += 1;
        let spent = start.elapsed().as_secs_f64();
        if runs >= max || (runs >= min && spent >= budget_s) {
            return Ok((spent / runs as f64, last));
        }
    }
}

/// Seconds per caption of one generated photo (greedy, 20 new tokens at most); notes the tokens
/// generated, the image-encoding share, and the cost without the cross-attention cache.
fn time_captions(
    cap: &Captioner,
    photo: &Path,
    notes: &mut BTreeMap<String, Value>,
) -> Result<f64> {
    let d = decode_file(photo, cap.decode_short_side()).map_err(|reason| Error::Decode {
        path: photo.to_path_buf(),
        reason,
    })?;
    let px = vec![cap.preprocess(&d.image)?];
    let o = CaptionOptions {
        beams: 1,
        max_tokens: 20,
        ..CaptionOptions::default()
    };
    cap.caption_pixels(&px, &o)?; // warm-up
    let (secs, c) = mean_secs(2, 10, 3.0, || Ok(cap.caption_pixels(&px, &o)?.remove(0)))?;
    let tokens = c.tokens.len().saturating_sub(1);
    let (enc_s, _) = mean_secs(1, 10, 1.0, || cap.encode(&px))?;
    let uncached = CaptionOptions {
        cache_cross: false,
        ..o
    };
    let (secs_uncached, c2) = mean_secs(1, 10, 3.0, || {
        Ok(cap.caption_pixels(&px, &uncached)?.remove(0))
    })?;
    let tokens2 = c2.tokens.len().saturating_sub(1);
    notes.insert("caption_tokens".into(), json!(tokens));
    notes.insert("caption_encode_s".into(), json!(round(enc_s, 4)));
    notes.insert(
        "caption_ms_per_token".into(),
        json!(round(
            (secs - enc_s).max(0.0) * 1e3 / tokens.max(1) as f64,
            2
        )),
    );
    notes.insert(
        "caption_s_without_cross_cache".into(),
        json!(round(secs_uncached, 4)),
    );
    notes.insert("caption_tokens_without_cross_cache".into(), json!(tokens2));
    Ok(secs)
}

const SUBJECTS: &[&str] = &[
    "a brown dog",
    "two small children",
    "an old man",
    "a small white cat",
    "a group of friends",
    "a red vintage car",
    "a smiling woman",
    "a flock of birds",
];
const ACTIONS: &[&str] = &[
    "running on wet sand",
    "sitting on a bench",
    "waiting at the station",
    "playing in the park",
];
const PLACES: &[&str] = &[
    "near the sea at sunset",
    "under a cloudy sky",
    "in the busy city",
    "beside a snowy mountain",
    "on a summer afternoon",
    "next to a lake",
    "at a birthday party",
    "behind the village church",
];

/// `n` caption-like sentences of about 12 words ("a brown dog running on wet sand near the sea
/// at sunset"), the same every run.
pub fn caption_like_sentences(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            format!(
                "{} {} {}",
                SUBJECTS[i % SUBJECTS.len()],
                ACTIONS[(i / SUBJECTS.len()) % ACTIONS.len()],
                PLACES[(i / (SUBJECTS.len() * ACTIONS.len())) % PLACES.len()]
            )
        })
        .collect()
}

/// Sentences per second: 256 caption-like sentences of about 12 words, in batches of 32.
fn time_sentences(enc: &TextEncoder) -> Result<f64> {
    let sentences = caption_like_sentences(256);
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    enc.embed(&refs[..32])?; // warm-up
    let t = Instant::now();
    for chunk in refs.chunks(32) {
        enc.embed(chunk)?;
    }
    Ok(refs.len() as f64 / t.elapsed().as_secs_f64())
}

//! Captioners against transformers: the tiny BLIP and ViT-GPT2 fixtures must produce the reference
//! token ids (greedy and beam search), and caption the shape images with their color and shape.

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{cosine, fixtures, floats, labels};
use shoebox_core::captions::caption_image_file;
use shoebox_core::models::caption::{CaptionOptions, Captioner, CAPTION_FILES};
use shoebox_core::models::hub;
use shoebox_core::Error;

fn load(name: &str) -> Captioner {
    let dir = fixtures().join("models").join(name);
    let dir = hub::resolve(dir.to_str().unwrap(), CAPTION_FILES, &Default::default()).unwrap();
    Captioner::load(&dir, &Device::Cpu).unwrap()
}

fn reference(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(format!("reference/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn pixels(name: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join(format!("reference/{name}.pixel_values.safetensors")),
        &Device::Cpu,
    )
    .unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// transformers' defaults, as the references were made: no n-gram blocking.
fn greedy() -> CaptionOptions {
    CaptionOptions {
        no_repeat_ngram_size: 0,
        ..CaptionOptions::default()
    }
}

/// Greedy captions from the reference pixel tensors and from the files through our own decode and
/// preprocessing; returns how many images were checked.
fn check_greedy(name: &str, greedy_key: Option<&str>) -> usize {
    let cap = load(name);
    let r = reference(name);
    let px = pixels(name);
    let mut n = 0;
    for img in r["images"].as_array().unwrap() {
        let want = match greedy_key {
            Some(k) => &img[k],
            None => img,
        };
        let key = img["pixel_values_key"].as_str().unwrap();
        let t = px[key].to_dtype(candle_core::DType::F32).unwrap();
        let flat: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        let got = cap.caption_pixels(&[flat], &greedy()).unwrap().remove(0);
        assert_eq!(
            got.tokens,
            ids(&want["token_ids"]),
            "{name} {key} token ids"
        );
        assert_eq!(got.text, want["caption"].as_str().unwrap(), "{name} {key}");
        // Through the file: our decoding and preprocessing must give the same caption.
        let file = fixtures().join("data").join(img["file"].as_str().unwrap());
        let from_file = caption_image_file(&cap, &file, &greedy()).unwrap();
        assert_eq!(
            from_file.text,
            want["caption"].as_str().unwrap(),
            "{name} {file:?}"
        );
        n += 1;
    }
    n
}

#[test]
fn blip_greedy_matches_transformers() {
    assert_eq!(check_greedy("blip-dev", None), 10);
}

#[test]
fn blip_vision_encoder_matches_transformers() {
    let cap = load("blip-dev");
    let r = reference("blip-dev");
    let px = pixels("blip-dev");
    for img in r["images"].as_array().unwrap() {
        let key = img["pixel_values_key"].as_str().unwrap();
        let flat: Vec<f32> = px[key].flatten_all().unwrap().to_vec1().unwrap();
        let enc = cap.encode(&[flat]).unwrap();
        let cls: Vec<f32> = enc.get(0).unwrap().get(0).unwrap().to_vec1().unwrap();
        let want = floats(&img["vision_last_hidden_state_cls"]);
        assert!(
            cosine(&cls, &want) > 0.9999,
            "{key}: {}",
            cosine(&cls, &want)
        );
    }
}

#[test]
fn vitgpt2_greedy_matches_transformers() {
    assert_eq!(check_greedy("vitgpt2-dev", Some("greedy")), 10);
}

#[test]
fn vitgpt2_beam_search_matches_transformers() {
    let cap = load("vitgpt2-dev");
    let r = reference("vitgpt2-dev");
    let px = pixels("vitgpt2-dev");
    let opts = CaptionOptions {
        beams: 3,
        max_tokens: 12,
        ..greedy()
    };
    let mut checked = 0;
    for img in r["images"].as_array().unwrap() {
        let key = img["pixel_values_key"].as_str().unwrap();
        let flat: Vec<f32> = px[key].flatten_all().unwrap().to_vec1().unwrap();
        let enc = cap.encode(&[flat]).unwrap();
        let got = cap.generate(enc, &opts).unwrap();
        let want = img["beam3"]["beams"].as_array().unwrap();
        assert_eq!(got.len(), want.len(), "{key}: number of beams");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.tokens, ids(&w["token_ids"]), "{key} beam");
            assert_eq!(g.text, w["caption"].as_str().unwrap());
            let score = w["sequence_score"].as_f64().unwrap() as f32;
            assert!(
                (g.score - score).abs() < 1e-3 + 1e-3 * score.abs(),
                "{key}: score {} vs {score}",
                g.score
            );
        }
        assert_eq!(got[0].text, img["beam3"]["caption"].as_str().unwrap());
        checked += 1;
    }
    assert_eq!(checked, 10);
}

#[test]
fn cross_attention_cache_changes_nothing() {
    for name in ["blip-dev", "vitgpt2-dev"] {
        let cap = load(name);
        let uncached = CaptionOptions {
            cache_cross: false,
            ..greedy()
        };
        for (file, _, _) in labels().into_iter().take(5) {
            let a = caption_image_file(&cap, &file, &greedy()).unwrap();
            let b = caption_image_file(&cap, &file, &uncached).unwrap();
            assert_eq!(a.tokens, b.tokens, "{name} {file:?}");
        }
    }
}

#[test]
fn shape_images_are_captioned_with_their_color_and_shape() {
    let data = labels();
    for name in ["blip-dev", "vitgpt2-dev"] {
        let cap = load(name);
        let mut right = 0;
        let mut wrong = Vec::new();
        for (file, color, shape) in &data {
            let c = caption_image_file(&cap, file, &greedy()).unwrap();
            let words: Vec<&str> = c.text.split(' ').collect();
            if words.contains(&color.as_str()) && words.contains(&shape.as_str()) {
                right += 1;
            } else {
                wrong.push(format!("{}: {}", file.display(), c.text));
            }
        }
        let rate = right as f64 / data.len() as f64;
        println!(
            "{name}: {right}/{} captions name color and shape",
            data.len()
        );
        assert!(rate >= 0.95, "{name}: {rate} — {wrong:?}");
    }
}

#[test]
fn a_corrupt_image_is_a_clear_error_and_the_next_one_still_works() {
    let cap = load("blip-dev");
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken.jpg");
    let good = fixtures().join("data/dev/dev_0000.jpg");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    let zero = tmp.path().join("zero.png");
    std::fs::write(&zero, b"").unwrap();
    for f in [&bad, &zero] {
        match caption_image_file(&cap, f, &greedy()) {
            Err(Error::Decode { path, reason }) => {
                assert_eq!(&path, f);
                assert!(!reason.is_empty());
            }
            other => panic!("{f:?}: expected a decode error, got {other:?}"),
        }
    }
    assert_eq!(
        caption_image_file(&cap, &good, &greedy()).unwrap().text,
        "a red circle"
    );
}

#[test]
fn a_folder_that_is_not_a_captioner_is_refused_clearly() {
    let dir = hub::resolve(
        common::clip_dir().to_str().unwrap(),
        CAPTION_FILES,
        &Default::default(),
    )
    .unwrap();
    let err = Captioner::load(&dir, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("model_type"), "{err}");
}

#[test]
fn quantized_blip_gguf_still_captions_the_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("blip-dev-q8");
    let src = fixtures().join("models/blip-dev");
    let (quantized, kept) = shoebox_core::captions::quantize_captioner(
        src.to_str().unwrap(),
        &dest,
        "q8_0",
        &Default::default(),
    )
    .unwrap();
    assert!(
        quantized >= 20 && kept > 0,
        "{quantized} quantized, {kept} kept"
    );
    let gguf = std::fs::metadata(dest.join("model.gguf")).unwrap().len();
    let f32 = std::fs::metadata(src.join("model.safetensors"))
        .unwrap()
        .len();
    assert!(gguf < f32 / 2, "gguf {gguf} bytes vs safetensors {f32}");
    assert!(!dest.join("model.safetensors").exists());
    let cap = shoebox_core::captions::load_captioner(
        dest.to_str().unwrap(),
        Default::default(),
        Default::default(),
        &Default::default(),
    )
    .unwrap();
    // 80 images keep this test quick: quantized matmuls are slow at these toy sizes.
    let data: Vec<_> = labels().into_iter().take(80).collect();
    let right = data
        .iter()
        .filter(|(file, color, shape)| {
            caption_image_file(&cap, file, &greedy()).unwrap().text == format!("a {color} {shape}")
        })
        .count();
    println!("q8_0 BLIP: {right}/{} exact captions", data.len());
    assert!(right * 100 >= data.len() * 95, "{right}/{}", data.len());
    // ViT-GPT2 is not quantized: refused clearly.
    let err = shoebox_core::captions::quantize_captioner(
        fixtures().join("models/vitgpt2-dev").to_str().unwrap(),
        &tmp.path().join("v"),
        "q8_0",
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("only BLIP"), "{err}");
}

//! CLIP parity with Hugging Face transformers on the tiny fixture model: token ids, text embeddings,
//! image embeddings from the reference pixel tensors and from the image files, and the checks that
//! refuse checkpoints candle would silently get wrong.

mod common;

use common::*;
use shoebox_core::decode::decode_file;
use shoebox_core::models::clip::{Clip, ImageTextConfig};
use shoebox_core::models::hub::ModelDir;

#[test]
fn token_ids_match_reference() {
    let clip = load_clip();
    let r = reference();
    for t in r["texts"].as_array().unwrap() {
        let text = t["text"].as_str().unwrap();
        let want: Vec<u32> = t["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(clip.tokenize(text).unwrap(), want, "tokens of {text:?}");
    }
}

#[test]
fn text_embeddings_match_reference() {
    let clip = load_clip();
    let r = reference();
    let texts: Vec<&str> = r["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["text"].as_str().unwrap())
        .collect();
    // Batched (padded) and one by one must both match.
    let batched = clip.embed_texts(&texts).unwrap();
    for (i, t) in r["texts"].as_array().unwrap().iter().enumerate() {
        let want = floats(&t["embedding"]);
        let single = clip.embed_texts(&[texts[i]]).unwrap().remove(0);
        let c1 = cosine(&single, &want);
        let c2 = cosine(&batched[i], &want);
        assert!(
            c1 >= 0.9999 && c2 >= 0.9999,
            "{:?}: cosine {c1} / batched {c2}",
            texts[i]
        );
    }
}

#[test]
fn image_embeddings_from_reference_pixels_match() {
    let clip = load_clip();
    let r = reference();
    let px = candle_core::safetensors::load(
        fixtures().join("reference/clip-dev.pixel_values.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    for img in r["images"].as_array().unwrap() {
        let key = img["pixel_values_key"].as_str().unwrap();
        let values: Vec<f32> = px[key].flatten_all().unwrap().to_vec1().unwrap();
        let got = clip.embed_pixels(&[values]).unwrap().remove(0);
        let c = cosine(&got, &floats(&img["embedding"]));
        assert!(c >= 0.99999, "{key}: cosine {c}");
    }
}

#[test]
fn image_embeddings_from_files_match() {
    let clip = load_clip();
    let r = reference();
    let px = candle_core::safetensors::load(
        fixtures().join("reference/clip-dev.pixel_values.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut worst_pixel = 0f32;
    for img in r["images"].as_array().unwrap() {
        let file = fixtures().join("data").join(img["file"].as_str().unwrap());
        let d = decode_file(&file, clip.decode_short_side()).unwrap();
        let ours = clip.preprocess(&d.image).unwrap();
        let theirs: Vec<f32> = px[img["pixel_values_key"].as_str().unwrap()]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(ours.len(), theirs.len());
        let mean_diff: f32 = ours
            .iter()
            .zip(&theirs)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / ours.len() as f32;
        worst_pixel = worst_pixel.max(mean_diff);
        let got = clip.embed_pixels(&[ours]).unwrap().remove(0);
        let c = cosine(&got, &floats(&img["embedding"]));
        assert!(
            c >= 0.999,
            "{}: cosine {c} (mean pixel diff {mean_diff})",
            file.display()
        );
        // Dimensions are the file's (EXIF-rotated files are checked in tests/decode.rs).
        if img["exif_transposed"].as_bool() == Some(true) {
            continue;
        }
        let size: Vec<u64> = img["size"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(
            (d.meta.width as u64, d.meta.height as u64),
            (size[0], size[1])
        );
    }
    // Normalized pixel values: a mean absolute difference this small is resampling rounding.
    assert!(worst_pixel < 0.05, "mean |pixel diff| {worst_pixel}");
}

#[test]
fn zero_shot_logits_match_reference() {
    let clip = load_clip();
    let r = reference();
    let want = r["logit_scale_exp"].as_f64().unwrap() as f32;
    assert!(
        (clip.logit_scale() - want).abs() < 1e-3,
        "{} vs {want}",
        clip.logit_scale()
    );
}

fn copy_model(to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for f in std::fs::read_dir(clip_dir()).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), to.join(f.file_name())).unwrap();
    }
}

#[test]
fn missing_tensor_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    copy_model(tmp.path());
    // Rewrite the weights without class_embedding: candle would fill it with random values.
    let path = tmp.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    tensors
        .remove("vision_model.embeddings.class_embedding")
        .unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let dir = ModelDir {
        name: "test".into(),
        dir: tmp.path().to_path_buf(),
    };
    let err = Clip::load(&dir, &candle_core::Device::Cpu)
        .err()
        .expect("must refuse");
    assert!(
        err.to_string()
            .contains("vision_model.embeddings.class_embedding"),
        "{err}"
    );
}

#[test]
fn unknown_activations_and_families_are_refused() {
    let text = std::fs::read_to_string(clip_dir().join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(ImageTextConfig::parse(&text).is_ok());
    v["vision_config"]["hidden_act"] = "gelu".into();
    assert!(ImageTextConfig::parse(&v.to_string()).is_ok());
    v["vision_config"]["hidden_act"] = "relu".into();
    let err = ImageTextConfig::parse(&v.to_string()).expect_err("must refuse relu");
    assert!(err.to_string().contains("\"relu\""), "{err}");
    v["vision_config"]["hidden_act"] = "quick_gelu".into();
    v["model_type"] = "siglip2".into();
    let err = ImageTextConfig::parse(&v.to_string()).expect_err("must refuse NaFlex");
    assert!(err.to_string().contains("NaFlex"), "{err}");
    v["model_type"] = "blip".into();
    let err = ImageTextConfig::parse(&v.to_string()).expect_err("must refuse blip");
    assert!(err.to_string().contains("\"blip\""), "{err}");
}

#[test]
fn long_text_is_truncated_keeping_the_end_token() {
    let clip = load_clip();
    let long = "a photo of a red circle ".repeat(30);
    let ids = clip.tokenize(&long).unwrap();
    assert_eq!(ids.len(), 77);
    assert_eq!(*ids.last().unwrap(), 49407);
    assert_eq!(clip.embed_texts(&[&long]).unwrap()[0].len(), clip.dim());
}

#[test]
fn towers_opened_lazily_embed_like_loaded_ones() {
    let dir = shoebox_core::models::hub::resolve(
        clip_dir().to_str().unwrap(),
        shoebox_core::models::clip::CLIP_FILES,
        &Default::default(),
    )
    .unwrap();
    let eager = load_clip();
    let lazy = Clip::open(&dir, &candle_core::Device::Cpu).unwrap();
    let texts = ["a photo of a red circle", "a photo of a blue square"];
    assert_eq!(
        lazy.embed_texts(&texts).unwrap(),
        eager.embed_texts(&texts).unwrap()
    );
    let (file, _, _) = labels().remove(0);
    let img = decode_file(&file, lazy.decode_short_side()).unwrap().image;
    let px = lazy.preprocess(&img).unwrap();
    assert_eq!(
        lazy.embed_pixels(std::slice::from_ref(&px)).unwrap(),
        eager.embed_pixels(&[px]).unwrap()
    );
    assert_eq!(lazy.logit_scale(), eager.logit_scale());
}

#[test]
fn a_lazy_tower_names_its_missing_tensor_and_truncated_weights_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    copy_model(tmp.path());
    let path = tmp.path().join("model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &candle_core::Device::Cpu).unwrap();
    tensors.remove("text_projection.weight").unwrap();
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let dir = ModelDir {
        name: "test".into(),
        dir: tmp.path().to_path_buf(),
    };
    let clip = Clip::open(&dir, &candle_core::Device::Cpu).unwrap();
    let err = clip.embed_texts(&["a cat"]).expect_err("must refuse");
    assert!(err.to_string().contains("text_projection.weight"), "{err}");
    // The vision tower is complete and still loads.
    clip.load_vision().unwrap();

    // Cut the file short: a clear error when opening, naming the file.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1000]).unwrap();
    let err = Clip::open(&dir, &candle_core::Device::Cpu)
        .err()
        .expect("must refuse a truncated file");
    assert!(err.to_string().contains("model.safetensors"), "{err}");
    assert!(err.to_string().contains("outside the file"), "{err}");
}

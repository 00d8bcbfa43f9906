//! Indexing speed: the generated photos, decode + preprocess and the image model timed apart, then
//! the real pipeline end to end (`Library::index` over a folder of the photos).

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use serde_json::json;
use shoebox_core::decode::decode_file;
use shoebox_core::models::clip::Clip;
use shoebox_core::models::Precision;
use shoebox_core::{Error, Library, Result};

use super::Run;
use crate::files::fresh_dir;
use crate::photos::write_photos;
use crate::report::round;

/// The generated photos: their folder and files.
pub(super) struct Photos {
    pub(super) dir: PathBuf,
    pub(super) paths: Vec<PathBuf>,
}

impl Run<'_> {
    /// Write the camera-sized JPEGs (kept from an earlier run in the same work folder).
    pub(super) fn generate_photos(&mut self) -> Result<Photos> {
        let count = self.opts.photos;
        let dir = self.work.join(format!("photos-{count}"));
        self.progress(&format!(
            "writing {count} camera-sized JPEGs (4000×3000) into {}",
            dir.display()
        ));
        let t = Instant::now();
        let paths = write_photos(&dir, count)?;
        let bytes: u64 = paths
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        self.note(
            "photo_mb_avg",
            json!(round(bytes as f64 / paths.len() as f64 / 1e6, 2)),
        );
        self.note(
            "photo_generation_s",
            json!(round(t.elapsed().as_secs_f64(), 1)),
        );
        Ok(Photos { dir, paths })
    }

    /// Images per second of decode + preprocess (one thread) and of the image model alone (at the
    /// pipeline's batch size), and the model's embedding dimensions.
    pub(super) fn time_decode_and_model(
        &mut self,
        photos: &[PathBuf],
    ) -> Result<(f64, f64, usize)> {
        let t = Instant::now();
        let clip = Clip::open(&self.clip, &self.device)?.with_precision(self.opts.precision);
        clip.load_text()?;
        clip.load_vision()?;
        self.note(
            "clip_load_ms",
            json!(round(t.elapsed().as_secs_f64() * 1e3, 1)),
        );
        let dim = clip.dim();
        self.progress("timing decode + preprocess (one thread)");
        let min_short = clip.decode_short_side();
        let t = Instant::now();
        let mut pixels = Vec::with_capacity(photos.len());
        for p in photos {
            let d = decode_file(p, min_short).map_err(|reason| Error::Decode {
                path: p.clone(),
                reason,
            })?;
            pixels.push(clip.preprocess(&d.image)?);
        }
        let decode_img_s = photos.len() as f64 / t.elapsed().as_secs_f64();

        let batch = self.opts.pipeline.batch_size.max(1);
        self.progress(&format!("timing image embedding (batch {batch})"));
        clip.embed_pixels(&pixels[..batch.min(pixels.len())])?; // warm-up
                                                                // Best of three passes: the machine is shared and single passes swing.
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t = Instant::now();
            for chunk in pixels.chunks(batch) {
                clip.embed_pixels(chunk)?;
            }
            best = best.min(t.elapsed().as_secs_f64());
        }
        let model_img_s = pixels.len() as f64 / best;

        // One short query through the text tower, warm (what a search pays before the index).
        self.progress("timing the text tower (one query)");
        let query = ["a photo of a dog on the beach"];
        clip.embed_texts(&query)?;
        let mut best = f64::INFINITY;
        for _ in 0..20 {
            let t = Instant::now();
            clip.embed_texts(&query)?;
            best = best.min(t.elapsed().as_secs_f64());
        }
        self.note("text_query_ms", json!(round(best * 1e3, 2)));

        if clip.precision() != Precision::F32 {
            // How far the quantized embeddings are from f32 ones, on these photos and queries.
            self.progress("comparing embeddings with f32");
            let reference = Clip::open(&self.clip, &self.device)?;
            let worst = |a: Vec<Vec<f32>>, b: Vec<Vec<f32>>| {
                a.iter()
                    .zip(&b)
                    .map(|(x, y)| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>())
                    .fold(1f32, f32::min)
            };
            let img = worst(
                clip.embed_pixels(&pixels)?,
                reference.embed_pixels(&pixels)?,
            );
            let texts = super::queries::QUERIES;
            let txt = worst(clip.embed_texts(texts)?, reference.embed_texts(texts)?);
            self.note("min_cosine_to_f32_images", json!(round(img as f64, 5)));
            self.note("min_cosine_to_f32_texts", json!(round(txt as f64, 5)));
        }
        Ok((decode_img_s, model_img_s, dim))
    }

    /// Images per second of `Library::index` over a fresh library of the photos (scan, pipeline,
    /// catalog, index).
    pub(super) fn time_end_to_end(&mut self, photos: &Photos) -> Result<f64> {
        self.progress("timing the real pipeline (Library::index)");
        let count = photos.paths.len();
        let index_lib_dir = fresh_dir(&self.work.join("library-index"))?;
        let (end_to_end_img_s, pipeline_s, exif_dates) = {
            let mut lib = Library::open(self.lib_opts(index_lib_dir.clone()))?;
            lib.lock_for_writing()?;
            lib.add_folders(std::slice::from_ref(&photos.dir))?;
            lib.clip()?;
            let never = AtomicBool::new(false);
            let t = Instant::now();
            let r = lib.index(self.opts.pipeline, &never, &mut |_| {})?;
            let secs = t.elapsed().as_secs_f64();
            if r.pipeline.embedded != count {
                return Err(Error::Invalid(format!(
                    "the pipeline embedded {} of {} generated photos ({} failed)",
                    r.pipeline.embedded, count, r.pipeline.failed
                )));
            }
            let model_id = lib
                .catalog()
                .find_model(&self.clip.name)?
                .map(|m| m.id)
                .unwrap_or(-1);
            let dated = lib
                .catalog()
                .embedded_infos(model_id)?
                .iter()
                .filter(|p| p.taken_at.is_some())
                .count();
            (count as f64 / secs, r.pipeline.seconds, dated)
        };
        let _ = std::fs::remove_dir_all(&index_lib_dir);
        self.note(
            "end_to_end_pipeline_only_img_s",
            json!(round(count as f64 / pipeline_s, 2)),
        );
        self.note("exif_dates_read", json!(exif_dates));
        Ok(end_to_end_img_s)
    }
}

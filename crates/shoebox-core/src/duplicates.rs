//! Duplicates: exact copies (same content hash) and near-duplicates (resized, re-encoded, slightly
//! cropped or brightened: CLIP cosine at or above a threshold, confirmed by a perceptual hash), the
//! keeper each group suggests, and the perceptual hash itself.

use std::cmp::Reverse;
use std::path::PathBuf;

use image::RgbImage;
use serde::Serialize;

/// The CLIP cosine at or above which two photos may be near-duplicates (then the perceptual hash
/// decides). Chosen from the curve measured on the planted groups (README, "Duplicates").
pub const DEFAULT_THRESHOLD: f32 = 0.90;

/// The most bits (of 128) two perceptual hashes of near-duplicates may differ in.
pub const MAX_PHASH_DISTANCE: u32 = 18;

/// Bytes of a perceptual hash: a horizontal and a vertical difference hash of 64 bits each.
pub const PHASH_BYTES: usize = 16;

/// How much two near-duplicates' aspect ratios may differ (resizing keeps it; a 4 % crop of one
/// side changes it by 4 %): a cheap third check against different pictures with similar hashes.
pub const MAX_ASPECT_CHANGE: f64 = 0.06;

/// Whether two pictures' shapes allow them to be copies of each other (unknown sizes allow it).
pub fn similar_aspect(a: (Option<u32>, Option<u32>), b: (Option<u32>, Option<u32>)) -> bool {
    match (a, b) {
        ((Some(aw), Some(ah)), (Some(bw), Some(bh))) if aw > 0 && ah > 0 && bw > 0 && bh > 0 => {
            let ra = aw as f64 / ah as f64;
            let rb = bw as f64 / bh as f64;
            (ra / rb).ln().abs() <= MAX_ASPECT_CHANGE.ln_1p()
        }
        _ => true,
    }
}

/// Neighbours each photo asks the index for: more than any real group holds.
pub const NEIGHBOURS: usize = 12;

/// The 128-bit perceptual hash of a picture: two difference hashes (whether each cell of an 8×8
/// grey version is brighter than its right, then its lower, neighbour). Unchanged by resizing,
/// re-encoding and brightness, moved a few bits by small crops. One direction alone (or a DCT mean
/// hash) left plain pictures of one shape at similar places too close.
pub fn phash(img: &RgbImage) -> Vec<u8> {
    let img = image::DynamicImage::ImageRgb8(img.clone());
    let mut out = Vec::with_capacity(PHASH_BYTES);
    for alg in [
        image_hasher::HashAlg::Gradient,
        image_hasher::HashAlg::VertGradient,
    ] {
        let hasher = image_hasher::HasherConfig::new()
            .hash_alg(alg)
            .hash_size(8, 8)
            .to_hasher();
        out.extend_from_slice(hasher.hash_image(&img).as_bytes());
    }
    out
}

/// Bits in which two perceptual hashes differ (all of them when either is malformed).
pub fn phash_distance(a: &[u8], b: &[u8]) -> u32 {
    if a.len() != PHASH_BYTES || b.len() != PHASH_BYTES {
        return 8 * PHASH_BYTES as u32;
    }
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

/// Exact copies or near-duplicates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicateKind {
    Exact,
    Near,
}

/// One photo of a group (the `duplicates --json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct DuplicatePhoto {
    pub path: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// Bytes.
    pub size: u64,
    pub taken_at: Option<String>,
    /// The suggested keeper of its group.
    pub keep: bool,
    #[serde(skip)]
    pub photo_id: i64,
    #[serde(skip)]
    pub abs_path: PathBuf,
    #[serde(skip)]
    pub ext: String,
    /// The date it sorts by (capture time, else file time).
    #[serde(skip)]
    pub date: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DuplicateGroup {
    pub kind: DuplicateKind,
    pub photos: Vec<DuplicatePhoto>,
}

/// The answer of the duplicate finder (the `duplicates --json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct DuplicatesReport {
    pub threshold: f32,
    pub groups: Vec<DuplicateGroup>,
    #[serde(skip)]
    pub took_ms: f64,
}

impl DuplicatesReport {
    /// Every photo that is not its group's keeper.
    pub fn non_keepers(&self) -> Vec<PathBuf> {
        self.groups
            .iter()
            .flat_map(|g| g.photos.iter().filter(|p| !p.keep))
            .map(|p| p.abs_path.clone())
            .collect()
    }
}

/// How original a file's format is: camera RAW, then the phone's HEIF, then JPEG, then
/// conversions (PNG, WebP, TIFF, …).
pub fn format_rank(ext: &str) -> u8 {
    if crate::formats::is_raw_ext(ext) {
        3
    } else if crate::formats::HEIF_EXTENSIONS.contains(&ext) {
        2
    } else if matches!(ext, "jpg" | "jpeg" | "jpe") {
        1
    } else {
        0
    }
}

/// The photo a group suggests keeping: the largest resolution, then the most original format,
/// then the oldest, then the largest file (least compressed; then the shortest path, so the choice
/// is stable).
pub fn keeper(photos: &[DuplicatePhoto]) -> usize {
    let pixels = |p: &DuplicatePhoto| p.width.unwrap_or(0) as u64 * p.height.unwrap_or(0) as u64;
    (0..photos.len())
        .max_by_key(|&i| {
            let p = &photos[i];
            (
                pixels(p),
                format_rank(&p.ext),
                Reverse(p.date.clone()),
                p.size,
                Reverse(p.path.len()),
                Reverse(p.path.clone()),
            )
        })
        .unwrap_or(0)
}

/// Disjoint sets over `0..n`.
pub struct UnionFind(Vec<usize>);

impl UnionFind {
    pub fn new(n: usize) -> Self {
        UnionFind((0..n).collect())
    }

    pub fn find(&mut self, mut i: usize) -> usize {
        while self.0[i] != i {
            self.0[i] = self.0[self.0[i]];
            i = self.0[i];
        }
        i
    }

    pub fn union(&mut self, a: usize, b: usize) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.0[a.max(b)] = a.min(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(path: &str, w: u32, ext: &str, date: &str) -> DuplicatePhoto {
        DuplicatePhoto {
            path: path.into(),
            width: Some(w),
            height: Some(w),
            size: 1,
            taken_at: None,
            keep: false,
            photo_id: 0,
            abs_path: path.into(),
            ext: ext.into(),
            date: date.into(),
        }
    }

    #[test]
    fn keeper_is_largest_then_original_then_oldest() {
        let g = [
            photo("/a/small.jpg", 100, "jpg", "2020"),
            photo("/a/big.png", 200, "png", "2021"),
            photo("/a/big.heic", 200, "heic", "2022"),
        ];
        assert_eq!(keeper(&g), 2);
        let g = [
            photo("/a/new.jpg", 200, "jpg", "2022"),
            photo("/a/old.jpg", 200, "jpg", "2019"),
        ];
        assert_eq!(keeper(&g), 1);
    }

    #[test]
    fn phash_survives_resizing_and_tells_pictures_apart() {
        let img = RgbImage::from_fn(200, 150, |x, y| {
            image::Rgb([
                (x % 97) as u8 * 2,
                (y * 3 % 251) as u8,
                ((x + y) % 64) as u8 * 4,
            ])
        });
        let small = image::imageops::resize(&img, 90, 68, image::imageops::FilterType::Triangle);
        let other = RgbImage::from_fn(200, 150, |x, y| {
            image::Rgb([(y % 50) as u8 * 5, (x * 7 % 199) as u8, 128])
        });
        let (a, b, c) = (phash(&img), phash(&small), phash(&other));
        assert_eq!(a.len(), PHASH_BYTES);
        assert!(phash_distance(&a, &b) <= 4, "{}", phash_distance(&a, &b));
        assert!(phash_distance(&a, &c) > MAX_PHASH_DISTANCE);
        assert_eq!(phash_distance(&a, &[]), 128);
        assert!(similar_aspect(
            (Some(400), Some(300)),
            (Some(240), Some(180))
        ));
        assert!(similar_aspect(
            (Some(400), Some(300)),
            (Some(384), Some(300))
        ));
        assert!(!similar_aspect(
            (Some(506), Some(287)),
            (Some(389), Some(243))
        ));
        assert!(similar_aspect((None, Some(3)), (Some(1), Some(9))));
        let mut uf = UnionFind::new(4);
        uf.union(0, 2);
        uf.union(3, 2);
        assert_eq!(uf.find(3), uf.find(0));
        assert_ne!(uf.find(1), uf.find(0));
    }
}

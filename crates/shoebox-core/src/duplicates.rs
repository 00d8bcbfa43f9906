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

/// The most bits (of 64) two perceptual hashes of near-duplicates may differ in.
pub const MAX_PHASH_DISTANCE: u32 = 12;

/// Neighbours each photo asks the index for: more than any real group holds.
pub const NEIGHBOURS: usize = 12;

/// The 64-bit perceptual hash of a picture (difference hash: whether each cell of a 9×8 grey
/// version is brighter than its neighbour): unchanged by resizing, re-encoding and brightness,
/// moved a few bits by small crops. (A DCT mean hash told the plain test pictures apart worse.)
pub fn phash(img: &RgbImage) -> Vec<u8> {
    let hasher = image_hasher::HasherConfig::new()
        .hash_alg(image_hasher::HashAlg::Gradient)
        .hash_size(8, 8)
        .to_hasher();
    hasher
        .hash_image(&image::DynamicImage::ImageRgb8(img.clone()))
        .as_bytes()
        .to_vec()
}

/// Bits in which two perceptual hashes differ (64 when either is malformed).
pub fn phash_distance(a: &[u8], b: &[u8]) -> u32 {
    if a.len() != b.len() || a.is_empty() {
        return 64;
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
        assert_eq!(a.len(), 8);
        assert!(phash_distance(&a, &b) <= 4, "{}", phash_distance(&a, &b));
        assert!(phash_distance(&a, &c) > MAX_PHASH_DISTANCE);
        assert_eq!(phash_distance(&a, &[]), 64);
        let mut uf = UnionFind::new(4);
        uf.union(0, 2);
        uf.union(3, 2);
        assert_eq!(uf.find(3), uf.find(0));
        assert_ne!(uf.find(1), uf.find(0));
    }
}

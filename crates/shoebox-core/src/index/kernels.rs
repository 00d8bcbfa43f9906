//! The arithmetic under the index: f32 and i8 dot products (AVX2/FMA where the CPU has them,
//! portable code elsewhere), the i8 codes of vectors (quantization) and the distance hnsw_rs builds
//! the graph with.

#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicBool, Ordering};

use hnsw_rs::prelude::Distance;

/// Distance between i8 codes: `dim·127² − dot`, which orders pairs as 1 − cosine does (a shift and
/// a scale of it) and never goes negative (hnsw_rs asserts that), whatever the codes' scale.
#[derive(Default, Clone, Copy, Debug)]
pub struct CodeDistance;

impl Distance<i8> for CodeDistance {
    fn eval(&self, a: &[i8], b: &[i8]) -> f32 {
        (a.len() as i64 * 127 * 127 - dot_i8(a, b) as i64) as f32
    }
}

/// The i8 code of a vector: each component times `scale`, rounded, clipped to ±127.
pub(super) fn quantize(v: &[f32], scale: f32) -> Vec<i8> {
    v.iter()
        .map(|x| (x * scale).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

/// The scale that maps the largest component magnitude among `items` to 127.
pub(super) fn code_scale<'a>(items: impl IntoIterator<Item = &'a [f32]>) -> f32 {
    let max = items
        .into_iter()
        .flat_map(|v| v.iter())
        .fold(0f32, |m, x| m.max(x.abs()));
    if max.is_finite() && max > 1e-6 {
        127.0 / max
    } else {
        127.0
    }
}

/// Integer dot product of two codes: AVX2 when the CPU has it.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && !portable_forced() {
        // SAFETY: the CPU has the feature dot_i8_avx2 is compiled for.
        return unsafe { dot_i8_avx2(a, b) };
    }
    dot_i8_portable(a, b)
}

pub(super) fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 16];
    let (ca, cb) = (a.chunks_exact(16), b.chunks_exact(16));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..16 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let mut s: i32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += *x as i32 * *y as i32;
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let (mut s0, mut s1) = (_mm256_setzero_si256(), _mm256_setzero_si256());
    let mut i = 0;
    // 32 components per step: sign-extend 16 at a time to i16, multiply and add pairs into i32.
    while i + 32 <= n {
        let a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i) as *const __m128i));
        let b0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i) as *const __m128i));
        let a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pa.add(i + 16) as *const __m128i));
        let b1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(pb.add(i + 16) as *const __m128i));
        s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a0, b0));
        s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a1, b1));
        i += 32;
    }
    let mut lanes = [0i32; 8];
    _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, _mm256_add_epi32(s0, s1));
    let mut total: i32 = lanes.iter().sum();
    while i < n {
        total += a[i] as i32 * b[i] as i32;
        i += 1;
    }
    total
}

/// When set, [`dot`] and [`dot_i8`] use the portable code even where AVX2/FMA is available (to
/// measure the gain; `shoebox bench --no-simd`).
#[cfg(feature = "testing")]
static PORTABLE_DOT: AtomicBool = AtomicBool::new(false);

/// Use the portable dot products only (`true`), or AVX2/FMA where the CPU has it (the default), in
/// the whole process: every index, exact scan and search.
#[cfg(feature = "testing")]
pub fn force_portable_dot(on: bool) {
    PORTABLE_DOT.store(on, Ordering::Relaxed);
}

/// Whether the portable code is forced (never without the `testing` feature).
#[cfg(target_arch = "x86_64")]
#[inline]
fn portable_forced() -> bool {
    #[cfg(feature = "testing")]
    return PORTABLE_DOT.load(Ordering::Relaxed);
    #[cfg(not(feature = "testing"))]
    false
}

/// Dot product: AVX2 + FMA when the CPU has them, else portable code the compiler vectorizes for
/// the baseline target (SSE2 on x86-64).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && !portable_forced()
    {
        // SAFETY: the CPU has the features dot_avx2 is compiled for.
        return unsafe { dot_avx2(a, b) };
    }
    dot_portable(a, b)
}

pub(super) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s: f32 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    // Four accumulators hide the FMA latency.
    let (mut s0, mut s1, mut s2, mut s3) = (
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
        _mm256_setzero_ps(),
    );
    let mut i = 0;
    while i + 32 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        s1 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 8)),
            _mm256_loadu_ps(pb.add(i + 8)),
            s1,
        );
        s2 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 16)),
            _mm256_loadu_ps(pb.add(i + 16)),
            s2,
        );
        s3 = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i + 24)),
            _mm256_loadu_ps(pb.add(i + 24)),
            s3,
        );
        i += 32;
    }
    while i + 8 <= n {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(pa.add(i)), _mm256_loadu_ps(pb.add(i)), s0);
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
    let mut lanes = [0f32; 8];
    _mm256_storeu_ps(lanes.as_mut_ptr(), s);
    let mut total: f32 = lanes.iter().sum();
    while i < n {
        total += a[i] * b[i];
        i += 1;
    }
    total
}

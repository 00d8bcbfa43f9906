//! Int8 matrices for the `q8` precision: a linear layer's weights quantized once at load
//! (symmetric, one scale per output row), each input row quantized as it arrives (asymmetric u8,
//! one scale and zero point per row), and the products summed exactly in i32 — by AVX-512 VNNI
//! (`vpdpbusd`: 64 multiply-adds an instruction, four times an f32 FMA's) where the CPU has it,
//! else by portable code.
//!
//! y[r][c] = sx[r]·sw[c]·(Σ qx[r][i]·qw[c][i] − zx[r]·Σ qw[c][i]): the zero point's share is
//! taken out with each output row's precomputed weight sum, so the inner loop is a plain u8×i8 dot.

use rayon::prelude::*;

/// Output columns in one packed block (one 512-bit register of i32 sums).
const BLOCK: usize = 16;
/// Blocks a kernel call covers (its register tile: `ROWS` × `BLOCKS`·16 sums).
const BLOCKS: usize = 2;
/// Input rows a kernel call covers.
const ROWS: usize = 8;

/// A weight matrix (n outputs × k inputs, as PyTorch stores a linear layer's) in int8, packed for
/// the kernel: blocks of 16 outputs, each as k/4 groups of 16 × 4 bytes (4 consecutive inputs of
/// 16 outputs: one register, one `vpdpbusd`).
#[derive(Debug, Clone)]
pub struct Q8Matrix {
    n: usize,
    k: usize,
    /// k rounded up to a multiple of 4 (the padding weights are 0).
    kp: usize,
    /// Number of 16-output blocks, rounded up to a multiple of `BLOCKS` (padding outputs are 0).
    blocks: usize,
    packed: Vec<i8>,
    /// Per output: the dequantization scale (0 for padding).
    scale: Vec<f32>,
    /// Per output: the sum of its quantized weights.
    sums: Vec<i32>,
}

impl Q8Matrix {
    /// Quantize `w` (n × k, row-major).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        assert_eq!(w.len(), n * k, "weight is not {n} × {k}");
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(BLOCK).div_ceil(BLOCKS) * BLOCKS;
        let mut packed = vec![0i8; blocks * BLOCK * kp];
        let mut scale = vec![0f32; blocks * BLOCK];
        let mut sums = vec![0i32; blocks * BLOCK];
        // One task per block of 16 outputs (their weights are interleaved in `packed`).
        packed
            .par_chunks_mut(BLOCK * kp)
            .zip(scale.par_chunks_mut(BLOCK).zip(sums.par_chunks_mut(BLOCK)))
            .enumerate()
            .for_each(|(b, (dst, (scale, sums)))| {
                for lane in 0..BLOCK.min(n.saturating_sub(b * BLOCK)) {
                    let row = &w[(b * BLOCK + lane) * k..(b * BLOCK + lane + 1) * k];
                    let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
                    let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
                    scale[lane] = amax / 127.0;
                    let mut sum = 0i32;
                    for (i, v) in row.iter().enumerate() {
                        let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                        sum += q as i32;
                        dst[((i / 4) * BLOCK + lane) * 4 + i % 4] = q;
                    }
                    sums[lane] = sum;
                }
            });
        Q8Matrix {
            n,
            k,
            kp,
            blocks,
            packed,
            scale,
            sums,
        }
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// `x` (rows × k, row-major) times the matrix transposed: rows × n. `threads`: spread the
    /// output columns over rayon's threads.
    pub fn product(&self, x: &[f32], rows: usize, threads: bool) -> Vec<f32> {
        self.product_on(x, rows, threads, Kernel::best())
    }

    fn product_on(&self, x: &[f32], rows: usize, threads: bool, kernel: Kernel) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.k, "input is not {rows} × {}", self.k);
        let q = QuantizedRows::new(x, rows, self.k, self.kp, kernel);
        let mut out = vec![0f32; rows * self.n];
        let pairs = self.blocks / BLOCKS;
        let dst = SendPtr(out.as_mut_ptr());
        let run = |pair: usize| {
            let mut r = 0;
            while r < rows {
                let m = (rows - r).min(ROWS);
                // SAFETY: each (pair, row group) writes only its own columns of its own rows of
                // `out`, which outlives every call.
                unsafe { self.tile(&q, r, m, pair * BLOCKS, dst, kernel) };
                r += m;
            }
        };
        if threads && pairs > 1 && rows * self.n * self.k >= 1 << 18 {
            (0..pairs).into_par_iter().for_each(run);
        } else {
            (0..pairs).for_each(run);
        }
        out
    }

    /// Rows r..r + m of the product, columns of blocks b..b + BLOCKS, written into `dst`.
    ///
    /// # Safety
    /// `dst` points to rows × n f32 that no other thread writes in these rows and columns.
    unsafe fn tile(
        &self,
        q: &QuantizedRows,
        r: usize,
        m: usize,
        b: usize,
        dst: SendPtr,
        kernel: Kernel,
    ) {
        #[cfg(target_arch = "x86_64")]
        if kernel == Kernel::Vnni {
            // SAFETY: Kernel::Vnni is chosen only where the CPU has the features the kernel is
            // compiled for; the tile's rows and blocks exist; `dst` as promised by the caller.
            unsafe {
                match m {
                    8 => tile_vnni::<8>(self, q, r, b, dst),
                    7 => tile_vnni::<7>(self, q, r, b, dst),
                    6 => tile_vnni::<6>(self, q, r, b, dst),
                    5 => tile_vnni::<5>(self, q, r, b, dst),
                    4 => tile_vnni::<4>(self, q, r, b, dst),
                    3 => tile_vnni::<3>(self, q, r, b, dst),
                    2 => tile_vnni::<2>(self, q, r, b, dst),
                    _ => tile_vnni::<1>(self, q, r, b, dst),
                }
            }
            return;
        }
        let _ = kernel;
        let mut acc = [[0i32; BLOCK * BLOCKS]; ROWS];
        self.tile_portable(q, r, m, b, &mut acc);
        // SAFETY: as promised by the caller.
        unsafe { self.store(q, r, m, b, &acc, dst) }
    }

    fn tile_portable(
        &self,
        q: &QuantizedRows,
        r: usize,
        m: usize,
        b: usize,
        acc: &mut [[i32; BLOCK * BLOCKS]; ROWS],
    ) {
        let groups = self.kp / 4;
        for (bi, blk) in (b..b + BLOCKS).enumerate() {
            let w = &self.packed[blk * groups * BLOCK * 4..(blk + 1) * groups * BLOCK * 4];
            for (i, acc_i) in acc.iter_mut().enumerate().take(m) {
                let x = &q.values[(r + i) * self.kp..(r + i + 1) * self.kp];
                let sums = &mut acc_i[bi * BLOCK..(bi + 1) * BLOCK];
                for (g, wg) in w.chunks_exact(BLOCK * 4).enumerate() {
                    let xg = &x[g * 4..g * 4 + 4];
                    for (s, wl) in sums.iter_mut().zip(wg.chunks_exact(4)) {
                        *s += xg
                            .iter()
                            .zip(wl)
                            .map(|(&a, &w)| a as i32 * w as i32)
                            .sum::<i32>();
                    }
                }
            }
        }
    }

    /// Dequantize a tile's sums into `dst`.
    ///
    /// # Safety
    /// As [`Q8Matrix::tile`].
    unsafe fn store(
        &self,
        q: &QuantizedRows,
        r: usize,
        m: usize,
        b: usize,
        acc: &[[i32; BLOCK * BLOCKS]; ROWS],
        dst: SendPtr,
    ) {
        let c0 = b * BLOCK;
        let width = (BLOCK * BLOCKS).min(self.n.saturating_sub(c0));
        for (i, sums) in acc.iter().enumerate().take(m) {
            let (sx, zx) = (q.scale[r + i], q.zero[r + i]);
            // SAFETY: row r + i < rows, columns c0..c0 + width < n: inside `dst`.
            let row =
                unsafe { std::slice::from_raw_parts_mut(dst.0.add((r + i) * self.n + c0), width) };
            for (j, y) in row.iter_mut().enumerate() {
                let c = c0 + j;
                *y = (sums[j] - zx * self.sums[c]) as f32 * (sx * self.scale[c]);
            }
        }
    }
}

/// Which code computes the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Vnni,
}

impl Kernel {
    fn best() -> Kernel {
        #[cfg(target_arch = "x86_64")]
        if vnni() {
            return Kernel::Vnni;
        }
        Kernel::Portable
    }
}

/// Input rows quantized to u8: x ≈ scale·(q − zero), the range widened to hold 0.
struct QuantizedRows {
    values: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
}

impl QuantizedRows {
    fn new(x: &[f32], rows: usize, k: usize, kp: usize, kernel: Kernel) -> Self {
        let mut values = vec![0u8; rows * kp];
        let mut scale = vec![0f32; rows];
        let mut zero = vec![0i32; rows];
        for (i, row) in x.chunks_exact(k).enumerate() {
            let out = &mut values[i * kp..i * kp + k];
            #[cfg(target_arch = "x86_64")]
            if kernel == Kernel::Vnni {
                // SAFETY: Kernel::Vnni only where the CPU has AVX-512.
                (scale[i], zero[i]) = unsafe { quantize_row_avx512(row, out) };
                continue;
            }
            let _ = kernel;
            let (lo, hi) = row
                .iter()
                .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let (s, z) = row_scale(lo, hi);
            let inv = 1.0 / s;
            for (q, v) in out.iter_mut().zip(row) {
                *q = (v * inv + z).round_ties_even().clamp(0.0, 255.0) as u8;
            }
            scale[i] = s;
            zero[i] = z as i32;
        }
        QuantizedRows {
            values,
            scale,
            zero,
        }
    }
}

/// A row's scale and zero point from its range (which holds 0).
fn row_scale(lo: f32, hi: f32) -> (f32, f32) {
    let s = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
    (s, (-lo / s).round().clamp(0.0, 255.0))
}

/// One row to u8 with AVX-512: range, then q = round(x/s + z) saturated to 0..255.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn quantize_row_avx512(row: &[f32], out: &mut [u8]) -> (f32, i32) {
    use std::arch::x86_64::*;
    let k = row.len();
    let mask = |left: usize| -> __mmask16 {
        if left >= 16 {
            0xffff
        } else {
            (1u16 << left) - 1
        }
    };
    let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut j = 0;
    while j < k {
        // SAFETY: masked lanes j..min(j + 16, k) lie inside `row`.
        let v = unsafe { _mm512_maskz_loadu_ps(mask(k - j), row.as_ptr().add(j)) };
        lo = _mm512_min_ps(lo, v);
        hi = _mm512_max_ps(hi, v);
        j += 16;
    }
    let (s, z) = row_scale(_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi));
    let (inv, zv) = (_mm512_set1_ps(1.0 / s), _mm512_set1_ps(z));
    let zero = _mm512_setzero_si512();
    let mut j = 0;
    while j < k {
        let m = mask(k - j);
        // SAFETY: as above, for `row` and `out` (both k long).
        unsafe {
            let v = _mm512_maskz_loadu_ps(m, row.as_ptr().add(j));
            // Rounds to nearest even (the default MXCSR mode), then saturates to 0..255.
            let q = _mm512_max_epi32(_mm512_cvtps_epi32(_mm512_fmadd_ps(v, inv, zv)), zero);
            _mm512_mask_cvtusepi32_storeu_epi8(out.as_mut_ptr().add(j) as *mut i8, m, q);
        }
        j += 16;
    }
    (s, z as i32)
}

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: the tiles that share it write disjoint parts of the buffer.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// Whether this CPU runs the VNNI kernel.
#[cfg(target_arch = "x86_64")]
fn vnni() -> bool {
    use std::sync::OnceLock;
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    })
}

/// Rows r..r + M of the product against blocks b, b + 1, into `dst`: per group of 4 inputs, two
/// weight loads and M broadcasts feed 2·M `vpdpbusd`; then each sum is dequantized in registers
/// and stored.
///
/// # Safety
/// The CPU has the target features; as [`Q8Matrix::tile`] for `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni<const M: usize>(
    w: &Q8Matrix,
    q: &QuantizedRows,
    r: usize,
    b: usize,
    dst: SendPtr,
) {
    use std::arch::x86_64::*;
    let groups = w.kp / 4;
    let w0 = w.packed.as_ptr().wrapping_add(b * groups * BLOCK * 4);
    let w1 = w0.wrapping_add(groups * BLOCK * 4);
    let x = q.values.as_ptr().wrapping_add(r * w.kp);
    let mut acc = [[_mm512_setzero_si512(); BLOCKS]; M];
    for g in 0..groups {
        // SAFETY: group g of blocks b and b + 1 and bytes 4g..4g + 4 of rows r..r + M lie inside
        // `packed` and `values`.
        unsafe {
            let a = _mm512_loadu_si512(w0.add(g * 64) as *const _);
            let c = _mm512_loadu_si512(w1.add(g * 64) as *const _);
            for (i, acc_i) in acc.iter_mut().enumerate() {
                let xv =
                    _mm512_set1_epi32((x.add(i * w.kp + g * 4) as *const i32).read_unaligned());
                acc_i[0] = _mm512_dpbusd_epi32(acc_i[0], xv, a);
                acc_i[1] = _mm512_dpbusd_epi32(acc_i[1], xv, c);
            }
        }
    }
    for (i, acc_i) in acc.iter().enumerate() {
        let sx = _mm512_set1_ps(q.scale[r + i]);
        let zx = _mm512_set1_epi32(q.zero[r + i]);
        for (h, v) in acc_i.iter().enumerate() {
            let c = (b + h) * BLOCK;
            if c >= w.n {
                break;
            }
            let left = w.n - c;
            let m: __mmask16 = if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            // SAFETY: `sums` and `scale` hold blocks·16 entries; the store writes columns
            // c..min(c + 16, n) of row r + i.
            unsafe {
                let sums = _mm512_loadu_si512(w.sums.as_ptr().add(c) as *const _);
                let scale = _mm512_mul_ps(_mm512_loadu_ps(w.scale.as_ptr().add(c)), sx);
                let exact = _mm512_sub_epi32(*v, _mm512_mullo_epi32(zx, sums));
                let y = _mm512_mul_ps(_mm512_cvtepi32_ps(exact), scale);
                _mm512_mask_storeu_ps(dst.0.add((r + i) * w.n + c), m, y);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    fn exact(x: &[f32], rows: usize, w: &[f32], n: usize, k: usize) -> Vec<f64> {
        let mut y = vec![0f64; rows * n];
        for r in 0..rows {
            for c in 0..n {
                y[r * n + c] = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                    .sum();
            }
        }
        y
    }

    /// The product is within int8 rounding of the exact one (relative to each row's size), for
    /// shapes with every kind of tail: k not a multiple of 4, n not of 16 or 32, rows not of 8;
    /// and the hardware kernel gives the portable code's sums exactly.
    #[test]
    fn product_matches_the_exact_one() {
        let mut seed = 7;
        for &(rows, n, k) in &[
            (1, 16, 4),
            (3, 40, 13),
            (8, 64, 64),
            (19, 96, 130),
            (50, 33, 768),
        ] {
            let x: Vec<f32> = (0..rows * k).map(|_| lcg(&mut seed) + 0.2).collect();
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed) * 0.1).collect();
            let m = Q8Matrix::quantize(&w, n, k);
            let want = exact(&x, rows, &w, n, k);
            for threads in [false, true] {
                let got = m.product(&x, rows, threads);
                for r in 0..rows {
                    let norm: f64 = (0..n).map(|c| want[r * n + c].powi(2)).sum::<f64>().sqrt()
                        / (n as f64).sqrt();
                    for c in 0..n {
                        let err = (got[r * n + c] as f64 - want[r * n + c]).abs();
                        assert!(
                            err <= 0.03 * norm + 1e-6,
                            "{rows}×{n}×{k} [{r}][{c}]: {} vs {} (row rms {norm})",
                            got[r * n + c],
                            want[r * n + c]
                        );
                    }
                }
            }
            // The hardware kernel (quantizing and dequantizing its own way) agrees with the
            // portable code to float rounding.
            #[cfg(target_arch = "x86_64")]
            if vnni() {
                let hw = m.product_on(&x, rows, false, Kernel::Vnni);
                let portable = m.product_on(&x, rows, false, Kernel::Portable);
                for (a, b) in hw.iter().zip(&portable) {
                    assert!(
                        (a - b).abs() <= 1e-4 * (1.0 + b.abs()),
                        "{rows}×{n}×{k}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// A constant or all-zero row (scale would be 0) and an all-zero weight row stay finite.
    #[test]
    fn degenerate_rows_stay_finite() {
        let (rows, n, k) = (2, 32, 8);
        let x = [vec![0f32; k], vec![3f32; k]].concat();
        let mut w = vec![0.5f32; n * k];
        w[..k].iter_mut().for_each(|v| *v = 0.0);
        let y = Q8Matrix::quantize(&w, n, k).product(&x, rows, false);
        assert!(y.iter().all(|v| v.is_finite()));
        assert_eq!(y[0], 0.0);
        assert_eq!(y[n], 0.0, "zero weight row");
        assert!((y[n + 1] - 12.0).abs() < 0.1, "{}", y[n + 1]);
    }
}

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
        let groups = kp / 4;
        let mut packed = vec![0i8; blocks * BLOCK * kp];
        let mut scale = vec![0f32; blocks * BLOCK];
        let mut sums = vec![0i32; blocks * BLOCK];
        for (c, row) in w.chunks_exact(k).enumerate() {
            let amax = row.iter().fold(0f32, |m, v| m.max(v.abs()));
            let inv = if amax > 0.0 { 127.0 / amax } else { 0.0 };
            scale[c] = amax / 127.0;
            let (b, lane) = (c / BLOCK, c % BLOCK);
            let mut sum = 0i32;
            for (i, v) in row.iter().enumerate() {
                let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                sum += q as i32;
                packed[((b * groups + i / 4) * BLOCK + lane) * 4 + i % 4] = q;
            }
            sums[c] = sum;
        }
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

    /// Bytes held (the packed weights and the per-output scales and sums).
    pub fn bytes(&self) -> usize {
        self.packed.len() + 8 * self.scale.len()
    }

    /// `x` (rows × k, row-major) times the matrix transposed: rows × n. `threads`: spread the
    /// output columns over rayon's threads.
    pub fn product(&self, x: &[f32], rows: usize, threads: bool) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.k, "input is not {rows} × {}", self.k);
        let q = QuantizedRows::new(x, rows, self.k, self.kp);
        let mut out = vec![0f32; rows * self.n];
        let pairs = self.blocks / BLOCKS;
        let dst = SendPtr(out.as_mut_ptr());
        let run = |pair: usize| {
            let mut r = 0;
            while r < rows {
                let m = (rows - r).min(ROWS);
                // SAFETY: each (pair, row group) writes only its own columns of its own rows of
                // `out`, which outlives every call.
                unsafe { self.tile(&q, r, m, pair * BLOCKS, dst) };
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
    unsafe fn tile(&self, q: &QuantizedRows, r: usize, m: usize, b: usize, dst: SendPtr) {
        let mut acc = [[0i32; BLOCK * BLOCKS]; ROWS];
        #[cfg(target_arch = "x86_64")]
        {
            if vnni() {
                // SAFETY: the CPU has the features the kernel is compiled for; the tile's rows
                // and blocks exist.
                unsafe {
                    match m {
                        8 => tile_vnni::<8>(self, q, r, b, &mut acc),
                        7 => tile_vnni::<7>(self, q, r, b, &mut acc),
                        6 => tile_vnni::<6>(self, q, r, b, &mut acc),
                        5 => tile_vnni::<5>(self, q, r, b, &mut acc),
                        4 => tile_vnni::<4>(self, q, r, b, &mut acc),
                        3 => tile_vnni::<3>(self, q, r, b, &mut acc),
                        2 => tile_vnni::<2>(self, q, r, b, &mut acc),
                        _ => tile_vnni::<1>(self, q, r, b, &mut acc),
                    }
                }
                return unsafe { self.store(q, r, m, b, &acc, dst) };
            }
        }
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

/// Input rows quantized to u8: x ≈ scale·(q − zero), the range widened to hold 0.
struct QuantizedRows {
    values: Vec<u8>,
    scale: Vec<f32>,
    zero: Vec<i32>,
}

impl QuantizedRows {
    fn new(x: &[f32], rows: usize, k: usize, kp: usize) -> Self {
        let mut values = vec![0u8; rows * kp];
        let mut scale = vec![0f32; rows];
        let mut zero = vec![0i32; rows];
        for (i, row) in x.chunks_exact(k).enumerate() {
            let (lo, hi) = row
                .iter()
                .fold((0f32, 0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            let s = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
            let z = (-lo / s).round().clamp(0.0, 255.0);
            let inv = 1.0 / s;
            for (q, v) in values[i * kp..i * kp + k].iter_mut().zip(row) {
                *q = (v * inv + z).round().clamp(0.0, 255.0) as u8;
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
            && std::env::var_os("SHOEBOX_NO_VNNI").is_none()
    })
}

/// Whether q8 products run on int8 hardware here (else the portable code, slower than f32).
pub fn fast_on_this_cpu() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        vnni()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The sums of rows r..r + M against blocks b, b + 1: per group of 4 inputs, two weight loads
/// and M broadcasts feed 2·M `vpdpbusd`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn tile_vnni<const M: usize>(
    w: &Q8Matrix,
    q: &QuantizedRows,
    r: usize,
    b: usize,
    out: &mut [[i32; BLOCK * BLOCKS]; ROWS],
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
        for (h, v) in acc_i.iter().enumerate() {
            // SAFETY: 16 i32 into out[i][16h..16h + 16].
            unsafe { _mm512_storeu_si512(out[i][h * BLOCK..].as_mut_ptr() as *mut _, *v) };
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
            let q = QuantizedRows::new(&x, rows, k, m.kp);
            let mut portable = [[0i32; BLOCK * BLOCKS]; ROWS];
            m.tile_portable(&q, 0, rows.min(ROWS), 0, &mut portable);
            #[cfg(target_arch = "x86_64")]
            if vnni() {
                let mut hw = [[0i32; BLOCK * BLOCKS]; ROWS];
                // SAFETY: the CPU has VNNI; rows 0..min(rows, 8) and blocks 0, 1 exist.
                unsafe {
                    match rows.min(ROWS) {
                        8 => tile_vnni::<8>(&m, &q, 0, 0, &mut hw),
                        3 => tile_vnni::<3>(&m, &q, 0, 0, &mut hw),
                        1 => tile_vnni::<1>(&m, &q, 0, 0, &mut hw),
                        other => panic!("untested tile height {other}"),
                    }
                }
                assert_eq!(hw, portable, "{rows}×{n}×{k}");
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

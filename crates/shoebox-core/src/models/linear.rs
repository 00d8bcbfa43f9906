//! Linear layers for every model Shoebox runs: candle's matmul for batches of rows, and on the
//! CPU a streaming kernel for a few rows at a time (one text query, a caption's next token).
//!
//! A general GEMM packs its operands into tiles of 16–64 rows; for a handful of rows that packing
//! and the padding cost more than the product, and the weights (which do not fit in cache) are
//! read as often as they are repacked. Here each weight row is read once, straight from the
//! memory-mapped safetensors layout (out × in, row-major), and dotted with every input row while it
//! is in L1, so a short query runs at memory bandwidth.

use std::sync::Arc;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use super::q8::Q8Matrix;
use super::Precision;

/// At most this many rows take the streaming kernel; more go to the GEMM.
pub const SMALL_ROWS: usize = 32;

/// Weight rows per parallel task (enough work per task, enough tasks for the threads).
const ROWS_PER_TASK: usize = 64;

/// An activation `Linear::forward_act` applies in the same pass as the bias, computed as candle's
/// own ops compute it (so fusing changes no result).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// x·σ(1.702x)
    QuickGelu,
    /// The exact, erf-based GELU.
    GeluErf,
    /// The tanh approximation of GELU.
    GeluTanh,
}

impl Act {
    #[inline(always)]
    fn f(self, v: f32) -> f32 {
        match self {
            Act::QuickGelu => v * (1.0 / (1.0 + (-(v * 1.702)).exp())),
            Act::GeluErf => {
                (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.0)
                    * 0.5
                    * v
            }
            Act::GeluTanh => {
                const SQRT_TWO_OVER_PI: f32 = 0.797_884_6;
                0.5 * v * (1.0 + f32::tanh(SQRT_TWO_OVER_PI * v * (1.0 + 0.044715 * v * v)))
            }
        }
    }

    /// The same with candle's ops (devices other than the CPU).
    pub(crate) fn apply(self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Act::QuickGelu => xs * candle_nn::ops::sigmoid(&(xs * 1.702)?)?,
            Act::GeluErf => xs.gelu_erf(),
            Act::GeluTanh => xs.gelu(),
        }
    }
}

/// `y = x·Wᵀ + b`, with W stored as (out, in) as in PyTorch and safetensors.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Weight,
    bias: Option<Tensor>,
}

#[derive(Debug, Clone)]
enum Weight {
    F32 {
        weight: Tensor,
        /// Devices other than the CPU, and other dtypes.
        inner: candle_nn::Linear,
    },
    /// Quantized for the `q8` precision (CPU, f32 inputs only).
    Q8(Arc<Q8Matrix>),
}

impl Linear {
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Linear {
            weight: Weight::F32 {
                inner: candle_nn::Linear::new(weight.clone(), bias.clone()),
                weight,
            },
            bias,
        }
    }

    /// This layer at `precision`: `q8` quantizes an f32 CPU weight (and lets the f32 one go);
    /// anything else stays as it is.
    pub fn with_precision(self, precision: Precision) -> candle_core::Result<Self> {
        match (&self.weight, precision) {
            (Weight::F32 { weight, .. }, Precision::Q8)
                if matches!(weight.device(), Device::Cpu) && weight.dtype() == DType::F32 =>
            {
                let (n, k) = weight.dims2()?;
                let q = with_f32(weight, |w| Q8Matrix::quantize(w, n, k))?;
                Ok(Linear {
                    weight: Weight::Q8(Arc::new(q)),
                    bias: self.bias,
                })
            }
            _ => Ok(self),
        }
    }

    /// `act(x·Wᵀ + b)`: on the CPU the bias and the activation take one pass over the product
    /// (candle's element-wise ops take one pass each, some on one thread).
    pub fn forward_act(&self, x: &Tensor, act: Act) -> candle_core::Result<Tensor> {
        match self.forward_cpu(x, Some(act))? {
            Some(y) => Ok(y),
            None => act.apply(&self.forward(x)?),
        }
    }

    /// The product on the CPU (f32): the streaming kernel for a few rows, else the GEMM called
    /// directly (so it runs single-threaded inside a `parallel::split_batch` part and across the
    /// threads elsewhere), or the int8 product for a q8 layer; then bias and activation in one
    /// pass. None: not on the CPU in f32 (an error for a q8 layer).
    fn forward_cpu(&self, x: &Tensor, act: Option<Act>) -> candle_core::Result<Option<Tensor>> {
        let dims = x.dims();
        let Some((&k, lead)) = dims.split_last() else {
            return Ok(None);
        };
        let rows: usize = lead.iter().product();
        let cpu_f32 = matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32;
        let (mut out, n) = match &self.weight {
            Weight::Q8(q) => {
                if !cpu_f32 {
                    candle_core::bail!("q8 layers run on the CPU with f32 inputs");
                }
                if q.k() != k {
                    candle_core::bail!("q8 linear: input width {k}, weight takes {}", q.k());
                }
                let threads = !crate::models::parallel::in_part();
                (with_f32(x, |xs| q.product(xs, rows, threads))?, q.n())
            }
            Weight::F32 { weight, .. } => {
                if !cpu_f32 || weight.dtype() != DType::F32 || rows == 0 {
                    return Ok(None);
                }
                let (n, wk) = weight.dims2()?;
                if wk != k {
                    return Ok(None); // let candle report the shape error
                }
                let out = with_f32(x, |xs| {
                    with_f32(weight, |w| {
                        if rows <= SMALL_ROWS {
                            product_small(xs, rows, k, w, n)
                        } else {
                            product_gemm(xs, rows, k, w, n)
                        }
                    })
                })??;
                (out, n)
            }
        };
        let bias: Option<Vec<f32>> = match &self.bias {
            Some(b) => Some(b.to_vec1()?),
            None => None,
        };
        finish(&mut out, n, bias.as_deref(), act);
        let mut shape = lead.to_vec();
        shape.push(n);
        Tensor::from_vec(out, shape, x.device()).map(Some)
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self.forward_cpu(x, None)? {
            Some(y) => Ok(y),
            None => match &self.weight {
                Weight::F32 { inner, .. } => inner.forward(x),
                Weight::Q8(_) => unreachable!("forward_cpu answers or fails for q8"),
            },
        }
    }
}

/// Add the bias to each row of `out` (rows × n) and apply the activation, in one pass.
fn finish(out: &mut [f32], n: usize, bias: Option<&[f32]>, act: Option<Act>) {
    if bias.is_none() && act.is_none() {
        return;
    }
    let row = |r: &mut [f32]| match (bias, act) {
        (Some(b), Some(a)) => r.iter_mut().zip(b).for_each(|(v, b)| *v = a.f(*v + b)),
        (Some(b), None) => r.iter_mut().zip(b).for_each(|(v, b)| *v += b),
        (None, Some(a)) => r.iter_mut().for_each(|v| *v = a.f(*v)),
        (None, None) => {}
    };
    if out.len() < 1 << 14 || crate::models::parallel::in_part() {
        out.chunks_exact_mut(n).for_each(row);
    } else {
        out.par_chunks_mut(n * 8)
            .for_each(|c| c.chunks_exact_mut(n).for_each(row));
    }
}

/// The GEMM's threads: none inside a `split_batch` part (the part is one thread's share), all
/// of them elsewhere.
fn gemm_threads() -> gemm::Parallelism {
    if crate::models::parallel::in_part() {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    }
}

/// `x` (rows × k) times `w`ᵀ (`w`: n × k), as rows × n, by the GEMM, reading `w` in place.
fn product_gemm(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    assert_eq!(x.len(), rows * k);
    assert_eq!(w.len(), n * k);
    let mut out = vec![0f32; rows * n];
    // SAFETY: dst is rows × n (row stride n), lhs rows × k (row stride k), and rhs, k × n, is
    // `w` read transposed (row stride 1, column stride k); all three are inside their slices.
    unsafe {
        matmul(
            (rows, n, k),
            (out.as_mut_ptr(), n),
            (x.as_ptr(), k, 1),
            (w.as_ptr(), 1, k),
            gemm_threads(),
        )
    };
    out
}

/// `dst = lhs · rhs` for an (m, n, k) product, each matrix given by its first element and its
/// strides: `dst` (pointer, row stride; columns adjacent), `lhs` and `rhs` (pointer, row stride,
/// column stride). Overwrites `dst`.
///
/// # Safety
/// Every element the strides reach must lie inside its allocation, and `dst` must not overlap
/// the operands or memory another thread writes.
pub(crate) unsafe fn matmul(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs): (*mut f32, usize),
    (lhs, lhs_rs, lhs_cs): (*const f32, usize, usize),
    (rhs, rhs_rs, rhs_cs): (*const f32, usize, usize),
    threads: gemm::Parallelism,
) {
    // SAFETY: as the caller promised.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            false,
            lhs,
            lhs_cs as isize,
            lhs_rs as isize,
            rhs,
            rhs_cs as isize,
            rhs_rs as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            threads,
        )
    }
}

/// `prefix.weight` (out, in) and `prefix.bias` (out).
pub fn linear(in_dim: usize, out_dim: usize, vb: VarBuilder) -> candle_core::Result<Linear> {
    let w = vb.get((out_dim, in_dim), "weight")?;
    let b = vb.get(out_dim, "bias")?;
    Ok(Linear::new(w, Some(b)))
}

/// `prefix.weight` (out, in), no bias.
pub fn linear_no_bias(
    in_dim: usize,
    out_dim: usize,
    vb: VarBuilder,
) -> candle_core::Result<Linear> {
    let w = vb.get((out_dim, in_dim), "weight")?;
    Ok(Linear::new(w, None))
}

/// Run `f` on a contiguous f32 CPU tensor's values without copying them (copying only when the
/// tensor is a strided view).
pub(crate) fn with_f32<T>(t: &Tensor, f: impl FnOnce(&[f32]) -> T) -> candle_core::Result<T> {
    let (storage, layout) = t.storage_and_layout();
    if let (candle_core::Storage::Cpu(cpu), Some((start, end))) =
        (&*storage, layout.contiguous_offsets())
    {
        if let Ok(all) = cpu.as_slice::<f32>() {
            return Ok(f(&all[start..end]));
        }
    }
    drop(storage);
    let v: Vec<f32> = t.flatten_all()?.to_vec1()?;
    Ok(f(&v))
}

/// `x` (rows × k) times `w`ᵀ (`w`: n × k), as rows × n, streaming `w` once.
fn product_small(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize) -> Vec<f32> {
    debug_assert_eq!(x.len(), rows * k);
    debug_assert_eq!(w.len(), n * k);
    // Transposed first (each task writes one contiguous block), then laid out as rows × n.
    let mut out_t = vec![0f32; n * rows];
    out_t
        .par_chunks_mut(ROWS_PER_TASK * rows)
        .zip(w.par_chunks(ROWS_PER_TASK * k))
        .for_each(|(o, wb)| dots(x, rows, k, wb, o));
    let mut out = vec![0f32; rows * n];
    for j in 0..n {
        for i in 0..rows {
            out[i * n + j] = out_t[j * rows + i];
        }
    }
    out
}

/// For each weight row of `w` (a block), its dot product with each of the `rows` rows of `x`.
fn dots(x: &[f32], rows: usize, k: usize, w: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has the feature `dots_avx512` is compiled for.
            return unsafe { dots_avx512(x, rows, k, w, out) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features `dots_avx2` is compiled for.
            return unsafe { dots_avx2(x, rows, k, w, out) };
        }
    }
    dots_portable(x, rows, k, w, out)
}

fn dots_portable(x: &[f32], rows: usize, k: usize, w: &[f32], out: &mut [f32]) {
    for (r, wr) in w.chunks_exact(k).enumerate() {
        for i in 0..rows {
            let xr = &x[i * k..(i + 1) * k];
            let mut acc = [0f32; 8];
            let (xc, xt) = xr.split_at(k - k % 8);
            let (wc, wt) = wr.split_at(k - k % 8);
            for (a, b) in xc.chunks_exact(8).zip(wc.chunks_exact(8)) {
                for l in 0..8 {
                    acc[l] += a[l] * b[l];
                }
            }
            let mut s: f32 = acc.iter().sum();
            for (a, b) in xt.iter().zip(wt) {
                s += a * b;
            }
            out[r * rows + i] = s;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dots_avx512(x: &[f32], rows: usize, k: usize, w: &[f32], out: &mut [f32]) {
    // Register blocks of 4 weight rows × 2 input rows: 6 loads feed 8 FMAs (a plain dot product
    // needs 2 loads per FMA and is bound by the load ports, not by the arithmetic).
    let n = w.len() / k;
    let mut r = 0;
    while r < n {
        let wr = (n - r).min(4);
        let mut i = 0;
        while i < rows {
            let xr = (rows - i).min(2);
            // SAFETY: the blocks stay inside x (rows × k), w (n × k) and out (n × rows).
            unsafe {
                match (wr, xr) {
                    (4, 2) => block512::<4, 2>(x, k, w, out, rows, r, i),
                    (4, _) => block512::<4, 1>(x, k, w, out, rows, r, i),
                    (_, 2) => block512::<1, 2>(x, k, w, out, rows, r, i),
                    _ => block512::<1, 1>(x, k, w, out, rows, r, i),
                }
            }
            i += xr;
        }
        r += if wr == 4 { 4 } else { 1 };
    }
}

/// out[(r + a) · rows + i + b] = x[i + b] · w[r + a] for a < W, b < X.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn block512<const W: usize, const X: usize>(
    x: &[f32],
    k: usize,
    w: &[f32],
    out: &mut [f32],
    rows: usize,
    r: usize,
    i: usize,
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); X]; W];
    let xp = x.as_ptr().wrapping_add(i * k);
    let wp = w.as_ptr().wrapping_add(r * k);
    let mut j = 0;
    while j < k {
        let left = k - j;
        let mask: __mmask16 = if left >= 16 {
            0xffff
        } else {
            (1u16 << left) - 1
        };
        // SAFETY: masked loads read only lanes j..j + left of rows that exist.
        unsafe {
            let mut xv = [_mm512_setzero_ps(); X];
            for (b, v) in xv.iter_mut().enumerate() {
                *v = _mm512_maskz_loadu_ps(mask, xp.add(b * k + j));
            }
            for (a, acc_a) in acc.iter_mut().enumerate() {
                let wv = _mm512_maskz_loadu_ps(mask, wp.add(a * k + j));
                for (b, acc_ab) in acc_a.iter_mut().enumerate() {
                    *acc_ab = _mm512_fmadd_ps(xv[b], wv, *acc_ab);
                }
            }
        }
        j += 16;
    }
    for (a, acc_a) in acc.iter().enumerate() {
        for (b, v) in acc_a.iter().enumerate() {
            out[(r + a) * rows + i + b] = _mm512_reduce_add_ps(*v);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2(x: &[f32], rows: usize, k: usize, w: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let full = k - k % 16;
    for (r, wr) in w.chunks_exact(k).enumerate() {
        for i in 0..rows {
            let xr = &x[i * k..(i + 1) * k];
            let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
            let mut j = 0;
            while j < full {
                // SAFETY: j + 16 ≤ k = the length of both rows.
                unsafe {
                    a0 = _mm256_fmadd_ps(
                        _mm256_loadu_ps(xr.as_ptr().add(j)),
                        _mm256_loadu_ps(wr.as_ptr().add(j)),
                        a0,
                    );
                    a1 = _mm256_fmadd_ps(
                        _mm256_loadu_ps(xr.as_ptr().add(j + 8)),
                        _mm256_loadu_ps(wr.as_ptr().add(j + 8)),
                        a1,
                    );
                }
                j += 16;
            }
            let v = _mm256_add_ps(a0, a1);
            let lo = _mm256_castps256_ps128(v);
            let hi = _mm256_extractf128_ps(v, 1);
            let q = _mm_add_ps(lo, hi);
            let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
            let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
            let mut s = _mm_cvtss_f32(q);
            for t in full..k {
                s += xr[t] * wr[t];
            }
            out[r * rows + i] = s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kernel this CPU picks, and the portable one, agree with a plain f64 product and with
    /// candle's GEMM, at sizes with and without SIMD tails.
    #[test]
    fn streaming_kernels_match_the_gemm() {
        let dev = Device::Cpu;
        for (rows, k, n) in [
            (1, 512, 2048),
            (9, 768, 70),
            (3, 37, 5),
            (32, 64, 130),
            (70, 96, 50),
        ] {
            let x = Tensor::randn(0f32, 1.0, (rows, k), &dev).unwrap();
            let w = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, n, &dev).unwrap();
            let flat = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
            let (xs, ws, bs) = (flat(&x), flat(&w), flat(&b));
            let exact = |i: usize, j: usize| -> f64 {
                (0..k)
                    .map(|t| xs[i * k + t] as f64 * ws[j * k + t] as f64)
                    .sum()
            };
            let gemm = flat(
                &candle_nn::Linear::new(w.clone(), Some(b.clone()))
                    .forward(&x)
                    .unwrap(),
            );
            let ours = flat(&Linear::new(w.clone(), Some(b.clone())).forward(&x).unwrap());
            let mut portable = vec![0f32; rows * n];
            dots_portable(&xs, rows, k, &ws, &mut portable);
            let tol = 2e-5 * k as f64;
            for i in 0..rows {
                for j in 0..n {
                    let want = exact(i, j) + bs[j] as f64;
                    let got = ours[i * n + j] as f64;
                    assert!(
                        (got - want).abs() < tol,
                        "{rows}×{k}×{n} [{i},{j}]: {got} vs {want}"
                    );
                    assert!((gemm[i * n + j] as f64 - want).abs() < tol);
                    let p = portable[j * rows + i] as f64 + bs[j] as f64;
                    assert!((p - want).abs() < tol, "portable [{i},{j}]: {p} vs {want}");
                }
            }
        }
    }
}

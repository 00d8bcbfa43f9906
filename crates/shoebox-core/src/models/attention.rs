//! Multi-head attention on the CPU in one kernel: for each image or text and each head, scores
//! QKᵀ, the additive mask, softmax and the product with V, reading Q, K and V where the
//! projections wrote them ((batch, tokens, hidden), heads side by side) and writing each head's
//! output straight into its columns. No per-head transposes, no copies, one task per head.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::linear::{matmul, with_f32};
use super::parallel::in_part;

/// A pointer that may cross threads: the tasks below write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: each task writes only its own (batch, head) block of the buffer.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

/// softmax(q·kᵀ + mask)·v per head, for `q` (b, nq, hidden) already scaled, `k` and `v`
/// (b, nk, hidden), and `mask` additive, (1 or b, 1, 1 or nq, nk) as candle would broadcast it. None where this kernel does not apply
/// (not the CPU, not f32): the caller uses candle's ops.
pub fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    heads: usize,
    mask: Option<&Tensor>,
) -> candle_core::Result<Option<Tensor>> {
    if !matches!(q.device(), Device::Cpu) || [q, k, v].iter().any(|t| t.dtype() != DType::F32) {
        return Ok(None);
    }
    let (b, nq, hidden) = q.dims3()?;
    let (_, nk, _) = k.dims3()?;
    // The mask's strides over batch and query rows (0: broadcast).
    let (mb_stride, mq_stride) = match mask {
        None => (0, 0),
        Some(m) => match (m.dtype(), m.dims4()) {
            (DType::F32, Ok((mb, 1, mq, mk)))
                if (mb == 1 || mb == b) && (mq == 1 || mq == nq) && mk == nk =>
            {
                (
                    if mb == 1 { 0 } else { mq * nk },
                    if mq == 1 { 0 } else { nk },
                )
            }
            _ => return Ok(None),
        },
    };
    let hd = hidden / heads;
    let ms: Option<Vec<f32>> = match mask {
        Some(m) => Some(m.flatten_all()?.to_vec1()?),
        None => None,
    };
    let mut out = vec![0f32; b * nq * hidden];
    let dst = Out(out.as_mut_ptr());
    // Q, K and V are read where the projections wrote them (copied only if strided).
    with_f32(q, |qs| {
        with_f32(k, |ks| {
            with_f32(v, |vs| {
                let task = |t: usize| {
                    let (bi, h) = (t / heads, t % heads);
                    let mut p = vec![0f32; nq * nk];
                    // SAFETY: all offsets stay inside the (b, n, hidden) buffers; `p` is this
                    // task's, and so is the destination block (rows of batch bi, columns
                    // h·hd..(h+1)·hd).
                    unsafe {
                        // Scores: q_h (nq × hd) · k_hᵀ (hd × nk, k_h read transposed).
                        matmul(
                            (nq, nk, hd),
                            (p.as_mut_ptr(), nk),
                            (qs.as_ptr().add(bi * nq * hidden + h * hd), hidden, 1),
                            (ks.as_ptr().add(bi * nk * hidden + h * hd), 1, hidden),
                            gemm::Parallelism::None,
                        );
                    }
                    for (i, row) in p.chunks_exact_mut(nk).enumerate() {
                        if let Some(m) = &ms {
                            let at = bi * mb_stride + i * mq_stride;
                            row.iter_mut()
                                .zip(&m[at..at + nk])
                                .for_each(|(s, m)| *s += m);
                        }
                        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                        let mut sum = 0f32;
                        for s in row.iter_mut() {
                            *s = (*s - max).exp();
                            sum += *s;
                        }
                        row.iter_mut().for_each(|s| *s /= sum);
                    }
                    let d = dst;
                    // SAFETY: as above.
                    unsafe {
                        // This head's output: p (nq × nk) · v_h (nk × hd).
                        matmul(
                            (nq, hd, nk),
                            (d.0.add(bi * nq * hidden + h * hd), hidden),
                            (p.as_ptr(), nk, 1),
                            (vs.as_ptr().add(bi * nk * hidden + h * hd), hidden, 1),
                            gemm::Parallelism::None,
                        );
                    }
                };
                if in_part() {
                    (0..b * heads).for_each(task);
                } else {
                    (0..b * heads).into_par_iter().for_each(task);
                }
            })
        })
    })???;
    Tensor::from_vec(out, (b, nq, hidden), q.device()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// candle's ops, step by step: the reference the kernel must match.
    fn reference(
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        mask: Option<&Tensor>,
    ) -> Tensor {
        let (b, nq, hidden) = q.dims3().unwrap();
        let nk = k.dim(1).unwrap();
        let hd = hidden / heads;
        let split = |t: &Tensor, n: usize| {
            t.reshape((b, n, heads, hd))
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .contiguous()
                .unwrap()
        };
        let mut w = split(q, nq).matmul(&split(k, nk).t().unwrap()).unwrap();
        if let Some(m) = mask {
            w = w.broadcast_add(m).unwrap();
        }
        let w = candle_nn::ops::softmax_last_dim(&w).unwrap();
        w.matmul(&split(v, nk))
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .reshape((b, nq, hidden))
            .unwrap()
    }

    #[test]
    fn fused_attention_matches_candle_ops_with_and_without_mask_and_in_split_batches() {
        let dev = Device::Cpu;
        for (b, nq, nk, hidden, heads) in [(3, 7, 7, 32, 4), (2, 1, 9, 24, 3), (4, 50, 50, 64, 8)] {
            let q = Tensor::randn(0f32, 1.0, (b, nq, hidden), &dev).unwrap();
            let k = Tensor::randn(0f32, 1.0, (b, nk, hidden), &dev).unwrap();
            let v = Tensor::randn(0f32, 1.0, (b, nk, hidden), &dev).unwrap();
            let causal: Vec<f32> = (0..nq)
                .flat_map(|i| (0..nk).map(move |j| if j > i { f32::MIN } else { 0.0 }))
                .collect();
            let causal = Tensor::from_vec(causal, (1, 1, nq, nk), &dev).unwrap();
            // Per-text key padding, as BERT masks a padded batch: text i keeps nk − i keys.
            let padding: Vec<f32> = (0..b)
                .flat_map(|i| (0..nk).map(move |j| if j + i >= nk { f32::MIN } else { 0.0 }))
                .collect();
            let padding = Tensor::from_vec(padding, (b, 1, 1, nk), &dev).unwrap();
            for mask in [None, Some(&causal), Some(&padding)] {
                let want: Vec<f32> = reference(&q, &k, &v, heads, mask)
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let got = attend(&q, &k, &v, heads, mask).unwrap().expect("CPU f32");
                let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
                let worst = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-5, "{b}×{nq}×{nk}×{hidden}/{heads}: {worst}");
                // The same inside the parts of a split batch (single-threaded there).
                let items: Vec<usize> = (0..4).collect();
                let parts = crate::models::parallel::split_batch(&items, 2, |_| {
                    let t = attend(&q, &k, &v, heads, mask)?.expect("CPU f32");
                    Ok::<_, candle_core::Error>(vec![t.flatten_all()?.to_vec1::<f32>()?])
                })
                .unwrap();
                assert!(parts.iter().all(|p| p == &got));
            }
        }
    }
}

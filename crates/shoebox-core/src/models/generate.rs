//! Autoregressive text generation for the captioners: a decoder with an explicit, reorderable
//! cache (self-attention K/V per layer, cross-attention K/V computed once per image), and greedy
//! and beam search with transformers' `generate` stopping and scoring rules.

use candle_core::{DType, IndexOp, Tensor, D};

use crate::error::{Error, Result};
use crate::rank::{by_score_desc, higher_first, log_softmax_at};

/// Per-sequence decoding state: the self-attention cache (batch = live beams) and the image's
/// cross-attention keys/values (batch 1, shared by every beam).
pub struct DecoderState {
    /// Per layer: keys and values `[beams, heads, past, head_dim]`.
    pub self_kv: Vec<Option<(Tensor, Tensor)>>,
    /// Per layer: keys and values `[1, heads, image_tokens, head_dim]`; `None` = recompute each
    /// step (only to measure what the cache saves).
    pub cross_kv: Option<Vec<(Tensor, Tensor)>>,
    /// The encoder output `[1, image_tokens, hidden]`.
    pub encoder: Tensor,
    /// Tokens fed so far (the next token's position).
    pub pos: usize,
}

impl DecoderState {
    /// Keep the beams `idx` (in that order) of the self-attention cache.
    fn reorder(&mut self, idx: &[u32]) -> Result<()> {
        let Some(Some((k, _))) = self.self_kv.first() else {
            return Ok(());
        };
        let ix = Tensor::new(idx, k.device())?;
        for (k, v) in self.self_kv.iter_mut().flatten() {
            *k = k.index_select(&ix, 0)?;
            *v = v.index_select(&ix, 0)?;
        }
        Ok(())
    }
}

/// A text decoder conditioned on image features.
pub trait Decoder {
    /// Start decoding for one image: `encoder` is `[1, image_tokens, hidden]`. With `cache_cross`
    /// the cross-attention keys/values are computed here once, else at every step.
    fn start(&self, encoder: Tensor, cache_cross: bool) -> Result<DecoderState>;
    /// Feed one token per beam (`tokens.len()` = beams); returns logits `[beams, vocab]` (f32).
    fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor>;
}

/// Scaled dot-product attention. `q` is `[b, h, t, d]`; `k`, `v` are `[b, h, s, d]` or
/// `[1, h, s, d]` shared by every row of `q` (cross-attention over one image for all beams).
/// No mask: decoding feeds one token at a time, which may see every earlier one.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64) -> Result<Tensor> {
    let (b, h, t, d) = q.dims4()?;
    if k.dim(0)? == 1 && b > 1 {
        // Stack the beams' queries along the sequence axis of one batch row.
        let q1 = q.transpose(0, 1)?.contiguous()?.reshape((1, h, b * t, d))?;
        let out = attend(&q1, k, v, scale)?;
        return Ok(out.reshape((h, b, t, d))?.transpose(0, 1)?.contiguous()?);
    }
    let scores = (q.contiguous()?.matmul(&k.t()?.contiguous()?)? * scale)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(&v.contiguous()?)?)
}

/// `[b, t, h*d]` → `[b, h, t, d]`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, t, hd) = x.dims3()?;
    Ok(x.reshape((b, t, heads, hd / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// `[b, h, t, d]` → `[b, t, h*d]`.
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (b, h, t, d) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, t, h * d))?)
}

/// Append this step's keys/values to a layer's self-attention cache; returns the full K, V.
pub fn push_kv(
    slot: &mut Option<(Tensor, Tensor)>,
    k: Tensor,
    v: Tensor,
) -> Result<(Tensor, Tensor)> {
    let (k, v) = match slot.take() {
        None => (k, v),
        Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
    };
    *slot = Some((k.clone(), v.clone()));
    Ok((k, v))
}

/// How to generate, as transformers' GenerationConfig.
#[derive(Debug, Clone)]
pub struct Generation {
    /// First decoder token (BLIP's [DEC], GPT-2's <|endoftext|>).
    pub start: u32,
    /// Tokens that end a caption.
    pub eos: Vec<u32>,
    pub max_new_tokens: usize,
    /// 1 = greedy.
    pub num_beams: usize,
    pub length_penalty: f32,
    /// transformers' repetition_penalty (1.0 = off).
    pub repetition_penalty: f32,
    /// Never repeat an n-gram of this size (0 = off).
    pub no_repeat_ngram_size: usize,
    /// Compute cross-attention keys/values once per image (off only to measure the cache).
    pub cache_cross: bool,
}

/// One finished sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Sequence {
    /// Token ids including the start token and, when it ended so, the final end token.
    pub tokens: Vec<u32>,
    /// Sum of the chosen tokens' log-probabilities.
    pub sum_logprobs: f32,
    /// `sum_logprobs / generated_tokens ^ length_penalty`; greedy: the same with penalty 1.
    pub score: f32,
}

/// Generate from image features: greedy when `num_beams` ≤ 1, else beam search. Sequences come
/// back best first (greedy: one).
pub fn generate(dec: &dyn Decoder, encoder: Tensor, g: &Generation) -> Result<Vec<Sequence>> {
    if g.max_new_tokens == 0 {
        return Err(Error::Invalid("max new tokens must be at least 1".into()));
    }
    let mut state = dec.start(encoder, g.cache_cross)?;
    if g.num_beams <= 1 {
        greedy(dec, &mut state, g)
    } else {
        beam_search(dec, &mut state, g)
    }
}

fn greedy(dec: &dyn Decoder, state: &mut DecoderState, g: &Generation) -> Result<Vec<Sequence>> {
    let mut tokens = vec![g.start];
    let mut sum = 0f32;
    for _ in 0..g.max_new_tokens {
        let logits = dec.step(state, &tokens[tokens.len() - 1..])?;
        let mut row = logits.i(0)?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        process(&mut row, &tokens, g);
        let best = argmax(&row);
        sum += log_softmax_at(&row, best);
        tokens.push(best as u32);
        if g.eos.contains(&(best as u32)) {
            break;
        }
    }
    let n = tokens.len() - 1;
    Ok(vec![Sequence {
        tokens,
        sum_logprobs: sum,
        score: sum / n.max(1) as f32,
    }])
}

struct Hyp {
    tokens: Vec<u32>,
    sum_logprobs: f32,
    score: f32,
}

fn beam_search(
    dec: &dyn Decoder,
    state: &mut DecoderState,
    g: &Generation,
) -> Result<Vec<Sequence>> {
    let nb = g.num_beams;
    let lp = g.length_penalty;
    let normalized = |sum: f32, len: usize| sum / (len.max(1) as f32).powf(lp);
    // Live beams; all start from the one start token (a single row until the first step).
    let mut beams: Vec<(Vec<u32>, f32)> = vec![(vec![g.start], 0.0)];
    let mut done: Vec<Hyp> = Vec::new();
    for step in 0..g.max_new_tokens {
        let last: Vec<u32> = beams
            .iter()
            .map(|(t, _)| *t.last().unwrap_or(&g.start))
            .collect();
        let logits = dec.step(state, &last)?.to_dtype(DType::F32)?;
        let logp = candle_nn::ops::log_softmax(&logits, D::Minus1)?.to_vec2::<f32>()?;
        // Candidates: every (beam, token) by running score; keep the best 2 × beams as transformers.
        let mut cand: Vec<(f32, usize, u32)> = Vec::new();
        for (b, mut row) in logp.into_iter().enumerate() {
            process(&mut row, &beams[b].0, g);
            let base = beams[b].1;
            for (tok, lpv) in top_k(&row, 2 * nb) {
                cand.push((base + lpv, b, tok as u32));
            }
        }
        cand.sort_by(|a, b| higher_first(a.0, b.0));
        cand.truncate(2 * nb);
        let mut next: Vec<(Vec<u32>, f32)> = Vec::new();
        let mut keep: Vec<u32> = Vec::new();
        for (rank, &(score, b, tok)) in cand.iter().enumerate() {
            if g.eos.contains(&tok) {
                // An end token only counts if it ranks among the top `beams` candidates.
                if rank < nb {
                    let mut t = beams[b].0.clone();
                    t.push(tok);
                    let gen = t.len() - 1;
                    done.push(Hyp {
                        tokens: t,
                        sum_logprobs: score,
                        score: normalized(score, gen),
                    });
                }
            } else {
                let mut t = beams[b].0.clone();
                t.push(tok);
                next.push((t, score));
                keep.push(b as u32);
            }
            if next.len() == nb {
                break;
            }
        }
        done.sort_by(|a, b| higher_first(a.score, b.score));
        done.truncate(nb);
        let gen_len = step + 1;
        // transformers' heuristic (early_stopping=False): stop once no live beam can beat the worst
        // kept hypothesis at the current length.
        let finished = done.len() == nb
            && next
                .first()
                .map(|(_, s)| done[nb - 1].score >= normalized(*s, gen_len))
                .unwrap_or(true);
        if finished || next.is_empty() {
            beams = Vec::new();
            break;
        }
        state.reorder(&keep)?;
        beams = next;
    }
    // Beams still running at the length limit are finished as they are.
    for (t, s) in beams {
        let gen = t.len() - 1;
        done.push(Hyp {
            tokens: t,
            sum_logprobs: s,
            score: normalized(s, gen),
        });
    }
    done.sort_by(|a, b| higher_first(a.score, b.score));
    done.truncate(nb);
    Ok(done
        .into_iter()
        .map(|h| Sequence {
            tokens: h.tokens,
            sum_logprobs: h.sum_logprobs,
            score: h.score,
        })
        .collect())
}

/// Logits processors, as transformers applies them: repetition penalty, then no-repeat n-grams.
fn process(row: &mut [f32], tokens: &[u32], g: &Generation) {
    if g.repetition_penalty != 1.0 {
        let mut seen = tokens.to_vec();
        seen.sort_unstable();
        seen.dedup();
        for &t in &seen {
            if let Some(x) = row.get_mut(t as usize) {
                *x = if *x < 0.0 {
                    *x * g.repetition_penalty
                } else {
                    *x / g.repetition_penalty
                };
            }
        }
    }
    let n = g.no_repeat_ngram_size;
    if n > 0 && tokens.len() + 1 >= n {
        let prefix = &tokens[tokens.len() + 1 - n..];
        for w in tokens.windows(n) {
            if &w[..n - 1] == prefix {
                if let Some(x) = row.get_mut(w[n - 1] as usize) {
                    *x = f32::NEG_INFINITY;
                }
            }
        }
    }
}

fn argmax(row: &[f32]) -> usize {
    // First maximum, as torch.argmax.
    let mut best = 0;
    for (i, &x) in row.iter().enumerate() {
        if x > row[best] {
            best = i;
        }
    }
    best
}

fn top_k(row: &[f32], k: usize) -> Vec<(usize, f32)> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    let k = k.min(row.len());
    idx.select_nth_unstable_by(k.saturating_sub(1), |&a, &b| higher_first(row[a], row[b]));
    let mut out: Vec<(usize, f32)> = idx[..k].iter().map(|&i| (i, row[i])).collect();
    out.sort_by(by_score_desc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// A decoder over a fixed table: logits depend only on the last token.
    struct Table(Vec<Vec<f32>>);

    impl Decoder for Table {
        fn start(&self, encoder: Tensor, _cache: bool) -> Result<DecoderState> {
            Ok(DecoderState {
                self_kv: Vec::new(),
                cross_kv: None,
                encoder,
                pos: 0,
            })
        }
        fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor> {
            state.pos += 1;
            let rows: Vec<f32> = tokens
                .iter()
                .flat_map(|&t| self.0[t as usize].clone())
                .collect();
            Ok(Tensor::from_vec(
                rows,
                (tokens.len(), self.0[0].len()),
                &Device::Cpu,
            )?)
        }
    }

    fn gen(beams: usize) -> Generation {
        Generation {
            start: 0,
            eos: vec![3],
            max_new_tokens: 5,
            num_beams: beams,
            length_penalty: 1.0,
            repetition_penalty: 1.0,
            no_repeat_ngram_size: 0,
            cache_cross: true,
        }
    }

    fn enc() -> Tensor {
        Tensor::zeros((1, 1, 1), DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn greedy_takes_the_best_token_and_stops_at_eos() {
        // 0 → 1 (best), 1 → 2, 2 → eos.
        let t = Table(vec![
            vec![0.0, 5.0, 4.0, 0.0],
            vec![0.0, 0.0, 5.0, 1.0],
            vec![0.0, 0.0, 0.0, 5.0],
            vec![0.0; 4],
        ]);
        let out = generate(&t, enc(), &gen(1)).unwrap();
        assert_eq!(out[0].tokens, vec![0, 1, 2, 3]);
    }

    #[test]
    fn beam_search_finds_a_better_sequence_than_greedy() {
        // Greedy picks 1 (slightly better first step) but 1 leads to an uncertain path; 2 → eos is
        // near certain, so beam search prefers [0, 2, 3].
        let t = Table(vec![
            vec![-9.0, 1.0, 0.9, -9.0],
            vec![-9.0, 0.0, 0.0, 0.0],
            vec![-9.0, -9.0, -9.0, 9.0],
            vec![0.0; 4],
        ]);
        let g = generate(&t, enc(), &gen(1)).unwrap();
        assert_eq!(g[0].tokens[..2], [0, 1]);
        let b = generate(&t, enc(), &gen(2)).unwrap();
        assert_eq!(b[0].tokens, vec![0, 2, 3]);
        assert!(b[0].score >= b[1].score);
    }

    #[test]
    fn no_repeat_ngram_blocks_a_loop() {
        // 0 → 1, 1 → 1 forever; with n = 2 the bigram (1, 1) may occur once.
        let t = Table(vec![
            vec![0.0, 5.0, 1.0, 0.0],
            vec![0.0, 5.0, 1.0, 0.0],
            vec![0.0, 0.0, 0.0, 5.0],
            vec![0.0; 4],
        ]);
        let mut g = gen(1);
        g.no_repeat_ngram_size = 2;
        let out = generate(&t, enc(), &g).unwrap();
        assert_eq!(out[0].tokens, vec![0, 1, 1, 2, 3]);
    }
}

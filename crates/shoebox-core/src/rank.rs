//! Scores, one rule each: ordering best first, and softmax over logits.

use std::cmp::Ordering;

/// Higher score first (NaN ordered by [`f32::total_cmp`]); for sorts where equal scores keep their
/// order (a stable sort), e.g. `v.sort_by(|a, b| higher_first(a.1, b.1))`.
pub fn higher_first(a: f32, b: f32) -> Ordering {
    b.total_cmp(&a)
}

/// Best first for (key, score) pairs: higher score first, equal scores by lower key, so the order
/// never depends on where the items came from: `v.sort_by(by_score_desc)`.
pub fn by_score_desc<K: Ord>(a: &(K, f32), b: &(K, f32)) -> Ordering {
    higher_first(a.1, b.1).then_with(|| a.0.cmp(&b.0))
}

/// The largest logit (−∞ for none).
fn max_logit(logits: &[f32]) -> f32 {
    logits.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Softmax of logits, shifted by their maximum so large logits do not overflow.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let m = max_logit(logits);
    let exps: Vec<f32> = logits.iter().map(|x| (x - m).exp()).collect();
    let z: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / z).collect()
}

/// `log(softmax(logits)[i])`, without computing the whole softmax.
pub fn log_softmax_at(logits: &[f32], i: usize) -> f32 {
    let m = max_logit(logits);
    let lse = logits.iter().map(|x| (x - m).exp()).sum::<f32>().ln() + m;
    logits[i] - lse
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_first_with_ties_by_key() {
        let mut v = vec![(3, 0.5), (1, 0.9), (2, 0.5), (0, f32::NAN)];
        v.sort_by(by_score_desc);
        let keys: Vec<i32> = v.iter().map(|x| x.0).collect();
        // total_cmp puts a positive NaN above every number.
        assert_eq!(keys, [0, 1, 2, 3]);
        let mut s = vec![("b", 0.2), ("a", 0.2), ("c", 0.7)];
        s.sort_by(|x, y| higher_first(x.1, y.1));
        assert_eq!(s, [("c", 0.7), ("b", 0.2), ("a", 0.2)]);
    }

    #[test]
    fn softmax_sums_to_one_and_matches_log_softmax() {
        let logits = [1000.0, 999.0, 990.0];
        let p = softmax(&logits);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[0] > p[1] && p[1] > p[2]);
        for (i, pi) in p.iter().enumerate() {
            assert!((log_softmax_at(&logits, i) - pi.ln()).abs() < 1e-4);
        }
        assert!(softmax(&[]).is_empty());
    }
}

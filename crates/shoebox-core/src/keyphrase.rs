//! KeyBERT-style keyphrases from a caption: candidate phrases are runs of 1–3 non-stop words, ranked
//! by cosine with the caption's sentence embedding and diversified by maximal marginal relevance.

use std::collections::HashSet;

use crate::error::Result;
use crate::index::dot;
use crate::models::text::TextEncoder;

/// Longest candidate phrase, in words.
const MAX_PHRASE_WORDS: usize = 3;

/// English stop words, plus words captioners use to describe the picture rather than its content.
/// A candidate phrase never contains one.
#[rustfmt::skip]
const STOP_WORDS: &[&str] = &[
    // articles, determiners, quantifiers
    "a", "an", "the", "this", "that", "these", "those", "some", "any", "each", "every", "all",
    "both", "either", "neither", "no", "not", "other", "another", "such", "own", "same", "few",
    "more", "most", "much", "many", "several", "only", "very", "too", "so", "just", "also",
    // prepositions
    "about", "above", "across", "after", "against", "along", "among", "around", "at", "before",
    "behind", "below", "beneath", "beside", "besides", "between", "beyond", "by", "down", "during",
    "for", "from", "in", "inside", "into", "near", "of", "off", "on", "onto", "out", "outside",
    "over", "through", "to", "toward", "towards", "under", "underneath", "until", "up", "upon",
    "with", "within", "without", "via",
    // conjunctions
    "and", "or", "but", "nor", "if", "then", "than", "as", "while", "because", "since", "though",
    "although", "whether", "where", "when", "which", "who", "whom", "whose", "what", "why", "how",
    // pronouns
    "i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "ourselves", "you", "your",
    "yours", "yourself", "he", "him", "his", "himself", "she", "her", "hers", "herself", "it",
    "its", "itself", "they", "them", "their", "theirs", "themselves", "one", "ones", "someone",
    "something", "it's", "there's",
    // auxiliary and common verbs
    "am", "is", "are", "was", "were", "be", "been", "being", "have", "has", "had", "having", "do",
    "does", "did", "doing", "will", "would", "shall", "should", "can", "could", "may", "might",
    "must",
    // adverbs and fillers
    "here", "there", "now", "again", "once", "still", "yet", "even", "ever", "well",
    // caption fillers: words about the picture, not in it
    "photo", "photos", "photograph", "picture", "pictures", "image", "images", "view", "shot",
    "closeup", "close", "showing", "shows", "depicting", "featuring",
];

fn is_stop_word(word: &str) -> bool {
    STOP_WORDS.contains(&word)
}

/// Lowercased words: runs of letters, digits and apostrophes (apostrophes at either end dropped).
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '’'))
        .map(|w| w.replace('’', "'"))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Candidate keyphrases of `text`: contiguous runs of 1–3 non-stop words (a phrase never spans a
/// stop word), lowercased, deduplicated, in order of first appearance (by start word, then length).
/// Punctuation does not break a phrase (as with KeyBERT's CountVectorizer); only stop words do.
pub fn candidates(text: &str) -> Vec<String> {
    let words = words(text);
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for start in 0..words.len() {
        for len in 1..=MAX_PHRASE_WORDS {
            let Some(span) = words.get(start..start + len) else {
                break;
            };
            if is_stop_word(&span[len - 1]) {
                break;
            }
            let phrase = span.join(" ");
            if seen.insert(phrase.clone()) {
                out.push(phrase);
            }
        }
    }
    out
}

/// Index of the largest value (the first one on ties, NaN never wins), as numpy's argmax.
fn argmax(values: impl Iterator<Item = (usize, f32)>) -> Option<usize> {
    let mut best: Option<(usize, f32)> = None;
    for (i, v) in values {
        if v.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map(|(i, _)| i)
}

/// Pick up to `top_n` of `cands` by maximal marginal relevance, as KeyBERT does: the first pick is
/// the candidate most similar to `doc`, each next one maximizes
/// `(1 - diversity) · sim(cand, doc) − diversity · max sim(cand, picked)`. Picks whose similarity to
/// the doc is below `threshold` are then dropped (so fewer than `top_n` may come back). Vectors must
/// be L2-normalized (cosine = dot). Returns (phrase, cosine with the doc), sorted by that cosine,
/// highest first (KeyBERT's order).
pub fn select(
    doc: &[f32],
    cands: &[(String, Vec<f32>)],
    top_n: usize,
    diversity: f32,
    threshold: f32,
) -> Vec<(String, f32)> {
    if top_n == 0 || cands.is_empty() {
        return Vec::new();
    }
    let doc_sim: Vec<f32> = cands.iter().map(|(_, v)| dot(v, doc)).collect();
    let Some(first) = argmax(doc_sim.iter().copied().enumerate()) else {
        return Vec::new();
    };
    let mut picked = vec![first];
    let mut left: Vec<usize> = (0..cands.len()).filter(|&i| i != first).collect();
    // For each remaining candidate, its largest similarity to any pick so far.
    let mut redundancy: Vec<f32> = left
        .iter()
        .map(|&i| dot(&cands[i].1, &cands[first].1))
        .collect();
    while picked.len() < top_n && !left.is_empty() {
        let scores = left
            .iter()
            .zip(&redundancy)
            .map(|(&i, &r)| (1.0 - diversity) * doc_sim[i] - diversity * r)
            .enumerate();
        let Some(k) = argmax(scores) else {
            break;
        };
        let chosen = left.remove(k);
        redundancy.remove(k);
        picked.push(chosen);
        for (r, &i) in redundancy.iter_mut().zip(&left) {
            *r = r.max(dot(&cands[i].1, &cands[chosen].1));
        }
    }
    let mut out: Vec<(String, f32)> = picked
        .into_iter()
        .filter(|&i| doc_sim[i] >= threshold)
        .map(|i| (cands[i].0.clone(), doc_sim[i]))
        .collect();
    out.sort_by(|a, b| crate::rank::higher_first(a.1, b.1));
    out
}

/// Keyphrases of a caption: its [`candidates`] and the caption embedded in one batch, then
/// [`select`]. An empty list when the caption has no candidate.
pub fn keyphrases(
    enc: &TextEncoder,
    caption: &str,
    top_n: usize,
    diversity: f32,
    threshold: f32,
) -> Result<Vec<(String, f32)>> {
    let cands = candidates(caption);
    if cands.is_empty() || top_n == 0 {
        return Ok(Vec::new());
    }
    let mut texts: Vec<&str> = Vec::with_capacity(cands.len() + 1);
    texts.push(caption);
    texts.extend(cands.iter().map(String::as_str));
    let mut vecs = enc.embed(&texts)?.into_iter();
    let doc = vecs.next().unwrap_or_default();
    let cands: Vec<(String, Vec<f32>)> = cands.into_iter().zip(vecs).collect();
    Ok(select(&doc, &cands, top_n, diversity, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_runs_of_non_stop_words() {
        assert_eq!(
            candidates("Two dogs playing on a sandy beach at sunset."),
            vec![
                "two",
                "two dogs",
                "two dogs playing",
                "dogs",
                "dogs playing",
                "playing",
                "sandy",
                "sandy beach",
                "beach",
                "sunset",
            ]
        );
    }

    #[test]
    fn candidates_lowercase_dedupe_and_cap_at_three_words() {
        assert_eq!(
            candidates("Red red RED ball, big red ball"),
            vec![
                "red",
                "red red",
                "red red red",
                "red red ball",
                "red ball",
                "red ball big",
                "ball",
                "ball big",
                "ball big red",
                "big",
                "big red",
                "big red ball",
            ]
        );
    }

    #[test]
    fn candidates_keep_apostrophes_digits_and_drop_fillers() {
        assert_eq!(
            candidates("A photo of the dog's 2nd birthday — 'party' there!"),
            vec![
                "dog's",
                "dog's 2nd",
                "dog's 2nd birthday",
                "2nd",
                "2nd birthday",
                "2nd birthday party",
                "birthday",
                "birthday party",
                "party",
            ]
        );
        assert!(candidates("").is_empty());
        assert!(candidates("a picture of it, there, in the image").is_empty());
        assert_eq!(
            candidates("Café  naïve"),
            vec!["café", "café naïve", "naïve"]
        );
    }

    #[test]
    fn stop_words_are_lowercase_and_unique() {
        let set: HashSet<_> = STOP_WORDS.iter().collect();
        assert_eq!(set.len(), STOP_WORDS.len(), "duplicate stop word");
        assert!(STOP_WORDS.iter().all(|w| *w == w.to_lowercase()));
        assert!(
            (150..=200).contains(&STOP_WORDS.len()),
            "{}",
            STOP_WORDS.len()
        );
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter().map(|x| x / n).collect()
    }

    fn cand(name: &str, v: &[f32]) -> (String, Vec<f32>) {
        (name.to_string(), unit(v))
    }

    #[test]
    fn select_without_diversity_is_top_n_by_similarity() {
        let doc = unit(&[1.0, 0.0, 0.0]);
        let cands = vec![
            cand("far", &[0.0, 1.0, 0.0]),
            cand("close", &[1.0, 0.1, 0.0]),
            cand("closer", &[1.0, 0.05, 0.0]),
            cand("mid", &[1.0, 1.0, 0.0]),
        ];
        let got = select(&doc, &cands, 3, 0.0, -1.0);
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["closer", "close", "mid"]);
        assert!((got[2].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    }

    #[test]
    fn select_with_diversity_skips_near_duplicates() {
        let doc = unit(&[1.0, 1.0, 0.0]);
        let cands = vec![
            cand("dog", &[1.0, 0.9, 0.0]),
            cand("dogs", &[1.0, 0.89, 0.0]),
            cand("beach", &[0.3, 1.0, 0.3]),
        ];
        // Without diversity the near-duplicate comes second; with it, the other concept does.
        let plain = select(&doc, &cands, 2, 0.0, -1.0);
        assert_eq!(plain[0].0, "dog");
        assert_eq!(plain[1].0, "dogs");
        let diverse = select(&doc, &cands, 2, 0.7, -1.0);
        let names: HashSet<&str> = diverse.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, HashSet::from(["dog", "beach"]));
        // Scores are cosines with the doc, sorted descending.
        assert!(diverse[0].1 >= diverse[1].1);
        for (n, s) in &diverse {
            let v = &cands.iter().find(|(c, _)| c == n).unwrap().1;
            assert!((dot(v, &doc) - s).abs() < 1e-6);
        }
    }

    #[test]
    fn select_threshold_drops_weak_picks_and_edges_are_empty() {
        let doc = unit(&[1.0, 0.0]);
        let cands = vec![cand("yes", &[1.0, 0.2]), cand("no", &[0.1, 1.0])];
        let got = select(&doc, &cands, 5, 0.5, 0.5);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "yes");
        assert!(select(&doc, &cands, 0, 0.5, 0.0).is_empty());
        assert!(select(&doc, &[], 3, 0.5, 0.0).is_empty());
        assert_eq!(select(&doc, &cands, 10, 0.5, -1.0).len(), 2);
    }
}

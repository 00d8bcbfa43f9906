//! Search requests: compound query parsing ("2:beach + sunset - people"), filters, and ranking.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::catalog::PhotoInfo;
use crate::error::{Error, Result};
use crate::places::{fold, place_matches, Near, PlaceInfo};

/// One term of a compound query.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// Signed weight: "- x" gives −1, "2:x" gives 2.
    pub weight: f32,
    pub kind: TermKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TermKind {
    Text(String),
    /// An existing image file: its image embedding is used.
    Image(PathBuf),
}

/// Parse a compound query as rclip does: terms joined by " + " or " - ", each optionally prefixed
/// with a weight `W:`; a term naming an existing file is an image term.
pub fn parse_query(q: &str) -> Result<Vec<Term>> {
    let mut terms = Vec::new();
    let mut sign = 1.0f32;
    let mut rest = q;
    loop {
        let next = [" + ", " - "]
            .iter()
            .filter_map(|sep| rest.find(sep).map(|i| (i, *sep)))
            .min_by_key(|(i, _)| *i);
        let (chunk, after) = match next {
            Some((i, sep)) => (&rest[..i], Some((&rest[i + 3..], sep))),
            None => (rest, None),
        };
        let chunk = chunk.trim();
        if !chunk.is_empty() {
            terms.push(parse_term(chunk, sign));
        } else if after.is_some() || !terms.is_empty() {
            return Err(Error::Invalid(format!("empty term in query {q:?}")));
        }
        match after {
            Some((r, sep)) => {
                sign = if sep == " - " { -1.0 } else { 1.0 };
                rest = r;
            }
            None => break,
        }
    }
    Ok(terms)
}

/// The texts of a query's text terms, in order, as the text encoders see them: the quotes of
/// exact phrases are for keyword search only.
pub fn text_terms(terms: &[Term]) -> Vec<String> {
    terms
        .iter()
        .filter_map(|t| match &t.kind {
            TermKind::Text(s) => Some(s.replace('"', " ").trim().to_string()),
            TermKind::Image(_) => None,
        })
        .collect()
}

/// Words too common to rank photos by keyword ("a photo of a dog" is about "dog").
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "image", "in", "is", "it",
    "me", "my", "of", "on", "or", "photo", "photos", "picture", "pictures", "show", "some", "that",
    "the", "this", "to", "with",
];

/// The keyword side of a query: quoted phrases, which a photo must contain (in its recognised
/// text, caption, tags or file path), and the other words, which rank. Case and accents do not
/// matter; words are split as the keyword index splits them (at anything not a letter or digit).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeywordQuery {
    pub phrases: Vec<String>,
    pub words: Vec<String>,
}

fn keyword_tokens(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// An FTS5 string literal: a token, or a phrase of tokens joined by spaces.
fn fts_quote(tokens: &str) -> String {
    format!("\"{}\"", tokens.replace('"', "\"\""))
}

impl KeywordQuery {
    /// The keywords of a query's positive text terms (`- term` excludes by meaning, not by word).
    pub fn from_terms(terms: &[Term]) -> KeywordQuery {
        let mut k = KeywordQuery::default();
        for t in terms {
            let TermKind::Text(text) = &t.kind else {
                continue;
            };
            if t.weight <= 0.0 {
                continue;
            }
            for (i, part) in text.split('"').enumerate() {
                // Odd parts are inside quotes (an unclosed quote runs to the end).
                if i % 2 == 1 {
                    let tokens = keyword_tokens(part);
                    let phrase = tokens.join(" ");
                    if !tokens.is_empty() && !k.phrases.contains(&phrase) {
                        k.phrases.push(phrase);
                    }
                } else {
                    for w in keyword_tokens(part) {
                        if !STOPWORDS.contains(&w.as_str()) && !k.words.contains(&w) {
                            k.words.push(w);
                        }
                    }
                }
            }
        }
        k
    }

    pub fn is_empty(&self) -> bool {
        self.phrases.is_empty() && self.words.is_empty()
    }

    /// The FTS5 query every result must match (all phrases), if the query has phrases.
    pub fn required(&self) -> Option<String> {
        (!self.phrases.is_empty()).then(|| {
            self.phrases
                .iter()
                .map(|p| fts_quote(p))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
    }

    /// The FTS5 query that ranks: any phrase or word, bm25 favouring photos with more and rarer
    /// ones.
    pub fn ranking(&self) -> Option<String> {
        (!self.is_empty()).then(|| {
            self.phrases
                .iter()
                .map(|p| fts_quote(p))
                .chain(self.words.iter().map(|w| fts_quote(w)))
                .collect::<Vec<_>>()
                .join(" OR ")
        })
    }
}

fn parse_term(chunk: &str, sign: f32) -> Term {
    let (weight, text) = match chunk.split_once(':') {
        Some((w, t)) if !t.trim().is_empty() => match w.trim().parse::<f32>() {
            Ok(w) if w.is_finite() => (w, t.trim()),
            _ => (1.0, chunk),
        },
        _ => (1.0, chunk),
    };
    let path = Path::new(text);
    let kind = if path.is_file() {
        TermKind::Image(path.to_path_buf())
    } else {
        TermKind::Text(text.to_string())
    };
    Term {
        weight: sign * weight,
        kind,
    }
}

/// How results are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    #[default]
    Score,
    /// Newest first (capture time, else file time), among the best `limit` matches.
    Date,
}

/// Result filters.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Only photos under one of these folders.
    pub in_dirs: Vec<PathBuf>,
    /// Only photos taken at or after this time ('YYYY[-MM[-DD[THH:MM:SS]]]').
    pub after: Option<String>,
    /// Only photos taken before this time.
    pub before: Option<String>,
    /// Only these extensions (lower case; "jpg" also matches "jpeg"/"jpe", "tif" also "tiff").
    pub types: Vec<String>,
    /// Only photos carrying every one of these tags.
    pub tags: Vec<String>,
    /// Only photos taken at one of these places (folded names: city, region or country).
    pub places: Vec<String>,
    /// Only photos taken within this circle.
    pub near: Option<Near>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.in_dirs.is_empty()
            && self.after.is_none()
            && self.before.is_none()
            && self.types.is_empty()
            && self.tags.is_empty()
            && self.places.is_empty()
            && self.near.is_none()
    }

    /// Whether a photo passes.
    pub fn accepts(&self, p: &PhotoInfo) -> bool {
        if !self.in_dirs.is_empty() && !self.in_dirs.iter().any(|d| p.path.starts_with(d)) {
            return false;
        }
        if !self.types.is_empty() {
            let ext = canonical_ext(&p.ext);
            if !self.types.iter().any(|t| canonical_ext(t) == ext) {
                return false;
            }
        }
        if self.after.is_some() || self.before.is_some() {
            let date = photo_date(p);
            if self.after.as_deref().is_some_and(|a| date.as_str() < a) {
                return false;
            }
            if self.before.as_deref().is_some_and(|b| date.as_str() >= b) {
                return false;
            }
        }
        if !self.places.is_empty() {
            let Some(place) = &p.place else {
                return false;
            };
            if !self.places.iter().any(|n| place_matches(place, n)) {
                return false;
            }
        }
        if let Some(near) = &self.near {
            match (p.lat, p.lon) {
                (Some(lat), Some(lon)) if near.contains(lat, lon) => {}
                _ => return false,
            }
        }
        true
    }
}

fn canonical_ext(e: &str) -> &str {
    match e.trim_start_matches('.') {
        "jpeg" | "jpe" | "JPG" | "JPEG" => "jpg",
        "tiff" => "tif",
        other => other,
    }
}

/// A photo's date for filtering and sorting: EXIF capture time, else the file's mtime (local time).
pub fn photo_date(p: &PhotoInfo) -> String {
    date_key(p.taken_at.as_deref(), p.mtime_ns)
}

/// The date a photo sorts by, 'YYYY-MM-DDTHH:MM:SS': its capture time, else its file time (local).
pub fn date_key(taken_at: Option<&str>, mtime_ns: i64) -> String {
    if let Some(t) = taken_at {
        return t.to_string();
    }
    use chrono::TimeZone;
    chrono::Local
        .timestamp_nanos(mtime_ns)
        .naive_local()
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

/// Normalize a user date ('2021', '2021-06', '2021-06-30', '2021-06-30T12:00:00') to the first
/// instant it names, as 'YYYY-MM-DDTHH:MM:SS'.
pub fn parse_date_bound(s: &str) -> Result<String> {
    let s = s.trim();
    let full = match s.len() {
        4 => format!("{s}-01-01T00:00:00"),
        7 => format!("{s}-01T00:00:00"),
        10 => format!("{s}T00:00:00"),
        16 => format!("{s}:00"),
        _ => s.replace(' ', "T"),
    };
    chrono::NaiveDateTime::parse_from_str(&full, "%Y-%m-%dT%H:%M:%S").map_err(|_| {
        Error::Invalid(format!(
            "bad date {s:?}: use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
        ))
    })?;
    Ok(full)
}

/// A search request.
#[derive(Debug, Clone)]
pub struct SearchRequest {
    /// Text (possibly compound) query.
    pub query: Option<String>,
    /// Images to search by (indexed or not).
    pub like: Vec<PathBuf>,
    pub filters: Filters,
    pub limit: usize,
    pub min_score: Option<f32>,
    pub sort: SortBy,
    /// How to rank; `None`: hybrid when the library has caption embeddings and the query is text
    /// only, else CLIP.
    pub mode: Option<SearchMode>,
}

/// How a search ranks photos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// The query's CLIP embedding against the photos' image embeddings.
    Clip,
    /// The query's sentence embedding against the photos' caption embeddings.
    Text,
    /// The query's words against the photos' recognised text, captions, tags and file paths
    /// (bm25).
    Keyword,
    /// The rankings there are (CLIP, captions, keywords) fused by reciprocal rank fusion.
    Hybrid,
    /// No query: the photos that pass the filters, newest first (scores are 0).
    Timeline,
}

impl std::str::FromStr for SearchMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "clip" => Ok(SearchMode::Clip),
            "text" => Ok(SearchMode::Text),
            "hybrid" => Ok(SearchMode::Hybrid),
            "keyword" => Ok(SearchMode::Keyword),
            other => Err(Error::UnknownValue {
                what: "search mode",
                value: other.to_string(),
                expected: "clip, text, keyword, hybrid",
            }),
        }
    }
}

/// A query word found in more than this share of the library's photos does not rank (it still
/// counts inside a quoted phrase).
pub const COMMON_WORD_SHARE: f64 = 0.2;

/// The constant of reciprocal rank fusion (Cormack et al.; 60 is the usual choice).
pub const RRF_K: f32 = 60.0;

/// Fuse ranked lists (best first) by reciprocal rank fusion: score = Σ 1 / (k + rank).
pub fn rrf(lists: &[&[(i64, f32)]], limit: usize) -> Vec<(i64, f32)> {
    let mut acc: std::collections::HashMap<i64, f32> = std::collections::HashMap::new();
    for list in lists {
        for (rank, (id, _)) in list.iter().enumerate() {
            *acc.entry(*id).or_default() += 1.0 / (RRF_K + rank as f32 + 1.0);
        }
    }
    let mut out: Vec<(i64, f32)> = acc.into_iter().collect();
    out.sort_by(crate::rank::by_score_desc);
    out.truncate(limit);
    out
}

/// Results a search returns when the request does not say.
pub const DEFAULT_LIMIT: usize = 20;
/// The most results one search returns.
pub const MAX_LIMIT: usize = 5000;

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            query: None,
            like: Vec::new(),
            filters: Filters::default(),
            limit: DEFAULT_LIMIT,
            min_score: None,
            sort: SortBy::Score,
            mode: None,
        }
    }
}

/// A search as a person typed it (CLI flags, the app's search form), before normalization. Both
/// front ends build their requests through [`SearchInput::into_request`], so the same input means
/// the same search everywhere.
#[derive(Debug, Clone, Default)]
pub struct SearchInput {
    pub query: Option<String>,
    pub like: Vec<PathBuf>,
    /// Folders (made canonical when they exist).
    pub in_dirs: Vec<PathBuf>,
    /// Dates as typed: YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS.
    pub after: Option<String>,
    pub before: Option<String>,
    /// File types as typed: "jpg", ".PNG", "tiff".
    pub types: Vec<String>,
    /// Tags as typed (normalized as tags are stored).
    pub tags: Vec<String>,
    /// Place names as typed (city, region or country; any one matches).
    pub places: Vec<String>,
    /// 'LAT,LON[,KM]' as typed.
    pub near: Option<String>,
    pub min_score: Option<f32>,
    /// None: [`DEFAULT_LIMIT`]; at most [`MAX_LIMIT`].
    pub limit: Option<usize>,
    pub sort: SortBy,
    pub mode: Option<SearchMode>,
}

fn nonblank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl SearchInput {
    /// The normalized request: blank fields dropped, dates and tags checked, types as bare lower-case
    /// extensions, folders canonical, the limit bounded.
    pub fn into_request(self) -> Result<SearchRequest> {
        Ok(SearchRequest {
            query: nonblank(&self.query).map(str::to_string),
            like: self.like,
            filters: Filters {
                in_dirs: self
                    .in_dirs
                    .into_iter()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map(|d| std::fs::canonicalize(&d).unwrap_or(d))
                    .collect(),
                after: nonblank(&self.after).map(parse_date_bound).transpose()?,
                before: nonblank(&self.before).map(parse_date_bound).transpose()?,
                types: self
                    .types
                    .iter()
                    .map(|t| t.trim().trim_start_matches('.').to_ascii_lowercase())
                    .filter(|t| !t.is_empty())
                    .collect(),
                tags: self
                    .tags
                    .iter()
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| crate::tags::normalize_tag(t))
                    .collect::<Result<_>>()?,
                places: self
                    .places
                    .iter()
                    .map(|p| fold(p))
                    .filter(|p| !p.is_empty())
                    .collect(),
                near: nonblank(&self.near).map(str::parse).transpose()?,
            },
            limit: self.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT),
            min_score: self.min_score,
            sort: self.sort,
            mode: self.mode,
        })
    }
}

impl std::str::FromStr for SortBy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "score" => Ok(SortBy::Score),
            "date" => Ok(SortBy::Date),
            other => Err(Error::UnknownValue {
                what: "order",
                value: other.to_string(),
                expected: "score, date",
            }),
        }
    }
}

/// A ranking as a person names it: `auto` (or nothing) lets the engine choose.
pub fn parse_mode(s: &str) -> Result<Option<SearchMode>> {
    match s.trim() {
        "" | "auto" => Ok(None),
        m => m.parse().map(Some),
    }
}

/// One result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub rank: usize,
    pub path: String,
    pub score: f32,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub taken_at: Option<String>,
    /// The date it sorts by: `taken_at`, else the file's time (local), 'YYYY-MM-DDTHH:MM:SS'.
    pub date: String,
    /// The photo's caption, when the library has captioned it.
    pub caption: Option<String>,
    /// The photo's tags, best first.
    pub tags: Vec<String>,
    /// Where it was taken (null without GPS or without a town near).
    pub place: Option<PlaceInfo>,
    /// The text recognised in it (OCR), when there is any.
    pub text: Option<String>,
    #[serde(skip)]
    pub photo_id: i64,
}

/// The answer to a search (the `search --json` shape).
#[derive(Debug, Clone, Serialize)]
pub struct SearchResponse {
    pub query: String,
    pub model: String,
    /// The encoder that embedded the query's text terms when it is not the CLIP model's own text
    /// tower (`--query-model`); null otherwise.
    pub query_model: Option<String>,
    /// How the results were ranked.
    pub mode: SearchMode,
    pub took_ms: f64,
    /// Words of the query taken as a place filter ("beach in Portugal" → ["Portugal"]).
    pub place_filter: Vec<String>,
    pub results: Vec<SearchHit>,
}

/// The library (or what passes the filters) newest first, a page at a time, with the months it
/// spans for a scrubber.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// Photos in the whole timeline.
    pub total: usize,
    /// 'YYYY-MM' and how many photos, newest first; counts add up to `total`.
    pub months: Vec<MonthCount>,
    /// Index of the first result in the timeline.
    pub offset: usize,
    pub results: Vec<SearchHit>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthCount {
    pub month: String,
    pub count: usize,
}

/// Words a person puts before a place: "beach in Portugal", "sunset at Lisbon".
const PLACE_PREPOSITIONS: &[&str] = &["in", "at", "from", "near", "around"];

/// Split the place out of a free-text query: the longest runs of words (up to four) that name one
/// of `known` (folded names of places in the library). A run is taken when it is a country, starts
/// with a capital, or follows a place preposition, which is dropped with it; so "sunset" stays a
/// word even in a library with a photo from Sunset, Louisiana, while "sunset in Sunset" does not.
/// Returns the rest of the query and the names taken, as typed.
pub fn split_place_words(
    query: &str,
    known: &HashSet<String>,
    countries: &HashSet<String>,
) -> (String, Vec<String>) {
    let words: Vec<&str> = query.split_whitespace().collect();
    let mut keep = vec![true; words.len()];
    let mut taken = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let mut matched = 0;
        for n in (1..=4.min(words.len() - i)).rev() {
            let run = words[i..i + n].join(" ");
            let folded = fold(&run);
            if folded.is_empty() || !known.contains(&folded) {
                continue;
            }
            let after_prep = i > 0 && PLACE_PREPOSITIONS.contains(&fold(words[i - 1]).as_str());
            let capital = run.chars().next().is_some_and(char::is_uppercase);
            if countries.contains(&folded) || capital || after_prep {
                matched = n;
                if after_prep {
                    keep[i - 1] = false;
                }
                let trimmed = run.trim_matches(|c: char| !c.is_alphanumeric());
                taken.push(trimmed.to_string());
                break;
            }
        }
        if matched > 0 {
            for k in &mut keep[i..i + matched] {
                *k = false;
            }
            i += matched;
        } else {
            i += 1;
        }
    }
    let rest: Vec<&str> = words
        .iter()
        .zip(&keep)
        .filter(|(_, k)| **k)
        .map(|(w, _)| *w)
        .collect();
    (rest.join(" "), taken)
}

/// Ids allowed by filters, from the embedded photos.
pub fn allowed_ids(infos: &[PhotoInfo], filters: &Filters) -> HashSet<i64> {
    infos
        .iter()
        .filter(|p| filters.accepts(p))
        .map(|p| p.id)
        .collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn search_input_is_normalized_one_way() {
        let req = SearchInput {
            query: Some("  ".into()),
            types: vec![" .PNG".into(), "".into(), "Jpg".into()],
            tags: vec!["  Beach  ".into(), " ".into()],
            after: Some("2021".into()),
            before: Some(" ".into()),
            limit: Some(1_000_000),
            ..Default::default()
        }
        .into_request()
        .unwrap();
        assert_eq!(req.query, None);
        assert_eq!(req.filters.types, vec!["png", "jpg"]);
        assert_eq!(req.filters.tags, vec!["beach"]);
        assert_eq!(req.filters.after.as_deref(), Some("2021-01-01T00:00:00"));
        assert_eq!(req.filters.before, None);
        assert_eq!(req.limit, MAX_LIMIT);
        assert_eq!(
            SearchInput::default().into_request().unwrap().limit,
            DEFAULT_LIMIT
        );
        assert!(SearchInput {
            after: Some("last tuesday".into()),
            ..Default::default()
        }
        .into_request()
        .is_err());
        assert_eq!(" Date".parse::<SortBy>().unwrap(), SortBy::Date);
        assert_eq!(parse_mode("auto").unwrap(), None);
        assert_eq!(parse_mode("HYBRID").unwrap(), Some(SearchMode::Hybrid));
        assert_eq!(parse_mode("fuzzy").unwrap_err().code(), "invalid");
    }
    use super::*;

    fn text(w: f32, s: &str) -> Term {
        Term {
            weight: w,
            kind: TermKind::Text(s.into()),
        }
    }

    #[test]
    fn compound_queries() {
        assert_eq!(
            rrf(&[&[(1, 0.9), (2, 0.8)], &[(2, 0.5), (3, 0.4)]], 3)
                .iter()
                .map(|x| x.0)
                .collect::<Vec<_>>(),
            vec![2, 1, 3]
        );
        assert_eq!(
            parse_query("kids on a beach").unwrap(),
            vec![text(1.0, "kids on a beach")]
        );
        assert_eq!(
            parse_query("2:beach + sunset - people").unwrap(),
            vec![
                text(2.0, "beach"),
                text(1.0, "sunset"),
                text(-1.0, "people")
            ]
        );
        assert_eq!(
            parse_query("a - 0.5:b").unwrap(),
            vec![text(1.0, "a"), text(-0.5, "b")]
        );
        // A colon that is not a weight stays in the text; hyphens inside words are not operators.
        assert_eq!(
            parse_query("time: 12-3").unwrap(),
            vec![text(1.0, "time: 12-3")]
        );
        assert!(parse_query("a +  + b").is_err());
    }

    #[test]
    fn keyword_queries() {
        let k = |q: &str| KeywordQuery::from_terms(&parse_query(q).unwrap());
        let q = k("a photo of the ACME receipt 4711");
        assert_eq!(q.words, vec!["acme", "receipt", "4711"]);
        assert!(q.phrases.is_empty());
        assert_eq!(q.required(), None);
        assert_eq!(q.ranking().unwrap(), "\"acme\" OR \"receipt\" OR \"4711\"");
        let q = k("\"Boarding  Pass\" Lisbon - \"gate 12\"");
        assert_eq!(q.phrases, vec!["boarding pass"]);
        assert_eq!(q.words, vec!["lisbon"]);
        assert_eq!(q.required().unwrap(), "\"boarding pass\"");
        // FTS5 syntax in a query is only words: no operator, column filter or injection.
        let q = k("error: NOT (x* OR \"y");
        assert_eq!(q.words, vec!["error", "not", "x"]);
        assert_eq!(q.phrases, vec!["y"]);
        assert!(k("a photo of").is_empty());
        assert_eq!(
            text_terms(&parse_query("\"boarding pass\" lisbon").unwrap()),
            vec!["boarding pass  lisbon"]
        );
    }

    #[test]
    fn place_words_are_split_from_queries() {
        let known: HashSet<String> = ["portugal", "lisbon", "sunset", "new york", "sao paulo"]
            .into_iter()
            .map(String::from)
            .collect();
        let countries: HashSet<String> = ["portugal".to_string()].into();
        let split = |q: &str| split_place_words(q, &known, &countries);
        assert_eq!(
            split("beach in Portugal"),
            ("beach".to_string(), vec!["Portugal".to_string()])
        );
        assert_eq!(
            split("beach in portugal"),
            ("beach".to_string(), vec!["portugal".to_string()])
        );
        assert_eq!(split("a sunset over the sea").1, Vec::<String>::new());
        assert_eq!(
            split("sunset in sunset"),
            ("sunset".to_string(), vec!["sunset".to_string()])
        );
        assert_eq!(
            split("taxi New York"),
            ("taxi".to_string(), vec!["New York".to_string()])
        );
        assert_eq!(
            split("São Paulo at night"),
            ("at night".to_string(), vec!["São Paulo".to_string()])
        );
        assert_eq!(split("Lisbon"), (String::new(), vec!["Lisbon".to_string()]));
    }

    #[test]
    fn date_bounds() {
        assert_eq!(parse_date_bound("2021").unwrap(), "2021-01-01T00:00:00");
        assert_eq!(parse_date_bound("2021-06").unwrap(), "2021-06-01T00:00:00");
        assert_eq!(
            parse_date_bound("2021-06-30").unwrap(),
            "2021-06-30T00:00:00"
        );
        assert!(parse_date_bound("June 2021").is_err());
        assert!(parse_date_bound("2021-13").is_err());
    }
}

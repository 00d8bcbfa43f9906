//! Answering searches: query vectors from text and image terms, CLIP and caption rankings, fusion,
//! filters, and the hits joined with the catalog.

use std::path::{Path, PathBuf};

use serde::Serialize;
use std::time::Instant;

use super::Library;
use crate::catalog::ModelRef;
use crate::decode::decode_file;
use crate::error::{Error, Result};
use crate::files::display_path;
use crate::models::clip::{normalize, Clip};
use crate::places::{country_names, fold};
use crate::search::{
    self, MonthCount, SearchHit, SearchMode, SearchRequest, SearchResponse, SortBy, TermKind,
    Timeline,
};

impl Library {
    /// The stored embedding of a library photo at `path` for the configured model, if any.
    pub fn stored_embedding(&self, path: &Path) -> Result<Option<Vec<f32>>> {
        self.stored_embedding_for(&self.model_name(), path)
    }

    fn stored_embedding_for(&self, model: &str, path: &Path) -> Result<Option<Vec<f32>>> {
        let Ok(canon) = std::fs::canonicalize(path) else {
            return Ok(None);
        };
        match (
            self.catalog.photo_id_at(&canon)?,
            self.catalog.find_model(model)?,
        ) {
            (Some(pid), Some(ModelRef { id: mid, .. })) => self.catalog.embedding(mid, pid),
            _ => Ok(None),
        }
    }

    /// The embedding of an image file: the stored one when the file is in the library, else computed.
    pub fn embed_image_file(&self, path: &Path) -> Result<Vec<f32>> {
        self.embed_image_file_with(self.clip()?, path)
    }

    fn embed_image_file_with(&self, clip: &Clip, path: &Path) -> Result<Vec<f32>> {
        if let Some(v) = self.stored_embedding_for(clip.name(), path)? {
            return Ok(v);
        }
        let d = decode_file(path, clip.decode_short_side()).map_err(|reason| Error::Decode {
            path: path.to_path_buf(),
            reason,
        })?;
        let px = clip.preprocess(&d.image)?;
        Ok(clip.embed_pixels(&[px])?.remove(0))
    }

    /// The normalized embeddings the library uses for texts (through the query model when one is
    /// set) and image files (the stored one for a library photo), in that order (`shoebox embed`).
    pub fn embed_inputs(&self, texts: &[String], files: &[PathBuf]) -> Result<Vec<Embedded>> {
        let mut out = Vec::with_capacity(texts.len() + files.len());
        if !texts.is_empty() {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let model = self.query_model_name().unwrap_or_else(|| self.model_name());
            for (t, v) in texts.iter().zip(self.embed_query_texts(&refs)?) {
                out.push(Embedded {
                    input: t.clone(),
                    kind: EmbeddedKind::Text,
                    model: model.clone(),
                    embedding: v,
                });
            }
        }
        for f in files {
            out.push(Embedded {
                input: display_path(f),
                kind: EmbeddedKind::Image,
                model: self.model_name(),
                embedding: self.embed_image_file(f)?,
            });
        }
        Ok(out)
    }

    /// The combined, normalized query vector of a request, in the space of the model searches
    /// answer from ([`Library::search_model`]).
    pub fn query_vector(&self, req: &SearchRequest) -> Result<Vec<f32>> {
        let clip = self.search_clip(&self.search_model()?)?;
        self.query_vector_with(&clip, req)
    }

    /// The query vector in `clip`'s space: text terms through the query model when `clip` is the
    /// configured model and one is set, else through `clip`'s text tower.
    fn query_vector_with(&self, clip: &Clip, req: &SearchRequest) -> Result<Vec<f32>> {
        let mut terms = match &req.query {
            Some(q) if !q.trim().is_empty() => search::parse_query(q)?,
            _ => Vec::new(),
        };
        terms.extend(req.like.iter().map(|p| search::Term {
            weight: 1.0,
            kind: TermKind::Image(p.clone()),
        }));
        if terms.is_empty() {
            return Err(Error::NothingToSearch);
        }
        let texts = search::text_terms(&terms);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let text_vecs = if clip.name() == self.model_name() {
            self.embed_query_texts(&refs)?
        } else {
            clip.embed_texts(&refs)?
        };
        let mut text_vecs = text_vecs.into_iter();
        let mut acc = vec![0f32; clip.dim()];
        for t in &terms {
            let v = match &t.kind {
                TermKind::Text(_) => text_vecs.next().expect("one vector per text"),
                TermKind::Image(p) => self.embed_image_file_with(clip, p)?,
            };
            for (a, x) in acc.iter_mut().zip(&v) {
                *a += t.weight * x;
            }
        }
        Ok(normalize(acc))
    }

    /// Answer a search request. A request with no query and no photo to search by lists the photos
    /// that pass its filters newest first ([`SearchMode::Timeline`]). Place names in a free-text
    /// query become a place filter when they name a place in the library and the request has no
    /// place filter of its own ([`search::split_place_words`]).
    /// `took_ms` counts the query itself: the model is loaded (once per process) before the clock starts.
    /// A library without photos answers [`Error::EmptyLibrary`] before any model loads.
    pub fn search(&mut self, req: &SearchRequest) -> Result<SearchResponse> {
        if !self.catalog.has_photos()? {
            return Err(Error::EmptyLibrary);
        }
        let original_query = req_query(req);
        let (req, place_filter) = self.take_places(req)?;
        let req = &req;
        if req.query.is_none() && req.like.is_empty() {
            let start = Instant::now();
            let t = self.timeline(req, 0, req.limit)?;
            return Ok(SearchResponse {
                query: original_query,
                model: String::new(),
                query_model: None,
                mode: SearchMode::Timeline,
                took_ms: start.elapsed().as_secs_f64() * 1e3,
                place_filter,
                results: t.results,
            });
        }
        let terms = match &req.query {
            Some(q) => search::parse_query(q)?,
            None => Vec::new(),
        };
        let mut keywords = search::KeywordQuery::from_terms(&terms);
        let text_only = req.like.is_empty()
            && !terms.is_empty()
            && terms.iter().all(|t| matches!(t.kind, TermKind::Text(_)));
        let has_captions = match self.catalog.find_model(&self.text_model_name())? {
            Some(m) => self.catalog.has_text_embeddings(m.id)?,
            None => false,
        };
        let clock = Instant::now();
        self.catalog.drop_common_words(&mut keywords)?;
        // Keyword ranking is cheap (SQLite FTS5): done first, it tells whether to fuse. Filters
        // apply after it, so with filters it looks as deep as a search may go.
        let keyword_depth = if req.filters.is_empty() && keywords.phrases.is_empty() {
            (req.limit.max(1) * 4).max(100)
        } else {
            search::MAX_LIMIT
        };
        let keyword_ranked = match keywords.ranking() {
            Some(expr) if text_only => self.catalog.keyword_rank(&expr, keyword_depth)?,
            _ => Vec::new(),
        };
        let required = keywords
            .required()
            .map(|expr| self.catalog.keyword_matches(&expr))
            .transpose()?;
        let keyword_ms = clock.elapsed().as_secs_f64() * 1e3;
        let mode = match req.mode {
            Some(m) => m,
            None if text_only && (has_captions || !keyword_ranked.is_empty()) => SearchMode::Hybrid,
            None => SearchMode::Clip,
        };
        let use_clip = matches!(mode, SearchMode::Clip | SearchMode::Hybrid);
        let use_captions = mode == SearchMode::Text || (mode == SearchMode::Hybrid && has_captions);
        // The model searches answer from (the configured one, or an older one while the
        // configured one is still embedding the library).
        let serving = self.search_model()?;
        // The index and models load (once per process) before the clock starts.
        if use_clip {
            self.prepare_search_for(&serving)?;
            if serving == self.model_name() {
                // The query model too, when one is set.
                self.query_encoder()?;
            }
        }
        if use_captions {
            self.text_encoder()?;
        }
        let start = Instant::now();
        let model = match mode {
            SearchMode::Text => self.text_model_name(),
            SearchMode::Keyword => String::new(),
            _ => serving.clone(),
        };
        let query_model = if use_clip
            && serving == self.model_name()
            && terms.iter().any(|t| matches!(t.kind, TermKind::Text(_)))
        {
            self.query_model_name()
        } else {
            None
        };
        let empty = |start: Instant| SearchResponse {
            query: original_query.clone(),
            model: model.clone(),
            query_model: query_model.clone(),
            mode,
            took_ms: start.elapsed().as_secs_f64() * 1e3 + keyword_ms,
            place_filter: place_filter.clone(),
            results: Vec::new(),
        };
        let Some(ModelRef { id: model_id, dim }) = self.catalog.find_model(&serving)? else {
            return Ok(empty(start));
        };
        let limit = req.limit.max(1);
        // Each ranking looks deeper than `limit` when two are fused.
        let depth = match mode {
            SearchMode::Hybrid => (limit * 4).max(100),
            _ => limit,
        };
        let mut allowed = if req.filters.is_empty() {
            None
        } else {
            let infos = self.catalog.embedded_infos(model_id)?;
            let mut allowed = search::allowed_ids(&infos, &req.filters);
            if !req.filters.tags.is_empty() {
                let tagged = self.catalog.photos_with_tags(&req.filters.tags)?;
                allowed.retain(|id| tagged.contains(id));
            }
            Some(allowed)
        };
        // Quoted phrases are required: only photos containing every one of them.
        if let Some(required) = required {
            allowed = Some(match allowed {
                Some(a) => a.intersection(&required).copied().collect(),
                None => required,
            });
        }
        let above = |v: Vec<(i64, f32)>| -> Vec<(i64, f32)> {
            v.into_iter()
                .filter(|(_, s)| req.min_score.is_none_or(|m| *s >= m))
                .collect()
        };
        let clip_ranked = if !use_clip {
            Vec::new()
        } else {
            let clip = self.search_clip(&serving)?;
            let query = self.query_vector_with(&clip, req)?;
            self.ensure_index(&serving, model_id, dim)?;
            above(self.clip_rank(model_id, &query, depth, allowed.as_ref())?)
        };
        let text_ranked = if !use_captions {
            Vec::new()
        } else {
            above(self.text_rank(req, depth, allowed.as_ref())?)
        };
        let keyword_ranked: Vec<(i64, f32)> = if mode == SearchMode::Keyword && !text_only {
            return Err(Error::KeywordRankingNeedsText);
        } else {
            keyword_ranked
                .into_iter()
                .filter(|(id, _)| allowed.as_ref().is_none_or(|a| a.contains(id)))
                .take(depth)
                .collect()
        };
        let scored = match mode {
            SearchMode::Text => text_ranked,
            SearchMode::Keyword => keyword_ranked,
            SearchMode::Hybrid => {
                search::rrf(&[&clip_ranked, &text_ranked, &keyword_ranked], limit)
            }
            _ => clip_ranked,
        };
        let results = self.hits(scored, req.sort)?;
        Ok(SearchResponse {
            took_ms: start.elapsed().as_secs_f64() * 1e3,
            results,
            ..empty(start)
        })
    }

    /// The request with place words of its query turned into a place filter, and those words.
    fn take_places(&self, req: &SearchRequest) -> Result<(SearchRequest, Vec<String>)> {
        let mut req = req.clone();
        let Some(q) = req.query.clone() else {
            return Ok((req, Vec::new()));
        };
        let single_text_term = matches!(
            search::parse_query(&q)?.as_slice(),
            [search::Term { kind: TermKind::Text(_), weight }] if *weight == 1.0
        );
        if !req.filters.places.is_empty() || req.filters.near.is_some() || !single_text_term {
            return Ok((req, Vec::new()));
        }
        let mut known = std::collections::HashSet::new();
        let mut countries = std::collections::HashSet::new();
        for p in self.catalog.places_in_use()? {
            known.insert(fold(&p.city));
            known.insert(fold(&p.region));
            for n in country_names(&p.cc) {
                known.insert(n.clone());
                countries.insert(n);
            }
        }
        known.remove("");
        if known.is_empty() {
            return Ok((req, Vec::new()));
        }
        let (rest, taken) = search::split_place_words(&q, &known, &countries);
        if !taken.is_empty() {
            req.filters.places = taken.iter().map(|t| fold(t)).collect();
            req.query = (!rest.trim().is_empty()).then_some(rest);
        }
        Ok((req, taken))
    }

    /// The photos that pass a request's filters, newest first: `limit` of them from `offset`, with
    /// the months the whole list spans.
    pub fn timeline(&self, req: &SearchRequest, offset: usize, limit: usize) -> Result<Timeline> {
        let limit = limit.clamp(1, search::MAX_LIMIT);
        let (months, page) = if req.filters.is_empty() {
            let months = self.catalog.months()?;
            (months, self.catalog.timeline_page(offset, limit)?)
        } else {
            let mut infos = self.catalog.ok_infos()?;
            infos.retain(|p| req.filters.accepts(p));
            if !req.filters.tags.is_empty() {
                let tagged = self.catalog.photos_with_tags(&req.filters.tags)?;
                infos.retain(|p| tagged.contains(&p.id));
            }
            let mut dated: Vec<(i64, String)> = infos
                .iter()
                .map(|p| (p.id, search::photo_date(p)))
                .collect();
            dated.sort_by(|a, b| b.1.cmp(&a.1).then(b.0.cmp(&a.0)));
            let mut months: Vec<(String, usize)> = Vec::new();
            for (_, d) in &dated {
                let m = d.get(..7).unwrap_or(d).to_string();
                match months.last_mut() {
                    Some((last, n)) if *last == m => *n += 1,
                    _ => months.push((m, 1)),
                }
            }
            let page = dated.into_iter().skip(offset).take(limit).collect();
            (months, page)
        };
        let scored = page.into_iter().map(|(id, _)| (id, 0.0)).collect();
        Ok(Timeline {
            total: months.iter().map(|m| m.1).sum(),
            months: months
                .into_iter()
                .map(|(month, count)| MonthCount { month, count })
                .collect(),
            offset,
            results: self.hits(scored, SortBy::Score)?,
        })
    }

    /// Search hits for ranked photo ids (in that order, or newest first), with captions, tags and
    /// places; ids no longer in the catalog are left out.
    fn hits(&self, scored: Vec<(i64, f32)>, sort: SortBy) -> Result<Vec<SearchHit>> {
        let ids: Vec<i64> = scored.iter().map(|s| s.0).collect();
        let infos = self.catalog.photo_infos(&ids)?;
        let mut hits: Vec<(SearchHit, String)> = scored
            .into_iter()
            .filter_map(|(id, score)| {
                let p = infos.get(&id)?;
                let date = search::photo_date(p);
                Some((
                    SearchHit {
                        date: date.clone(),
                        rank: 0,
                        path: display_path(&p.path),
                        score,
                        width: p.width,
                        height: p.height,
                        taken_at: p.taken_at.clone(),
                        caption: None,
                        tags: Vec::new(),
                        place: p.place_info(),
                        text: None,
                        photo_id: id,
                    },
                    date,
                ))
            })
            .collect();
        if sort == SortBy::Date {
            hits.sort_by(|a, b| b.1.cmp(&a.1));
        }
        let ids: Vec<i64> = hits.iter().map(|h| h.0.photo_id).collect();
        let caption_model = self
            .catalog
            .find_model(&self.caption_model_name())?
            .map(|m| m.id);
        let mut captions = self.catalog.captions(&ids, caption_model)?;
        let tags = self.catalog.photos_tags(&ids)?;
        let mut texts = self.catalog.ocr_texts(&ids)?;
        let mut results = Vec::with_capacity(hits.len());
        for (i, (mut h, _)) in hits.into_iter().enumerate() {
            h.rank = i + 1;
            h.caption = captions.remove(&h.photo_id);
            h.text = texts.remove(&h.photo_id);
            for t in tags.get(&h.photo_id).into_iter().flatten() {
                if !h.tags.contains(&t.tag) {
                    h.tags.push(t.tag.clone());
                }
            }
            results.push(h);
        }
        Ok(results)
    }

    /// The library's places with photo counts, most photos first (the app's Places facet).
    pub fn places(&self) -> Result<Vec<PlaceCount>> {
        Ok(self
            .catalog
            .place_counts()?
            .into_iter()
            .map(|(p, count)| PlaceCount {
                country: p.country(),
                city: p.city,
                region: p.region,
                country_code: p.cc,
                count,
            })
            .collect())
    }

    /// CLIP ranking: HNSW without filters; with filters, exact over a small allowed set or HNSW
    /// with a filter.
    fn clip_rank(
        &self,
        model_id: i64,
        query: &[f32],
        depth: usize,
        allowed: Option<&std::collections::HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>> {
        let index = self.index.as_ref().expect("ensured");
        Ok(match allowed {
            None => index.search(query, depth, None),
            Some(allowed) if allowed.len() <= 4096 => {
                let ids: Vec<i64> = allowed.iter().copied().collect();
                let items = self.catalog.embeddings(model_id, &ids)?;
                crate::index::exact_top_k(query, items, depth)
            }
            Some(allowed) => {
                let keep = |id: i64| allowed.contains(&id);
                index.search(query, depth, Some(&keep))
            }
        })
    }

    /// Caption ranking: the query's sentence embedding against every caption embedding (exact).
    fn text_rank(
        &self,
        req: &SearchRequest,
        depth: usize,
        allowed: Option<&std::collections::HashSet<i64>>,
    ) -> Result<Vec<(i64, f32)>> {
        let Some(ModelRef { id: text_model, .. }) =
            self.catalog.find_model(&self.text_model_name())?
        else {
            return Ok(Vec::new());
        };
        let terms = match &req.query {
            Some(q) if !q.trim().is_empty() => search::parse_query(q)?,
            _ => Vec::new(),
        };
        if terms.is_empty()
            || !req.like.is_empty()
            || terms.iter().any(|t| matches!(t.kind, TermKind::Image(_)))
        {
            return Err(Error::TextRankingNeedsText);
        }
        let enc = self.text_encoder()?;
        let texts = search::text_terms(&terms);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vecs = enc.embed(&refs)?;
        let mut q = vec![0f32; enc.dim()];
        for (t, v) in terms.iter().zip(&vecs) {
            for (a, x) in q.iter_mut().zip(v) {
                *a += t.weight * x;
            }
        }
        let q = normalize(q);
        let mut items = self.catalog.text_embeddings(text_model)?;
        if let Some(allowed) = allowed {
            items.retain(|(id, _)| allowed.contains(id));
        }
        Ok(crate::index::exact_top_k(&q, items, depth))
    }
}

/// The query as typed (empty when none).
fn req_query(req: &SearchRequest) -> String {
    req.query.clone().unwrap_or_default()
}

/// A place of the library and how many of its photos were taken there.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlaceCount {
    pub city: String,
    pub region: String,
    pub country: String,
    pub country_code: String,
    pub count: usize,
}

/// What was embedded (`shoebox embed --json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddedKind {
    Text,
    Image,
}

/// One input's embedding (`shoebox embed --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Embedded {
    pub input: String,
    pub kind: EmbeddedKind,
    /// The model that embedded it (the query model for texts when one is set).
    pub model: String,
    /// L2-normalized.
    pub embedding: Vec<f32>,
}

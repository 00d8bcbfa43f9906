//! Keywords: what the FTS5 keyword index costs a search at the query library's size (its photos
//! named like cameras name them, one in ten with receipt-like recognised text), and what it adds
//! to the catalog.

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use shoebox_core::catalog::Catalog;
use shoebox_core::ocr::OcrText;
use shoebox_core::search::{parse_query, KeywordQuery};
use shoebox_core::{Error, Result};

use super::Run;
use crate::report::round;

/// Words receipts and screenshots are made of.
const WORDS: &[&str] = &[
    "total", "subtotal", "tax", "cash", "change", "visa", "card", "receipt", "thank", "you",
    "store", "market", "coffee", "milk", "bread", "eggs", "cheese", "apples", "error", "settings",
    "battery", "wifi", "message", "inbox", "invoice", "order", "delivery", "ticket", "gate",
    "seat", "flight", "boarding", "pass", "menu", "street", "avenue", "open", "closed", "sale",
];

/// The recognised text of bench photo `i` (one in ten has some): a shop name unique to it, a few
/// everyday words and numbers.
fn bench_text(i: usize) -> Option<String> {
    if i % 10 != 3 {
        return None;
    }
    let mut h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        h
    };
    let mut lines = vec![format!("SHOP{i} STORE {}", i % 9973)];
    for _ in 0..8 {
        let w = WORDS[(next() % WORDS.len() as u64) as usize];
        lines.push(format!("{w} {}.{:02}", next() % 100, next() % 100));
    }
    Some(lines.join("\n"))
}

impl Run<'_> {
    /// Give one photo in ten recognised text, then time keyword rankings (best of 5) for a word of
    /// one photo, an everyday word of receipts, and a word of every file name, as `search` asks
    /// them; note the catalog bytes the keyword index takes per 100k photos.
    pub(super) fn measure_keywords(&mut self, lib_dir: &Path, photos: usize) -> Result<()> {
        self.progress("keyword index: recognised text for one photo in ten, then keyword queries");
        let cat = Catalog::open(&lib_dir.join("catalog.sqlite"))?;
        let err = |e: rusqlite::Error| Error::Invalid(format!("measuring keywords: {e}"));
        let conn = cat.connection();
        let ids: Vec<i64> = {
            let mut st = conn
                .prepare("SELECT id FROM photos ORDER BY id")
                .map_err(err)?;
            let rows = st.query_map([], |r| r.get(0)).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)?
        };
        let t = Instant::now();
        conn.execute_batch("BEGIN").map_err(err)?;
        let mut with_text = 0;
        for (i, id) in ids.iter().enumerate() {
            if let Some(text) = bench_text(i) {
                cat.set_ocr(
                    *id,
                    "eng",
                    &OcrText {
                        text,
                        ..Default::default()
                    },
                )?;
                with_text += 1;
            }
        }
        conn.execute_batch("COMMIT").map_err(err)?;
        let store_s = t.elapsed().as_secs_f64();
        let mut times = serde_json::Map::new();
        for (what, q) in [
            ("one_photo", "receipt from SHOP1233"),
            ("everyday_word", "total"),
            ("every_name", "IMG"),
            ("phrase", "\"thank you\" coffee"),
        ] {
            let mut best = f64::INFINITY;
            let mut hits = 0;
            for _ in 0..5 {
                // As `search` asks them: common words left out, 4 × 20 results deep.
                let t = Instant::now();
                let mut k = KeywordQuery::from_terms(&parse_query(q)?);
                cat.drop_common_words(&mut k)?;
                if let Some(e) = k.ranking() {
                    hits = cat.keyword_rank(&e, 100)?.len();
                }
                if let Some(e) = k.required() {
                    cat.keyword_matches(&e)?;
                }
                best = best.min(t.elapsed().as_secs_f64());
            }
            times.insert(
                what.into(),
                json!({"query": q, "ms": round(best * 1e3, 2), "ranked": hits}),
            );
        }
        // dbstat (in the bundled SQLite) sizes the keyword index and the text tables.
        let bytes: Option<f64> = conn
            .query_row(
                "SELECT SUM(pgsize) FROM dbstat \
                 WHERE name LIKE 'photo_text%' OR name = 'ocr' OR name LIKE 'sqlite_autoindex_ocr%'",
                [],
                |r| r.get::<_, i64>(0),
            )
            .ok()
            .map(|v| v as f64);
        self.note(
            "keywords",
            json!({
                "photos": photos,
                "with_text": with_text,
                "store_text_s": round(store_s, 2),
                "queries": times,
                "index_and_text_mb_per_100k": bytes
                    .map(|b| round(b / 1048576.0 * 100_000.0 / photos.max(1) as f64, 2)),
            }),
        );
        Ok(())
    }
}

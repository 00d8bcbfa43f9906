//! The query library in use: opening it (catalog + saved index) and searching right away, text
//! queries in a running process as the app holds it (both CLIP towers, the index in memory) with
//! their peak memory, and a fresh `shoebox search` process's first query.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shoebox_core::index::VectorIndex;
use shoebox_core::models::{DeviceChoice, Precision};
use shoebox_core::search::SearchRequest;
use shoebox_core::{Error, Library, LibraryOptions, Result};

use super::Run;
use crate::files::io;
use crate::report::{percentile, round};
use crate::rss::{peak_rss_mb, proc_hwm_mb, reset_peak_rss};
use crate::vectors::photo_like_queries;

/// The library of photo-like vectors the query figures are taken on, and its saved index.
pub(super) struct QueryLibrary {
    pub(super) dir: PathBuf,
    pub(super) index_dir: PathBuf,
}

pub(super) const QUERIES: &[&str] = &[
    "a dog running on the beach",
    "kids on a beach at sunset",
    "birthday cake with candles",
    "snowy mountain landscape",
    "a red car parked in the street",
    "receipt",
    "two cats sleeping on a sofa",
    "city skyline at night",
    "wedding photo in a garden",
    "a plate of pasta",
    "people hiking in the forest",
    "old black and white family portrait",
];

/// A text query for the top 10.
fn request(q: &str) -> SearchRequest {
    SearchRequest {
        query: Some(q.to_string()),
        limit: 10,
        ..SearchRequest::default()
    }
}

impl Run<'_> {
    /// Milliseconds to open the library and load its saved index (no rebuild); then how fast the
    /// mapped walk answers at once, and how long hnsw_rs's graph takes to load for a change.
    pub(super) fn time_open(&mut self, library: &QueryLibrary, dim: usize) -> Result<f64> {
        self.progress("timing library open (catalog + persisted index)");
        let t = Instant::now();
        let lib = Library::open(self.lib_opts(library.dir.clone()))?;
        let loaded = VectorIndex::load(&library.index_dir, &self.clip.name, dim)?;
        let in_step = loaded.generation == lib.catalog().generation()?;
        let open_ms = t.elapsed().as_secs_f64() * 1e3;
        if !in_step || loaded.len() != self.opts.vectors {
            return Err(Error::Index(format!(
                "the persisted index is not in step with the catalog ({} vectors)",
                loaded.len()
            )));
        }
        // Searches walk the mapped flat copy of the graph at once.
        self.note("walk_mapped_at_open", json!(loaded.walk_is_mapped()));
        let q = photo_like_queries(20, dim, 1);
        let t_first = Instant::now();
        for row in q.chunks_exact(dim) {
            loaded.search(row, 10, None);
        }
        self.note(
            "search_right_after_open_us",
            json!(round(t_first.elapsed().as_secs_f64() * 1e6 / 20.0, 1)),
        );
        // hnsw_rs's graph is loaded only to change the index (a save after new photos).
        let t_graph = Instant::now();
        loaded.wait_for_graph()?;
        self.note(
            "graph_load_for_changes_ms",
            json!(round(t_graph.elapsed().as_secs_f64() * 1e3, 1)),
        );
        Ok(open_ms)
    }

    /// Text queries with ViT-B/32 (both towers) and the index held as the app holds them, in a
    /// fresh `shoebox bench --app-phase` process (so its peak memory is the app's, not this
    /// process's earlier phases'), or in this process when no binary is given: (p50 ms, p95 ms,
    /// peak RSS in MiB).
    pub(super) fn time_queries(
        &mut self,
        library: &QueryLibrary,
    ) -> Result<(f64, f64, Option<f64>)> {
        self.progress("timing text queries (Library::search)");
        let bench_peak_so_far = peak_rss_mb();
        let figures = match self.opts.exe.clone() {
            Some(exe) => {
                self.note(
                    "app_phase",
                    json!("fresh `shoebox bench --app-phase` process"),
                );
                app_phase_process(
                    &exe,
                    &library.dir,
                    &self.clip.name,
                    self.opts.device,
                    self.opts.precision,
                )?
            }
            None => {
                self.note("app_phase", json!("in the bench process"));
                if let Some(mb) = reset_peak_rss() {
                    self.note("rss_before_app_phase_mb", json!(round(mb, 1)));
                }
                app_phase(self.lib_opts(library.dir.clone()))?
            }
        };
        self.note(
            "first_query_in_process_ms",
            json!(round(figures.first_query_ms, 1)),
        );
        // The duplicate finder over the whole library: one index query per photo.
        self.progress("finding duplicates (Library::duplicates)");
        let mut lib = Library::open(self.lib_opts(library.dir.clone()))?;
        let t = Instant::now();
        let dups = lib.duplicates(&Default::default())?;
        self.note(
            "duplicates",
            json!({"photos": self.opts.vectors, "groups": dups.groups.len(),
                   "seconds": round(t.elapsed().as_secs_f64(), 2)}),
        );
        drop(lib);
        if let Some(mb) = bench_peak_so_far {
            self.note("bench_process_peak_rss_mb", json!(round(mb, 1)));
        }
        Ok((figures.p50_ms, figures.p95_ms, figures.peak_rss_mb))
    }

    /// Milliseconds from starting a fresh `shoebox search … --json` process to its answer (in this
    /// process when no binary is given).
    pub(super) fn time_first_query(&mut self, library: &QueryLibrary) -> Result<f64> {
        self.progress("timing a fresh process's first query");
        let Some(exe) = self.opts.exe.clone() else {
            let t = Instant::now();
            let mut lib = Library::open(self.lib_opts(library.dir.clone()))?;
            lib.search(&request(QUERIES[1]))?;
            self.note("first_query", json!("in process (no binary given)"));
            return Ok(t.elapsed().as_secs_f64() * 1e3);
        };
        let (ms, exit_ms, rss) = first_query_process(
            &exe,
            &library.dir,
            &self.clip.name,
            self.opts.device,
            self.opts.precision,
            QUERIES[1],
        )?;
        self.note("first_query_exit_ms", json!(round(exit_ms, 1)));
        self.note(
            "first_query",
            json!("fresh `shoebox search --json` process"),
        );
        if let Some(mb) = rss {
            self.note("search_process_peak_rss_mb", json!(round(mb, 1)));
        }
        Ok(ms)
    }
}

/// A quiet, offline `shoebox` command with the bench's model, device and precision (no library
/// from the environment, nothing on stdin).
fn shoebox_command(
    exe: &Path,
    model: &str,
    device: DeviceChoice,
    precision: Precision,
) -> std::process::Command {
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--clip-model")
        .arg(model)
        .arg("--device")
        .arg(device.as_str())
        .arg("--precision")
        .arg(precision.as_str())
        .arg("-q")
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("SHOEBOX_LIBRARY")
        .stdin(std::process::Stdio::null());
    cmd
}

/// Run `shoebox search QUERY --json` on the library; (milliseconds to its answer, to its exit, its
/// peak RSS in MiB as last seen while it ran).
fn first_query_process(
    exe: &Path,
    lib: &Path,
    model: &str,
    device: DeviceChoice,
    precision: Precision,
    query: &str,
) -> Result<(f64, f64, Option<f64>)> {
    let mut cmd = shoebox_command(exe, model, device, precision);
    cmd.arg("--library")
        .arg(lib)
        .args(["search", query, "--json", "--limit", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let t = Instant::now();
    let mut child = cmd.spawn().map_err(|e| io(exe, e))?;
    let status_file = PathBuf::from(format!("/proc/{}/status", child.id()));
    // The answer is one JSON line: the clock stops when it arrives (the process may take longer
    // to exit, tearing down what it loaded).
    let stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let mut r = std::io::BufReader::new(stdout);
        let _ = std::io::BufRead::read_line(&mut r, &mut line);
        let at = Instant::now();
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut r, &mut rest);
        (line, at)
    });
    let mut hwm = None;
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| io(exe, e))? {
            break st;
        }
        if let Some(mb) = proc_hwm_mb(&status_file) {
            hwm = Some(mb);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    let exit_ms = t.elapsed().as_secs_f64() * 1e3;
    let (line, answered) = reader
        .join()
        .map_err(|_| Error::Invalid("reading `shoebox search` output failed".into()))?;
    let ms = answered.duration_since(t).as_secs_f64() * 1e3;
    let out = child.wait_with_output().map_err(|e| io(exe, e))?;
    if !status.success() {
        return Err(Error::Invalid(format!(
            "`shoebox search` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let v: Value = serde_json::from_str(&line)
        .map_err(|e| Error::Invalid(format!("`shoebox search --json` printed no JSON: {e}")))?;
    let n = v["results"].as_array().map(Vec::len).unwrap_or(0);
    if n == 0 {
        return Err(Error::Invalid("`shoebox search` found nothing".into()));
    }
    Ok((ms, exit_ms, hwm))
}

/// What the app-like phase measures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppFigures {
    /// The first query of the opened library (text tower loaded on demand).
    pub first_query_ms: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// Peak resident memory of the process so far (MiB).
    pub peak_rss_mb: Option<f64>,
}

/// Open the library as the app does, answer a first query, then hold both CLIP towers and the
/// index in memory and time 40 queries.
pub fn app_phase(opts: LibraryOptions) -> Result<AppFigures> {
    let mut lib = Library::open(opts)?;
    let t = Instant::now();
    let first = lib.search(&request(QUERIES[0]))?;
    let first_query_ms = t.elapsed().as_secs_f64() * 1e3;
    if first.results.len() != 10 {
        return Err(Error::Invalid(format!(
            "a query for the top 10 returned {} results",
            first.results.len()
        )));
    }
    // Steady state: the graph in memory and the vision tower loaded too.
    lib.wait_for_index()?;
    lib.clip()?.load_vision()?;
    let mut ms = Vec::new();
    for i in 0..40 {
        let t = Instant::now();
        lib.search(&request(QUERIES[i % QUERIES.len()]))?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(AppFigures {
        first_query_ms,
        p50_ms: percentile(&ms, 0.50),
        p95_ms: percentile(&ms, 0.95),
        peak_rss_mb: peak_rss_mb(),
    })
}

/// Run `shoebox bench --app-phase LIB` and read the figures it prints (JSON).
fn app_phase_process(
    exe: &Path,
    lib: &Path,
    model: &str,
    device: DeviceChoice,
    precision: Precision,
) -> Result<AppFigures> {
    let out = shoebox_command(exe, model, device, precision)
        .arg("bench")
        .arg("--app-phase")
        .arg(lib)
        .output()
        .map_err(|e| io(exe, e))?;
    if !out.status.success() {
        return Err(Error::Invalid(format!(
            "`shoebox bench --app-phase` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        Error::Invalid(format!(
            "`shoebox bench --app-phase` printed no figures: {e}"
        ))
    })
}

//! The app's state and every operation its commands perform, as plain methods on `Core` so tests can
//! call them without a window. Each operation is an engine call (`shoebox_core::Library`, the same
//! functions the CLI uses); this module only holds the state around them:
//!
//! - a read-only library for searches (it owns the loaded models), and another for viewing
//!   (status, photo details, thumbnail access checks) so those never wait behind a search;
//! - the background writer: one thread with its own `Library` that indexes (reporting progress),
//!   then watches the folders until stopped. The writer lock allows one writer per library, so
//!   adding or removing a folder stops it, does the change, and starts it again;
//! - files dropped on the window (or picked to compare), which the image protocol may serve;
//! - the folders the user chose in a native dialog (picked, or typed and then confirmed), the only
//!   folders besides the library's that the webview may name to add, sort or sort into.
//!
//! The webview is not trusted with the file system: any path it sends is checked against what the
//! user handed over (library folders, chosen folders, dropped/picked/previewed files) lexically,
//! before any file-system call, so a forbidden path and a missing one get the same answer; what
//! passes is then resolved (links followed) and checked again (`access`).
//!
//! Engine events go out through an `EventSink` (the Tauri app emits them to the webview).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use shoebox_core::captions::{self, FileCaption};
use shoebox_core::classify;
use shoebox_core::duplicates::DuplicatesReport;
use shoebox_core::library::Status;
use shoebox_core::library::{DuplicatesRequest, OcrMode, PlaceCount};
use shoebox_core::models::caption::CaptionOptions;
use shoebox_core::models::hub::{Download, DownloadProgress};
use shoebox_core::pipeline::PipelineOptions;
use shoebox_core::rank::higher_first;
use shoebox_core::search::{
    parse_mode, SearchHit, SearchInput, SearchMode, SearchRequest, SearchResponse, Timeline,
};
use shoebox_core::tags::TagCount;
use shoebox_core::thumbs::PhotoDetails;
use shoebox_core::watch::{WatchEvent, WatchOptions};
use shoebox_core::Library;

use crate::access::{lexical, lexical_path, not_handed_over};
pub use crate::access::{FolderUse, OpenedFile, Question};
use crate::error::{ApiError, ApiResult};
use crate::settings::Settings;

/// Where the app's events go (the webview in the app, a recorder in tests).
pub trait EventSink: Send + Sync + 'static {
    fn emit(&self, event: &str, payload: Value);
}

/// An event sink that drops everything.
pub struct NoEvents;
impl EventSink for NoEvents {
    fn emit(&self, _: &str, _: Value) {}
}

/// Indexing progress as the UI shows it.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexProgress {
    pub total: usize,
    pub done: usize,
    pub embedded: usize,
    pub failed: usize,
    pub elapsed_s: f64,
    /// Photos per second so far.
    pub rate: f64,
    /// Seconds left at that rate.
    pub eta_s: Option<f64>,
}

/// What the last indexing run did.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexSummary {
    pub seen: usize,
    pub added: usize,
    pub changed: usize,
    pub moved: usize,
    pub removed: usize,
    pub problems: usize,
    pub embedded: usize,
    pub failed: usize,
    pub seconds: f64,
    pub interrupted: bool,
}

/// Changes the watcher absorbed in one go.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSummary {
    pub added: usize,
    pub changed: usize,
    pub moved: usize,
    pub removed: usize,
    pub embedded: usize,
    pub failed: usize,
    /// Unix seconds.
    pub at: u64,
}

/// The background writer's state, as the UI reads it (`"idle"`, `"starting"`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityState {
    /// No folders: nothing to index or watch.
    Idle,
    #[default]
    Starting,
    Indexing,
    Watching,
    Stopped,
    Error,
}

impl ActivityState {
    /// The name the UI reads.
    pub fn as_str(self) -> &'static str {
        match self {
            ActivityState::Idle => "idle",
            ActivityState::Starting => "starting",
            ActivityState::Indexing => "indexing",
            ActivityState::Watching => "watching",
            ActivityState::Stopped => "stopped",
            ActivityState::Error => "error",
        }
    }
}

/// What the background writer is doing (the `activity` event and part of `state`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    pub state: ActivityState,
    pub progress: Option<IndexProgress>,
    pub last_index: Option<IndexSummary>,
    /// The last changes the watcher absorbed (files that came, changed, moved or went).
    pub last_change: Option<ChangeSummary>,
    /// Folders watched natively and by polling.
    pub watching: Option<(usize, usize)>,
    pub error: Option<ApiError>,
}

/// Whether the search models are in, as the UI reads it (`"loading"`, `"ready"`, `"error"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelState {
    #[default]
    Loading,
    Ready,
    Error,
}

impl ModelState {
    /// The name the UI reads.
    pub fn as_str(self) -> &'static str {
        match self {
            ModelState::Loading => "loading",
            ModelState::Ready => "ready",
            ModelState::Error => "error",
        }
    }
}

/// Model loading for search (the `models` event and part of `state`).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelsState {
    pub clip: ModelState,
    pub error: Option<ApiError>,
    /// The model file being fetched from the hub (any model: CLIP, captioner, sentence encoder), or
    /// the last one fetched (`finished`).
    pub download: Option<Download>,
}

/// Everything the UI needs at start (events it missed included).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppState {
    pub library: String,
    pub settings: Settings,
    pub activity: Activity,
    pub models: ModelsState,
    /// The folder the add-folder dialog suggests (~/Pictures when it exists).
    pub suggested_folder: Option<String>,
}

/// A search as the UI sends it (strings as typed; empty means unset).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SearchArgs {
    pub query: Option<String>,
    pub like: Vec<String>,
    pub folder: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
    pub types: Vec<String>,
    pub tags: Vec<String>,
    /// Place names (city, region or country; any may match).
    pub places: Vec<String>,
    /// "LAT,LON[,KM]".
    pub near: Option<String>,
    pub min_score: Option<f32>,
    pub limit: Option<usize>,
    /// "score" or "date".
    pub sort: Option<String>,
    /// "clip", "text", "hybrid"; unset = the engine's choice.
    pub mode: Option<String>,
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Results the grid shows for a search when the form names no limit (the grid is virtualized; the
/// engine bounds any limit at `shoebox_core::search::MAX_LIMIT`).
pub const GRID_PAGE: usize = 200;

impl SearchArgs {
    /// The engine request, built by the same engine code as the CLI's. The grid asks for up to
    /// [`GRID_PAGE`] results unless the form says otherwise.
    pub fn to_request(&self) -> ApiResult<SearchRequest> {
        Ok(SearchInput {
            query: self.query.clone(),
            like: self.like.iter().map(PathBuf::from).collect(),
            in_dirs: nonempty(&self.folder)
                .map(PathBuf::from)
                .into_iter()
                .collect(),
            after: self.after.clone(),
            before: self.before.clone(),
            types: self.types.clone(),
            tags: self.tags.clone(),
            places: self.places.clone(),
            near: self.near.clone(),
            min_score: self.min_score,
            limit: Some(self.limit.unwrap_or(GRID_PAGE)),
            sort: nonempty(&self.sort)
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
            mode: nonempty(&self.mode).map(parse_mode).transpose()?.flatten(),
        }
        .into_request()?)
    }
}

/// What a dropped (or picked) file gets: its caption and the most similar library photos.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DropResult {
    pub path: String,
    pub name: String,
    pub caption: Option<FileCaption>,
    pub caption_error: Option<ApiError>,
    pub similar: Vec<SearchHit>,
    pub error: Option<ApiError>,
}

/// How many similar library photos a dropped file shows.
pub const DROP_SIMILAR: usize = 12;

/// One file of a classification preview.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassifiedFile {
    pub path: String,
    pub name: String,
    /// Probability of its label.
    pub confidence: f32,
}

/// The files that got one label (or "unsorted"), most confident first.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassifyGroup {
    pub label: String,
    pub files: Vec<ClassifiedFile>,
}

/// A classification, before anything moves.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassifyPreview {
    pub folder: String,
    pub labels: Vec<String>,
    /// One group per label in the order typed, then "unsorted" when any file fell below the
    /// threshold; empty groups are left out.
    pub groups: Vec<ClassifyGroup>,
    /// Files that could not be read, with the reason.
    pub failures: Vec<(String, String)>,
    pub seconds: f64,
}

/// What applying a classification did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassifyApplied {
    pub files: usize,
    /// Files went to `dest/<label>/`.
    pub dest: String,
    pub journal: String,
}

struct Worker {
    cancel: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

struct Inner {
    libdir: PathBuf,
    settings: Mutex<Settings>,
    search_lib: Mutex<Option<Library>>,
    view_lib: Mutex<Option<Library>>,
    worker: Mutex<Option<Worker>>,
    activity: Mutex<Activity>,
    models: Mutex<ModelsState>,
    /// Files the user handed over (dropped, picked to compare, previewed for sorting), as named and
    /// canonical: the image protocol may serve them.
    dropped: Mutex<HashSet<PathBuf>>,
    /// Folders the user chose in a native dialog, as named and resolved (see [`Core::grant_picked`]).
    granted: Mutex<Vec<PathBuf>>,
    /// The last classification previewed (folder, result), and the journal of the last one applied.
    classified: Mutex<Option<(PathBuf, classify::Classification)>>,
    /// The undo plan of the last classification applied, kept in memory (never re-read from the
    /// destination folder, where anyone could have written).
    journal: Mutex<Option<classify::Journal>>,
    /// The journal of the last duplicates put in the trash (for undo), kept in memory likewise.
    trashed: Mutex<Option<classify::Journal>>,
    opening: Mutex<()>,
    /// Bumped whenever the search library is replaced (new models), so a stale load reports nothing.
    generation: AtomicU64,
    sink: Arc<dyn EventSink>,
    #[cfg(debug_assertions)]
    test_hooks: Mutex<TestHooks>,
}

/// What the end-to-end test may stand in for. Debug builds only: release builds have none of it.
#[cfg(debug_assertions)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TestHooks {
    /// `test_drop` may name files to treat as dropped (`SHOEBOX_TEST_DROP=1`): a webview cannot fake
    /// the OS drop event.
    pub drop_by_name: bool,
    /// Native confirmations answer yes without showing (`SHOEBOX_TEST_CONFIRM=1`): a WebDriver
    /// cannot click a GTK dialog.
    pub confirm: bool,
}

/// The app's state; cheap to clone (shared).
#[derive(Clone)]
pub struct Core(Arc<Inner>);

/// An undo's answer: how many files came back, or `partly_undone` naming the first one left (the
/// UI says "<done> N files; M <left> (path: why)").
fn undone(report: shoebox_core::journal::UndoReport, done: &str, left: &str) -> ApiResult<usize> {
    match report.skipped.first() {
        Some((path, why)) => Err(ApiError::new(
            "partly_undone",
            format!(
                "{done} {} files; {} {left} ({}: {why})",
                report.restored,
                report.skipped.len(),
                path.display()
            ),
        )),
        None => Ok(report.restored),
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Core {
    /// State for a library folder. Starts nothing: call `start`.
    pub fn new(libdir: PathBuf, sink: Arc<dyn EventSink>) -> Core {
        let settings = Settings::load(&libdir);
        Core(Arc::new(Inner {
            libdir,
            settings: Mutex::new(settings),
            search_lib: Mutex::new(None),
            view_lib: Mutex::new(None),
            worker: Mutex::new(None),
            activity: Mutex::new(Activity {
                state: ActivityState::Starting,
                ..Default::default()
            }),
            models: Mutex::new(ModelsState {
                clip: ModelState::Loading,
                ..Default::default()
            }),
            dropped: Mutex::new(HashSet::new()),
            granted: Mutex::new(Vec::new()),
            classified: Mutex::new(None),
            journal: Mutex::new(None),
            trashed: Mutex::new(None),
            opening: Mutex::new(()),
            generation: AtomicU64::new(0),
            sink,
            #[cfg(debug_assertions)]
            test_hooks: Mutex::new(TestHooks::default()),
        }))
    }

    /// From the environment, as the CLI reads it (`SHOEBOX_LIBRARY`, …). Debug builds also read
    /// the end-to-end test's switches (`SHOEBOX_TEST_DROP=1`, `SHOEBOX_TEST_CONFIRM=1`).
    pub fn from_env(sink: Arc<dyn EventSink>) -> ApiResult<Core> {
        let libdir = crate::settings::library_dir_from_env()?;
        let core = Core::new(libdir, sink);
        #[cfg(debug_assertions)]
        {
            let on = |v: &str| std::env::var(v).is_ok_and(|v| v == "1");
            core.set_test_hooks(TestHooks {
                drop_by_name: on("SHOEBOX_TEST_DROP"),
                confirm: on("SHOEBOX_TEST_CONFIRM"),
            });
        }
        Ok(core)
    }

    /// Debug builds only: what the end-to-end test stands in for.
    #[cfg(debug_assertions)]
    pub fn set_test_hooks(&self, hooks: TestHooks) {
        *lock(&self.0.test_hooks) = hooks;
    }

    #[cfg(debug_assertions)]
    pub fn test_hooks(&self) -> TestHooks {
        *lock(&self.0.test_hooks)
    }

    /// Load models in the background and start the background writer.
    pub fn start(&self) {
        self.load_models();
        self.restart_worker();
    }

    /// Stop the background writer (waits for the batch in flight) so the index is saved.
    pub fn shutdown(&self) {
        self.stop_worker();
    }

    /// Files the user handed over, which the webview may see (see `access`).
    pub(crate) fn handed_over(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        lock(&self.0.dropped)
    }

    /// Folders the user chose in a native dialog (see `access`).
    pub(crate) fn chosen_folders(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        lock(&self.0.granted)
    }

    pub fn libdir(&self) -> &Path {
        &self.0.libdir
    }

    fn emit(&self, event: &str, payload: Value) {
        self.0.sink.emit(event, payload);
    }

    fn options(&self) -> shoebox_core::LibraryOptions {
        let mut o = lock(&self.0.settings).library_options(&self.0.libdir);
        // Model downloads report to the UI (weakly: the libraries holding this live in the core).
        let core = Arc::downgrade(&self.0);
        o.downloads = DownloadProgress::Report(Arc::new(move |d: &Download| {
            if let Some(inner) = core.upgrade() {
                Core(inner).downloading(d);
            }
        }));
        o
    }

    /// A model file's download progressed: the `models` event carries it.
    fn downloading(&self, d: &Download) {
        self.update_models(|m| m.download = Some(d.clone()));
    }

    fn open(&self) -> ApiResult<Library> {
        // Opening migrates the catalog; two first opens at once race on creating its tables.
        let _one_at_a_time = lock(&self.0.opening);
        let mut lib = Library::open(self.options())?;
        lib.set_raw_mode(self.settings().raw_mode());
        Ok(lib)
    }

    /// Run `f` on the search library (opened on first use).
    fn with_search<T>(
        &self,
        f: impl FnOnce(&mut Library) -> shoebox_core::Result<T>,
    ) -> ApiResult<T> {
        let mut g = lock(&self.0.search_lib);
        if g.is_none() {
            *g = Some(self.open()?);
        }
        Ok(f(g.as_mut().expect("opened above"))?)
    }

    /// Run `f` on the viewing library (never loads models).
    pub(crate) fn with_view<T>(
        &self,
        f: impl FnOnce(&Library) -> shoebox_core::Result<T>,
    ) -> ApiResult<T> {
        let mut g = lock(&self.0.view_lib);
        if g.is_none() {
            *g = Some(self.open()?);
        }
        Ok(f(g.as_ref().expect("opened above"))?)
    }

    // ---- state ----

    pub fn state(&self) -> AppState {
        let pictures = dirs::picture_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join("Pictures")))
            .filter(|p| p.is_dir())
            .or_else(dirs::home_dir);
        AppState {
            library: self.0.libdir.to_string_lossy().into_owned(),
            settings: lock(&self.0.settings).clone(),
            activity: lock(&self.0.activity).clone(),
            models: lock(&self.0.models).clone(),
            suggested_folder: pictures.map(|p| p.to_string_lossy().into_owned()),
        }
    }

    pub fn activity(&self) -> Activity {
        lock(&self.0.activity).clone()
    }

    fn set_activity(&self, f: impl FnOnce(&mut Activity)) {
        let a = {
            let mut g = lock(&self.0.activity);
            f(&mut g);
            g.clone()
        };
        self.emit("activity", serde_json::to_value(a).expect("serializable"));
    }

    /// Folders with counts, photo counts, and every failure with its reason.
    pub fn status(&self) -> ApiResult<Status> {
        self.with_view(|lib| lib.status(true))
    }

    // ---- models ----

    /// Load the CLIP text tower and the index into the search library in the background (searches
    /// wait for them).
    pub fn load_models(&self) {
        let generation = self.0.generation.load(Ordering::SeqCst);
        self.set_models(ModelState::Loading, None);
        let core = self.clone();
        std::thread::spawn(move || {
            let r = core.with_search(|lib| lib.prepare_search());
            if core.0.generation.load(Ordering::SeqCst) != generation {
                return;
            }
            match r {
                Ok(()) => core.set_models(ModelState::Ready, None),
                Err(e) => core.set_models(ModelState::Error, Some(e)),
            }
        });
    }

    fn set_models(&self, clip: ModelState, error: Option<ApiError>) {
        self.update_models(|m| {
            m.clip = clip;
            m.error = error;
        });
    }

    /// Change the models state and send it to the UI (the `models` event).
    fn update_models(&self, f: impl FnOnce(&mut ModelsState)) {
        let m = {
            let mut g = lock(&self.0.models);
            f(&mut g);
            g.clone()
        };
        self.emit("models", serde_json::to_value(m).expect("serializable"));
    }

    pub fn models(&self) -> ModelsState {
        lock(&self.0.models).clone()
    }

    /// The model menu Settings offers (as `shoebox models list`): known-good models, what each is
    /// for, and whether its files are in the local Hugging Face cache.
    pub fn model_menu(&self) -> Vec<shoebox_core::models::menu::MenuEntry> {
        shoebox_core::models::menu::menu()
    }

    // ---- settings ----

    pub fn settings(&self) -> Settings {
        lock(&self.0.settings).clone()
    }

    /// Save new settings; models and the background writer restart with them.
    pub fn save_settings(&self, s: Settings) -> ApiResult<Settings> {
        s.validate()?;
        s.save(&self.0.libdir)?;
        let changed = {
            let mut g = lock(&self.0.settings);
            let changed = *g != s;
            *g = s.clone();
            changed
        };
        if changed {
            self.stop_worker();
            self.0.generation.fetch_add(1, Ordering::SeqCst);
            *lock(&self.0.search_lib) = None;
            *lock(&self.0.view_lib) = None;
            self.load_models();
            self.restart_worker();
        }
        Ok(s)
    }

    // ---- the background writer ----

    fn stop_worker(&self) {
        let w = lock(&self.0.worker).take();
        if let Some(w) = w {
            w.cancel.store(true, Ordering::SeqCst);
            let _ = w.handle.join();
        }
    }

    /// (Re)start the background writer: index with progress, then watch. Idle without folders.
    pub fn restart_worker(&self) {
        self.stop_worker();
        let has_folders = match self.status() {
            Ok(s) => !s.folders.is_empty(),
            Err(e) => {
                self.set_activity(|a| {
                    a.state = ActivityState::Error;
                    a.error = Some(e);
                });
                return;
            }
        };
        if !has_folders {
            self.set_activity(|a| {
                *a = Activity {
                    state: ActivityState::Idle,
                    ..Default::default()
                }
            });
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let core = self.clone();
        let c = cancel.clone();
        let handle = std::thread::Builder::new()
            .name("shoebox-writer".into())
            .spawn(move || {
                let r = core.run_worker(&c);
                core.set_activity(|a| {
                    a.progress = None;
                    a.watching = None;
                    match r {
                        Ok(()) => a.state = ActivityState::Stopped,
                        Err(e) => {
                            a.state = ActivityState::Error;
                            a.error = Some(e);
                        }
                    }
                });
            })
            .expect("spawn the writer thread");
        *lock(&self.0.worker) = Some(Worker { cancel, handle });
    }

    fn run_worker(&self, cancel: &AtomicBool) -> ApiResult<()> {
        // The engine's write methods (index, watch) take the writer lock themselves.
        let mut lib = self.open()?;
        self.set_activity(|a| {
            a.state = ActivityState::Indexing;
            a.error = None;
            a.progress = Some(IndexProgress::default());
        });
        let start = Instant::now();
        let mut last = Instant::now() - Duration::from_secs(1);
        let report = lib.index(PipelineOptions::default(), cancel, &mut |p| {
            // At most ~8 updates a second, and always the last one.
            if p.done < p.total && last.elapsed() < Duration::from_millis(120) {
                return;
            }
            last = Instant::now();
            let elapsed = start.elapsed().as_secs_f64();
            let rate = if elapsed > 0.0 {
                p.done as f64 / elapsed
            } else {
                0.0
            };
            let progress = IndexProgress {
                total: p.total,
                done: p.done,
                embedded: p.embedded,
                failed: p.failed,
                elapsed_s: elapsed,
                rate,
                eta_s: (rate > 0.0).then(|| (p.total - p.done) as f64 / rate),
            };
            self.set_activity(|a| a.progress = Some(progress));
        })?;
        let (s, p) = (report.scan, report.pipeline);
        self.set_activity(|a| {
            a.last_index = Some(IndexSummary {
                seen: s.seen,
                added: s.added,
                changed: s.changed,
                moved: s.moved,
                removed: s.removed,
                problems: s.issues,
                embedded: p.embedded,
                failed: p.failed,
                seconds: p.seconds,
                interrupted: p.interrupted,
            });
            a.progress = None;
        });
        self.emit("library-changed", json!({ "reason": "indexed" }));
        if cancel.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Once per session: thumbnails of files that went away or changed since.
        match lib.prune_thumbnails() {
            Ok(r) if r.removed > 0 => log::info!("removed {} stale thumbnails", r.removed),
            Ok(_) => {}
            Err(e) => log::warn!("pruning thumbnails: {e}"),
        }
        let captions = if self.settings().background_captions {
            match lib.captioner() {
                Ok(_) => Some(CaptionOptions::default()),
                Err(e) => {
                    self.emit(
                        "notice",
                        json!({ "code": e.code(), "message": format!("background captioning is off: {e}") }),
                    );
                    None
                }
            }
        } else {
            None
        };
        self.set_activity(|a| a.state = ActivityState::Watching);
        let ocr = self.settings().ocr_options();
        let opts = WatchOptions {
            captions,
            ocr: (ocr.mode != OcrMode::Off).then_some(ocr),
            ..Default::default()
        };
        lib.watch(opts, cancel, &mut |ev| match ev {
            WatchEvent::Watching { native, polled } => {
                self.set_activity(|a| a.watching = Some((native, polled)))
            }
            WatchEvent::Rescan { reason } => {
                self.emit("notice", json!({ "code": "rescan", "message": reason }))
            }
            WatchEvent::Indexed(r) => {
                let (s, p) = (r.scan, r.pipeline);
                if s.added + s.changed + s.moved + s.removed + p.embedded + p.failed > 0 {
                    let at = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    self.set_activity(|a| {
                        a.last_change = Some(ChangeSummary {
                            added: s.added,
                            changed: s.changed,
                            moved: s.moved,
                            removed: s.removed,
                            embedded: p.embedded,
                            failed: p.failed,
                            at,
                        })
                    });
                    self.emit("library-changed", json!({ "reason": "watch" }));
                }
            }
            WatchEvent::Captioned(r) => {
                if r.captioned > 0 {
                    self.emit("library-changed", json!({ "reason": "captions" }));
                }
            }
            WatchEvent::Read(r) => {
                if r.with_text > 0 {
                    self.emit("library-changed", json!({ "reason": "text" }));
                }
            }
            WatchEvent::OcrStopped { reason } => self.emit(
                "notice",
                json!({ "code": "ocr", "message": format!("reading text in photos is off: {reason}") }),
            ),
        })?;
        Ok(())
    }

    // ---- folders ----

    /// Stop the writer, run `f` on a library (whose write methods lock it), start the writer again
    /// (also on failure).
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut Library) -> shoebox_core::Result<T>,
    ) -> ApiResult<T> {
        self.stop_worker();
        let r = (|| {
            let mut lib = self.open()?;
            Ok(f(&mut lib)?)
        })();
        self.restart_worker();
        self.emit("library-changed", json!({ "reason": "folders" }));
        r
    }

    /// Add a photo folder (`~` allowed): one the user chose (see [`Core::grant_picked`]), or
    /// inside one. It is scanned now and indexed in the background.
    pub fn add_folder(&self, path: &str) -> ApiResult<Status> {
        if path.trim().is_empty() {
            return Err(ApiError::new("invalid", "type or choose a folder to add"));
        }
        let dir = self.chosen_folder(path)?;
        self.with_writer(|lib| lib.add_folders(&[dir]).map(|_| ()))?;
        self.status()
    }

    /// Forget a library folder, named as the library lists it (files on disk are never touched).
    pub fn remove_folder(&self, path: &str) -> ApiResult<Status> {
        let named = lexical(path);
        let root = self
            .roots()?
            .into_iter()
            .find(|r| Some(r) == named.as_ref())
            .ok_or_else(|| {
                ApiError::from(shoebox_core::Error::NotALibraryFolder(PathBuf::from(
                    path.trim(),
                )))
            })?;
        self.with_writer(|lib| lib.remove_folders(&[root]).map(|_| ()))?;
        self.status()
    }

    // ---- classify ----

    /// Sort the images of `folder` into the comma-separated `labels`, zero-shot, without touching
    /// anything: the groups with confidences, for a preview (the image protocol may then serve them).
    pub fn classify_preview(&self, folder: &str, labels: &str) -> ApiResult<ClassifyPreview> {
        if folder.trim().is_empty() {
            return Err(ApiError::new("invalid", "type or choose a folder to sort"));
        }
        let labels = classify::parse_labels(labels)?;
        let dir = self.chosen_folder(folder)?;
        let never = AtomicBool::new(false);
        let result = self.with_search(|lib| {
            lib.classify(
                std::slice::from_ref(&dir),
                &labels,
                &classify::ClassifyOptions::default(),
                &never,
                &mut |_| {},
            )
        })?;
        // The previewed files may be shown, as named and where they really are.
        let canonical: Vec<PathBuf> = result
            .results
            .iter()
            .filter_map(|r| std::fs::canonicalize(&r.path).ok())
            .collect();
        {
            let mut allowed = lock(&self.0.dropped);
            allowed.extend(result.results.iter().map(|r| r.path.clone()));
            allowed.extend(canonical);
        }
        let mut order: Vec<String> = result.labels.clone();
        order.push(classify::UNSORTED.to_string());
        let groups = order
            .iter()
            .filter_map(|label| {
                let mut files: Vec<ClassifiedFile> = result
                    .results
                    .iter()
                    .filter(|r| &r.label == label)
                    .map(|r| ClassifiedFile {
                        path: r.path.to_string_lossy().into_owned(),
                        name: r
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default(),
                        confidence: r.confidence,
                    })
                    .collect();
                files.sort_by(|a, b| higher_first(a.confidence, b.confidence));
                (!files.is_empty()).then(|| ClassifyGroup {
                    label: label.clone(),
                    files,
                })
            })
            .collect();
        let preview = ClassifyPreview {
            folder: dir.to_string_lossy().into_owned(),
            labels: result.labels.clone(),
            groups,
            failures: result
                .failures
                .iter()
                .map(|(p, r)| (p.to_string_lossy().into_owned(), r.clone()))
                .collect(),
            seconds: result.seconds,
        };
        *lock(&self.0.classified) = Some((dir, result));
        Ok(preview)
    }

    /// Move or copy the last previewed files into `dest/<label>/` (`dest` defaults to the folder
    /// itself; else a folder the user chose, or one inside it), journaled so [`Core::classify_undo`] can put everything back. The watcher picks up
    /// library photos that moved (they keep their ids, captions and tags).
    pub fn classify_apply(&self, action: &str, dest: Option<&str>) -> ApiResult<ClassifyApplied> {
        let action = match action {
            "move" => classify::Action::Move,
            "copy" => classify::Action::Copy,
            other => {
                return Err(ApiError::new(
                    "invalid",
                    format!("\"{other}\" is neither move nor copy"),
                ))
            }
        };
        // Checked before the preview is taken: a refused destination leaves it for another try.
        let chosen = match dest.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) => Some(self.chosen_folder(d)?),
            None => None,
        };
        let taken = lock(&self.0.classified).take();
        let Some((folder, result)) = taken else {
            return Err(ApiError::new("invalid", "preview a classification first"));
        };
        let dest = chosen.unwrap_or(folder);
        let ops = classify::plan(&result.results, action, &dest)?;
        // The undo plan is kept whether applying finishes or stops part way.
        let mut failed = None;
        let applied = self.with_writer(|lib| match lib.apply_classification(&ops, &dest) {
            Ok(j) => Ok(Some(j)),
            Err(f) => {
                failed = Some(f);
                Ok(None)
            }
        })?;
        let journal = match (applied, failed) {
            (Some(j), _) => j,
            (None, Some(f)) => {
                if let Some(j) = f.journal.clone().filter(|j| !j.entries.is_empty()) {
                    *lock(&self.0.journal) = Some(j);
                    self.emit("library-changed", json!({ "reason": "classified" }));
                }
                return Err(shoebox_core::Error::from(f).into());
            }
            (None, None) => unreachable!("apply either returns a journal or fails"),
        };
        let path = journal.path.to_string_lossy().into_owned();
        *lock(&self.0.journal) = Some(journal);
        self.emit("library-changed", json!({ "reason": "classified" }));
        Ok(ClassifyApplied {
            files: ops.len(),
            dest: dest.to_string_lossy().into_owned(),
            journal: path,
        })
    }

    /// Undo the last applied classification: moved files go back, copies are removed. Returns how
    /// many files were restored.
    pub fn classify_undo(&self) -> ApiResult<usize> {
        let journal = lock(&self.0.journal).take();
        let Some(journal) = journal else {
            return Err(ApiError::new("invalid", "there is nothing to undo"));
        };
        let report = self.with_writer(|lib| lib.undo_classification(&journal))?;
        self.emit("library-changed", json!({ "reason": "classify-undone" }));
        undone(report, "restored", "were left where they are")
    }

    // ---- duplicates ----

    /// Exact copies and near-duplicates in the library, each group with a suggested keeper.
    pub fn duplicates(&self, threshold: Option<f32>) -> ApiResult<DuplicatesReport> {
        let req = DuplicatesRequest {
            threshold,
            ..Default::default()
        };
        self.with_search(|lib| lib.duplicates(&req))
    }

    /// Put library photos in the system trash (the ones the user did not keep). Only photos under
    /// a library folder are accepted (checked lexically here, then by the engine); the journal is
    /// kept in memory for [`Core::undo_trash`].
    pub fn trash_photos(&self, paths: &[String]) -> ApiResult<usize> {
        let roots = self.roots()?;
        let mut files = Vec::with_capacity(paths.len());
        for p in paths {
            let named = lexical_path(Path::new(p)).ok_or_else(|| not_handed_over(p))?;
            if !roots.iter().any(|r| named.starts_with(r)) {
                return Err(not_handed_over(p));
            }
            files.push(named);
        }
        if files.is_empty() {
            return Ok(0);
        }
        let trashed = self.with_writer(|lib| lib.trash_photos(&files));
        self.emit("library-changed", json!({ "reason": "trashed" }));
        let journal = trashed?;
        let n = journal.entries.len();
        *lock(&self.0.trashed) = Some(journal);
        Ok(n)
    }

    /// Take the last photos put in the trash back out, and index them again.
    pub fn undo_trash(&self) -> ApiResult<usize> {
        let journal = lock(&self.0.trashed).take();
        let Some(journal) = journal else {
            return Err(ApiError::new("invalid", "there is nothing to undo"));
        };
        let report = self.with_writer(|lib| lib.undo_trash(&journal))?;
        self.emit("library-changed", json!({ "reason": "untrashed" }));
        undone(report, "took back", "stayed in the trash")
    }

    // ---- search and viewing ----

    /// A search. Photos to search by must be readable ([`Core::may_read`]); the folder filter must
    /// be a library folder or inside one (checked lexically: the engine then resolves it).
    pub fn search(&self, args: &SearchArgs) -> ApiResult<SearchResponse> {
        let req = self.checked_request(args)?;
        self.with_search(|lib| lib.search(&req))
    }

    /// A page of the timeline (what an empty search box shows): the photos that pass the form's
    /// filters, newest first, `limit` of them from `offset`, with the months they span.
    pub fn timeline(&self, args: &SearchArgs, offset: usize, limit: usize) -> ApiResult<Timeline> {
        let req = self.checked_request(args)?;
        self.with_view(|lib| lib.timeline(&req, offset, limit))
    }

    /// The library's places with photo counts (the Places facet).
    pub fn places(&self) -> ApiResult<Vec<PlaceCount>> {
        self.with_view(|lib| lib.places())
    }

    /// The engine request for the form, once what it names has been checked.
    fn checked_request(&self, args: &SearchArgs) -> ApiResult<SearchRequest> {
        // Searched by where they really are (what was checked).
        let like = args
            .like
            .iter()
            .map(|p| self.readable(p))
            .collect::<ApiResult<Vec<PathBuf>>>()?;
        if let Some(folder) = nonempty(&args.folder) {
            let named = lexical(folder);
            let roots = self.roots()?;
            if !named.is_some_and(|n| roots.iter().any(|r| n.starts_with(r))) {
                return Err(ApiError::new(
                    "not_allowed",
                    format!("{folder} is not a library folder"),
                ));
            }
        }
        let mut req = args.to_request()?;
        req.like = like;
        Ok(req)
    }

    /// Details of a library photo (a file the user handed over gets `not_in_library`).
    pub fn photo(&self, path: &str) -> ApiResult<PhotoDetails> {
        let named = lexical_path(Path::new(path)).ok_or_else(|| not_handed_over(path))?;
        if !self.may_name(&named)? {
            return Err(not_handed_over(path));
        }
        self.with_view(|lib| lib.photo_details(&named))
    }

    pub fn tags(&self) -> ApiResult<Vec<TagCount>> {
        self.with_view(|lib| lib.all_tags())
    }

    // ---- drag-in ----

    /// The one path for dropped files, whether they came from the window's drag-drop event, the
    /// compare-file dialog or the test command: each file may be viewed from now on; it gets a
    /// caption and its most similar library photos. It is not added to the library. Emits
    /// `drop-start`, one `drop-result` per file, and `drop-done`.
    pub fn handle_drop(&self, paths: Vec<PathBuf>) -> Vec<DropResult> {
        let shown: Vec<String> = paths
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        self.emit("drop-start", json!({ "paths": shown }));
        let mut out = Vec::new();
        for p in paths {
            let r = self.analyze_dropped(&p);
            self.emit(
                "drop-result",
                serde_json::to_value(&r).expect("serializable"),
            );
            out.push(r);
        }
        self.emit("drop-done", json!({ "count": out.len() }));
        out
    }

    fn analyze_dropped(&self, path: &Path) -> DropResult {
        let mut r = DropResult {
            path: path.to_string_lossy().into_owned(),
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            caption: None,
            caption_error: None,
            similar: Vec::new(),
            error: None,
        };
        let canon = match std::fs::canonicalize(path) {
            Ok(c) if c.is_file() => c,
            Ok(_) => {
                r.error = Some(ApiError::new("invalid", "not a file"));
                return r;
            }
            Err(e) => {
                r.error = Some(ApiError::new("io", format!("{}: {e}", path.display())));
                return r;
            }
        };
        if shoebox_core::scan::image_ext(&canon).is_none() {
            r.error = Some(ApiError::new(
                "invalid",
                "not an image Shoebox reads (JPEG, PNG, WebP, GIF, BMP, TIFF, HEIC, AVIF, camera RAW)",
            ));
            return r;
        }
        r.path = canon.to_string_lossy().into_owned();
        lock(&self.0.dropped).insert(canon.clone());
        let req = SearchRequest {
            like: vec![canon.clone()],
            limit: DROP_SIMILAR,
            mode: Some(SearchMode::Clip),
            ..Default::default()
        };
        match self.with_search(|lib| lib.search(&req)) {
            Ok(resp) => r.similar = resp.results,
            Err(e) => r.error = Some(e),
        }
        match self.with_search(|lib| {
            let cap = lib.captioner()?;
            captions::caption_file(cap, &canon, &CaptionOptions::default())
        }) {
            Ok(c) => r.caption = Some(c),
            Err(e) => r.caption_error = Some(e),
        }
        r
    }

    /// The test stand-in for an OS drop (debug builds only, and only when started with
    /// `SHOEBOX_TEST_DROP=1`): the webview cannot otherwise name files outside the library.
    #[cfg(debug_assertions)]
    pub fn test_drop(&self, paths: Vec<String>) -> ApiResult<Vec<DropResult>> {
        if !self.test_hooks().drop_by_name {
            return Err(ApiError::new(
                "not_allowed",
                "dropping files by name is only for tests (SHOEBOX_TEST_DROP=1)",
            ));
        }
        Ok(self.handle_drop(paths.into_iter().map(PathBuf::from).collect()))
    }
}

//! Watch: keep the library in step with its folders while running. File-system events (notify,
//! debounced) only say *which roots* changed; the scan then reconciles them with the catalog, so
//! renames, moves between roots, folders appearing or vanishing, and lost events all end the same
//! way a fresh scan would.
//!
//! Architecture Invariant: the watcher never trusts events for content — it rescans. Lost or
//! overflowing events, roots that vanish and come back, and native watch limits (ENOSPC) fall back to
//! rescans and, where native watching fails, to polling.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{PollWatcher, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer_opt, DebounceEventResult, Debouncer, RecommendedCache};
use serde::{Deserialize, Serialize};

use super::{IndexReport, Library, OcrOptions, OcrReport};
use crate::captions::CaptionReport;
use crate::error::{Error, Result};
use crate::files::is_hidden;
use crate::models::caption::CaptionOptions;
use crate::pipeline::PipelineOptions;

/// Watch settings.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Quiet time before a burst of events is acted on (also lets files finish being written).
    pub debounce: Duration,
    /// Poll interval where native watching is unavailable, and how often roots are checked for
    /// vanishing or coming back.
    pub poll_interval: Duration,
    pub pipeline: PipelineOptions,
    /// Caption photos in the background, a few at a time while no file events are waiting.
    pub captions: Option<CaptionOptions>,
    /// Read the text in photos (OCR) in the background, the same way.
    pub ocr: Option<OcrOptions>,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            debounce: Duration::from_millis(1500),
            poll_interval: Duration::from_secs(5),
            pipeline: PipelineOptions::default(),
            captions: None,
            ocr: None,
        }
    }
}

/// What the watcher reports.
#[derive(Debug, Clone)]
pub enum WatchEvent {
    /// Watching `native` roots with inotify/FSEvents/…, `polled` by polling.
    Watching { native: usize, polled: usize },
    /// Events could not be trusted (overflow, watcher error, a root vanished or came back).
    Rescan { reason: String },
    /// Changes were absorbed.
    Indexed(IndexReport),
    /// Some photos were captioned in the background.
    Captioned(CaptionReport),
    /// The text in some photos was read in the background.
    Read(OcrReport),
    /// OCR cannot run (a language without data, a build without OCR); the watcher goes on
    /// without it.
    OcrStopped { reason: String },
}

/// What a running watcher tells `status` (written to `watch.json` in the library folder).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WatchState {
    pub pid: u32,
    /// Unix seconds.
    pub since: u64,
    /// Folders watched with native events, and by polling.
    pub native: usize,
    pub polled: usize,
    /// Rescans forced by untrustworthy events, and the last reason.
    pub rescans: u64,
    pub last_rescan: Option<String>,
}

/// The state file of a library's watcher.
pub fn state_path(libdir: &std::path::Path) -> PathBuf {
    libdir.join("watch.json")
}

fn write_state(libdir: &std::path::Path, st: &WatchState) -> Result<()> {
    let mut tmp = tempfile::NamedTempFile::new_in(libdir).map_err(|e| Error::io(libdir, e))?;
    serde_json::to_writer(&mut tmp, st).map_err(|e| Error::Invalid(e.to_string()))?;
    tmp.persist(state_path(libdir))
        .map_err(|e| Error::io(libdir, e.error))?;
    Ok(())
}

/// How long a watcher whose OCR found nothing to read waits before looking again (changes make it
/// look at once).
const OCR_RECHECK: Duration = Duration::from_secs(60);

/// How often a running watcher saves the index when it changed.
const SAVE_EVERY: Duration = Duration::from_secs(60);

type NativeDebouncer = Debouncer<RecommendedWatcher, RecommendedCache>;
type PollDebouncer = Debouncer<PollWatcher, RecommendedCache>;

struct Watchers {
    native: NativeDebouncer,
    poll: Option<PollDebouncer>,
    tx: mpsc::Sender<DebounceEventResult>,
    opts: WatchOptions,
    native_roots: usize,
    polled_roots: usize,
}

impl Watchers {
    fn new(opts: WatchOptions, tx: mpsc::Sender<DebounceEventResult>) -> Result<Self> {
        let native = new_debouncer_opt::<_, RecommendedWatcher, _>(
            opts.debounce,
            None,
            tx.clone(),
            RecommendedCache::new(),
            notify::Config::default(),
        )
        .map_err(|e| Error::Invalid(format!("cannot start the file watcher: {e}")))?;
        Ok(Watchers {
            native,
            poll: None,
            tx,
            opts,
            native_roots: 0,
            polled_roots: 0,
        })
    }

    /// Watch a root natively, falling back to polling when the OS refuses (watch limit, network FS).
    fn add(&mut self, root: &PathBuf) -> Result<Option<String>> {
        match self.native.watch(root, RecursiveMode::Recursive) {
            Ok(()) => {
                self.native_roots += 1;
                Ok(None)
            }
            Err(e) => {
                let _ = self.native.unwatch(root);
                if self.poll.is_none() {
                    let cfg = notify::Config::default().with_poll_interval(self.opts.poll_interval);
                    self.poll = Some(
                        new_debouncer_opt::<_, PollWatcher, _>(
                            self.opts.debounce,
                            None,
                            self.tx.clone(),
                            RecommendedCache::new(),
                            cfg,
                        )
                        .map_err(|e| Error::Invalid(format!("cannot start polling: {e}")))?,
                    );
                }
                let poll = self.poll.as_mut().expect("created above");
                poll.watch(root, RecursiveMode::Recursive)
                    .map_err(|e| Error::Invalid(format!("cannot watch {}: {e}", root.display())))?;
                self.polled_roots += 1;
                Ok(Some(format!(
                    "native watching of {} failed ({e}); polling it every {:?}",
                    root.display(),
                    self.opts.poll_interval
                )))
            }
        }
    }
}

/// Whether an event at `path` concerns `root`. Events inside the library folder (our own catalog
/// writes) or under hidden entries of the root (which scans skip) must not trigger rescans: a
/// library kept inside a watched folder would otherwise loop.
fn concerns(path: &std::path::Path, root: &std::path::Path, libdir: &std::path::Path) -> bool {
    match path.strip_prefix(root) {
        Ok(rel) => !path.starts_with(libdir) && !rel.components().any(|c| is_hidden(c.as_os_str())),
        Err(_) => false,
    }
}

impl Library {
    /// Watch every library folder until `cancel` is set: reconcile once at start, then absorb each
    /// burst of changes through the same scan + pipeline as `index`. Holds the writer lock.
    pub fn watch(
        &mut self,
        opts: WatchOptions,
        cancel: &AtomicBool,
        on_event: &mut dyn FnMut(WatchEvent),
    ) -> Result<()> {
        self.lock_for_writing()?;
        let libdir = self.dir().to_path_buf();
        let mut state = WatchState {
            pid: std::process::id(),
            since: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            ..Default::default()
        };
        let result = self.watch_loop(opts, cancel, &mut |ev| {
            match &ev {
                WatchEvent::Watching { native, polled } => {
                    state.native = *native;
                    state.polled = *polled;
                }
                WatchEvent::Rescan { reason } => {
                    state.rescans += 1;
                    state.last_rescan = Some(reason.clone());
                }
                WatchEvent::Indexed(_)
                | WatchEvent::Captioned(_)
                | WatchEvent::Read(_)
                | WatchEvent::OcrStopped { .. } => {}
            }
            if matches!(ev, WatchEvent::Watching { .. } | WatchEvent::Rescan { .. }) {
                if let Err(e) = write_state(&libdir, &state) {
                    log::warn!("cannot record the watcher's state: {e}");
                }
            }
            on_event(ev)
        });
        let _ = std::fs::remove_file(state_path(&libdir));
        result
    }

    fn watch_loop(
        &mut self,
        opts: WatchOptions,
        cancel: &AtomicBool,
        on_event: &mut dyn FnMut(WatchEvent),
    ) -> Result<()> {
        let report = self.index(opts.pipeline, cancel, &mut |_| {})?;
        on_event(WatchEvent::Indexed(report));

        let (tx, rx) = mpsc::channel::<DebounceEventResult>();
        let mut watchers = Watchers::new(opts.clone(), tx)?;
        let roots = self.catalog().roots()?;
        let mut present: HashMap<i64, bool> = HashMap::new();
        for r in &roots {
            let here = r.path.is_dir();
            present.insert(r.id, here);
            if here {
                if let Some(reason) = watchers.add(&r.path)? {
                    on_event(WatchEvent::Rescan { reason });
                }
            }
        }
        on_event(WatchEvent::Watching {
            native: watchers.native_roots,
            polled: watchers.polled_roots,
        });
        let libdir = std::fs::canonicalize(self.dir()).unwrap_or_else(|_| self.dir().to_path_buf());
        let mut last_check = Instant::now();
        let mut last_save = Instant::now();
        let mut ocr = opts.ocr.clone();
        // When OCR last found nothing to read: it looks again after changes, or a while later.
        let mut ocr_idle_since: Option<Instant> = None;
        while !cancel.load(Ordering::Relaxed) {
            let mut dirty: BTreeSet<i64> = BTreeSet::new();
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(first) => {
                    // Take everything already queued as one burst.
                    for res in std::iter::once(first).chain(rx.try_iter()) {
                        match res {
                            Ok(events) => {
                                for ev in events {
                                    if ev.need_rescan() {
                                        on_event(WatchEvent::Rescan {
                                            reason: "the OS dropped events (queue overflow)".into(),
                                        });
                                        dirty.extend(roots.iter().map(|r| r.id));
                                    }
                                    for p in &ev.paths {
                                        dirty.extend(
                                            roots
                                                .iter()
                                                .filter(|r| concerns(p, &r.path, &libdir))
                                                .map(|r| r.id),
                                        );
                                    }
                                }
                            }
                            Err(errors) => {
                                let reason = errors
                                    .iter()
                                    .map(|e| e.to_string())
                                    .collect::<Vec<_>>()
                                    .join("; ");
                                on_event(WatchEvent::Rescan {
                                    reason: format!("watcher error: {reason}"),
                                });
                                dirty.extend(roots.iter().map(|r| r.id));
                            }
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Idle: caption a couple of photos, then look at the file events again.
                    if let Some(copts) = &opts.captions {
                        let r = self.caption_library(copts, Some(2), cancel, &mut |_| {})?;
                        if r.captioned + r.failed > 0 {
                            self.tag_library(cancel)?;
                            on_event(WatchEvent::Captioned(r));
                        }
                    }
                    let ocr_due = ocr_idle_since.is_none_or(|t| t.elapsed() >= OCR_RECHECK);
                    if let (Some(o), true) = (&ocr, ocr_due) {
                        // One photo, one reader: the background leaves a core to the person.
                        match self.ocr_library(o, Some(1), cancel, &mut |_| {}) {
                            Ok(r) if r.read + r.failed > 0 => {
                                ocr_idle_since = None;
                                on_event(WatchEvent::Read(r));
                            }
                            Ok(_) => ocr_idle_since = Some(Instant::now()),
                            Err(e @ Error::Ocr(_)) => {
                                on_event(WatchEvent::OcrStopped {
                                    reason: e.to_string(),
                                });
                                ocr = None;
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            // Roots that vanished (unplugged, unmounted) or came back: rewatch and rescan.
            if last_check.elapsed() >= opts.poll_interval.min(Duration::from_secs(2)) {
                last_check = Instant::now();
                for r in &roots {
                    let here = r.path.is_dir();
                    if present.insert(r.id, here) != Some(here) {
                        let what = if here { "came back" } else { "went away" };
                        on_event(WatchEvent::Rescan {
                            reason: format!("{} {what}", r.path.display()),
                        });
                        if here {
                            if let Some(reason) = watchers.add(&r.path)? {
                                on_event(WatchEvent::Rescan { reason });
                            }
                        }
                        dirty.insert(r.id);
                    }
                }
            }
            if !dirty.is_empty() {
                let only: Vec<i64> = dirty.into_iter().collect();
                let mut report = self.absorb(Some(&only), opts.pipeline, cancel, &mut |_| {})?;
                report.tags = self.tag_library(cancel)?;
                on_event(WatchEvent::Indexed(report));
                ocr_idle_since = None;
            }
            // Writing the whole index after every new photo would cost more than embedding it.
            if last_save.elapsed() >= SAVE_EVERY {
                self.save_index_if_stale()?;
                last_save = Instant::now();
            }
        }
        self.save_index_if_stale()
    }
}

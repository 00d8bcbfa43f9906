//! Command-level tests of the app layer: the operations behind each Tauri command (`Core`) and the
//! `photo:` protocol, called directly on a temp library with the tiny fixture models — no window.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shoebox_app::core::{
    ActivityState, Core, EventSink, FolderUse, ModelState, NoEvents, Question, SearchArgs,
};
use shoebox_app::error::{ApiError, ApiResult};
use shoebox_app::protocol::{self, Kind};
use shoebox_app::settings::{settings_file, Settings};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

/// file name → (color, shape)
fn labels() -> HashMap<String, (String, String)> {
    let text = std::fs::read_to_string(fixtures().join("data/dev/labels.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["file"].as_str().unwrap().to_string(),
                (
                    v["color"].as_str().unwrap().to_string(),
                    v["shape"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn label_of(path: &str) -> (String, String) {
    let name = Path::new(path).file_name().unwrap().to_str().unwrap();
    labels()[name].clone()
}

#[derive(Default)]
struct Recorder(Mutex<Vec<(String, Value)>>);

impl EventSink for Recorder {
    fn emit(&self, event: &str, payload: Value) {
        self.0.lock().unwrap().push((event.to_string(), payload));
    }
}

impl Recorder {
    fn events(&self, name: &str) -> Vec<Value> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _)| e == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

/// Settings pointing at the fixture models, saved where `Core` reads them.
fn fixture_settings(lib: &Path) -> Settings {
    std::env::set_var("HF_HUB_OFFLINE", "1");
    for v in [
        "SHOEBOX_CLIP_MODEL",
        "SHOEBOX_CAPTION_MODEL",
        "SHOEBOX_TEXT_MODEL",
        "SHOEBOX_DEVICE",
    ] {
        assert!(
            std::env::var_os(v).is_none(),
            "unset {v}: it would override the fixture models"
        );
    }
    let s = Settings {
        clip_model: fixtures().join("models/clip-dev").to_string_lossy().into(),
        caption_model: fixtures().join("models/blip-dev").to_string_lossy().into(),
        device: "cpu".into(),
        ..Settings::default()
    };
    s.save(lib).unwrap();
    s
}

/// Copies of the first `n` shape images.
fn shape_folder(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut names: Vec<String> = labels().into_keys().collect();
    names.sort();
    names
        .into_iter()
        .take(n)
        .map(|name| {
            let to = dir.join(&name);
            std::fs::copy(fixtures().join("data/dev").join(&name), &to).unwrap();
            to
        })
        .collect()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn folders_indexing_search_photo_protocol_and_drop() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    fixture_settings(&lib);
    let photos = tmp.path().join("photos");
    shape_folder(&photos, 40);
    let rec = Arc::new(Recorder::default());
    let core = Core::new(lib.clone(), rec.clone());
    core.start();

    // First run: no folders, the writer idles; models load in the background.
    let a = core.activity();
    assert_eq!(a.state, ActivityState::Idle, "{:?}", a.error);
    assert!(core.status().unwrap().folders.is_empty());
    wait_until("the CLIP model", Duration::from_secs(120), || {
        let m = core.models();
        assert_ne!(m.clip, ModelState::Error, "{:?}", m.error);
        m.clip == ModelState::Ready
    });

    // Errors reach the UI as {code, message}: a folder nobody chose is refused (missing or not).
    let e = core.add_folder("/no/such/folder").unwrap_err();
    assert_eq!(e.code, "not_allowed");
    assert!(e.message.contains("/no/such/folder"), "{e:?}");
    assert_eq!(core.add_folder("  ").unwrap_err().code, "invalid");
    // A chosen folder that is gone is reported as such.
    let gone = tmp.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    core.grant_picked(&gone, FolderUse::Library, &mut no_question)
        .unwrap();
    std::fs::remove_dir(&gone).unwrap();
    assert_eq!(
        core.add_folder(gone.to_str().unwrap()).unwrap_err().code,
        "not_a_folder"
    );

    // Adding a folder (picked in the native dialog) scans it; the writer indexes it in the
    // background with progress, then watches.
    let picked = core
        .grant_picked(&photos, FolderUse::Library, &mut no_question)
        .unwrap()
        .unwrap();
    let st = core.add_folder(&picked).unwrap();
    assert_eq!(st.folders.len(), 1);
    assert_eq!(st.folders[0].photos, 40);
    wait_until("indexing", Duration::from_secs(120), || {
        core.activity().state == ActivityState::Watching
            && core.status().unwrap().photos.indexed == 40
    });
    let activity = rec.events("activity");
    assert!(activity.iter().any(|a| a["state"] == "indexing"));
    let last = activity
        .iter()
        .rev()
        .find_map(|a| a["progress"].as_object().filter(|p| p["total"] == 40))
        .expect("progress events for 40 photos");
    assert_eq!(last["done"], 40);
    assert!(last["rate"].as_f64().unwrap() > 0.0);
    let summary = &core.activity().last_index.unwrap();
    assert_eq!((summary.embedded, summary.failed), (40, 0));
    assert!(!rec.events("library-changed").is_empty());

    // Search, as the UI sends it.
    let args = SearchArgs {
        query: Some("a photo of a red circle".into()),
        limit: Some(10),
        ..Default::default()
    };
    let r = core.search(&args).unwrap();
    assert_eq!(r.results.len(), 10);
    let first = r.results[0].path.clone();
    assert_eq!(label_of(&first), ("red".into(), "circle".into()));
    // Filters and options map like the CLI's flags.
    let r = core
        .search(&SearchArgs {
            types: vec!["png".into()],
            min_score: Some(-1.0),
            sort: Some("date".into()),
            mode: Some("clip".into()),
            ..args.clone()
        })
        .unwrap();
    assert!(r.results.iter().all(|h| h.path.ends_with(".png")));
    let bad_date = SearchArgs {
        after: Some("June".into()),
        ..args.clone()
    };
    assert_eq!(core.search(&bad_date).unwrap_err().code, "invalid");
    let bad_mode = SearchArgs {
        mode: Some("fuzzy".into()),
        ..args.clone()
    };
    assert_eq!(core.search(&bad_mode).unwrap_err().code, "invalid");
    // "Find similar" is a search by a library photo: it finds itself first.
    let r = core
        .search(&SearchArgs {
            like: vec![first.clone()],
            limit: Some(5),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.results[0].path, first);
    assert!(r.results[0].score > 0.999);

    // Files outside the library are off limits until dropped.
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let dropped = outside.join("dropped red circle.jpg");
    std::fs::copy(&first, &dropped).unwrap();
    let like_outside = SearchArgs {
        like: vec![dropped.to_string_lossy().into()],
        ..Default::default()
    };
    assert_eq!(core.search(&like_outside).unwrap_err().code, "not_allowed");
    let enc = |p: &Path| format!("/{}", percent_encoding_path(p.to_str().unwrap()));
    let resp = protocol::respond(&core, &enc(&dropped), Some("kind=thumb"));
    assert_eq!(resp.status(), 403);
    assert_eq!(
        core.readable(dropped.to_str().unwrap()).unwrap_err().code,
        "not_allowed"
    );

    // The photo view's details and images.
    let d = core.photo(&first).unwrap();
    assert_eq!(d.path, first);
    assert!(d.width.unwrap() > 0 && d.height.unwrap() > 0);
    assert!(!d.date.is_empty());
    let resp = protocol::respond(&core, &enc(Path::new(&first)), Some("kind=thumb"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/jpeg");
    let thumb = image_size(resp.body());
    assert!(thumb.0.min(thumb.1) <= 256, "{thumb:?}");
    assert!(
        lib.join("thumbs").is_dir(),
        "thumbnails are cached in the library"
    );
    let resp = protocol::respond(&core, &enc(Path::new(&first)), Some("kind=full"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body(), &std::fs::read(&first).unwrap());
    assert_eq!(protocol::respond(&core, "/relative", None).status(), 400);
    assert_eq!(
        protocol::respond(&core, &enc(Path::new(&first)), Some("kind=raw")).status(),
        400
    );

    // Drag-in: the test command (debug builds only) is refused unless the app was started for
    // tests …
    #[cfg(debug_assertions)]
    assert_eq!(
        core.test_drop(vec![dropped.to_string_lossy().into()])
            .unwrap_err()
            .code,
        "not_allowed"
    );
    // … and the drop path captions the file and finds its library twin, without adding it.
    let not_image = outside.join("notes.txt");
    std::fs::write(&not_image, "hello").unwrap();
    let results = core.handle_drop(vec![dropped.clone(), not_image]);
    assert_eq!(results.len(), 2);
    let r = &results[0];
    assert!(r.error.is_none(), "{:?}", r.error);
    let cap = r.caption.as_ref().expect("a caption from the fixture BLIP");
    assert!(!cap.caption.trim().is_empty());
    assert_eq!(r.similar[0].path, first);
    assert!(r.similar[0].score > 0.999);
    assert_eq!(results[1].error.as_ref().unwrap().code, "invalid");
    assert_eq!(rec.events("drop-start").len(), 1);
    assert_eq!(rec.events("drop-result").len(), 2);
    assert_eq!(rec.events("drop-done").len(), 1);
    assert_eq!(core.status().unwrap().photos.indexed, 40, "not added");
    // Now the webview may see it.
    let resp = protocol::respond(&core, &enc(&dropped), Some("kind=thumb"));
    assert_eq!(resp.status(), 200);
    assert!(core.search(&like_outside).is_ok());

    // The watcher runs while the app is open: a new photo is indexed on its own.
    let changes = rec.events("library-changed").len();
    let extra = shape_folder(&tmp.path().join("more"), 41).pop().unwrap();
    std::fs::copy(&extra, photos.join("new.jpg")).unwrap();
    wait_until(
        "the watcher to index a new photo",
        Duration::from_secs(60),
        || core.status().unwrap().photos.indexed == 41,
    );
    wait_until("library-changed", Duration::from_secs(10), || {
        rec.events("library-changed").len() > changes
    });
    // … and the status line can say what changed.
    let change = core.activity().last_change.expect("a change summary");
    assert_eq!((change.added, change.embedded, change.removed), (1, 1, 0));

    // HEIC and RAW photos, which the webview cannot show itself, are served as JPEG.
    let formats = fixtures().join("data/formats");
    for name in ["phone.heic", "camera.dng"] {
        std::fs::copy(formats.join(name), photos.join(name)).unwrap();
    }
    wait_until(
        "the watcher to index a HEIC and a DNG",
        Duration::from_secs(60),
        || core.status().unwrap().photos.indexed == 43,
    );
    for name in ["phone.heic", "camera.dng"] {
        let path = photos.canonicalize().unwrap().join(name);
        for kind in ["kind=thumb", "kind=full"] {
            let resp = protocol::respond(&core, &enc(&path), Some(kind));
            assert_eq!(resp.status(), 200, "{name} {kind}");
            assert_eq!(
                resp.headers()["content-type"],
                "image/jpeg",
                "{name} {kind}"
            );
            let (w, h) = image_size(resp.body());
            assert!(w > 100 && h > 100, "{name} {kind}: {w}×{h}");
        }
    }

    // Remove the folder: the photos go, the writer idles.
    let st = core.remove_folder(photos.to_str().unwrap()).unwrap();
    assert!(st.folders.is_empty());
    assert_eq!(st.photos.indexed, 0);
    assert_eq!(core.activity().state, ActivityState::Idle);
    assert_eq!(
        core.remove_folder(photos.to_str().unwrap())
            .unwrap_err()
            .code,
        "not_a_folder"
    );
    core.shutdown();
}

#[test]
fn settings_are_validated_saved_and_reloaded() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let saved = fixture_settings(&lib);
    let rec = Arc::new(Recorder::default());
    let core = Core::new(lib.clone(), rec.clone());
    assert_eq!(core.settings(), saved);
    let bad = Settings {
        device: "gpu".into(),
        ..saved.clone()
    };
    assert_eq!(core.save_settings(bad).unwrap_err().code, "invalid");
    assert_eq!(saved.precision, "f32", "f32 unless told otherwise");
    let bad = Settings {
        precision: "int4".into(),
        ..saved.clone()
    };
    assert_eq!(core.save_settings(bad).unwrap_err().code, "invalid");
    let empty = Settings {
        clip_model: " ".into(),
        ..saved.clone()
    };
    assert_eq!(core.save_settings(empty).unwrap_err().code, "invalid");
    assert_eq!(
        saved.ocr, "likely",
        "OCR reads likely photos unless told otherwise"
    );
    for (ocr, langs) in [("sometimes", "eng"), ("all", "eng;deu"), ("all", "")] {
        let bad = Settings {
            ocr: ocr.into(),
            ocr_langs: langs.into(),
            ..saved.clone()
        };
        assert_eq!(core.save_settings(bad).unwrap_err().code, "invalid");
    }
    let new = Settings {
        background_captions: true,
        raw_separate: true,
        ocr: "all".into(),
        ocr_langs: "eng+deu".into(),
        precision: "q8".into(),
        ..saved.clone()
    };
    core.save_settings(new.clone()).unwrap();
    assert_eq!(Settings::load(&lib), new);
    assert_eq!(
        new.library_options(&lib).precision,
        shoebox_core::models::Precision::Q8
    );
    assert_eq!(
        core.settings().raw_mode(),
        shoebox_core::scan::RawMode::Separate
    );
    assert!(settings_file(&lib).is_file());
    let ocr = core.settings().ocr_options();
    assert_eq!(
        (ocr.mode, ocr.langs.as_str()),
        (shoebox_core::library::OcrMode::All, "eng+deu")
    );
    // A model that is not there is reported, not a crash.
    let missing = Settings {
        clip_model: tmp.path().join("no-model").to_string_lossy().into(),
        ..new.clone()
    };
    core.save_settings(missing).unwrap();
    wait_until("the model error", Duration::from_secs(30), || {
        core.models().clip == ModelState::Error
    });
    let err = core.models().error.unwrap();
    assert!(err.code.starts_with("model") || err.code == "io", "{err:?}");
    let state = core.state();
    assert_eq!(state.library, lib.to_string_lossy());
    assert!(state.settings.background_captions);
    // Tests may stand in for the OS drop event when allowed (debug builds only).
    #[cfg(debug_assertions)]
    {
        core.set_test_hooks(shoebox_app::core::TestHooks {
            drop_by_name: true,
            ..Default::default()
        });
        assert!(core.test_drop(vec![]).unwrap().is_empty());
    }
    core.shutdown();
}

fn image_size(bytes: &[u8]) -> (u32, u32) {
    // JPEG SOF0/SOF2 marker scan: enough to read a thumbnail's size without an image crate here.
    let mut i = 2;
    while i + 9 < bytes.len() {
        if bytes[i] != 0xFF {
            i += 1;
            continue;
        }
        let marker = bytes[i + 1];
        let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
        if matches!(marker, 0xC0 | 0xC1 | 0xC2) {
            let h = u16::from_be_bytes([bytes[i + 5], bytes[i + 6]]) as u32;
            let w = u16::from_be_bytes([bytes[i + 7], bytes[i + 8]]) as u32;
            return (w, h);
        }
        i += 2 + len;
    }
    panic!("not a JPEG");
}

/// What `convertFileSrc` does to a path (encodeURIComponent).
fn percent_encoding_path(p: &str) -> String {
    p.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'!'
            | b'~'
            | b'*'
            | b'\''
            | b'('
            | b')' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn classify_previews_applies_and_undoes() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    fixture_settings(&lib);
    // A folder outside the library: nothing is indexed, the files are embedded on the fly.
    let folder = tmp.path().join("unsorted");
    let files = shape_folder(&folder, 24);
    let rec = Arc::new(Recorder::default());
    let core = Core::new(lib.clone(), rec.clone());
    // The folder to sort and the destination, as if picked in the native dialog.
    let dest = tmp.path().join("sorted");
    std::fs::create_dir(&dest).unwrap();
    for f in [&folder, &dest] {
        core.grant_picked(f, FolderUse::Sort, &mut no_question)
            .unwrap();
    }

    let err = core.classify_apply("move", None).unwrap_err();
    assert_eq!(err.code, "invalid");
    let err = core
        .classify_preview(folder.to_str().unwrap(), "")
        .unwrap_err();
    assert_eq!(err.code, "invalid", "{}", err.message);

    let mut twelve = Vec::new();
    for c in ["red", "green", "blue", "yellow"] {
        for sh in ["circle", "square", "triangle"] {
            twelve.push(format!("{c}-{sh}=a photo of a {c} {sh}"));
        }
    }
    let labels = twelve.join(", ");
    let labels = labels.as_str();
    let preview = core
        .classify_preview(folder.to_str().unwrap(), labels)
        .unwrap();
    assert_eq!(preview.labels.len(), 12);
    let total: usize = preview.groups.iter().map(|g| g.files.len()).sum();
    assert_eq!(total, files.len());
    // Each group holds files of its color and shape, most confident first.
    let mut right = 0;
    for g in &preview.groups {
        assert!(g
            .files
            .windows(2)
            .all(|w| w[0].confidence >= w[1].confidence));
        for f in &g.files {
            let (c, sh) = label_of(&f.path);
            right += usize::from(g.label == format!("{c}-{sh}"));
        }
    }
    assert!(right * 10 >= total * 9, "{right}/{total} right");
    // The previewed files may be shown (as thumbnails) though they are not library photos.
    let first = &preview.groups[0].files[0].path;
    let enc = format!("/{}", percent_encoding_path(first));
    assert_eq!(
        protocol::respond(&core, &enc, Some("kind=thumb")).status(),
        200
    );

    // Copy into another folder, then undo.
    let applied = core
        .classify_apply("copy", Some(dest.to_str().unwrap()))
        .unwrap();
    assert_eq!(applied.files, files.len());
    let copied: Vec<PathBuf> = preview
        .groups
        .iter()
        .flat_map(|g| {
            let dest = dest.clone();
            g.files
                .iter()
                .map(move |f| dest.join(&g.label).join(&f.name))
        })
        .collect();
    assert!(copied.iter().all(|p| p.is_file()));
    assert!(
        files.iter().all(|p| p.is_file()),
        "copies leave the originals"
    );
    assert_eq!(core.classify_undo().unwrap(), files.len());
    assert!(copied.iter().all(|p| !p.exists()));
    assert_eq!(core.classify_undo().unwrap_err().code, "invalid");

    // Move in place (into folder/<label>/), then undo puts every file back.
    core.classify_preview(folder.to_str().unwrap(), labels)
        .unwrap();
    let applied = core.classify_apply("move", None).unwrap();
    assert!(files.iter().all(|p| !p.exists()));
    // Undo uses the plan the app kept in memory: a journal rewritten on disk meanwhile (the
    // destination is a folder others may write) names a file outside, which must survive.
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    std::fs::write(
        &applied.journal,
        format!(
            "{}\n",
            serde_json::json!({"op": "copy", "from": "/x", "to": victim, "size": 8})
        ),
    )
    .unwrap();
    assert_eq!(core.classify_undo().unwrap(), files.len());
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(files.iter().all(|p| p.is_file()));
    assert!(!rec.events("library-changed").is_empty());
}

/// The native dialog's stand-in where no question is expected.
fn no_question(q: &Question) -> bool {
    panic!("unexpected question: {q:?}")
}

/// Both errors are `not_allowed` and say the same thing, but for the path they name.
fn refused_alike(what: &str, a: (ApiError, &Path), b: (ApiError, &Path)) {
    assert_eq!(a.0.code, "not_allowed", "{what}: {:?}", a.0);
    assert_eq!(b.0.code, "not_allowed", "{what}: {:?}", b.0);
    assert_eq!(
        a.0.message.replace(a.1.to_str().unwrap(), "PATH"),
        b.0.message.replace(b.1.to_str().unwrap(), "PATH"),
        "{what}: a forbidden path and a missing one must look the same"
    );
}

fn err<T: std::fmt::Debug>(r: ApiResult<T>) -> ApiError {
    r.unwrap_err()
}

/// Security issue 5: any script in the webview can call any command with any path. It must not
/// reach folders the user did not choose (add, sort, sort into), nor learn whether a path exists.
#[test]
fn folders_and_sort_take_only_folders_the_user_chose() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    fixture_settings(&lib);
    let chosen = tmp.path().join("chosen");
    let chosen_files = shape_folder(&chosen, 4);
    let outside = tmp.path().join("outside");
    let outside_files = shape_folder(&outside, 2);
    let missing = tmp.path().join("missing");
    let missing_file = missing.join("dev_0000.jpg");
    let core = Core::new(lib.clone(), Arc::new(NoEvents));
    let labels = "red, green, blue";
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let enc = |p: &Path| format!("/{}", percent_encoding_path(p.to_str().unwrap()));

    // Nothing chosen yet: a folder that exists and one that does not get the same answer.
    refused_alike(
        "add_folder",
        (err(core.add_folder(&s(&outside))), &outside),
        (err(core.add_folder(&s(&missing))), &missing),
    );
    for p in ["/", "~", "/usr", "/etc", "relative/photos"] {
        assert_eq!(core.add_folder(p).unwrap_err().code, "not_allowed", "{p}");
    }
    refused_alike(
        "classify_preview",
        (err(core.classify_preview(&s(&outside), labels)), &outside),
        (err(core.classify_preview(&s(&missing), labels)), &missing),
    );
    // … so the folder's images did not become viewable.
    assert_eq!(
        protocol::respond(&core, &enc(&outside_files[0]), Some("kind=full")).status(),
        403
    );
    // Photo details, searching by a photo or in a folder, showing or opening a file, the image
    // protocol: the same answer for a file nobody handed over and a missing one.
    refused_alike(
        "photo",
        (err(core.photo(&s(&outside_files[0]))), &outside_files[0]),
        (err(core.photo(&s(&missing_file))), &missing_file),
    );
    let search_in = |f: &Path| {
        core.search(&SearchArgs {
            query: Some("a red circle".into()),
            folder: Some(s(f)),
            ..Default::default()
        })
    };
    refused_alike(
        "search folder",
        (err(search_in(&outside)), &outside),
        (err(search_in(&missing)), &missing),
    );
    let search_like = |f: &Path| {
        core.search(&SearchArgs {
            like: vec![s(f)],
            ..Default::default()
        })
    };
    refused_alike(
        "search like",
        (err(search_like(&outside_files[0])), &outside_files[0]),
        (err(search_like(&missing_file)), &missing_file),
    );
    refused_alike(
        "reveal/open",
        (err(core.readable(&s(&outside_files[0]))), &outside_files[0]),
        (err(core.readable(&s(&missing_file))), &missing_file),
    );
    let (a, b) = (
        protocol::respond(&core, &enc(&outside_files[0]), Some("kind=thumb")),
        protocol::respond(&core, &enc(&missing_file), Some("kind=thumb")),
    );
    assert_eq!(a.status(), 403);
    assert_eq!(b.status(), 403);
    assert_eq!(a.body(), b.body());
    let (a, b) = (
        err(core.remove_folder(&s(&outside))),
        err(core.remove_folder(&s(&missing))),
    );
    assert_eq!(
        (a.code.as_str(), b.code.as_str()),
        ("not_a_folder", "not_a_folder")
    );

    // A folder picked in the native dialog may be sorted; its images may then be shown.
    let picked = core
        .grant_picked(&chosen, FolderUse::Sort, &mut no_question)
        .unwrap()
        .unwrap();
    assert_eq!(picked, s(&chosen));
    let preview = core.classify_preview(&picked, labels).unwrap();
    let total: usize = preview.groups.iter().map(|g| g.files.len()).sum();
    assert_eq!(total, chosen_files.len());
    assert_eq!(
        protocol::respond(&core, &enc(&chosen_files[0]), Some("kind=thumb")).status(),
        200
    );
    // `..` cannot climb out of it, nor can a link inside it lead out.
    let climb = format!("{}/../outside", chosen.display());
    assert_eq!(core.add_folder(&climb).unwrap_err().code, "not_allowed");
    assert_eq!(
        core.classify_preview(&climb, labels).unwrap_err().code,
        "not_allowed"
    );
    let link = chosen.join("link");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let e = core.classify_preview(&s(&link), labels).unwrap_err();
    assert_eq!(e.code, "not_allowed", "{e:?}");
    assert_eq!(core.add_folder(&s(&link)).unwrap_err().code, "not_allowed");

    // Sorting writes only into a chosen folder (or inside one); a refused destination leaves the
    // preview for another try.
    let elsewhere = tmp.path().join("elsewhere");
    let e = core
        .classify_apply("copy", Some(&s(&elsewhere)))
        .unwrap_err();
    assert_eq!(e.code, "not_allowed", "{e:?}");
    assert!(!elsewhere.exists(), "nothing written outside");
    let inside = chosen.join("sorted");
    let applied = core.classify_apply("copy", Some(&s(&inside))).unwrap();
    assert_eq!(applied.files, chosen_files.len());
    assert_eq!(core.classify_undo().unwrap(), chosen_files.len());

    // Broad folders need a yes in a native warning even when picked: the whole disk, the home
    // folder, system folders, and a folder that only leads to one.
    let to_root = tmp.path().join("to-root");
    std::os::unix::fs::symlink("/", &to_root).unwrap();
    let mut home_or_above = vec![];
    if let Some(home) = dirs_home() {
        home_or_above.push((home.clone(), "home folder"));
        if let Some(parent) = home.parent().filter(|p| p.parent().is_some()) {
            home_or_above.push((parent.to_path_buf(), "home folder"));
        }
    }
    for (p, says) in [
        (PathBuf::from("/"), "whole disk"),
        (PathBuf::from("/usr/share"), "system folder"),
        (PathBuf::from("/etc"), "system folder"),
        (to_root.clone(), "whole disk"),
    ]
    .into_iter()
    .chain(home_or_above)
    {
        let mut asked = Vec::new();
        let r = core
            .grant_picked(&p, FolderUse::Library, &mut |q: &Question| {
                asked.push(q.clone());
                false
            })
            .unwrap();
        assert_eq!(r, None, "{p:?}");
        assert_eq!(asked.len(), 1, "{p:?}");
        assert!(asked[0].broad, "{p:?}: {:?}", asked[0]);
        assert!(asked[0].message.contains(says), "{p:?}: {:?}", asked[0]);
        assert_eq!(
            core.add_folder(&s(&p)).unwrap_err().code,
            "not_allowed",
            "{p:?} after no"
        );
    }

    // A typed folder is asked about in a native dialog, naming the folder and what it is for; no
    // keeps it refused, yes allows it.
    let mut asked = Vec::new();
    let mut answer = false;
    let mut ask = |q: &Question| {
        asked.push(q.clone());
        answer
    };
    assert!(!core
        .grant_typed(&s(&outside), FolderUse::Library, &mut ask)
        .unwrap());
    assert_eq!(
        core.add_folder(&s(&outside)).unwrap_err().code,
        "not_allowed"
    );
    answer = true;
    let mut ask = |q: &Question| {
        asked.push(q.clone());
        answer
    };
    assert!(core
        .grant_typed(&s(&outside), FolderUse::Library, &mut ask)
        .unwrap());
    assert_eq!(asked.len(), 2);
    assert!(
        asked[0].message.contains(&s(&outside)) && !asked[0].broad,
        "{asked:?}"
    );
    assert!(asked[0].title.contains("Add"), "{asked:?}");
    // Allowed folders need no question.
    assert!(core
        .grant_typed(&s(&outside), FolderUse::Sort, &mut no_question)
        .unwrap());
    let st = core.add_folder(&s(&outside)).unwrap();
    assert_eq!(st.folders.len(), 1);
    // Library folders are allowed from then on, and their photos may be shown.
    assert_eq!(
        protocol::respond(&core, &enc(&outside_files[0]), Some("kind=thumb")).status(),
        200
    );
    // A typed folder that leads to a broad one needs a second, warning, yes.
    let mut asked = Vec::new();
    let r = core
        .grant_typed(&s(&to_root), FolderUse::Sort, &mut |q: &Question| {
            asked.push(q.clone());
            !q.broad
        })
        .unwrap();
    assert!(!r);
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert!(
        asked[1].broad && asked[1].message.contains("whole disk"),
        "{asked:?}"
    );
    assert_eq!(
        core.classify_preview(&s(&to_root), labels)
            .unwrap_err()
            .code,
        "not_allowed"
    );
    // Paths that could garble the dialog, and relative ones, are not asked about.
    for p in [
        "photos",
        "/tmp/x\n\nThis folder is safe",
        "/tmp/\u{202e}gpj.exe",
    ] {
        assert_eq!(
            core.grant_typed(p, FolderUse::Library, &mut no_question)
                .unwrap_err()
                .code,
            "invalid",
            "{p:?}"
        );
    }
    core.shutdown();
}

fn dirs_home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .filter(|h| h.is_absolute() && h.parent().is_some())
}

/// Security issue 10: the `photo:` protocol serves the very file it checked. A name swapped for a
/// link to another file after the check serves the checked file (full images) or nothing (a
/// thumbnail the engine made by path), never the other file; the next request refuses the name.
#[test]
fn photo_protocol_serves_the_file_it_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    fixture_settings(&lib);
    let chosen = tmp.path().join("chosen");
    let files = shape_folder(&chosen, 2);
    let mut others: Vec<PathBuf> = std::fs::read_dir(fixtures().join("data/dev"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| files.iter().all(|f| f.file_name() != p.file_name()))
        .collect();
    others.sort();
    let png = others
        .iter()
        .find(|p| p.extension().is_some_and(|e| e == "png"))
        .unwrap();
    // A PNG named .tif: a format the web view cannot show, so the engine renders it.
    let tif = chosen.join("render me.tif");
    std::fs::copy(png, &tif).unwrap();
    // Another image, which nobody handed over.
    let secret = tmp.path().join("secret.jpg");
    let jpg = others
        .iter()
        .rev()
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    std::fs::copy(jpg, &secret).unwrap();
    let core = Core::new(lib.clone(), Arc::new(NoEvents));
    core.grant_picked(&chosen, FolderUse::Sort, &mut no_question)
        .unwrap();
    core.classify_preview(chosen.to_str().unwrap(), "red, green")
        .unwrap();
    let enc = |p: &Path| format!("/{}", percent_encoding_path(p.to_str().unwrap()));

    let swap = |p: &Path| {
        let kept = p.with_extension("kept");
        std::fs::rename(p, &kept).unwrap();
        std::os::unix::fs::symlink(&secret, p).unwrap();
        kept
    };
    // Full image, served as is.
    let photo = &files[0];
    let original = std::fs::read(photo).unwrap();
    assert_ne!(original, std::fs::read(&secret).unwrap());
    let opened = core.open_readable(photo).unwrap();
    swap(photo);
    let resp = protocol::serve(&core, &opened, Kind::Full);
    assert_eq!(resp.status(), 200);
    assert!(
        resp.body() == &original,
        "served another file than the one checked"
    );
    // Full image, rendered by the engine (through a path naming the opened file).
    let expected = shoebox_core::thumbs::display_image(&tif, 2560).unwrap();
    assert_eq!(expected.mime, "image/jpeg");
    let opened = core.open_readable(&tif).unwrap();
    swap(&tif);
    let resp = protocol::serve(&core, &opened, Kind::Full);
    assert_eq!(resp.status(), 200);
    assert!(resp.body() == &expected.bytes, "rendered another file");
    // Thumbnail: the engine reads by path, so a swapped name is caught and nothing is served.
    let photo = &files[1];
    let opened = core.open_readable(photo).unwrap();
    swap(photo);
    let resp = protocol::serve(&core, &opened, Kind::Thumb);
    assert_ne!(resp.status(), 200, "a thumbnail of the swapped-in file");
    // The next request checks where the name leads now: a file nobody handed over.
    for p in [&files[0], &files[1], &tif] {
        assert_eq!(
            protocol::respond(&core, &enc(p), Some("kind=full")).status(),
            403,
            "{p:?}"
        );
    }
}

#[test]
fn switching_the_search_model_embeds_in_the_background_and_never_loses_search() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = tmp.path().join("lib");
    let first = fixture_settings(&lib);
    let photos = tmp.path().join("photos");
    shape_folder(&photos, 12);
    let rec = Arc::new(Recorder::default());
    let core = Core::new(lib.clone(), rec.clone());
    let indexed = || {
        rec.events("library-changed")
            .iter()
            .filter(|e| e["reason"] == "indexed")
            .count()
    };
    core.start();
    let picked = core
        .grant_picked(&photos, FolderUse::Library, &mut no_question)
        .unwrap()
        .unwrap();
    core.add_folder(&picked).unwrap();
    let coverage = |id: &str| {
        let st = core.status().unwrap();
        st.models
            .iter()
            .find(|m| std::path::Path::new(&m.id).ends_with(id))
            .map(|m| (m.embedded, m.of))
    };
    wait_until("indexing with clip-dev", Duration::from_secs(120), || {
        core.activity().state == ActivityState::Watching && coverage("clip-dev") == Some((12, 12))
    });
    let args = SearchArgs {
        query: Some("a photo of a red circle".into()),
        limit: Some(5),
        ..Default::default()
    };
    let before = core.search(&args).unwrap();
    assert!(before.model.ends_with("clip-dev"), "{}", before.model);

    // The menu Settings offers: every kind, the default search model among them.
    let menu = core.model_menu();
    for kind in ["image-text", "query", "caption", "sentence"] {
        assert!(
            menu.iter()
                .any(|m| serde_json::to_value(m.kind).unwrap() == kind),
            "no {kind} model on the menu"
        );
    }
    assert!(menu.iter().any(|m| m.id == "openai/clip-vit-base-patch32"));

    // Switch to the GELU OpenCLIP fixture: searches answer at once (from clip-dev until the new
    // model covers the library), then from the new one.
    let open = Settings {
        clip_model: fixtures()
            .join("models/openclip-dev")
            .to_string_lossy()
            .into(),
        ..first.clone()
    };
    core.save_settings(open).unwrap();
    let during = core.search(&args).unwrap();
    assert_eq!(during.results.len(), 5);
    wait_until(
        "embedding with openclip-dev",
        Duration::from_secs(120),
        || {
            core.activity().state == ActivityState::Watching
                && coverage("openclip-dev") == Some((12, 12))
        },
    );
    let after = core.search(&args).unwrap();
    assert!(after.model.ends_with("openclip-dev"), "{}", after.model);
    assert_eq!(after.results.len(), 5);
    assert_eq!(coverage("clip-dev"), Some((12, 12)), "kept");

    // Back to clip-dev: its embeddings are still there, so nothing is embedded again.
    let runs = indexed();
    core.save_settings(first).unwrap();
    wait_until(
        "the writer after switching back",
        Duration::from_secs(120),
        || indexed() > runs && core.activity().state == ActivityState::Watching,
    );
    assert_eq!(core.activity().last_index.unwrap().embedded, 0);
    let back = core.search(&args).unwrap();
    assert!(back.model.ends_with("clip-dev") && !back.model.ends_with("openclip-dev"));
    let ids = |r: &shoebox_core::search::SearchResponse| {
        r.results.iter().map(|h| h.path.clone()).collect::<Vec<_>>()
    };
    assert_eq!(ids(&back), ids(&before));
    core.shutdown();
}

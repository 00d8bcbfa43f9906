//! The library end to end through the engine API: scan changes (add, modify, rename, delete),
//! resume after an interrupted index, bad input recorded with reasons, index repair, schema refusal.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use shoebox_core::catalog::ModelKind;
use shoebox_core::pipeline::PipelineOptions;
use shoebox_core::search::SearchRequest;
use shoebox_core::{Error, Library};

/// Copy the first `n` labelled shape images into `dir`; returns (path, color, shape).
fn copy_shapes(dir: &Path, n: usize) -> Vec<(PathBuf, String, String)> {
    std::fs::create_dir_all(dir).unwrap();
    labels()
        .into_iter()
        .take(n)
        .map(|(p, c, s)| {
            let to = dir.join(p.file_name().unwrap());
            std::fs::copy(&p, &to).unwrap();
            (to, c, s)
        })
        .collect()
}

fn search(lib: &mut Library, q: &str, limit: usize) -> Vec<(String, f32)> {
    lib.search(&SearchRequest {
        query: Some(q.into()),
        limit,
        ..Default::default()
    })
    .unwrap()
    .results
    .into_iter()
    .map(|h| (h.path, h.score))
    .collect()
}

fn photo_id(lib: &Library, path: &Path) -> Option<i64> {
    lib.catalog()
        .photo_id_at(&path.canonicalize().unwrap())
        .unwrap()
}

#[test]
fn scan_add_modify_rename_delete() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let shapes = copy_shapes(&photos, 12);
    let mut lib = open_library(&tmp.path().join("lib"));
    lib.add_folders(std::slice::from_ref(&photos)).unwrap();
    let r = index(&mut lib);
    assert_eq!((r.pipeline.embedded, r.pipeline.failed), (12, 0));
    assert_eq!(lib.status(false).unwrap().photos.indexed, 12);

    // Nothing changed: nothing is embedded again.
    let r = index(&mut lib);
    assert_eq!(r.pipeline.embedded, 0);

    // Rename: same content at a new path keeps its id and embedding, no model call.
    let old = &shapes[0].0;
    let id_before = photo_id(&lib, old).unwrap();
    let renamed = photos.join("sub").join("renamed.jpg");
    std::fs::create_dir_all(renamed.parent().unwrap()).unwrap();
    std::fs::rename(old, &renamed).unwrap();
    let r = index(&mut lib);
    assert_eq!(r.scan.moved, 1);
    assert_eq!(r.pipeline.embedded, 0, "a rename must not re-embed");
    assert_eq!(photo_id(&lib, &renamed), Some(id_before));
    let hits = search(&mut lib, "a photo of a red circle", 12);
    assert!(hits.iter().any(|(p, _)| p.ends_with("sub/renamed.jpg")));
    assert!(!hits.iter().any(|(p, _)| p == &old.to_string_lossy()));

    // Modify: new content at the same path is re-embedded.
    let target = &shapes[1].0;
    let before = search(&mut lib, "a photo of a red circle", 12);
    std::fs::copy(&shapes[2].0, target).unwrap();
    let mtime = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(target)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let r = index(&mut lib);
    assert_eq!((r.scan.changed, r.pipeline.embedded), (1, 1));
    let after = search(&mut lib, "a photo of a red circle", 12);
    let score = |hits: &[(String, f32)]| {
        hits.iter()
            .find(|(p, _)| p == &target.canonicalize().unwrap().to_string_lossy())
            .map(|h| h.1)
    };
    assert!(
        score(&before).is_some() && score(&after).is_some(),
        "modified photo left the results"
    );
    assert_ne!(
        score(&before),
        score(&after),
        "modified photo keeps its old vector"
    );

    // Delete: gone from the catalog and from results.
    let gone = &shapes[3].0;
    std::fs::remove_file(gone).unwrap();
    let r = index(&mut lib);
    assert_eq!(r.scan.removed, 1);
    let hits = search(&mut lib, "a photo of a red circle", 50);
    assert_eq!(hits.len(), 11);
    assert!(!hits
        .iter()
        .any(|(p, _)| p.ends_with(gone.file_name().unwrap().to_str().unwrap())));
    let st = lib.status(false).unwrap();
    assert_eq!(
        (st.photos.indexed, st.photos.pending, st.photos.failed),
        (11, 0, 0)
    );
}

#[test]
fn interrupted_index_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    copy_shapes(&photos, 40);
    let libdir = tmp.path().join("lib");
    {
        let mut lib = open_library(&libdir);
        lib.add_folders(std::slice::from_ref(&photos)).unwrap();
        let cancel = AtomicBool::new(false);
        let opts = PipelineOptions {
            batch_size: 4,
            decode_threads: 1,
        };
        let r = lib
            .index(opts, &cancel, &mut |p| {
                if p.done >= 8 {
                    cancel.store(true, Ordering::Relaxed);
                }
            })
            .unwrap();
        assert!(r.pipeline.interrupted);
        assert!(
            r.pipeline.embedded >= 8 && r.pipeline.embedded < 40,
            "{:?}",
            r.pipeline
        );
        let st = lib.status(false).unwrap();
        assert_eq!(st.photos.indexed as usize, r.pipeline.embedded);
        assert_eq!(st.photos.pending as usize, 40 - r.pipeline.embedded);
    }
    let mut lib = open_library(&libdir);
    let done_before = lib.status(false).unwrap().photos.indexed as usize;
    let r = index(&mut lib);
    assert_eq!(
        r.pipeline.embedded,
        40 - done_before,
        "only the rest is embedded"
    );
    let st = lib.status(false).unwrap();
    assert_eq!((st.photos.indexed, st.photos.pending), (40, 0));
    assert!(st.index.fresh);
    assert_eq!(st.index.vectors, 40);
    assert_eq!(search(&mut lib, "a photo of a blue square", 100).len(), 40);
}

#[test]
fn bad_inputs_are_recorded_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let good = copy_shapes(&photos, 3);
    let jpeg = std::fs::read(&good[0].0).unwrap();
    std::fs::write(photos.join("zero.jpg"), b"").unwrap();
    std::fs::write(photos.join("truncated.jpg"), &jpeg[..jpeg.len() / 3]).unwrap();
    std::fs::write(
        photos.join("notes.jpg"),
        b"this is a text file with a .jpg name",
    )
    .unwrap();
    std::fs::write(photos.join("bomb.png"), huge_png()).unwrap();
    std::fs::write(photos.join(".hidden.jpg"), &jpeg).unwrap();
    std::fs::write(photos.join("readme.txt"), b"not an image extension").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9-latin1.jpg");
        std::fs::write(photos.join(name), &jpeg).unwrap();
        std::os::unix::fs::symlink(&photos, photos.join("loop")).unwrap();
    }
    let mut lib = open_library(&tmp.path().join("lib"));
    lib.add_folders(std::slice::from_ref(&photos)).unwrap();
    let r = index(&mut lib);
    // 3 good + the non-UTF-8 name embed; 4 bad files fail; hidden and non-image files are ignored.
    assert_eq!(r.pipeline.embedded, 4, "{r:?}");
    assert_eq!(r.pipeline.failed, 4, "{r:?}");
    let st = lib.status(true).unwrap();
    let failures = st.failures.unwrap();
    let reason = |name: &str| {
        failures
            .iter()
            .find(|f| f.path.ends_with(name))
            .map(|f| f.reason.clone())
            .unwrap_or_else(|| panic!("{name} not in failures: {failures:?}"))
    };
    assert!(reason("zero.jpg").contains("empty"));
    assert!(reason("truncated.jpg").to_lowercase().contains("jpeg"));
    assert!(reason("notes.jpg").contains("JPEG") || reason("notes.jpg").contains("not an image"));
    assert!(
        reason("bomb.png").contains("50000"),
        "{}",
        reason("bomb.png")
    );
    #[cfg(unix)]
    assert!(reason("loop").contains("loop"), "{failures:?}");
    assert_eq!(st.photos.failed, 4);
    // Failed files are not retried until they change.
    assert_eq!(index(&mut lib).pipeline.failed, 0);
    std::fs::copy(&good[1].0, photos.join("zero.jpg")).unwrap();
    let r = index(&mut lib);
    assert_eq!((r.pipeline.embedded, r.pipeline.failed), (1, 0));
    let ok = lib
        .catalog()
        .connection()
        .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn a_file_deleted_before_it_is_read_is_recorded() {
    use shoebox_core::catalog::{Catalog, WorkItem};
    use shoebox_core::index::VectorIndex;
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let shapes = copy_shapes(&photos, 2);
    let mut cat = Catalog::open(&tmp.path().join("c.sqlite")).unwrap();
    cat.add_root(&photos.canonicalize().unwrap()).unwrap();
    shoebox_core::scan::scan(&mut cat, None).unwrap();
    let clip = load_clip();
    let model = cat
        .model_id(clip.name(), ModelKind::Clip, clip.dim())
        .unwrap();
    let work: Vec<WorkItem> = cat.pending_work(Some(model)).unwrap();
    std::fs::remove_file(&shapes[0].0).unwrap();
    let mut idx = VectorIndex::new(clip.dim(), 0);
    let sink = shoebox_core::pipeline::Sink {
        catalog: &mut cat,
        model_id: model,
        index: &mut idx,
    };
    let r = shoebox_core::pipeline::run(
        sink,
        &clip,
        work,
        PipelineOptions::default(),
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!((r.embedded, r.failed), (1, 1));
    let f = cat.failures().unwrap();
    assert!(f[0].reason.contains("vanished"), "{f:?}");
}

#[test]
fn damaged_or_missing_index_is_rebuilt_from_the_catalog() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    copy_shapes(&photos, 10);
    let libdir = tmp.path().join("lib");
    let mut lib = open_library(&libdir);
    lib.add_folders(&[photos]).unwrap();
    index(&mut lib);
    let want = search(&mut lib, "a photo of a green triangle", 5);
    drop(lib);
    // Corrupt every file of the saved index.
    for e in walkdir(&libdir.join("index")) {
        if e.is_file() {
            std::fs::write(&e, b"garbage").unwrap();
        }
    }
    let mut lib = open_library(&libdir);
    assert_eq!(search(&mut lib, "a photo of a green triangle", 5), want);
    drop(lib);
    std::fs::remove_dir_all(libdir.join("index")).unwrap();
    let mut lib = open_library(&libdir);
    assert_eq!(search(&mut lib, "a photo of a green triangle", 5), want);
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("catalog.sqlite");
    {
        let c = shoebox_core::catalog::Catalog::open(&path).unwrap();
        c.connection()
            .pragma_update(None, "user_version", 99)
            .unwrap();
    }
    match shoebox_core::catalog::Catalog::open(&path) {
        Err(Error::SchemaTooNew(msg)) => assert!(msg.contains("newer Shoebox"), "{msg}"),
        other => panic!("expected a schema refusal, got {:?}", other.err()),
    }
}

#[test]
fn second_writer_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut a = open_library(tmp.path());
    a.lock_for_writing().unwrap();
    let mut b = open_library(tmp.path());
    match b.lock_for_writing() {
        Err(Error::Locked(msg)) => assert!(msg.contains("another Shoebox process")),
        other => panic!("expected Locked, got {other:?}"),
    }
    // Readers are fine meanwhile.
    b.status(false).unwrap();
}

#[test]
fn stale_thumbnails_are_pruned_and_current_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let files = copy_shapes(&photos, 4);
    let photos = std::fs::canonicalize(&photos).unwrap();
    let lib_dir = tmp.path().join("lib");
    let mut lib = open_library(&lib_dir);
    lib.add_folders(std::slice::from_ref(&photos)).unwrap();
    let path = |i: usize| photos.join(files[i].0.file_name().unwrap());
    let mut thumbs: Vec<PathBuf> = (0..4).map(|i| lib.thumbnail(&path(i)).unwrap()).collect();
    // A file dropped on the app (not in the library) gets a thumbnail too.
    let outside = tmp.path().join("dropped.jpg");
    std::fs::copy(&files[0].0, &outside).unwrap();
    let dropped = lib.thumbnail(&outside).unwrap();
    // Photo 1 is deleted; photo 2 changes (a different image under the same name).
    std::fs::remove_file(path(1)).unwrap();
    std::fs::copy(&files[3].0, path(2)).unwrap();
    let report = lib.prune_thumbnails().unwrap();
    assert_eq!((report.kept, report.removed), (2, 3));
    assert!(thumbs[0].is_file() && thumbs[3].is_file());
    assert!(!thumbs[1].exists() && !thumbs[2].exists() && !dropped.exists());
    // The changed photo's thumbnail is made again, from its new content.
    thumbs[2] = lib.thumbnail(&path(2)).unwrap();
    assert_eq!(
        std::fs::read(&thumbs[2]).unwrap(),
        std::fs::read(&thumbs[3]).unwrap()
    );
    assert_eq!(
        lib.prune_thumbnails().unwrap(),
        shoebox_core::thumbs::PruneReport {
            kept: 3,
            removed: 0
        }
    );
}

//! The Tauri commands: each one forwards to a `Core` method (an engine call) on a blocking thread so
//! the UI thread never waits, and returns errors as `{code, message}`.

use std::path::PathBuf;

use shoebox_core::library::Status;
use shoebox_core::search::SearchResponse;
use shoebox_core::tags::TagCount;
use shoebox_core::thumbs::PhotoDetails;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::DialogExt;
use tauri_plugin_opener::OpenerExt;

use crate::core::{AppState, ClassifyApplied, ClassifyPreview, Core, DropResult, SearchArgs};
use crate::error::{ApiError, ApiResult};
use crate::settings::Settings;

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new("internal", e.to_string()))?
}

#[tauri::command]
pub async fn get_state(core: State<'_, Core>) -> ApiResult<AppState> {
    let core = core.inner().clone();
    blocking(move || Ok(core.state())).await
}

#[tauri::command]
pub async fn status(core: State<'_, Core>) -> ApiResult<Status> {
    let core = core.inner().clone();
    blocking(move || core.status()).await
}

#[tauri::command]
pub async fn add_folder(core: State<'_, Core>, path: String) -> ApiResult<Status> {
    let core = core.inner().clone();
    blocking(move || core.add_folder(&path)).await
}

#[tauri::command]
pub async fn remove_folder(core: State<'_, Core>, path: String) -> ApiResult<Status> {
    let core = core.inner().clone();
    blocking(move || core.remove_folder(&path)).await
}

/// The native folder dialog, opened at the suggested folder (~/Pictures). `None` when cancelled.
#[tauri::command]
pub async fn pick_folder(app: AppHandle, core: State<'_, Core>) -> ApiResult<Option<String>> {
    let start = core.state().suggested_folder;
    blocking(move || {
        let mut d = app.dialog().file().set_title("Add a photo folder");
        if let Some(s) = start {
            d = d.set_directory(s);
        }
        Ok(d.blocking_pick_folder()
            .and_then(|f| f.into_path().ok())
            .map(|p| p.to_string_lossy().into_owned()))
    })
    .await
}

#[tauri::command]
pub async fn search(core: State<'_, Core>, args: SearchArgs) -> ApiResult<SearchResponse> {
    let core = core.inner().clone();
    blocking(move || core.search(&args)).await
}

#[tauri::command]
pub async fn photo(core: State<'_, Core>, path: String) -> ApiResult<PhotoDetails> {
    let core = core.inner().clone();
    blocking(move || core.photo(&path)).await
}

#[tauri::command]
pub async fn tags(core: State<'_, Core>) -> ApiResult<Vec<TagCount>> {
    let core = core.inner().clone();
    blocking(move || core.tags()).await
}

#[tauri::command]
pub async fn save_settings(core: State<'_, Core>, settings: Settings) -> ApiResult<Settings> {
    let core = core.inner().clone();
    blocking(move || core.save_settings(settings)).await
}

/// Pick image files with the native dialog and treat them as dropped (the keyboard's drag-in).
#[tauri::command]
pub async fn compare_files(app: AppHandle, core: State<'_, Core>) -> ApiResult<Vec<DropResult>> {
    let core = core.inner().clone();
    blocking(move || {
        let picked = app
            .dialog()
            .file()
            .set_title("Compare photos with the library")
            .add_filter("Images", shoebox_core::scan::IMAGE_EXTENSIONS)
            .blocking_pick_files()
            .unwrap_or_default();
        let paths: Vec<PathBuf> = picked
            .into_iter()
            .filter_map(|f| f.into_path().ok())
            .collect();
        Ok(if paths.is_empty() {
            Vec::new()
        } else {
            core.handle_drop(paths)
        })
    })
    .await
}

/// Tests only (`SHOEBOX_TEST_DROP=1`): the same path as the window's drop event.
#[tauri::command]
pub async fn test_drop(core: State<'_, Core>, paths: Vec<String>) -> ApiResult<Vec<DropResult>> {
    let core = core.inner().clone();
    blocking(move || core.test_drop(paths)).await
}

/// Show a library photo (or dropped file) in the file manager.
#[tauri::command]
pub async fn reveal(app: AppHandle, core: State<'_, Core>, path: String) -> ApiResult<()> {
    let core = core.inner().clone();
    blocking(move || {
        let p = core.readable(&path)?;
        app.opener()
            .reveal_item_in_dir(&p)
            .map_err(|e| ApiError::new("open", e.to_string()))
    })
    .await
}

/// Open a library photo (or dropped file) with the system's image viewer.
#[tauri::command]
pub async fn open_photo(app: AppHandle, core: State<'_, Core>, path: String) -> ApiResult<()> {
    let core = core.inner().clone();
    blocking(move || {
        let p = core.readable(&path)?;
        app.opener()
            .open_path(p.to_string_lossy(), None::<&str>)
            .map_err(|e| ApiError::new("open", e.to_string()))
    })
    .await
}

#[tauri::command]
pub async fn classify_preview(
    core: State<'_, Core>,
    folder: String,
    labels: String,
) -> ApiResult<ClassifyPreview> {
    let core = core.inner().clone();
    blocking(move || core.classify_preview(&folder, &labels)).await
}

#[tauri::command]
pub async fn classify_apply(
    core: State<'_, Core>,
    action: String,
    dest: Option<String>,
) -> ApiResult<ClassifyApplied> {
    let core = core.inner().clone();
    blocking(move || core.classify_apply(&action, dest.as_deref())).await
}

#[tauri::command]
pub async fn classify_undo(core: State<'_, Core>) -> ApiResult<usize> {
    let core = core.inner().clone();
    blocking(move || core.classify_undo()).await
}

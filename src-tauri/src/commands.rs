//! The Tauri commands: each one forwards to a `Core` method (an engine call) on a blocking thread so
//! the UI thread never waits, and returns errors as `{code, message}`.
//!
//! Any script in the webview can call any of these with any arguments, so none of them widens what
//! the webview may reach on its own: folders come from the native folder dialog, or are typed and
//! then confirmed in a native dialog (`confirm_folder`); `Core` checks every path it is sent.

use std::path::PathBuf;

use shoebox_core::duplicates::DuplicatesReport;
use shoebox_core::library::{PlaceCount, Status};
use shoebox_core::search::{SearchResponse, Timeline};
use shoebox_core::tags::TagCount;
use shoebox_core::thumbs::PhotoDetails;
use tauri::{AppHandle, State};
use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};
use tauri_plugin_opener::OpenerExt;

use crate::core::{
    AppState, ClassifyApplied, ClassifyPreview, Core, DropResult, FolderUse, Question, SearchArgs,
};
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
pub async fn model_menu(
    core: State<'_, Core>,
) -> ApiResult<Vec<shoebox_core::models::menu::MenuEntry>> {
    let core = core.inner().clone();
    blocking(move || Ok(core.model_menu())).await
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

/// A yes/no question in a native dialog: the user's answer, which no script
/// in the webview can give. (Debug builds started with `SHOEBOX_TEST_CONFIRM=1` answer yes without
/// showing it: the end-to-end test cannot click a GTK dialog.)
fn native_ask<'a>(app: &'a AppHandle, core: &'a Core) -> impl FnMut(&Question) -> bool + 'a {
    move |q: &Question| {
        #[cfg(debug_assertions)]
        if core.test_hooks().confirm {
            log::warn!("test: answering yes to \"{}\"", q.title);
            return true;
        }
        let _ = core;
        app.dialog()
            .message(&q.message)
            .title(&q.title)
            .kind(if q.broad {
                MessageDialogKind::Warning
            } else {
                MessageDialogKind::Info
            })
            .buttons(MessageDialogButtons::OkCancelCustom(
                q.ok.clone(),
                "Cancel".to_string(),
            ))
            .blocking_show()
    }
}

/// The native folder dialog (for `purpose`: "library", "sort" or "dest"; the library by default),
/// opened at the suggested folder (~/Pictures). The folder picked may be used from now on (a broad
/// one only after a native warning says yes). `None` when cancelled.
#[tauri::command]
pub async fn pick_folder(
    app: AppHandle,
    core: State<'_, Core>,
    purpose: Option<FolderUse>,
) -> ApiResult<Option<String>> {
    let core = core.inner().clone();
    let purpose = purpose.unwrap_or(FolderUse::Library);
    let start = core.state().suggested_folder;
    blocking(move || {
        let mut d = app
            .dialog()
            .file()
            .set_title(purpose.picker_title())
            .set_can_create_directories(purpose == FolderUse::Destination);
        if let Some(s) = start {
            d = d.set_directory(s);
        }
        let Some(picked) = d.blocking_pick_folder().and_then(|f| f.into_path().ok()) else {
            return Ok(None);
        };
        core.grant_picked(&picked, purpose, &mut native_ask(&app, &core))
    })
    .await
}

/// A folder typed in the UI, which a command refused (`not_allowed`): ask the user in a native
/// dialog whether Shoebox may use it for `purpose`. True when it may now.
#[tauri::command]
pub async fn confirm_folder(
    app: AppHandle,
    core: State<'_, Core>,
    path: String,
    purpose: FolderUse,
) -> ApiResult<bool> {
    let core = core.inner().clone();
    blocking(move || core.grant_typed(&path, purpose, &mut native_ask(&app, &core))).await
}

#[tauri::command]
pub async fn search(core: State<'_, Core>, args: SearchArgs) -> ApiResult<SearchResponse> {
    let core = core.inner().clone();
    blocking(move || core.search(&args)).await
}

#[tauri::command]
pub async fn duplicates(
    core: State<'_, Core>,
    threshold: Option<f32>,
) -> ApiResult<DuplicatesReport> {
    let core = core.inner().clone();
    blocking(move || core.duplicates(threshold)).await
}

#[tauri::command]
pub async fn trash_photos(core: State<'_, Core>, paths: Vec<String>) -> ApiResult<usize> {
    let core = core.inner().clone();
    blocking(move || core.trash_photos(&paths)).await
}

#[tauri::command]
pub async fn undo_trash(core: State<'_, Core>) -> ApiResult<usize> {
    let core = core.inner().clone();
    blocking(move || core.undo_trash()).await
}

#[tauri::command]
pub async fn timeline(
    core: State<'_, Core>,
    args: SearchArgs,
    offset: usize,
    limit: usize,
) -> ApiResult<Timeline> {
    let core = core.inner().clone();
    blocking(move || core.timeline(&args, offset, limit)).await
}

#[tauri::command]
pub async fn places(core: State<'_, Core>) -> ApiResult<Vec<PlaceCount>> {
    let core = core.inner().clone();
    blocking(move || core.places()).await
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
            .add_filter(
                "Images",
                &shoebox_core::scan::image_extensions().collect::<Vec<_>>(),
            )
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

/// Tests only: the same path as the window's drop event. Debug builds only (and only when started
/// with `SHOEBOX_TEST_DROP=1`); release builds do not have this command.
#[cfg(debug_assertions)]
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

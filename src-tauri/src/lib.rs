//! The Shoebox desktop app (Tauri 2), in the shape GitButler uses: this crate registers commands,
//! holds state, forwards engine events and maps engine errors to `{code, message}`; every operation
//! is a `shoebox_core` function the CLI can call too.
//!
//! - `core`: the state and the operations (testable without a window);
//! - `commands`: the Tauri commands, thin wrappers over `core`;
//! - `protocol`: the `photo:` URI scheme serving thumbnails and images of library photos and
//!   dropped files only;
//! - `settings`: models and device from the CLI's environment variables and the Settings view.

pub mod commands;
pub mod core;
pub mod error;
pub mod protocol;
pub mod settings;

use std::sync::Arc;

use serde_json::{json, Value};
use tauri::{AppHandle, DragDropEvent, Emitter, Manager, RunEvent, WindowEvent};

use crate::core::{Core, EventSink};

/// Engine events go to every webview of the app.
struct TauriSink(AppHandle);

impl EventSink for TauriSink {
    fn emit(&self, event: &str, payload: Value) {
        if let Err(e) = self.0.emit(event, payload) {
            log::warn!("cannot emit {event}: {e}");
        }
    }
}

/// Build and run the app until its window closes.
pub fn run() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let app = tauri::Builder::default()
        .plugin(tauri_plugin_dialog::init())
        .plugin(tauri_plugin_opener::init())
        .register_asynchronous_uri_scheme_protocol("photo", |ctx, request, responder| {
            let app = ctx.app_handle().clone();
            let path = request.uri().path().to_string();
            let query = request.uri().query().map(str::to_string);
            tauri::async_runtime::spawn_blocking(move || {
                let response = match app.try_state::<Core>() {
                    Some(core) => protocol::respond(&core, &path, query.as_deref()),
                    None => protocol::unavailable(),
                };
                responder.respond(response);
            });
        })
        .setup(|app| {
            let core = Core::from_env(Arc::new(TauriSink(app.handle().clone())))?;
            app.manage(core.clone());
            core.start();
            Ok(())
        })
        .on_window_event(|window, event| {
            if let WindowEvent::DragDrop(ev) = event {
                match ev {
                    DragDropEvent::Enter { paths, .. } => {
                        let _ = window.emit(
                            "drag-hover",
                            json!({ "active": true, "count": paths.len() }),
                        );
                    }
                    DragDropEvent::Leave => {
                        let _ = window.emit("drag-hover", json!({ "active": false }));
                    }
                    DragDropEvent::Drop { paths, .. } => {
                        let _ = window.emit("drag-hover", json!({ "active": false }));
                        let core = window.state::<Core>().inner().clone();
                        let paths = paths.clone();
                        // Captioning takes a moment: never on the event loop.
                        std::thread::spawn(move || core.handle_drop(paths));
                    }
                    _ => {}
                }
            }
        })
        .invoke_handler(tauri::generate_handler![
            commands::get_state,
            commands::status,
            commands::add_folder,
            commands::remove_folder,
            commands::pick_folder,
            commands::search,
            commands::photo,
            commands::tags,
            commands::save_settings,
            commands::compare_files,
            commands::test_drop,
            commands::reveal,
            commands::open_photo,
            commands::classify_preview,
            commands::classify_apply,
            commands::classify_undo,
        ])
        .build(tauri::generate_context!())
        .expect("Shoebox could not start its window");
    app.run(|app, event| {
        if let RunEvent::Exit = event {
            // Let the writer finish its batch and save the index.
            if let Some(core) = app.try_state::<Core>() {
                core.shutdown();
            }
        }
    });
}

//! The Shoebox desktop app (Tauri 2), in the shape GitButler uses: this crate registers commands,
//! holds state, forwards engine events and maps engine errors to `{code, message}`; every operation
//! is a `shoebox_core` function the CLI can call too.
//!
//! - `core`: the state and the operations (testable without a window);
//! - `access`: what the webview may name (folders the user chose, files handed over), checked
//!   before the file system is touched;
//! - `commands`: the Tauri commands, thin wrappers over `core`;
//! - `protocol`: the `photo:` URI scheme serving thumbnails and images of library photos and files
//!   the user dropped, picked or previewed for sorting only;
//! - `settings`: models and device from the CLI's environment variables and the Settings view.

pub mod access;
pub mod commands;
pub mod core;
pub mod error;
pub mod protocol;
pub mod settings;

use std::sync::Arc;

use serde_json::{json, Value};
use tauri::{AppHandle, DragDropEvent, Emitter, Manager, RunEvent, WindowEvent};

use crate::core::{Core, EventSink};

/// The commands the webview may call, given to `$handler` (Tauri's `generate_handler`, or
/// [`names`] for [`COMMANDS`]). Test-only commands are compiled into debug builds only.
macro_rules! app_commands {
    ($($handler:tt)+) => {
        $($handler)+![
            commands::get_state,
            commands::status,
            commands::add_folder,
            commands::remove_folder,
            commands::pick_folder,
            commands::confirm_folder,
            commands::search,
            commands::timeline,
            commands::duplicates,
            commands::trash_photos,
            commands::undo_trash,
            commands::places,
            commands::photo,
            commands::tags,
            commands::save_settings,
            commands::model_menu,
            commands::compare_files,
            #[cfg(debug_assertions)]
            commands::test_drop,
            commands::reveal,
            commands::open_photo,
            commands::classify_preview,
            commands::classify_apply,
            commands::classify_undo,
        ]
    };
}

/// The names of a command list, with the same `cfg`s.
macro_rules! names {
    ($($(#[$cfg:meta])* commands::$name:ident),* $(,)?) => {
        &[$($(#[$cfg])* stringify!($name)),*]
    };
}

/// The commands this build registers (what any script in the webview can call).
pub const COMMANDS: &[&str] = app_commands!(names);

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
        .invoke_handler(app_commands!(tauri::generate_handler))
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

#[cfg(test)]
mod tests {
    use super::COMMANDS;

    /// Whether every line holding `needle` in `src` is an item under `#[cfg(debug_assertions)]`
    /// (among the attributes and doc comments right above it).
    fn debug_only(src: &str, needle: &str) -> Result<usize, String> {
        // The code, not its tests (this one names what it looks for).
        let code = src.split("\n#[cfg(test)]").next().unwrap_or(src);
        let lines: Vec<&str> = code.lines().collect();
        let mut found = 0;
        for (i, line) in lines.iter().enumerate() {
            let t = line.trim_start();
            if !t.contains(needle) || t.starts_with("//") || t.starts_with("\"") {
                continue;
            }
            found += 1;
            let gated = lines[..i]
                .iter()
                .rev()
                .map(|l| l.trim())
                .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
                .any(|l| l == "#[cfg(debug_assertions)]");
            if !gated {
                return Err(format!("line {}: {line}", i + 1));
            }
        }
        Ok(found)
    }

    /// Security issue 12: the test stand-in for the OS drop (`test_drop`, the switches that allow
    /// it) is compiled into debug builds only; a release build does not have the command at all.
    #[test]
    fn test_only_commands_are_left_out_of_release_builds() {
        let test_only: Vec<&str> = COMMANDS
            .iter()
            .copied()
            .filter(|c| c.starts_with("test_"))
            .collect();
        if cfg!(debug_assertions) {
            // The end-to-end test (a debug build, as `cargo test` makes) needs it.
            assert_eq!(test_only, ["test_drop"]);
        } else {
            assert!(test_only.is_empty(), "{test_only:?}");
        }
        assert!(COMMANDS.contains(&"classify_apply") && COMMANDS.contains(&"confirm_folder"));
        // What release builds leave out, checked in the source whichever build runs this.
        for (file, src, needles) in [
            (
                "lib.rs",
                include_str!("lib.rs"),
                &["commands::test_drop"][..],
            ),
            (
                "commands.rs",
                include_str!("commands.rs"),
                &["pub async fn test_drop"][..],
            ),
            (
                "core.rs",
                include_str!("core.rs"),
                &[
                    "pub fn test_drop",
                    "pub struct TestHooks",
                    "test_hooks: Mutex",
                    "pub fn test_hooks",
                    "pub fn set_test_hooks",
                ][..],
            ),
        ] {
            for needle in needles {
                match debug_only(src, needle) {
                    Ok(0) => panic!("{file}: no {needle}"),
                    Ok(_) => {}
                    Err(e) => panic!("{file}: {needle} is in release builds too ({e})"),
                }
            }
        }
    }
}

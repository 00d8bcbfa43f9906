//! The Shoebox desktop app's entry point: everything lives in the `shoebox_app` library.

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    shoebox_core::models::parallel::keep_candle_pool_out();
    shoebox_app::run()
}

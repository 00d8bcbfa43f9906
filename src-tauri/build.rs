//! Build script: tauri-build reads tauri.conf.json and the capabilities, and embeds `ui/`.

fn main() {
    tauri_build::build()
}

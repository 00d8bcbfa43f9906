//! The `photo:` URI scheme: thumbnails and full images for the webview, made by the engine, and only
//! of library photos and files the user dropped, picked or previewed for sorting — the webview gets
//! no filesystem access.
//!
//! URLs are what `convertFileSrc(path, "photo")` makes, plus the kind:
//! `photo://localhost/<percent-encoded absolute path>?kind=thumb|full`
//! (`http://photo.localhost/…` on Windows and Android).

use std::io::Read;
use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use shoebox_core::thumbs::{web_mime, ImageBytes};
use tauri::http::{header, Response, StatusCode};

use crate::core::{Core, OpenedFile};

/// Long side of full images rendered for formats a web view cannot show (TIFF).
const FULL_MAX_SIDE: u32 = 2560;

fn text(status: StatusCode, msg: &str) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(msg.as_bytes().to_vec())
        .expect("valid response")
}

/// The answer while the app is still starting.
pub fn unavailable() -> Response<Vec<u8>> {
    text(StatusCode::SERVICE_UNAVAILABLE, "Shoebox is starting")
}

/// Originals up to this size are served as they are (as the engine's `display_image` does).
const MAX_SERVED_ORIGINAL: u64 = 48 << 20;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Thumb,
    Full,
}

/// Answer one request: `uri_path` is the URL's path (`/<encoded file path>`), `query` its query.
/// The file is checked by name, opened once, checked where it really is, and served from what was
/// opened ([`Core::open_readable`], [`serve`]).
pub fn respond(core: &Core, uri_path: &str, query: Option<&str>) -> Response<Vec<u8>> {
    let encoded = uri_path.strip_prefix('/').unwrap_or(uri_path);
    let Ok(decoded) = percent_decode_str(encoded).decode_utf8() else {
        return text(StatusCode::BAD_REQUEST, "bad path encoding");
    };
    let path = PathBuf::from(decoded.as_ref());
    if !path.is_absolute() {
        return text(StatusCode::BAD_REQUEST, "absolute paths only");
    }
    let kind = match query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("kind="))
        .unwrap_or("thumb")
    {
        "thumb" => Kind::Thumb,
        "full" => Kind::Full,
        _ => return text(StatusCode::BAD_REQUEST, "kind must be thumb or full"),
    };
    match core.open_readable(&path) {
        Ok(opened) => serve(core, &opened, kind),
        Err(e) if e.code == "not_allowed" => text(
            StatusCode::FORBIDDEN,
            "not a library photo or a file you dropped, picked or previewed",
        ),
        Err(e) => text(StatusCode::NOT_FOUND, &e.message),
    }
}

/// Serve an opened, checked file. Full images: the bytes of the opened file itself (or, for formats
/// a web view cannot show, the engine's rendering of it through a path naming that same open file on
/// Linux). Thumbnails: the engine's cache is keyed by path, so it gets the checked, canonical path;
/// a thumbnail made while that path no longer named the opened file is refused.
pub fn serve(core: &Core, opened: &OpenedFile, kind: Kind) -> Response<Vec<u8>> {
    let result = match kind {
        Kind::Full => full_image(opened),
        Kind::Thumb => shoebox_core::thumbs::thumbnail(core.libdir(), &opened.path).and_then(|t| {
            std::fs::read(&t)
                .map(|bytes| ImageBytes {
                    bytes,
                    mime: "image/jpeg",
                })
                .map_err(|e| shoebox_core::Error::Io {
                    path: t.clone(),
                    source: e,
                })
        }),
    };
    // The engine read by path: make sure the path still named the file that was checked.
    if kind == Kind::Thumb && !opened.still_at(&opened.path) {
        return text(StatusCode::CONFLICT, "the file changed while it was read");
    }
    match result {
        Ok(img) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, img.mime)
            .header(header::CACHE_CONTROL, "max-age=60")
            .body(img.bytes)
            .expect("valid response"),
        Err(e @ shoebox_core::Error::Decode { .. }) => {
            text(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())
        }
        Err(e) => text(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

/// The full image of an opened file: its own bytes when a web view shows the format, else rendered.
fn full_image(opened: &OpenedFile) -> shoebox_core::Result<ImageBytes> {
    let io = |e| shoebox_core::Error::Io {
        path: opened.path.clone(),
        source: e,
    };
    let size = opened.file.metadata().map_err(io)?.len();
    if let Some(mime) = web_mime(&opened.path) {
        if size <= MAX_SERVED_ORIGINAL {
            let mut bytes = Vec::with_capacity(size as usize);
            (&opened.file)
                .take(MAX_SERVED_ORIGINAL + 1)
                .read_to_end(&mut bytes)
                .map_err(io)?;
            if bytes.len() as u64 <= MAX_SERVED_ORIGINAL {
                return Ok(ImageBytes { bytes, mime });
            }
        }
    }
    // The path has no image extension on Linux (`/proc/self/fd/N`): the engine renders by content,
    // told the real name's extension (which is what marks a camera RAW).
    let ext = shoebox_core::decode::extension(&opened.path);
    shoebox_core::thumbs::display_image_as(&opened.reopen_path(), ext.as_deref(), FULL_MAX_SIDE)
}

//! The `photo:` URI scheme: thumbnails and full images for the webview, made by the engine, and only
//! of library photos and files the user dropped or picked — the webview gets no filesystem access.
//!
//! URLs are what `convertFileSrc(path, "photo")` makes, plus the kind:
//! `photo://localhost/<percent-encoded absolute path>?kind=thumb|full`
//! (`http://photo.localhost/…` on Windows and Android).

use std::path::PathBuf;

use percent_encoding::percent_decode_str;
use tauri::http::{header, Response, StatusCode};

use crate::core::Core;

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

/// Answer one request: `uri_path` is the URL's path (`/<encoded file path>`), `query` its query.
pub fn respond(core: &Core, uri_path: &str, query: Option<&str>) -> Response<Vec<u8>> {
    let encoded = uri_path.strip_prefix('/').unwrap_or(uri_path);
    let Ok(decoded) = percent_decode_str(encoded).decode_utf8() else {
        return text(StatusCode::BAD_REQUEST, "bad path encoding");
    };
    let path = PathBuf::from(decoded.as_ref());
    if !path.is_absolute() {
        return text(StatusCode::BAD_REQUEST, "absolute paths only");
    }
    let kind = query
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("kind="))
        .unwrap_or("thumb");
    if !core.may_read(&path) {
        return text(
            StatusCode::FORBIDDEN,
            "not a library photo or a dropped file",
        );
    }
    let result = match kind {
        "thumb" => shoebox_core::thumbs::thumbnail(core.libdir(), &path).and_then(|t| {
            std::fs::read(&t)
                .map(|bytes| shoebox_core::thumbs::ImageBytes {
                    bytes,
                    mime: "image/jpeg",
                })
                .map_err(|e| shoebox_core::Error::Io {
                    path: t.clone(),
                    source: e,
                })
        }),
        "full" => shoebox_core::thumbs::display_image(&path, FULL_MAX_SIDE),
        _ => return text(StatusCode::BAD_REQUEST, "kind must be thumb or full"),
    };
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

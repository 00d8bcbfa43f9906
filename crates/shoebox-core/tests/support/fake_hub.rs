//! A local stand-in for the Hugging Face hub's file API, for tests that fetch a model by hub id
//! (this machine cannot reach the hub): ranged GETs under /{id}/resolve/{revision}/{file}, a git
//! blob id (40 hex digits) as the etag of each file and the commit in x-repo-commit. It can serve
//! `.safetensors` files as LFS files do (a redirect to a CDN path, x-linked-etag with their sha256,
//! x-linked-size), and answer like a hostile hub ([`Lies`]). Shared by shoebox-core's download tests
//! and the app's end-to-end test.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

/// What the stand-in says about some files instead of the truth.
#[derive(Clone, Debug, Default)]
pub struct Lies {
    /// The files lied about (by name); every file when empty.
    pub files: Vec<String>,
    /// Headers of the answer under /resolve/: each set to the value, or left out when it is `None`.
    pub headers: Vec<(&'static str, Option<String>)>,
    /// The status of that answer instead of its own (a 302 whose `location` is in `headers`, say).
    pub status: Option<u16>,
    /// The bytes served with one of them changed (the headers still describe the true file).
    pub corrupt: bool,
}

/// How the stand-in answers.
#[derive(Clone, Default)]
pub struct Options {
    /// `.safetensors` bodies pause this long every 256 KiB, so that downloads take a while.
    pub pause: Duration,
    /// Serve `.safetensors` files as LFS files, with the sha256 (hex) this computes: the hub's
    /// answer is a 302 to /lfs-cdn/{id}/{file} with x-linked-etag and x-linked-size. (A function,
    /// so that this file needs no hashing crate of its own.)
    pub lfs_sha256: Option<fn(&[u8]) -> String>,
    pub lies: Lies,
}

/// A body that pauses every 256 KiB.
struct Slow {
    data: std::io::Cursor<Vec<u8>>,
    pause: Duration,
}

impl Read for Slow {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        const PIECE: u64 = 256 * 1024;
        let into_piece = self.data.position() % PIECE;
        if into_piece == 0 {
            std::thread::sleep(self.pause);
        }
        let n = buf.len().min((PIECE - into_piece) as usize);
        self.data.read(&mut buf[..n])
    }
}

/// A stand-in for a file's git blob id: 40 hex digits that differ with the contents (FNV-1a).
fn blob_id(bytes: &[u8]) -> String {
    let mut out = String::new();
    for seed in 0..3u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for b in bytes {
            h = (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(40);
    out
}

/// Serve `repos` (hub id → folder) as the hub does, `.safetensors` bodies pausing `pause` every
/// 256 KiB so that downloads take a while. Returns the base URL and a request count.
pub fn serve(repos: HashMap<String, PathBuf>, pause: Duration) -> (String, Arc<AtomicUsize>) {
    serve_with(
        repos,
        Options {
            pause,
            ..Options::default()
        },
    )
}

/// Serve `repos` (hub id → folder) as `options` say. Returns the base URL and a request count.
pub fn serve_with(repos: HashMap<String, PathBuf>, options: Options) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}", server.server_addr());
    let base = url.clone();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            seen.fetch_add(1, Ordering::SeqCst);
            let path = req.url().trim_start_matches('/').to_string();
            // /{id}/resolve/{revision}/{file}, or an LFS file's bytes at /lfs-cdn/{id}/{file}.
            let (cdn, asked) = match path.strip_prefix("lfs-cdn/") {
                Some(rest) => (
                    true,
                    rest.rsplit_once('/')
                        .map(|(id, name)| (id.to_string(), name.to_string())),
                ),
                None => (
                    false,
                    path.split_once("/resolve/").and_then(|(id, rest)| {
                        let (_rev, name) = rest.split_once('/')?;
                        Some((id.to_string(), name.to_string()))
                    }),
                ),
            };
            let file = asked.and_then(|(id, name)| {
                let dir = repos.get(&id)?;
                std::fs::read(dir.join(&name)).ok().map(|b| (id, name, b))
            });
            let Some((id, name, mut bytes)) = file else {
                let _ = req.respond(tiny_http::Response::empty(404));
                continue;
            };
            let lied_about = options.lies.files.is_empty() || options.lies.files.contains(&name);
            let lies = if lied_about {
                options.lies.clone()
            } else {
                Lies::default()
            };
            let total = bytes.len();
            let header = |k: &str, v: String| tiny_http::Header::from_bytes(k, v).unwrap();
            let mut headers = vec![
                header("etag", format!("\"{}\"", blob_id(&bytes))),
                header("x-repo-commit", COMMIT.to_string()),
            ];
            let lfs = name
                .ends_with(".safetensors")
                .then_some(options.lfs_sha256)
                .flatten();
            let redirect = lfs.is_some() && !cdn;
            if let (Some(sha256), false) = (lfs, cdn) {
                headers.push(header("x-linked-etag", format!("\"{}\"", sha256(&bytes))));
                headers.push(header("x-linked-size", total.to_string()));
                headers.push(header("location", format!("{base}/lfs-cdn/{id}/{name}")));
            }
            if !cdn {
                for (k, v) in &lies.headers {
                    headers.retain(|h| !h.field.equiv(k));
                    if let Some(v) = v {
                        headers.push(header(k, v.clone()));
                    }
                }
            }
            if let (Some(status), false) = (lies.status, cdn) {
                let resp = tiny_http::Response::new(
                    status.into(),
                    headers,
                    std::io::empty(),
                    Some(0),
                    None,
                );
                let _ = req.respond(resp);
                continue;
            }
            if redirect {
                let resp =
                    tiny_http::Response::new(302.into(), headers, std::io::empty(), Some(0), None);
                let _ = req.respond(resp);
                continue;
            }
            if lies.corrupt {
                if let Some(b) = bytes.last_mut() {
                    *b ^= 0xff;
                }
            }
            let start: usize = req
                .headers()
                .iter()
                .find(|h| h.field.equiv("Range"))
                .and_then(|h| {
                    h.value
                        .as_str()
                        .strip_prefix("bytes=")?
                        .split('-')
                        .next()?
                        .parse()
                        .ok()
                })
                .unwrap_or(0);
            let probe = req
                .headers()
                .iter()
                .any(|h| h.field.equiv("Range") && h.value.as_str() == "bytes=0-0");
            let end = if probe { 1 } else { bytes.len() };
            let body = bytes[start.min(total)..end.min(total)].to_vec();
            let len = body.len();
            headers.push(header(
                "content-range",
                format!("bytes {start}-{}/{total}", (start + len).max(1) - 1),
            ));
            let slow = !probe && name.ends_with(".safetensors");
            let reader: Box<dyn Read + Send> = if slow {
                Box::new(Slow {
                    data: std::io::Cursor::new(body),
                    pause: options.pause,
                })
            } else {
                Box::new(std::io::Cursor::new(body))
            };
            let resp = tiny_http::Response::new(206.into(), headers, reader, Some(len), None);
            let _ = req.respond(resp);
        }
    });
    (url, count)
}

//! A local stand-in for the Hugging Face hub's file API, for tests that fetch a model by hub id
//! with the real hf-hub client (this machine cannot reach the hub): ranged GETs under
//! /{id}/resolve/{revision}/{file}, an etag per file and the commit in x-repo-commit. Shared by
//! shoebox-core's download test and the app's end-to-end test.

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

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

/// Serve `repos` (hub id → folder) as the hub does, `.safetensors` bodies pausing `pause` every
/// 256 KiB so that downloads take a while. Returns the base URL and a request count.
pub fn serve(repos: HashMap<String, PathBuf>, pause: Duration) -> (String, Arc<AtomicUsize>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("a local port");
    let url = format!("http://{}", server.server_addr());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&count);
    std::thread::spawn(move || {
        for req in server.incoming_requests() {
            seen.fetch_add(1, Ordering::SeqCst);
            let path = req.url().trim_start_matches('/').to_string();
            let file = path.split_once("/resolve/").and_then(|(id, rest)| {
                let (_rev, name) = rest.split_once('/')?;
                let dir = repos.get(id)?;
                std::fs::read(dir.join(name))
                    .ok()
                    .map(|b| (name.to_string(), b))
            });
            let Some((name, bytes)) = file else {
                let _ = req.respond(tiny_http::Response::empty(404));
                continue;
            };
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
            let total = bytes.len();
            let body = bytes[start.min(total)..end.min(total)].to_vec();
            let len = body.len();
            let header = |k: &str, v: String| tiny_http::Header::from_bytes(k, v).unwrap();
            let headers = vec![
                header("etag", format!("\"{name}-{total}\"")),
                header("x-repo-commit", COMMIT.to_string()),
                header(
                    "content-range",
                    format!("bytes {start}-{}/{total}", (start + len).max(1) - 1),
                ),
            ];
            let slow = !probe && name.ends_with(".safetensors");
            let reader: Box<dyn Read + Send> = if slow {
                Box::new(Slow {
                    data: std::io::Cursor::new(body),
                    pause,
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

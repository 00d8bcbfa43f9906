//! Places: how fast the query library's GPS positions are reverse-geocoded (the same catalog calls
//! and GeoNames lookup `index` makes), and how much the positions and places add to the catalog.

use std::path::Path;
use std::time::Instant;

use serde_json::json;
use shoebox_core::catalog::Catalog;
use shoebox_core::{places, Error, Result};

use super::Run;
use crate::report::round;

/// Capitals and big towns on every continent the bench's photos are taken around.
const TOWNS: &[(f64, f64)] = &[
    (38.7223, -9.1393),
    (48.8566, 2.3522),
    (35.6895, 139.6917),
    (40.7128, -74.0060),
    (-23.5505, -46.6333),
    (-33.8688, 151.2093),
    (-33.9249, 18.4241),
    (28.6139, 77.2090),
    (55.7558, 37.6173),
    (19.4326, -99.1332),
    (1.3521, 103.8198),
    (64.1466, -21.9426),
];

/// The position of the bench's photo `i`: seven in ten have one, scattered up to about 20 km
/// around one of [`TOWNS`].
pub(crate) fn bench_position(i: usize) -> Option<(f64, f64)> {
    if i % 10 >= 7 {
        return None;
    }
    let (lat, lon) = TOWNS[i % TOWNS.len()];
    let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let jitter = |bits: u64| ((bits & 0xFFFF) as f64 / 65535.0 - 0.5) * 0.36;
    Some((lat + jitter(h >> 8), lon + jitter(h >> 32)))
}

impl Run<'_> {
    /// Geocode every position in the query library's catalog; note photos/s and the catalog bytes
    /// that positions and places take per 100k photos.
    pub(super) fn measure_places(&mut self, lib_dir: &Path, photos: usize) -> Result<()> {
        self.progress("reverse-geocoding the query library's GPS positions");
        let mut cat = Catalog::open(&lib_dir.join("catalog.sqlite"))?;
        let t = Instant::now();
        let mut located = 0;
        let mut positions = 0;
        loop {
            let rows = cat.photos_to_geocode(5000)?;
            if rows.is_empty() {
                break;
            }
            positions += rows.len();
            let found: Vec<_> = rows
                .into_iter()
                .map(|(id, lat, lon)| (id, places::locate(lat, lon)))
                .collect();
            located += found.iter().filter(|p| p.1.is_some()).count();
            cat.set_places(&found)?;
        }
        let secs = t.elapsed().as_secs_f64();
        // Compact copies with and without positions and places tell what they cost on disk.
        let with = lib_dir.join("places-with.sqlite");
        let without = lib_dir.join("places-without.sqlite");
        let conn = cat.connection();
        let err = |e: rusqlite::Error| Error::Invalid(format!("measuring the catalog: {e}"));
        for p in [&with, &without] {
            let _ = std::fs::remove_file(p);
        }
        conn.execute("VACUUM INTO ?1", [with.to_string_lossy()])
            .map_err(err)?;
        conn.execute("VACUUM INTO ?1", [without.to_string_lossy()])
            .map_err(err)?;
        let copy = rusqlite::Connection::open(&without).map_err(err)?;
        copy.execute_batch(
            "UPDATE photos SET lat = NULL, lon = NULL, taken_offset = NULL, place_id = NULL;
             DELETE FROM places; VACUUM;",
        )
        .map_err(err)?;
        drop(copy);
        let size = |p: &Path| std::fs::metadata(p).map(|m| m.len() as f64).unwrap_or(0.0);
        let added = (size(&with) - size(&without)).max(0.0);
        for p in [&with, &without] {
            let _ = std::fs::remove_file(p);
        }
        self.note(
            "places",
            json!({
                "photos": photos,
                "positions": positions,
                "located": located,
                "geocode_photos_s": round(positions as f64 / secs.max(1e-9), 0),
                "catalog_mb_per_100k": round(added / 1048576.0 * 100_000.0 / photos.max(1) as f64, 2),
            }),
        );
        Ok(())
    }
}

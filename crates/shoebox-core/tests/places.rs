//! Places and the timeline through the engine: EXIF GPS and time zone offsets read, positions
//! reverse-geocoded offline, place filters, the timeline newest first with its months, place
//! words in a query, photos indexed before positions were kept, and a changed file.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use shoebox_core::search::{SearchInput, SearchMode};
use shoebox_core::Library;

fn places_dir() -> PathBuf {
    fixtures().join("data/places")
}

fn names(r: &[shoebox_core::search::SearchHit]) -> Vec<String> {
    r.iter()
        .map(|h| {
            Path::new(&h.path)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn search(lib: &mut Library, input: SearchInput) -> shoebox_core::search::SearchResponse {
    lib.search(&input.into_request().unwrap()).unwrap()
}

fn library(tmp: &Path) -> Library {
    let photos = tmp.join("photos");
    copy_fixture_photos(&places_dir(), &photos);
    let mut lib = open_library(&tmp.join("lib"));
    lib.add_folders(std::slice::from_ref(&photos)).unwrap();
    index(&mut lib);
    lib
}

#[test]
fn exif_positions_and_offsets_are_read() {
    let e = shoebox_core::decode::read_file_exif(&places_dir().join("capetown_2017.jpg")).unwrap();
    let (lat, lon) = e.gps.unwrap();
    assert!(
        (lat + 33.9249).abs() < 1e-4 && (lon - 18.4241).abs() < 1e-4,
        "{lat} {lon}"
    );
    assert_eq!(e.taken_offset.as_deref(), Some("+02:00"));
    let e = shoebox_core::decode::read_file_exif(&places_dir().join("nogps_2015.jpg")).unwrap();
    assert_eq!((e.gps, e.taken_offset), (None, None));
    assert_eq!(e.taken_at.as_deref(), Some("2015-05-05T05:05:05"));
}

#[test]
fn photos_get_places_and_filters_find_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lib = library(tmp.path());

    let places: BTreeMap<String, usize> = lib
        .places()
        .unwrap()
        .into_iter()
        .map(|p| (format!("{}, {}", p.city, p.country), p.count))
        .collect();
    assert_eq!(places.get("Lisbon, Portugal"), Some(&2), "{places:?}");
    assert_eq!(places.get("Tokyo, Japan"), Some(&1), "{places:?}");
    assert_eq!(places.get("Sao Paulo, Brazil"), Some(&1), "{places:?}");
    // Ten positions; the one at sea has no town within reach; two photos have no GPS.
    assert_eq!(places.values().sum::<usize>(), 10, "{places:?}");

    let by = |lib: &mut Library, places: &[&str]| {
        names(
            &search(
                lib,
                SearchInput {
                    places: places.iter().map(|s| s.to_string()).collect(),
                    limit: Some(100),
                    ..Default::default()
                },
            )
            .results,
        )
    };
    assert_eq!(by(&mut lib, &["LISBON"]), ["lisbon_2019", "lisbon_2016"]);
    assert_eq!(
        by(&mut lib, &["portugal"]),
        ["porto_2021", "lisbon_2019", "lisbon_2016"]
    );
    assert_eq!(by(&mut lib, &["São Paulo"]), ["saopaulo_2022"]);
    assert_eq!(by(&mut lib, &["zürich"]), ["zurich_2020"]);
    assert_eq!(by(&mut lib, &["USA"]), ["newyork_2018"]);
    assert_eq!(
        by(&mut lib, &["Japan", "brazil"]),
        ["kyoto_2023", "saopaulo_2022", "tokyo_2019"]
    );
    assert!(by(&mut lib, &["Atlantis"]).is_empty());

    // Within 10 km of central Lisbon; within 400 km reaches Porto.
    let near = |lib: &mut Library, near: &str| {
        names(
            &search(
                lib,
                SearchInput {
                    near: Some(near.into()),
                    limit: Some(100),
                    ..Default::default()
                },
            )
            .results,
        )
    };
    assert_eq!(
        near(&mut lib, "38.72,-9.14,10"),
        ["lisbon_2019", "lisbon_2016"]
    );
    assert_eq!(
        near(&mut lib, "38.72,-9.14,400"),
        ["porto_2021", "lisbon_2019", "lisbon_2016"]
    );

    // Hits carry their place; a photo without GPS carries none.
    let r = search(
        &mut lib,
        SearchInput {
            query: Some("a photo of a red circle".into()),
            limit: Some(100),
            ..Default::default()
        },
    );
    let tokyo = r
        .results
        .iter()
        .find(|h| h.path.ends_with("tokyo_2019.jpg"))
        .unwrap();
    let place = tokyo.place.as_ref().unwrap();
    assert_eq!(
        (place.city.as_str(), place.country.as_str()),
        ("Tokyo", "Japan")
    );
    assert!((place.lat - 35.6895).abs() < 1e-3 && (place.lon - 139.6917).abs() < 1e-3);
    let nogps = r
        .results
        .iter()
        .find(|h| h.path.ends_with("nogps_2015.jpg"))
        .unwrap();
    assert!(nogps.place.is_none());

    // The photo view shows the place and the time zone of the capture time.
    let d = lib
        .photo_details(&tmp.path().join("photos/kyoto_2023.jpg"))
        .unwrap();
    assert_eq!(d.taken_at.as_deref(), Some("2023-11-20T15:45:00"));
    assert_eq!(d.taken_offset.as_deref(), Some("+09:00"));
    assert_eq!(d.place.unwrap().city, "Kyoto");
}

#[test]
fn timeline_lists_newest_first_with_months() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lib = library(tmp.path());
    // No query: every photo, newest first (the PNG has no EXIF: its file time, today, is newest).
    let r = search(
        &mut lib,
        SearchInput {
            limit: Some(100),
            ..Default::default()
        },
    );
    assert_eq!(r.mode, SearchMode::Timeline);
    assert_eq!(
        names(&r.results),
        [
            "noexif",
            "sydney_2024",
            "kyoto_2023",
            "saopaulo_2022",
            "porto_2021",
            "zurich_2020",
            "lisbon_2019",
            "tokyo_2019",
            "newyork_2018",
            "capetown_2017",
            "lisbon_2016",
            "nogps_2015",
            "atsea_2014"
        ]
    );
    assert!(r.results.windows(2).all(|w| w[0].date >= w[1].date));

    // Pages and months, unfiltered (SQL) and filtered (in memory), agree with each other.
    let req = SearchInput::default().into_request().unwrap();
    let t = lib.timeline(&req, 2, 3).unwrap();
    assert_eq!(t.total, 13);
    assert_eq!(t.offset, 2);
    assert_eq!(
        names(&t.results),
        ["kyoto_2023", "saopaulo_2022", "porto_2021"]
    );
    assert_eq!(t.months.len(), 13);
    assert_eq!(
        (t.months[1].month.as_str(), t.months[1].count),
        ("2024-03", 1)
    );
    assert_eq!(t.months.iter().map(|m| m.count).sum::<usize>(), 13);
    let filtered = SearchInput {
        after: Some("2019".into()),
        before: Some("2020".into()),
        ..Default::default()
    }
    .into_request()
    .unwrap();
    let t = lib.timeline(&filtered, 0, 10).unwrap();
    assert_eq!(t.total, 2);
    assert_eq!(names(&t.results), ["lisbon_2019", "tokyo_2019"]);
    assert_eq!(
        t.months
            .iter()
            .map(|m| (m.month.as_str(), m.count))
            .collect::<Vec<_>>(),
        [("2019-06", 1), ("2019-04", 1)]
    );
}

#[test]
fn place_words_in_a_query_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lib = library(tmp.path());
    let r = search(
        &mut lib,
        SearchInput {
            query: Some("a photo of a red circle in Portugal".into()),
            limit: Some(100),
            ..Default::default()
        },
    );
    assert_eq!(r.place_filter, ["Portugal"]);
    assert_eq!(r.query, "a photo of a red circle in Portugal");
    let found = names(&r.results);
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0], "lisbon_2019", "the red circle in Portugal first");
    // A place word alone lists that place newest first.
    let r = search(
        &mut lib,
        SearchInput {
            query: Some("Tokyo".into()),
            ..Default::default()
        },
    );
    assert_eq!(r.mode, SearchMode::Timeline);
    assert_eq!(names(&r.results), ["tokyo_2019"]);
    // Words that name no place of the library stay in the query.
    let r = search(
        &mut lib,
        SearchInput {
            query: Some("a red circle in Paris".into()),
            ..Default::default()
        },
    );
    assert!(r.place_filter.is_empty());
    assert_eq!(r.mode, SearchMode::Clip);
}

#[test]
fn older_rows_are_read_again_and_changed_files_geocoded_again() {
    let tmp = tempfile::tempdir().unwrap();
    let mut lib = library(tmp.path());
    let count = |lib: &Library| -> i64 {
        lib.catalog()
            .connection()
            .query_row(
                "SELECT COUNT(*) FROM photos WHERE place_id IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(count(&lib), 10);
    // As a catalog indexed before schema 4 holds them: no positions, EXIF not read for them.
    lib.catalog()
        .connection()
        .execute_batch(
            "UPDATE photos SET lat = NULL, lon = NULL, taken_offset = NULL, place_id = NULL, \
             geocoded = 0, meta_version = 0",
        )
        .unwrap();
    assert_eq!(count(&lib), 0);
    index(&mut lib);
    assert_eq!(count(&lib), 10, "positions read again and geocoded");

    // A file replaced by one taken elsewhere (Tokyo's photo over Lisbon's) moves to Tokyo.
    let photos = tmp.path().join("photos");
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::copy(
        photos.join("tokyo_2019.jpg"),
        photos.join("lisbon_2016.jpg"),
    )
    .unwrap();
    index(&mut lib);
    let lisbon = search(
        &mut lib,
        SearchInput {
            places: vec!["Lisbon".into()],
            ..Default::default()
        },
    );
    assert_eq!(names(&lisbon.results), ["lisbon_2019"]);
    let tokyo = search(
        &mut lib,
        SearchInput {
            places: vec!["tokyo".into()],
            ..Default::default()
        },
    );
    assert_eq!(names(&tokyo.results).len(), 2);
}

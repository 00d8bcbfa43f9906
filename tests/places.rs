//! `shoebox search --place/--near`, search without a query (newest first), place words in a query,
//! and `shoebox places`, end to end over the places fixture (JPEGs with EXIF GPS in cities on five
//! continents, some without).

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

fn library() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    std::fs::create_dir_all(&photos).unwrap();
    for e in std::fs::read_dir(fixtures().join("data/places")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "jpg" || x == "png") {
            std::fs::copy(&p, photos.join(p.file_name().unwrap())).unwrap();
        }
    }
    let lib = tmp.path().join("lib");
    ok(shoebox(&lib, &["add", photos.to_str().unwrap()]));
    ok(shoebox(&lib, &["-q", "index"]));
    tmp
}

fn stems(r: &Value) -> Vec<String> {
    r["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            Path::new(h["path"].as_str().unwrap())
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

#[test]
fn place_filters_timeline_and_places_from_the_cli() {
    let tmp = library();
    let lib = tmp.path().join("lib");
    let search = |args: &[&str]| {
        let mut all = vec!["search", "--json", "--limit", "100"];
        all.extend_from_slice(args);
        json(shoebox(&lib, &all))
    };

    // No query: newest first, every photo, mode "timeline".
    let r = search(&[]);
    assert_eq!(r["mode"], "timeline");
    assert_eq!(stems(&r).len(), 13);
    assert_eq!(stems(&r)[1], "sydney_2024");
    assert_eq!(r["place_filter"], serde_json::json!([]));

    // Filters without a query: `search --place Lisbon --after 2019`.
    let r = search(&["--place", "Lisbon", "--after", "2019"]);
    assert_eq!(stems(&r), ["lisbon_2019"]);
    let r = search(&["--place", "PORTUGAL"]);
    assert_eq!(stems(&r), ["porto_2021", "lisbon_2019", "lisbon_2016"]);
    let r = search(&["--place", "são paulo", "--place", "Japan"]);
    assert_eq!(stems(&r), ["kyoto_2023", "saopaulo_2022", "tokyo_2019"]);
    let place = &r["results"][1]["place"];
    assert_eq!(place["city"], "Sao Paulo");
    assert_eq!(place["country"], "Brazil");
    assert!((place["lat"].as_f64().unwrap() + 23.5505).abs() < 1e-3);
    let r = search(&["--near", "-33.87,151.21,5"]);
    assert_eq!(stems(&r), ["sydney_2024"]);

    // A query with a place word: the place filters, the rest ranks.
    let r = search(&["a photo of a red circle in Japan"]);
    assert_eq!(r["place_filter"], serde_json::json!(["Japan"]));
    assert_eq!(r["mode"], "clip");
    assert_eq!(stems(&r)[0], "tokyo_2019");
    assert_eq!(stems(&r).len(), 2);
    // Photos without a place carry null.
    let r = search(&["a photo of a blue triangle"]);
    let nogps = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["path"].as_str().unwrap().ends_with("nogps_2015.jpg"))
        .unwrap();
    assert!(nogps["place"].is_null());

    // Plain output of the timeline shows dates.
    let out = ok(shoebox(&lib, &["search", "--place", "kyoto"]));
    assert!(
        out.contains("2023-11-20T15:45:00") && out.contains("kyoto_2023.jpg"),
        "{out}"
    );

    // The places facet.
    let p = json(shoebox(&lib, &["places", "--json"]));
    let lisbon = p
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["city"] == "Lisbon")
        .unwrap();
    assert_eq!(lisbon["country"], "Portugal");
    assert_eq!(lisbon["country_code"], "PT");
    assert_eq!(lisbon["count"], 2);
    let total: u64 = p
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 10);

    // A bad position is refused with a clear message.
    let out = shoebox(&lib, &["search", "--near", "100,0"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("LAT,LON"), "{err}");
}

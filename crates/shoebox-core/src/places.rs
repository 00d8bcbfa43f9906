//! Places: GPS positions reverse-geocoded offline to city, region and country (GeoNames data
//! shipped in the `reverse_geocoder` crate), place names folded for matching, and distances.
//!
//! Nothing here touches the network: the GeoNames table (cities with 1000+ people, CC BY 4.0) is
//! compiled into the binary and loaded once per process, the first time a photo needs a place.

use std::sync::OnceLock;

use reverse_geocoder::ReverseGeocoder;
use serde::Serialize;

use crate::error::{Error, Result};

/// The farthest a photo may be from the nearest known town and still be given its place: a
/// position at sea or in a desert gets none rather than a town hundreds of kilometres away.
pub const MAX_PLACE_KM: f64 = 100.0;

/// The radius `--near LAT,LON` uses when none is given.
pub const DEFAULT_NEAR_KM: f64 = 25.0;

const EARTH_KM: f64 = 6371.0088;

/// A photo's place as stored: names as GeoNames writes them (ASCII), and the ISO country code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Place {
    pub city: String,
    pub region: String,
    pub cc: String,
}

impl Place {
    /// The country's name as people say it ("United States", not the ISO long form).
    pub fn country(&self) -> String {
        country_name(&self.cc)
    }
}

/// A place as search results and the photo view show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlaceInfo {
    pub city: String,
    pub region: String,
    pub country: String,
    pub lat: f64,
    pub lon: f64,
}

fn geocoder() -> &'static ReverseGeocoder {
    static G: OnceLock<ReverseGeocoder> = OnceLock::new();
    G.get_or_init(ReverseGeocoder::new)
}

/// Whether a position is a real one (EXIF can hold anything).
pub fn valid_position(lat: f64, lon: f64) -> bool {
    lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0
}

/// The place of a position: the nearest GeoNames town within [`MAX_PLACE_KM`], else None.
pub fn locate(lat: f64, lon: f64) -> Option<Place> {
    if !valid_position(lat, lon) {
        return None;
    }
    let r = geocoder().search((lat, lon)).record;
    if distance_km((lat, lon), (r.lat, r.lon)) > MAX_PLACE_KM {
        return None;
    }
    Some(Place {
        city: r.name.clone(),
        region: r.admin1.clone(),
        cc: r.cc.clone(),
    })
}

/// Great-circle distance in kilometres (haversine).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_KM * h.sqrt().min(1.0).asin()
}

/// Short names for countries whose ISO 3166 name is not what people call them.
const COMMON_NAMES: &[(&str, &str)] = &[
    ("BO", "Bolivia"),
    ("BN", "Brunei"),
    ("CD", "DR Congo"),
    ("CZ", "Czechia"),
    ("FM", "Micronesia"),
    ("GB", "United Kingdom"),
    ("IR", "Iran"),
    ("KP", "North Korea"),
    ("KR", "South Korea"),
    ("LA", "Laos"),
    ("MD", "Moldova"),
    ("MK", "North Macedonia"),
    ("PS", "Palestine"),
    ("RU", "Russia"),
    ("SY", "Syria"),
    ("SZ", "Eswatini"),
    ("TR", "Turkey"),
    ("TW", "Taiwan"),
    ("TZ", "Tanzania"),
    ("US", "United States"),
    ("VA", "Vatican City"),
    ("VE", "Venezuela"),
    ("VN", "Vietnam"),
];

/// Other names a person may type for a country.
const ALIASES: &[(&str, &str)] = &[
    ("GB", "UK"),
    ("GB", "Great Britain"),
    ("GB", "Britain"),
    ("US", "USA"),
    ("US", "United States of America"),
    ("US", "America"),
    ("NL", "Holland"),
    ("CZ", "Czech Republic"),
    ("TR", "Turkiye"),
    ("CI", "Ivory Coast"),
    ("CV", "Cape Verde"),
    ("MM", "Burma"),
    ("AE", "UAE"),
];

/// A country's everyday name from its ISO alpha-2 code (the code itself when unknown).
pub fn country_name(cc: &str) -> String {
    if let Some((_, n)) = COMMON_NAMES.iter().find(|(c, _)| *c == cc) {
        return n.to_string();
    }
    isocountry::CountryCode::for_alpha2(cc)
        .map(|c| c.name().to_string())
        .unwrap_or_else(|_| cc.to_string())
}

/// Every folded name a country answers to: its everyday name, its ISO name, aliases.
pub fn country_names(cc: &str) -> Vec<String> {
    let mut names = vec![fold(&country_name(cc))];
    if let Ok(c) = isocountry::CountryCode::for_alpha2(cc) {
        names.push(fold(c.name()));
    }
    names.extend(
        ALIASES
            .iter()
            .filter(|(c, _)| *c == cc)
            .map(|(_, a)| fold(a)),
    );
    names.dedup();
    names
}

/// A name folded for matching: accents dropped (São → sao, Zürich → zurich), lower case, every run
/// of other characters one space.
pub fn fold(s: &str) -> String {
    let ascii = deunicode::deunicode(s).to_lowercase();
    let mut out = String::with_capacity(ascii.len());
    for w in ascii.split(|c: char| !c.is_ascii_alphanumeric()) {
        if w.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(w);
    }
    out
}

/// Whether a place answers to a (folded) name: its city, region, or any of its country's names.
pub fn place_matches(place: &Place, folded: &str) -> bool {
    fold(&place.city) == folded
        || fold(&place.region) == folded
        || country_names(&place.cc).iter().any(|n| n == folded)
}

/// A circle to search in: `--near LAT,LON[,KM]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Near {
    pub lat: f64,
    pub lon: f64,
    pub km: f64,
}

impl Near {
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        distance_km((self.lat, self.lon), (lat, lon)) <= self.km
    }
}

impl std::str::FromStr for Near {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::Invalid(format!(
                "bad position {s:?}: use LAT,LON or LAT,LON,KM in decimal degrees (e.g. 38.72,-9.14,10)"
            ))
        };
        let parts: Vec<f64> = s
            .split(',')
            .map(|p| p.trim().parse::<f64>().map_err(|_| bad()))
            .collect::<Result<_>>()?;
        let (lat, lon, km) = match parts[..] {
            [lat, lon] => (lat, lon, DEFAULT_NEAR_KM),
            [lat, lon, km] => (lat, lon, km),
            _ => return Err(bad()),
        };
        if !valid_position(lat, lon) || !(km.is_finite() && km > 0.0) {
            return Err(bad());
        }
        Ok(Near { lat, lon, km })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geocodes_offline() {
        let lisbon = locate(38.7223, -9.1393).unwrap();
        assert_eq!(lisbon.cc, "PT");
        assert_eq!(lisbon.country(), "Portugal");
        assert_eq!(lisbon.region, "Lisbon");
        let tokyo = locate(35.6895, 139.6917).unwrap();
        assert_eq!((tokyo.city.as_str(), tokyo.cc.as_str()), ("Tokyo", "JP"));
        // Mid-Atlantic: no town within reach.
        assert_eq!(locate(30.0, -40.0), None);
        assert_eq!(locate(f64::NAN, 0.0), None);
        assert_eq!(locate(91.0, 0.0), None);
    }

    #[test]
    fn names_fold_and_match() {
        assert_eq!(fold("  São  Paulo!"), "sao paulo");
        assert_eq!(fold("ZÜRICH"), "zurich");
        let p = Place {
            city: "Sao Paulo".into(),
            region: "Sao Paulo".into(),
            cc: "BR".into(),
        };
        assert!(place_matches(&p, &fold("São Paulo")));
        assert!(place_matches(&p, &fold("brazil")));
        assert!(!place_matches(&p, &fold("Paulo")));
        let us = Place {
            city: "Manhattan".into(),
            region: "New York".into(),
            cc: "US".into(),
        };
        for n in ["USA", "united states", "New York", "manhattan"] {
            assert!(place_matches(&us, &fold(n)), "{n}");
        }
        assert_eq!(country_name("GB"), "United Kingdom");
        assert_eq!(country_name("FR"), "France");
    }

    #[test]
    fn near_parses_and_measures() {
        let n: Near = "38.72, -9.14".parse().unwrap();
        assert_eq!(n.km, DEFAULT_NEAR_KM);
        let n: Near = "38.72,-9.14,300".parse().unwrap();
        // Lisbon–Porto is about 275 km.
        assert!(n.contains(41.1579, -8.6291));
        assert!(!"38.72,-9.14,250"
            .parse::<Near>()
            .unwrap()
            .contains(41.1579, -8.6291));
        for bad in [
            "", "38.72", "a,b", "95,0", "1,2,0", "1,2,-5", "1,2,3,4", "1,nan",
        ] {
            assert!(bad.parse::<Near>().is_err(), "{bad}");
        }
        let d = distance_km((38.7223, -9.1393), (41.1579, -8.6291));
        assert!((d - 274.0).abs() < 5.0, "{d}");
    }
}

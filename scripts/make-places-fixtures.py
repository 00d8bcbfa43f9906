#!/usr/bin/env python3
"""Write tests/fixtures/data/places: dev shape photos (tests/fixtures/data/dev) re-saved with EXIF
capture times, time zone offsets and GPS positions in cities on five continents, plus photos
without GPS, and places.json saying what each holds. Needs Pillow and piexif (PyPI).

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install pillow piexif
    /tmp/fx/bin/python scripts/make-places-fixtures.py
"""
import json
from fractions import Fraction
from pathlib import Path

import piexif
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "data"
DEV, OUT = ROOT / "dev", ROOT / "places"

# name, dev image label (color shape), taken (local), offset, position (None: no GPS)
PHOTOS = [
    ("lisbon_2019", "red circle", "2019:06:14 18:30:00", "+01:00", (38.7223, -9.1393)),
    ("porto_2021", "blue square", "2021:08:02 10:05:00", "+01:00", (41.1496, -8.6110)),
    ("tokyo_2019", "red circle", "2019:04:01 09:00:00", "+09:00", (35.6895, 139.69171)),
    ("kyoto_2023", "green triangle", "2023:11:20 15:45:00", "+09:00", (35.0116, 135.7681)),
    ("newyork_2018", "yellow square", "2018:12:24 20:00:00", "-05:00", (40.7484, -73.9857)),
    ("saopaulo_2022", "blue circle", "2022:02:10 12:00:00", "-03:00", (-23.5505, -46.6333)),
    ("zurich_2020", "red square", "2020:01:05 08:15:00", "+01:00", (47.3769, 8.5417)),
    ("capetown_2017", "green circle", "2017:09:09 17:00:00", "+02:00", (-33.9249, 18.4241)),
    ("sydney_2024", "yellow triangle", "2024:03:03 07:30:00", "+11:00", (-33.8688, 151.2093)),
    ("lisbon_2016", "green square", "2016:03:12 11:00:00", None, (38.7139, -9.1334)),
    ("nogps_2015", "blue triangle", "2015:05:05 05:05:05", None, None),
    ("atsea_2014", "yellow circle", "2014:07:01 12:00:00", "+00:00", (30.0, -40.0)),
]


def dms(value):
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = Fraction((value - d - m / 60) * 3600).limit_denominator(10000)
    return ((d, 1), (m, 1), (s.numerator, s.denominator))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    labels = [json.loads(l) for l in (DEV / "labels.jsonl").read_text().splitlines()]
    used, meta = set(), []
    for name, label, taken, offset, pos in PHOTOS:
        color, shape = label.split()
        src = next(l for l in labels if l["color"] == color and l["shape"] == shape
                   and l["format"] == "jpg" and l["file"] not in used and min(l["width"], l["height"]) >= 200)
        used.add(src["file"])
        exif = {"0th": {piexif.ImageIFD.Make: b"Shoebox", piexif.ImageIFD.Model: b"Fixture Cam"},
                "Exif": {piexif.ExifIFD.DateTimeOriginal: taken.encode()}, "GPS": {}}
        if offset:
            exif["Exif"][piexif.ExifIFD.OffsetTimeOriginal] = offset.encode()
        if pos:
            lat, lon = pos
            exif["GPS"] = {
                piexif.GPSIFD.GPSLatitudeRef: b"N" if lat >= 0 else b"S",
                piexif.GPSIFD.GPSLatitude: dms(lat),
                piexif.GPSIFD.GPSLongitudeRef: b"E" if lon >= 0 else b"W",
                piexif.GPSIFD.GPSLongitude: dms(lon),
            }
        img = Image.open(DEV / src["file"]).convert("RGB")
        img.save(OUT / f"{name}.jpg", quality=85, exif=piexif.dump(exif))
        meta.append({"file": f"{name}.jpg", "source": src["file"], "color": color, "shape": shape,
                     "taken": taken.replace(":", "-", 2).replace(" ", "T"), "offset": offset,
                     "lat": pos[0] if pos else None, "lon": pos[1] if pos else None})
    # A PNG without any EXIF: no date but its file time, no place.
    Image.open(DEV / next(l["file"] for l in labels if l["format"] == "png")).save(OUT / "noexif.png")
    meta.append({"file": "noexif.png", "taken": None, "offset": None, "lat": None, "lon": None})
    (OUT / "places.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()

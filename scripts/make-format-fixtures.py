#!/usr/bin/env python3
"""Write tests/fixtures/data/formats: dev shape photos (tests/fixtures/data/dev) as HEIC, AVIF and
DNG, a RAW+JPEG pair, and damaged files, with formats.json saying what each is and which dev image
it was made from. Needs Pillow, pillow-heif, pidng and numpy (PyPI).

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install pillow pillow-heif piexif pidng numpy
    /tmp/fx/bin/python scripts/make-format-fixtures.py
"""
import json
from pathlib import Path

import numpy as np
import piexif
import pillow_heif
from PIL import Image
from pidng.core import RAW2DNG, DNGTags, Tag
from pidng.defs import CFAPattern, CalibrationIlluminant, DNGVersion, Orientation, PhotometricInterpretation

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "data"
DEV, OUT = ROOT / "dev", ROOT / "formats"
pillow_heif.register_heif_opener()

# XYZ (D65) -> linear sRGB: a camera whose raw values are linear sRGB.
XYZ_TO_SRGB = [[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]]


def pick(labels, color, shape, used):
    l = next(l for l in labels if l["color"] == color and l["shape"] == shape and l["format"] == "jpg"
             and l["file"] not in used and min(l["width"], l["height"]) >= 256)
    used.add(l["file"])
    return l


def write_dng(img, path):
    rgb = np.asarray(img.convert("RGB"), dtype=np.float64) / 255.0
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    h, w = (lin.shape[0] // 2) * 2, (lin.shape[1] // 2) * 2
    lin = lin[:h, :w]
    cfa = np.zeros((h, w), dtype=np.float64)
    cfa[0::2, 0::2] = lin[0::2, 0::2, 0]  # R
    cfa[0::2, 1::2] = lin[0::2, 1::2, 1]  # G
    cfa[1::2, 0::2] = lin[1::2, 0::2, 1]  # G
    cfa[1::2, 1::2] = lin[1::2, 1::2, 2]  # B
    raw = np.clip(cfa * 4095, 0, 4095).astype(np.uint16)
    t = DNGTags()
    t.set(Tag.ImageWidth, w)
    t.set(Tag.ImageLength, h)
    t.set(Tag.TileWidth, w)
    t.set(Tag.TileLength, h)
    t.set(Tag.Orientation, Orientation.Horizontal)
    t.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    t.set(Tag.SamplesPerPixel, 1)
    t.set(Tag.BitsPerSample, 16)
    t.set(Tag.CFARepeatPatternDim, [2, 2])
    t.set(Tag.CFAPattern, CFAPattern.RGGB)
    t.set(Tag.BlackLevel, 0)
    t.set(Tag.WhiteLevel, 4095)
    t.set(Tag.ColorMatrix1, [[int(v * 10000), 10000] for row in XYZ_TO_SRGB for v in row])
    t.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    t.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    t.set(Tag.BaselineExposure, [[0, 100]])
    t.set(Tag.Make, "Shoebox")
    t.set(Tag.Model, "Fixture RAW")
    t.set(Tag.DNGVersion, DNGVersion.V1_4)
    t.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    r = RAW2DNG()
    r.options(t, path="", compress=False)
    r.convert(raw, filename=str(path.with_suffix("")))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    labels = [json.loads(l) for l in (DEV / "labels.jsonl").read_text().splitlines()]
    used, meta = set(), []

    def add(name, kind, src, **extra):
        meta.append({"file": name, "kind": kind, "source": src["file"] if src else None,
                     "color": src["color"] if src else None, "shape": src["shape"] if src else None, **extra})

    src = pick(labels, "red", "circle", used)
    exif = piexif.dump({"0th": {piexif.ImageIFD.Make: b"Shoebox", piexif.ImageIFD.Model: b"Fixture Phone"},
                        "Exif": {piexif.ExifIFD.DateTimeOriginal: b"2022:05:01 12:00:00"},
                        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N", piexif.GPSIFD.GPSLatitude: ((35, 1), (41, 1), (2222, 100)),
                                piexif.GPSIFD.GPSLongitudeRef: b"E", piexif.GPSIFD.GPSLongitude: ((139, 1), (41, 1), (3018, 100))}})
    Image.open(DEV / src["file"]).convert("RGB").save(OUT / "phone.heic", quality=85, exif=exif)
    add("phone.heic", "heic", src, taken="2022-05-01T12:00:00", city="Tokyo")

    src = pick(labels, "blue", "square", used)
    Image.open(DEV / src["file"]).convert("RGB").save(OUT / "web.avif", quality=85)
    add("web.avif", "avif", src)

    src = pick(labels, "green", "triangle", used)
    write_dng(Image.open(DEV / src["file"]), OUT / "camera.dng")
    add("camera.dng", "dng", src)

    # RAW+JPEG: the same shot as a DNG and a JPEG of the same name.
    src = pick(labels, "yellow", "circle", used)
    img = Image.open(DEV / src["file"]).convert("RGB")
    write_dng(img, OUT / "IMG_0042.dng")
    img.save(OUT / "IMG_0042.JPG", quality=90)
    add("IMG_0042.JPG", "jpeg (with RAW original IMG_0042.dng)", src)
    add("IMG_0042.dng", "dng (paired with IMG_0042.JPG)", src)

    # Damaged files: a HEIC cut short, a RAW whose header is garbage.
    good = (OUT / "phone.heic").read_bytes()
    (OUT / "broken.heic").write_bytes(good[: len(good) // 3])
    add("broken.heic", "damaged heic", None)
    (OUT / "broken.nef").write_bytes(b"II*\x00\x08\x00\x00\x00" + bytes(range(256)) * 4)
    add("broken.nef", "damaged raw", None)
    (OUT / "formats.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()

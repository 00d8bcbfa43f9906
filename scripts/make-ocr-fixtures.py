#!/usr/bin/env python3
"""Write tests/fixtures/data/ocr: 12 images with text (receipts, a dark and a light screenshot, a
boarding pass, signs, two skewed document scans, a small-text slip) drawn with the DejaVu fonts, and
8 photos without text (real/ photos with no text or logo in them, dev/ shape photos), under names
that say nothing of their content (img_01 ... img_20, shuffled with a fixed seed), with labels.json
saying what each holds. Needs Pillow and numpy (PyPI) and the DejaVu fonts (fonts-dejavu-core).

    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install pillow numpy
    /tmp/fx/bin/python scripts/make-ocr-fixtures.py           # write the folder
    /tmp/fx/bin/python scripts/make-ocr-fixtures.py --check   # and read each image with the tesseract CLI

labels.json, one object per image:
  file, has_text, kind (receipt, screenshot, boarding_pass, sign, document, small_text, photo),
  first_line (null without text), lines (every text line drawn, in order, runs of spaces collapsed),
  phrases (the planted phrases it holds, lower case: see PHRASES), rotation_deg (how far the drawn
  page was turned counter-clockwise, as Pillow's Image.rotate), dark (light text on a dark ground),
  font (the main font's file, null without text), source (where a photo came from; null if drawn).

Every first line holds a word and a number that no other image holds. Each planted phrase is in
exactly the images PHRASES says, and its words stand next to each other (lines joined, punctuation
dropped) in no other image; main() checks both before writing.
"""
import json
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "data"
REAL, DEV, OUT = ROOT / "real", ROOT / "dev", ROOT / "ocr"
FONTS = Path("/usr/share/fonts/truetype/dejavu")
SEED = 20240611

# phrase -> the (internal) names of the images that hold it, and only those
PHRASES = {
    "thank you": {"receipt_acme", "receipt_heron", "email"},
    "boarding pass": {"boarding_pass", "email"},
    "gate": {"boarding_pass", "email", "scan_orchard"},
    "gate 12": {"boarding_pass"},
    "connection refused": {"terminal"},
}

# text-free photos: real/ files checked by eye (no text, no logo); astronaut (patch, name tag),
# motorcycle_left (YAMAHA), rocket (fairing logo) and logo.png are left out on purpose.
REAL_PHOTOS = ["camera.png", "chelsea.png", "china.jpg", "flower.jpg", "coffee.png"]
REENCODE = {"coffee.png": 88}  # saved as JPEG at this quality (the PNG is 460 KB)
DEV_PHOTOS = ["dev_0015.jpg", "dev_0038.jpg", "dev_0018.jpg"]  # stripes, checker, speckle grounds


def font(name, size):
    return ImageFont.truetype(str(FONTS / name), size)


def clean(text):
    return re.sub(r"\s+", " ", text).strip()


def words(text):
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


class Writer:
    """Draws lines top to bottom between x0 and x1 and remembers them."""

    def __init__(self, img, x0, x1, y, fill):
        self.d, self.x0, self.x1, self.y, self.fill, self.lines = ImageDraw.Draw(img), x0, x1, y, fill, []

    def line(self, text, f, align="left", fill=None, gap=0.35):
        w = f.getlength(text)
        x = {"left": self.x0, "center": (self.x0 + self.x1 - w) / 2, "right": self.x1 - w}[align]
        self.d.text((x, self.y), text, font=f, fill=fill or self.fill)
        self.lines.append(clean(text))
        self.y += f.size * (1 + gap)

    def pair(self, left, right, f, fill=None, gap=0.35):
        self.d.text((self.x0, self.y), left, font=f, fill=fill or self.fill)
        self.d.text((self.x1 - f.getlength(right), self.y), right, font=f, fill=fill or self.fill)
        self.lines.append(clean(f"{left} {right}"))
        self.y += f.size * (1 + gap)

    def runs(self, parts, x=None, gap=0.35):
        """One line of (text, font, fill) runs, drawn one after another."""
        x, size = self.x0 if x is None else x, max(f.size for _, f, _ in parts)
        for text, f, fill in parts:
            self.d.text((x, self.y + (size - f.size) * 0.8), text, font=f, fill=fill)
            x += f.getlength(text)
        self.lines.append(clean("".join(t for t, _, _ in parts)))
        self.y += size * (1 + gap)

    def rule(self, dash=6, fill=None, pad=8):
        y = self.y + pad
        for x in range(self.x0, self.x1, dash * 2):
            self.d.line([(x, y), (min(x + dash, self.x1), y)], fill=fill or self.fill, width=1)
        self.y += 2 * pad

    def space(self, px):
        self.y += px


def wrap(text, f, width):
    out, cur = [], ""
    for w in text.split():
        if cur and f.getlength(cur + " " + w) > width:
            out.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}".strip()
    return out + [cur]


def noise(img, rng, sigma):
    a = np.asarray(img, dtype=np.float32)
    a = a + rng.normal(0, sigma, a.shape[:2])[..., None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def blotches(size, rng, cells, amp):
    """Low-frequency brightness variation (paper, paint, light), -amp..amp."""
    small = rng.uniform(-1, 1, (cells[1], cells[0])).astype(np.float32)
    big = Image.fromarray(((small + 1) * 127.5).astype(np.uint8)).resize(size, Image.BICUBIC)
    return (np.asarray(big, dtype=np.float32) / 127.5 - 1) * amp


def shade(img, field):
    a = np.asarray(img, dtype=np.float32) + field[..., None]
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def paper(size, rng, color=(250, 248, 242), amp=6):
    img = Image.new("RGB", size, color)
    return shade(img, blotches(size, rng, (6, 9), amp))


# ---------------------------------------------------------------- receipts

def receipt_body(w, lines_fn, rng, h=2000, color=(250, 248, 242)):
    img = paper((w, h), rng, color)
    wr = Writer(img, 28, w - 28, 30, (38, 36, 40))
    lines_fn(wr)
    img = img.crop((0, 0, w, int(wr.y) + 40))
    return img, wr.lines


def money(x):
    return f"{x:.2f}"


def receipt_acme(rng):
    mono, bold = font("DejaVuSansMono.ttf", 17), font("DejaVuSansMono-Bold.ttf", 22)
    mbold = font("DejaVuSansMono-Bold.ttf", 17)
    items = [("Wood screws 4x40 (100)", 6.49), ("Claw hammer 16oz", 14.99), ("Sandpaper P120 x5", 3.75),
             ("Masking tape 25mm", 2.89), ("Wall plugs (50)", 4.10)]
    sub = round(sum(p for _, p in items), 2)
    tax = round(sub * 0.08, 2)

    def body(wr):
        wr.line("ACME HARDWARE 4711", bold, "center")
        wr.line("220 Millbrook Road", mono, "center")
        wr.line("Tel 555-0148", mono, "center")
        wr.line("2023-09-14 16:42  Reg 3", mono, "center")
        wr.rule()
        for name, p in items:
            wr.line(f"{name:<27}{money(p):>8}", mono)
        wr.rule()
        wr.line(f"{'SUBTOTAL':<27}{money(sub):>8}", mono)
        wr.line(f"{'TAX 8%':<27}{money(tax):>8}", mono)
        wr.line(f"{'TOTAL':<27}{money(sub + tax):>8}", mbold)
        wr.line("VISA ending 5093", mono)
        wr.space(10)
        wr.line("THANK YOU", bold, "center")

    img, lines = receipt_body(440, body, rng)
    img = noise(img.filter(ImageFilter.GaussianBlur(0.5)), rng, 3)
    return img, lines, dict(kind="receipt", font="DejaVuSansMono.ttf", fmt=("jpg", 90))


def receipt_heron(rng):
    f, big = font("DejaVuSansCondensed.ttf", 20), font("DejaVuSansCondensed-Bold.ttf", 28)
    items = [("2 Flat white", 8.40), ("1 Almond croissant", 3.90), ("1 Banana bread", 3.60),
             ("1 Orange juice", 4.25)]
    sub = round(sum(p for _, p in items), 2)
    svc = round(sub * 0.10, 2)

    def body(wr):
        wr.line("Blue Heron Cafe 2291", big, "center")
        wr.line("Harbour Quay, Unit 3", f, "center")
        wr.line("Table 7  Server: Mia", f, "center")
        wr.rule()
        for name, p in items:
            wr.pair(name, money(p), f)
        wr.rule()
        wr.pair("Subtotal", money(sub), f)
        wr.pair("Service 10%", money(svc), f)
        wr.pair("TOTAL", money(sub + svc), big)
        wr.line("Paid by card", f)
        wr.space(10)
        wr.line("Thank you, see you soon!", f, "center")

    img, lines = receipt_body(420, body, rng, color=(255, 255, 255))
    return img, lines, dict(kind="receipt", font="DejaVuSansCondensed.ttf", fmt=("png", None))


def receipt_kobalt(rng):
    """A receipt photographed on a dark wooden table: grain, shadow, uneven light, noise."""
    f, big = font("DejaVuSans.ttf", 19), font("DejaVuSans-Bold.ttf", 26)
    items = [("Milk 2L", 1.89), ("Eggs free range 12", 3.45), ("Sourdough loaf", 3.20),
             ("Cheddar 400g", 4.75), ("Apples 1.2kg", 2.64), ("Coffee beans 500g", 8.99)]
    total = round(sum(p for _, p in items), 2)

    def body(wr):
        wr.line("KOBALT GROCERS 8350", big, "center")
        wr.line("Market Square 5, Dunmore", f, "center")
        wr.line("03/02/2024  11:07", f, "center")
        wr.rule()
        for name, p in items:
            wr.pair(name, money(p), f)
        wr.rule()
        wr.pair("TOTAL", money(total), big)
        wr.pair("CASH", "30.00", f)
        wr.pair("CHANGE", money(30 - total), f)
        wr.space(10)
        wr.line("PLEASE COME AGAIN", f, "center")

    rec, lines = receipt_body(430, body, rng, color=(244, 240, 230))
    W, H = 720, rec.height + 160
    # wood: brown with stretched grain and knots of shade
    grain = rng.normal(0, 1, (H, 24)).astype(np.float32)
    grain = np.asarray(Image.fromarray(((grain.clip(-2.5, 2.5) + 2.5) * 51).astype(np.uint8)).resize((W, H), Image.BICUBIC),
                       dtype=np.float32) / 255 - 0.5
    base = np.zeros((H, W, 3), np.float32) + np.array([92, 60, 38], np.float32)
    base += (grain * 40 + blotches((W, H), rng, (5, 7), 14))[..., None]
    bg = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    x, y = 150, 70
    shadow = Image.new("L", (W, H), 0)
    ImageDraw.Draw(shadow).rectangle((x + 10, y + 12, x + rec.width + 10, y + rec.height + 12), fill=140)
    shadow = shadow.filter(ImageFilter.GaussianBlur(12))
    bg = Image.composite(Image.new("RGB", (W, H), (20, 12, 8)), bg, shadow)
    bg.paste(rec, (x, y))
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    light = 22 - 55 * (((xx - W * 0.35) / W) ** 2 + ((yy - H * 0.3) / H) ** 2)  # lamp up left
    img = shade(bg, light).filter(ImageFilter.GaussianBlur(0.7))
    img = noise(img, rng, 5)
    return img, lines, dict(kind="receipt", font="DejaVuSans.ttf", fmt=("jpg", 85))


def receipt_zephyr(rng):
    mono, head = font("DejaVuSansMono.ttf", 18), font("DejaVuSans-Bold.ttf", 26)
    items = [("Ibuprofen 200mg 24 tabs", 4.29), ("Vitamin D3 1000IU", 7.95), ("Plasters assorted", 3.10),
             ("Hand cream 75ml", 5.60)]
    total = round(sum(p for _, p in items), 2)

    def body(wr):
        wr.line("Zephyr Pharmacy 6130", head, "center")
        wr.line("17 Orchard Lane", mono, "center")
        wr.line("21.11.2023 09:12", mono, "center")
        wr.rule()
        for name, p in items:
            wr.line(f"{name:<25}{money(p):>8}", mono)
        wr.rule()
        wr.line(f"{'TOTAL':<25}{money(total):>8}", mono)
        wr.line(f"Points earned: {int(total)}", mono)
        wr.space(10)
        wr.line("RETAIN RECEIPT FOR RETURNS", mono, "center")

    img, lines = receipt_body(420, body, rng, color=(246, 246, 240))
    img = noise(img.filter(ImageFilter.GaussianBlur(0.4)), rng, 2.5)
    return img, lines, dict(kind="receipt", font="DejaVuSansMono.ttf", fmt=("jpg", 88))


# ---------------------------------------------------------------- screenshots

def terminal(rng):
    W, H = 1280, 720
    img = Image.new("RGB", (W, H), (30, 30, 30))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, W, 44), fill=(50, 50, 51))
    for i, c in enumerate([(255, 95, 86), (255, 189, 46), (39, 201, 63)]):
        d.ellipse((16 + i * 24, 15, 30 + i * 24, 29), fill=c)
    title = Writer(img, 0, W, 11, (204, 204, 204))
    title.line("Tamarind Sync 5521", font("DejaVuSans.ttf", 19), "center")
    mono = font("DejaVuSansMono.ttf", 20)
    grey, red, green, cyan = (212, 212, 212), (241, 76, 76), (106, 200, 120), (120, 190, 230)
    wr = Writer(img, 28, W - 28, 72, grey)
    wr.lines = title.lines
    wr.runs([("~/notes $ ", mono, green), ("tamarind push --remote origin", mono, grey)], gap=0.55)
    wr.line("Resolving sync.tamarind.example ... done", mono, gap=0.55)
    wr.line("Connecting to 10.0.4.17:8443 ...", mono, gap=0.55)
    wr.line("Error: connection refused (os error 111)", mono, fill=red, gap=0.55)
    wr.line("Retrying in 5 seconds (attempt 2 of 3)", mono, fill=cyan, gap=0.55)
    wr.line("Error: connection refused (os error 111)", mono, fill=red, gap=0.55)
    wr.line("hint: is the sync server running on this host?", mono, gap=0.55)
    y = wr.y
    wr.runs([("~/notes $ ", mono, green)], gap=0.55)
    d.rectangle((28 + mono.getlength("~/notes $ "), y + 2, 28 + mono.getlength("~/notes $ ") + 11, y + 24), fill=grey)
    return img, wr.lines, dict(kind="screenshot", font="DejaVuSansMono.ttf", dark=True, fmt=("png", None))


def email(rng):
    W, H = 1280, 720
    img = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, 250, H), fill=(240, 242, 245))
    d.line((250, 0, 250, H), fill=(220, 222, 226))
    sans, bold = font("DejaVuSans.ttf", 19), font("DejaVuSans-Bold.ttf", 27)
    small, grey = font("DejaVuSans.ttf", 17), (95, 99, 104)
    wr = Writer(img, 290, W - 40, 34, (32, 33, 36))
    wr.line("Larkspur Travel booking 6604", bold, gap=0.7)
    wr.line("From: Larkspur Travel <trips@larkspur.example>", small, fill=grey)
    wr.line("To: Ingrid Halvorsen", small, fill=grey)
    wr.line("Date: Mon, 13 Mar 2023 18:05", small, fill=grey, gap=1.2)
    d.line((290, wr.y - 16, W - 40, wr.y - 16), fill=(225, 227, 230))
    wr.line("Hello Ingrid,", sans, gap=0.9)
    body = ("Your boarding pass is attached for flight NW 417 from Oslo to Reykjavik. "
            "Departure is at 10:15 on 14 March and boarding closes 20 minutes before departure. "
            "Please check the departure screens at the airport for your gate.")
    for l in wrap(body, sans, W - 40 - 290):
        wr.line(l, sans, gap=0.55)
    wr.space(14)
    wr.line("Thank you for booking with Larkspur Travel.", sans, gap=0.55)
    wr.line("Larkspur Travel Customer Care", sans, gap=1.2)
    d.rounded_rectangle((290, wr.y - 8, 620, wr.y + 36), radius=8, outline=(200, 203, 208), fill=(248, 249, 250))
    d.rectangle((302, wr.y + 2, 326, wr.y + 26), fill=(217, 48, 37))
    wr.x0 = 338
    wr.line("boarding-pass-NW417.pdf", small)
    side = Writer(img, 28, 240, 40, (60, 64, 67))
    for name in ["Inbox", "Starred", "Sent", "Drafts", "Trash"]:
        side.line(name, sans, gap=1.1)
    return img, wr.lines + side.lines, dict(kind="screenshot", font="DejaVuSans.ttf", fmt=("png", None))


# ---------------------------------------------------------------- boarding pass

def boarding_pass(rng):
    W, H = 1100, 430
    img = Image.new("RGB", (W, H), (236, 238, 241))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle((20, 20, W - 20, H - 20), radius=18, fill=(255, 255, 255), outline=(200, 204, 210))
    d.rounded_rectangle((20, 20, W - 20, 110), radius=18, fill=(29, 63, 143))
    d.rectangle((20, 90, W - 20, 110), fill=(29, 63, 143))
    head = Writer(img, 50, W - 50, 44, (255, 255, 255))
    head.line("NORDWIND AIRLINES 5830", font("DejaVuSans-Bold.ttf", 32), gap=0)
    head.y = 48
    head.line("BOARDING PASS", font("DejaVuSans.ttf", 26), "right")
    lab, val = font("DejaVuSans.ttf", 21), font("DejaVuSans-Bold.ttf", 24)
    g, k = (110, 114, 120), (20, 22, 26)
    wr = Writer(img, 50, 760, 140, k)
    wr.lines = head.lines
    wr.runs([("PASSENGER  ", lab, g), ("HALVORSEN/INGRID MS", val, k)], gap=0.75)
    wr.runs([("FROM  ", lab, g), ("OSLO (OSL)", val, k), ("   TO  ", lab, g), ("REYKJAVIK (KEF)", val, k)], gap=0.75)
    wr.runs([("FLIGHT  ", lab, g), ("NW 417", val, k), ("   DATE  ", lab, g), ("14 MAR 2023", val, k)], gap=0.75)
    wr.runs([("GATE 12", val, k), ("   SEAT  ", lab, g), ("23A", val, k), ("   GROUP  ", lab, g), ("3", val, k)], gap=0.75)
    wr.runs([("BOARDING  ", lab, g), ("09:35", val, k), ("   DEPARTS  ", lab, g), ("10:15", val, k)], gap=0.75)
    # 2D code on the stub (a drawing, no text)
    d.line((800, 130, 800, H - 40), fill=(200, 204, 210), width=2)
    cells = rng.rand(25, 25) > 0.5
    for cy in range(25):
        for cx in range(25):
            if cells[cy, cx]:
                d.rectangle((840 + cx * 8, 150 + cy * 8, 847 + cx * 8, 157 + cy * 8), fill=k)
    return img, wr.lines, dict(kind="boarding_pass", font="DejaVuSans.ttf", fmt=("png", None))


# ---------------------------------------------------------------- signs

def street_sign(rng):
    """Two green street name blades on a pole against the sky, photographed."""
    W, H = 800, 600
    yy = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    sky = np.array([88, 140, 210], np.float32) * (1 - yy) + np.array([190, 215, 240], np.float32) * yy
    img = Image.fromarray(np.clip(np.broadcast_to(sky, (H, W, 3)), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    for _ in range(40):  # foliage at the bottom
        x, y, r = rng.randint(0, W), rng.randint(470, 640), rng.randint(30, 80)
        d.ellipse((x - r, y - r, x + r, y + r), fill=(40 + rng.randint(0, 30), 95 + rng.randint(0, 40), 45))
    img = img.filter(ImageFilter.GaussianBlur(5))
    d = ImageDraw.Draw(img)
    d.rectangle((390, 120, 410, H), fill=(120, 124, 128))
    big, num = font("DejaVuSans-Bold.ttf", 50), font("DejaVuSans-Bold.ttf", 34)
    wr = Writer(img, 0, W, 0, (255, 255, 255))
    for y, name, block in [(150, "QUINCEWOOD AVE", "2400"), (290, "MAPLE ST", "100")]:
        w = big.getlength(name) + num.getlength(block) + 100
        x0 = (W - w) / 2
        d.rounded_rectangle((x0, y, x0 + w, y + 100), radius=12, fill=(0, 110, 70))
        d.rounded_rectangle((x0 + 6, y + 6, x0 + w - 6, y + 94), radius=9, outline=(255, 255, 255), width=3)
        wr.y = y + 18
        wr.runs([(block + "  ", num, (255, 255, 255)), (name, big, (255, 255, 255))], x=x0 + 36)
    # the first line is the top blade, its number first as on the sign
    img = noise(img.filter(ImageFilter.GaussianBlur(0.4)), rng, 4)
    return img, wr.lines, dict(kind="sign", font="DejaVuSans-Bold.ttf", dark=True, fmt=("jpg", 88))


def shop_sign(rng):
    W, H = 1000, 420
    img = Image.new("RGB", (W, H), (150, 70, 52))
    d = ImageDraw.Draw(img)
    for row in range(0, H, 34):  # brick wall
        off = 0 if row // 34 % 2 else 55
        for x in range(-110 + off, W, 110):
            c = 150 + rng.randint(-18, 18)
            d.rectangle((x + 3, row + 3, x + 107, row + 31), fill=(c, 68 + rng.randint(-10, 10), 50))
    d.rectangle((60, 50, W - 60, H - 50), fill=(102, 24, 40))
    d.rectangle((74, 64, W - 74, H - 64), outline=(236, 222, 190), width=4)
    img = shade(img, blotches((W, H), rng, (8, 4), 10))
    cream = (240, 228, 198)
    wr = Writer(img, 74, W - 74, 96, cream)
    wr.line("PERIWINKLE BAKERY 1887", font("DejaVuSansCondensed-Bold.ttf", 62), "center", gap=0.45)
    wr.line("FRESH BREAD DAILY", font("DejaVuSansCondensed-Bold.ttf", 38), "center", gap=0.5)
    wr.line("OPEN 7AM TO 6PM", font("DejaVuSansCondensed.ttf", 32), "center")
    img = noise(img.filter(ImageFilter.GaussianBlur(0.6)), rng, 4)
    return img, wr.lines, dict(kind="sign", font="DejaVuSansCondensed-Bold.ttf", dark=True, fmt=("jpg", 86))


# ---------------------------------------------------------------- document scans

def scan(rng, title, paragraphs, body_font, angle, W=880):
    """A page cut below its text (a memo scanned on a flatbed), skewed by angle degrees."""
    pcolor = (249, 247, 241)
    img = paper((W, 1400), rng, pcolor, amp=4)
    f, tf = font(body_font, 21), font(body_font.replace(".ttf", "-Bold.ttf"), 30)
    wr = Writer(img, 80, W - 80, 90, (34, 32, 36))
    wr.line(title, tf, gap=1.0)
    for p in paragraphs:
        for l in wrap(p, f, W - 160):
            wr.line(l, f, gap=0.5)
        wr.space(16)
    img = img.crop((0, 0, W, int(wr.y) + 110)).filter(ImageFilter.GaussianBlur(0.6))
    img = img.rotate(angle, resample=Image.BICUBIC, expand=True, fillcolor=pcolor)
    return noise(img, rng, 3.5), wr.lines


def scan_orchard(rng):
    img, lines = scan(rng, "Ravensworth Orchard Survey 1962", [
        "The survey of the lower orchard was completed in the autumn of that year. Forty-two trees "
        "were counted along the eastern wall, most of them old varieties of apple and pear planted "
        "well before the war.",
        "Access to the orchard is through the old gate beside the mill race, which was repaired in "
        "the spring. The hedges on the southern side need laying, and several of the oldest trees "
        "should be propped before the winter storms.",
        "It is recommended that the parish keep the orchard open to the village, and that a record "
        "of each harvest be kept in this book from now on.",
    ], "DejaVuSerif.ttf", 3)
    return img, lines, dict(kind="document", font="DejaVuSerif.ttf", rotation_deg=3, fmt=("jpg", 88))


def scan_tenancy(rng):
    img, lines = scan(rng, "Halloran Tenancy Agreement 7319", [
        "This agreement is made between the landlord, Mr. P. Halloran, and the tenant named below, "
        "for the letting of the upper flat at 9 Bellwood Terrace for a term of twelve months.",
        "The rent is payable monthly in advance on the first day of each month. The tenant shall "
        "keep the premises clean and in good repair, and shall not sublet any part of them "
        "without the written consent of the landlord.",
        "Either party may end this agreement by giving two months notice in writing.",
    ], "DejaVuSerifCondensed.ttf", -2)
    return img, lines, dict(kind="document", font="DejaVuSerifCondensed.ttf", rotation_deg=-2, fmt=("jpg", 90))


# ---------------------------------------------------------------- small text

def library_slip(rng):
    W, H = 480, 175
    img = Image.new("RGB", (W, H), (253, 252, 247))
    f, b = font("DejaVuSans.ttf", 12), font("DejaVuSans-Bold.ttf", 12)
    wr = Writer(img, 14, W - 14, 12, (40, 40, 44))
    wr.line("Thistlewood Library 3356", b, gap=0.6)
    wr.line("Loan receipt - 2 May 2024", f, gap=0.6)
    wr.pair("The Hobbit", "due 23 May", f, gap=0.6)
    wr.pair("A Field Guide to Mosses", "due 23 May", f, gap=0.6)
    wr.pair("Bread Baking at Home", "due 30 May", f, gap=0.6)
    wr.line("Items on loan: 3", f, gap=0.6)
    wr.line("Renew online or call 555-0199", f, gap=0.6)
    return img, wr.lines, dict(kind="small_text", font="DejaVuSans.ttf", fmt=("png", None))


TEXT_IMAGES = [receipt_acme, receipt_heron, receipt_kobalt, receipt_zephyr, terminal, email,
               boarding_pass, street_sign, shop_sign, scan_orchard, scan_tenancy, library_slip]


def has_phrase(lines, phrase):
    hay, needle = " " + " ".join(words(" ".join(lines))) + " ", " " + " ".join(words(phrase)) + " "
    return needle in hay


def check_labels(texts):
    """texts: name -> lines. The invariants the tests lean on."""
    for phrase, names in PHRASES.items():
        found = {n for n, lines in texts.items() if has_phrase(lines, phrase)}
        assert found == names, f"{phrase!r} is in {sorted(found)}, planned {sorted(names)}"
    for n, lines in texts.items():
        others = {w for m, ls in texts.items() if m != n for l in ls for w in words(l)}
        own = [w for w in words(lines[0]) if w not in others]
        assert any(w.isdigit() for w in own) and any(w.isalpha() for w in own), \
            f"{n}: first line {lines[0]!r} has no word and number of its own ({own})"


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for old in list(OUT.glob("img_*")) + [OUT / "labels.json"]:
        old.unlink(missing_ok=True)
    entries, texts = [], {}
    for i, make in enumerate(TEXT_IMAGES):
        img, lines, meta = make(np.random.RandomState(SEED + i))
        texts[make.__name__] = lines
        entries.append(dict(name=make.__name__, img=img, has_text=True, kind=meta["kind"], first_line=lines[0],
                            lines=lines, rotation_deg=meta.get("rotation_deg", 0), dark=meta.get("dark", False),
                            font=meta["font"], source=None, fmt=meta["fmt"]))
    check_labels(texts)
    for name in REAL_PHOTOS + DEV_PHOTOS:
        src = (REAL if name in REAL_PHOTOS else DEV) / name
        fmt = ("jpg", REENCODE[name]) if name in REENCODE else (src.suffix[1:], "copy")
        entries.append(dict(name=name, img=src, has_text=False, kind="photo", first_line=None, lines=[],
                            rotation_deg=0, dark=False, font=None, source=f"{src.parent.name}/{name}", fmt=fmt))
    order = list(range(len(entries)))
    random.Random(SEED).shuffle(order)
    labels = []
    for n, idx in enumerate(order, 1):
        e = entries[idx]
        ext, q = e["fmt"]
        file = f"img_{n:02d}.{ext}"
        if q == "copy":
            shutil.copyfile(e["img"], OUT / file)
        elif isinstance(e["img"], Path):
            Image.open(e["img"]).convert("RGB").save(OUT / file, quality=q)
        elif ext == "jpg":
            e["img"].save(OUT / file, quality=q)
        else:
            e["img"].save(OUT / file, optimize=True)
        phrases = sorted(p for p in PHRASES if e["has_text"] and has_phrase(e["lines"], p))
        labels.append({"file": file, "has_text": e["has_text"], "kind": e["kind"], "first_line": e["first_line"],
                       "lines": e["lines"], "phrases": phrases, "rotation_deg": e["rotation_deg"],
                       "dark": e["dark"], "font": e["font"], "source": e["source"]})
    (OUT / "labels.json").write_text(json.dumps(labels, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {len(labels)} images and labels.json to {OUT}")


def tesseract(img):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "page.png"
        img.save(path)
        return subprocess.run(["tesseract", str(path), "-"], capture_output=True, text=True).stdout


def prepared(img):
    """Roughly what crates/shoebox-core/src/ocr.rs prepare() hands Tesseract, without the
    deskew: grey, long side scaled into 2000..3600 (enlarged at most 3x), inverted if dark."""
    g = img.convert("L")
    long = max(g.size)
    scale = min(2000 / long, 3.0) if long < 2000 else (3600 / long if long > 3600 else 1.0)
    if abs(scale - 1) > 0.02:
        g = g.resize((round(g.width * scale), round(g.height * scale)),
                     Image.BICUBIC if scale > 1 else Image.BILINEAR)
    if np.asarray(g).mean() < 110:
        g = Image.fromarray(255 - np.asarray(g))
    return g


def check():
    """Read every image with the tesseract CLI (5.x, eng, default page segmentation) and say
    whether each first line came back: as is; for a miss, after a 3x Lanczos enlargement; and
    prepared as the app prepares it (see prepared()). Then where each planted phrase is read."""
    labels = json.loads((OUT / "labels.json").read_text())
    read = {}

    def verdict(text, want):
        got = words(text)
        if " " + " ".join(want) + " " in " " + " ".join(got) + " ":
            v = "exact"
        else:
            missing = [w for w in want if w not in got]
            v = "all words, not in a row" if not missing else f"missing {missing}"
        line = next((clean(x) for x in text.splitlines() if set(words(x)) & set(want)), "")
        return f"{v} (read {line!r})"

    for l in labels:
        img = Image.open(OUT / l["file"])
        text = read[l["file"]] = tesseract(img)
        if not l["has_text"]:
            print(f"{l['file']}  photo: tesseract read {len(clean(text))} chars {clean(text)[:60]!r}")
            continue
        want = words(l["first_line"])
        all_words = [w for x in l["lines"] for w in words(x)]
        got = set(words(text))
        print(f"{l['file']}  {l['kind']} {l['first_line']!r} (as is, "
              f"{sum(w in got for w in all_words)}/{len(all_words)} of all its words read)")
        v = verdict(text, want)
        print(f"    as is:    {v}")
        if not v.startswith("exact"):
            print(f"    3x:       {verdict(tesseract(img.resize((img.width * 3, img.height * 3), Image.LANCZOS)), want)}")
        print(f"    prepared: {verdict(tesseract(prepared(img)), want)}")
    for phrase in PHRASES:
        want = sorted(l["file"] for l in labels if phrase in l["phrases"])
        got = sorted(f for f, t in read.items() if has_phrase([t], phrase))
        print(f"phrase {phrase!r}: planted in {want}, read (as is) in {got}")


if __name__ == "__main__":
    main()
    if "--check" in sys.argv[1:]:
        check()

#!/usr/bin/env python3
"""Draw Shoebox's app icon (icons/icon.png, 512x512 RGBA): a photo in an open shoebox under a
magnifying glass. Needs Pillow; the PNG is committed, so builds never run this."""
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

S = 512
SS = 4  # draw at 4x and downsample for smooth edges
W = S * SS


def sc(*v):
    return [int(x * SS) for x in v]


img = Image.new("RGBA", (W, W), (0, 0, 0, 0))
d = ImageDraw.Draw(img)

# Rounded-square background with a vertical gradient (deep teal to blue).
bg = Image.new("RGBA", (W, W))
bd = ImageDraw.Draw(bg)
for y in range(W):
    t = y / W
    bd.line([(0, y), (W, y)], fill=(int(22 + 20 * t), int(110 - 40 * t), int(130 + 40 * t), 255))
mask = Image.new("L", (W, W), 0)
ImageDraw.Draw(mask).rounded_rectangle(sc(24, 24, 488, 488), radius=96 * SS, fill=255)
img.paste(bg, (0, 0), mask)

# The photo sticking out of the box: white frame, sky, sun, hills.
photo = Image.new("RGBA", (W, W), (0, 0, 0, 0))
pd = ImageDraw.Draw(photo)
pd.rounded_rectangle(sc(150, 92, 362, 300), radius=10 * SS, fill=(250, 250, 247, 255))
pd.rectangle(sc(166, 108, 346, 284), fill=(126, 196, 240, 255))
pd.ellipse(sc(290, 124, 330, 164), fill=(255, 206, 84, 255))
pd.polygon(sc(166, 284, 226, 196, 270, 250, 300, 214, 346, 284), fill=(70, 150, 90, 255))
photo = photo.rotate(-8, resample=Image.BICUBIC, center=(256 * SS, 220 * SS))
img.alpha_composite(photo)

# The open shoebox: front face and rim.
d.polygon(sc(104, 250, 408, 250, 388, 420, 124, 420), fill=(196, 120, 64, 255))
d.polygon(sc(96, 236, 416, 236, 408, 262, 104, 262), fill=(226, 150, 86, 255))
d.rectangle(sc(218, 300, 294, 322), fill=(160, 92, 46, 255))  # label slot

# Magnifying glass over the corner.
ring = sc(300, 286, 420, 406)
d.ellipse(ring, outline=(245, 245, 245, 255), width=16 * SS)
d.ellipse(sc(316, 302, 404, 390), fill=(255, 255, 255, 70))
d.line(sc(404, 392, 448, 436), fill=(245, 245, 245, 255), width=24 * SS)

img = img.resize((S, S), Image.LANCZOS)
out = Path(__file__).resolve().parent.parent / "icons" / "icon.png"
img.save(out)
print(out, img.mode, img.size)

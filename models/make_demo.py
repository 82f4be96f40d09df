#!/usr/bin/env python3
"""Make the demo's frames (config/demo/) from public-domain images in scikit-image's wheel.

astronaut.png (Eileen Collins, NASA, public domain) and coffee.png, rocket.jpg, chelsea.png
(public domain / CC0, see scikit-image's data README). The astronaut is shifted, scaled and
relit into 640x480 frames; the others are no-face frames. Run once; the output is committed.

Usage: make_demo.py OUT_DIR   (needs pillow; downloads scikit-image==0.24.0 with pip)
"""
import io
import os
import subprocess
import sys
import tempfile
import zipfile

from PIL import Image, ImageEnhance


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", d,
                        "scikit-image==0.24.0"], check=True)
        whl = [f for f in os.listdir(d) if f.endswith(".whl")][0]
        z = zipfile.ZipFile(os.path.join(d, whl))
        img = {n: Image.open(io.BytesIO(z.read(f"skimage/data/{n}"))).convert("RGB")
               for n in ["astronaut.png", "coffee.png", "rocket.jpg", "chelsea.png"]}

    def frame(src, scale, dx, dy, light):
        bg = Image.new("RGB", (640, 480), (40, 44, 52))
        s = src.resize((int(src.width * scale), int(src.height * scale)), Image.LANCZOS)
        s = ImageEnhance.Brightness(s).enhance(light)
        bg.paste(s, ((640 - s.width) // 2 + dx, (480 - s.height) // 2 + dy))
        return bg

    def plain(src):
        return src.resize((640, 480), Image.LANCZOS)

    astro = img["astronaut.png"]
    # Enrollment photo (kept apart from the played frames).
    astro.crop((96, 0, 416, 320)).save(os.path.join(out, "enroll_astronaut.jpg"), quality=90)
    frames = [
        plain(img["coffee.png"]),
        plain(img["rocket.jpg"]),
        frame(astro, 0.80, -40, 10, 1.0),
        frame(astro, 0.85, 20, -5, 0.85),
        frame(astro, 0.90, 0, 20, 1.15),
        frame(astro, 0.80, 30, 0, 0.95),
        plain(img["chelsea.png"]),
        plain(img["coffee.png"]).transpose(Image.FLIP_LEFT_RIGHT),
    ]
    fdir = os.path.join(out, "frames")
    os.makedirs(fdir, exist_ok=True)
    for i, f in enumerate(frames):
        f.save(os.path.join(fdir, f"frame_{i:02d}.jpg"), quality=85)
    print(f"wrote {len(frames)} frames and the enrollment photo to {out}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Shoebox's CLIP encoders side by side with what users would run instead, on the same weights.

Builds one random-weight ViT-B/32 CLIP folder in Hugging Face format (transformers' CLIPModel with
OpenAI's ViT-B/32 shapes and the tokenizer of tests/fixtures/models/clip-dev, whose vocabulary is
CLIP's), exports both towers to ONNX with torch, and times, with 2 threads each:

- ONNX Runtime (what Immich, LibrePhotos and Ente run), f32;
- PyTorch + transformers (rclip's stack), f32;
- Shoebox: `shoebox bench --clip-model DIR` (the same code `shoebox index` runs), at f32 and q8.

Image model only, batch 8, best of several passes; one short text query through the text tower,
warm, best of many; and indexing end to end over the same camera JPEGs: `shoebox index` on a
fresh library against a sequential PIL + ONNX Runtime loop. Prints the figures and the ratios to ONNX Runtime; `--json` prints them
as one object. Ratios are what to compare: this machine is shared and noisy.

Setup (PyPI): python3 -m venv /tmp/rt && /tmp/rt/bin/pip install torch transformers onnx onnxruntime pillow
Run:          /tmp/rt/bin/python scripts/bench-runtimes.py [--shoebox target/release/shoebox]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2


def make_folder(dest: Path) -> None:
    """A random-weight CLIP ViT-B/32 in HF format (fixed seed: the same weights every run)."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=49408, hidden_size=512, intermediate_size=2048, num_attention_heads=8,
            num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu",
            bos_token_id=49406, eos_token_id=49407, pad_token_id=49407,
        ),
        vision_config=dict(
            hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
            image_size=224, patch_size=32, hidden_act="quick_gelu",
        ),
        projection_dim=512,
    )
    model = CLIPModel(cfg).eval()
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest, safe_serialization=True)
    dev = ROOT / "tests/fixtures/models/clip-dev"
    for f in ["tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"]:
        shutil.copy(dev / f, dest / f)
    pre = json.loads((dev / "preprocessor_config.json").read_text())
    pre["size"] = {"shortest_edge": 224}
    pre["crop_size"] = {"height": 224, "width": 224}
    (dest / "preprocessor_config.json").write_text(json.dumps(pre, indent=2))


def best_rate(fn, items: int, passes: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return items / best


def best_ms(fn, reps: int) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best * 1e3


def ort_pipeline(vs, photos: list, batch: int) -> None:
    """Index-like loop as a Python user would write it: each camera JPEG opened with PIL at a
    reduced scale (draft), resized (shortest side 224, bicubic), center-cropped, normalized,
    and embedded by ONNX Runtime in batches; one photo after another."""
    import numpy as np
    from PIL import Image

    mean = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
    std = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
    buf = []
    for p in photos:
        im = Image.open(p)
        im.draft("RGB", (224, 224))
        im = im.convert("RGB")
        w, h = im.size
        s = 224 / min(w, h)
        im = im.resize((max(224, round(w * s)), max(224, round(h * s))), Image.BICUBIC)
        left, top = (im.width - 224) // 2, (im.height - 224) // 2
        im = im.crop((left, top, left + 224, top + 224))
        a = (np.asarray(im, dtype=np.float32) / 255.0 - mean) / std
        buf.append(a.transpose(2, 0, 1))
        if len(buf) == batch:
            vs.run(None, {"pixel_values": np.stack(buf)})
            buf = []
    if buf:
        vs.run(None, {"pixel_values": np.stack(buf)})


def time_torch_and_onnx(folder: Path, work: Path, batch: int, passes: int, photos: list) -> dict:
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import CLIPModel, CLIPTokenizerFast

    torch.set_num_threads(THREADS)
    model = CLIPModel.from_pretrained(folder).eval()
    tok = CLIPTokenizerFast.from_pretrained(folder)
    ids = tok(["a photo of a dog on the beach"], return_tensors="pt")["input_ids"]
    pixels = torch.randn(batch, 3, 224, 224)

    class Vision(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, pixel_values):
            e = self.m.get_image_features(pixel_values=pixel_values)
            e = e if torch.is_tensor(e) else e.pooler_output
            return e / e.norm(dim=-1, keepdim=True)

    class Text(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids):
            e = self.m.get_text_features(input_ids=input_ids)
            e = e if torch.is_tensor(e) else e.pooler_output
            return e / e.norm(dim=-1, keepdim=True)

    vision, text = Vision(model).eval(), Text(model).eval()
    out = {}
    with torch.inference_mode():
        out["torch_model_img_s"] = best_rate(lambda: vision(pixels), batch, passes)
        out["torch_text_query_ms"] = best_ms(lambda: text(ids), 30)

    vpath, tpath = work / "vision.onnx", work / "text.onnx"
    with torch.no_grad():
        torch.onnx.export(vision, (pixels,), vpath, input_names=["pixel_values"],
                          output_names=["embeds"], dynamic_axes={"pixel_values": {0: "b"}},
                          opset_version=17, dynamo=False)
        torch.onnx.export(text, (ids,), tpath, input_names=["input_ids"], output_names=["embeds"],
                          dynamic_axes={"input_ids": {0: "b", 1: "n"}}, opset_version=17,
                          dynamo=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    vs = ort.InferenceSession(str(vpath), so, providers=["CPUExecutionProvider"])
    ts = ort.InferenceSession(str(tpath), so, providers=["CPUExecutionProvider"])
    px = pixels.numpy()
    out["onnx_model_img_s"] = best_rate(lambda: vs.run(None, {"pixel_values": px}), batch, passes)
    if photos:
        out["onnx_pil_pipeline_img_s"] = best_rate(
            lambda: ort_pipeline(vs, photos, batch), len(photos), 2)
    ids_np = ids.numpy().astype(np.int64)
    out["onnx_text_query_ms"] = best_ms(lambda: ts.run(None, {"input_ids": ids_np}), 30)
    # The same weights give the same embeddings (a check that the three ran one model).
    with torch.inference_mode():
        ref = vision(pixels).numpy()
    got = vs.run(None, {"pixel_values": px})[0]
    out["onnx_vs_torch_max_diff"] = float(abs(ref - got).max())
    return out


def time_shoebox(binary: Path, folder: Path, photos: int, runs: int, work: Path,
                 precision: str) -> dict:
    best = {}
    tag = "shoebox" if precision == "f32" else f"shoebox_{precision}"
    for _ in range(runs):
        env = dict(os.environ, HF_HUB_OFFLINE="1", RAYON_NUM_THREADS=str(THREADS))
        r = subprocess.run(
            [str(binary), "bench", "--clip-model", str(folder), "--photos", str(photos),
             "--vectors", "1000", "--precision", precision, "--work-dir", str(work), "--json"],
            capture_output=True, text=True, env=env, check=True,
        )
        d = json.loads(r.stdout)
        for k, v in [("model_img_s", d["index"]["model_img_s"]),
                     ("end_to_end_img_s", d["index"]["end_to_end_img_s"]),
                     ("decode_img_s", d["index"]["decode_img_s"])]:
            best[f"{tag}_{k}"] = max(best.get(f"{tag}_{k}", 0.0), v)
        q = d["notes"].get("text_query_ms")
        if q is not None:
            best[f"{tag}_text_query_ms"] = min(best.get(f"{tag}_text_query_ms", 1e9), q)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shoebox", default=str(ROOT / "target/release/shoebox"))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--passes", type=int, default=5, help="timed passes per runtime (best kept)")
    ap.add_argument("--photos", type=int, default=64, help="camera JPEGs for the pipelines")
    ap.add_argument("--shoebox-runs", type=int, default=2)
    ap.add_argument("--keep", help="write the model folder here and keep it")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="shoebox-runtimes-"))
    folder = Path(a.keep) if a.keep else work / "clip-vit-b-32-random"
    try:
        if not (folder / "model.safetensors").exists():
            make_folder(folder)
        figures = {}
        for precision in ["f32", "q8"]:
            figures.update(time_shoebox(Path(a.shoebox), folder, a.photos, a.shoebox_runs,
                                        work / "bench", precision))
        # The photos shoebox bench generated: the same files for ONNX Runtime's pipeline.
        photos = sorted((work / "bench" / f"photos-{a.photos}").glob("*.jpg"))
        figures.update(time_torch_and_onnx(folder, work, a.batch, a.passes, photos))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ort_rate = figures["onnx_model_img_s"]
    for key in ["shoebox", "shoebox_q8", "torch"]:
        if f"{key}_model_img_s" in figures:
            figures[f"ratio_{key}_vs_onnx_model"] = figures[f"{key}_model_img_s"] / ort_rate
        if f"{key}_text_query_ms" in figures:
            figures[f"ratio_{key}_vs_onnx_text_speed"] = (
                figures["onnx_text_query_ms"] / figures[f"{key}_text_query_ms"])
        if f"{key}_end_to_end_img_s" in figures and "onnx_pil_pipeline_img_s" in figures:
            figures[f"ratio_{key}_index_vs_onnx_pil_pipeline"] = (
                figures[f"{key}_end_to_end_img_s"] / figures["onnx_pil_pipeline_img_s"])
    if a.json:
        print(json.dumps(figures, indent=1))
        return
    print(f"ViT-B/32 random weights, {THREADS} threads, image batch {a.batch}, {a.photos} photos")
    print(f"{'':24}{'image model img/s':>20}{'one text query ms':>20}{'model vs ORT':>14}"
          f"{'index img/s':>14}")
    pil = figures.get("onnx_pil_pipeline_img_s")
    for name, key in [("ONNX Runtime f32", "onnx"), ("PyTorch f32", "torch"),
                      ("Shoebox f32", "shoebox"), ("Shoebox q8", "shoebox_q8")]:
        rate = figures.get(f"{key}_model_img_s")
        if rate is None:
            continue
        q = figures.get(f"{key}_text_query_ms")
        qs = f"{q:20.1f}" if q is not None else f"{'-':>20}"
        e2e = pil if key == "onnx" else figures.get(f"{key}_end_to_end_img_s")
        es = f"{e2e:14.1f}" if e2e is not None else f"{'-':>14}"
        print(f"{name:24}{rate:20.1f}{qs}{rate / ort_rate:13.2f}x{es}")
    print("index: Shoebox's `index` on a fresh library; ONNX Runtime's: PIL draft decode, resize, "
          "crop, batches of 8, sequential")


if __name__ == "__main__":
    sys.exit(main())

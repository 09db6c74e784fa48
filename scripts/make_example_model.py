"""Make the bundled example model: a small CNN trained on scikit-learn's digits, exported to ONNX.

    .venv/bin/python scripts/make_example_model.py [--out verifier/examples]

Writes digits_cnn.onnx, digits_inputs.npz (a few test images, key "input") and digits_calibration.npz
(training images for scale selection, key "input"). Pixels are scaled to [0, 1]. Deterministic (seeded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def load_digits_split(seed: int = 0):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    return train_test_split(images, digits.target, test_size=0.25, random_state=seed, stratify=digits.target)


def train_cnn(x_train, y_train, epochs: int = 12, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Linear(32, 10),
    )
    return _fit(model, x_train, y_train, epochs)


def train_mlp(x_train, y_train, epochs: int = 20, seed: int = 0):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    return _fit(model, x_train, y_train, epochs)


def _fit(model, x_train, y_train, epochs):
    import torch

    torch.set_num_threads(1)
    x = torch.from_numpy(x_train)
    y = torch.from_numpy(np.asarray(y_train, dtype=np.int64))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(x), generator=generator).split(64):
            optimizer.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


def export(model, path: Path, *, dynamo: bool = False, opset: int = 17, input_shape=(1, 1, 8, 8)) -> Path:
    import torch

    example = torch.zeros(input_shape)
    if dynamo:
        batch = torch.export.Dim("batch", min=1, max=4096)
        program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset, input_names=["input"],
                                    output_names=["logits"], dynamic_shapes=({0: batch},), verbose=False)
        program.save(str(path))
    else:
        torch.onnx.export(model, (example,), str(path), dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "verifier" / "examples")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    x_train, x_test, y_train, y_test = load_digits_split()
    model = train_cnn(x_train, y_train)
    export(model, args.out / "digits_cnn.onnx")
    np.savez_compressed(args.out / "digits_inputs.npz", input=x_test[:4])
    np.savez_compressed(args.out / "digits_calibration.npz", input=x_train[:256])
    import torch

    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(x_test)).argmax(1).numpy() == y_test).mean())
    print(f"wrote {args.out}: digits CNN, test accuracy {accuracy:.4f}")


if __name__ == "__main__":
    main()

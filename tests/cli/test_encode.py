"""`smoothcse encode`: the output's suffix picks .npy, .jsonl or .parquet; --normalize; atomic writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from smoothcse.files import atomic_path
from tests.helpers import run

SENTENCES = ["first line", "second, longer line of text", "", 'ünïcödé and a "quote"', "first line"]


@pytest.fixture(scope="module")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("input") / "in.txt"
    path.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def expected(tiny_bert: Path) -> np.ndarray:
    from smoothcse.model.encoder import load_encoder

    return load_encoder(str(tiny_bert), device="cpu").encode(SENTENCES)


def encode_to(model: Path, text: Path, target: Path, *extra: str) -> str:
    code, output = run("encode", str(model), "--input", str(text), "--output", str(target), "--device", "cpu", *extra)
    assert code == 0, output
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no temporary file left behind
    return output


def test_npy(tmp_path: Path, tiny_bert: Path, text_file: Path, expected: np.ndarray) -> None:
    output = encode_to(tiny_bert, text_file, tmp_path / "out" / "vectors.npy")
    vectors = np.load(tmp_path / "out" / "vectors.npy")
    assert vectors.dtype == np.float32 and vectors.shape == (5, 32)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert "5 sentences" in output and "32 dimensions" in output


def test_jsonl(tmp_path: Path, tiny_bert: Path, text_file: Path, expected: np.ndarray) -> None:
    target = tmp_path / "out" / "vectors.JSONL"  # the suffix is matched case-insensitively
    encode_to(tiny_bert, text_file, target)
    records = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert [sorted(r) for r in records] == [["embedding", "text"]] * 5
    assert [r["text"] for r in records] == SENTENCES  # blank lines and non-ASCII kept, in order
    vectors = np.array([r["embedding"] for r in records], dtype=np.float64)
    assert np.array_equal(vectors.astype(np.float32), vectors)  # float32 values, written exactly
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_parquet(tmp_path: Path, tiny_bert: Path, text_file: Path, expected: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    target = tmp_path / "out" / "vectors.parquet"
    encode_to(tiny_bert, text_file, target)
    table = pq.read_table(target)
    assert table.schema.names == ["text", "embedding"]
    assert table.schema.field("text").type == pa.string()
    assert table.schema.field("embedding").type == pa.list_(pa.float32())
    assert table.column("text").to_pylist() == SENTENCES
    vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_normalize(tmp_path: Path, tiny_bert: Path, text_file: Path, expected: np.ndarray) -> None:
    target = tmp_path / "out" / "unit.npy"
    output = encode_to(tiny_bert, text_file, target, "--normalize")
    vectors = np.load(target)
    assert vectors.dtype == np.float32 and "L2-normalised" in output
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(vectors, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-5)
    encode_to(tiny_bert, text_file, tmp_path / "jsonl" / "unit.jsonl", "--normalize")
    lines = (tmp_path / "jsonl" / "unit.jsonl").read_text(encoding="utf-8").splitlines()
    np.testing.assert_allclose([json.loads(line)["embedding"] for line in lines], vectors, atol=1e-6)


def test_unknown_suffix_is_refused_before_loading_the_model(tmp_path: Path, text_file: Path) -> None:
    for name in ("vectors.csv", "vectors"):
        target = tmp_path / name
        code, output = run("encode", str(tmp_path / "no-model"), "--input", str(text_file), "--output", str(target))
        assert code == 2, output
        assert f"--output {target}: unknown suffix" in output and ".npy, .jsonl, .parquet" in output
        assert not target.exists()


def test_parquet_without_pyarrow_names_the_extra(
    tmp_path: Path, text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError, as when not installed
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    target = tmp_path / "vectors.parquet"
    code, output = run("encode", str(tmp_path / "no-model"), "--input", str(text_file), "--output", str(target))
    assert code == 2 and "pip install 'smoothcse[parquet]'" in output
    assert not target.exists()


def test_atomic_path_leaves_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "vectors.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half a fi")
        raise RuntimeError("interrupted")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["vectors.jsonl"]
    with atomic_path(tmp_path / "new" / "vectors.jsonl") as temporary:
        temporary.write_text("whole\n")
        assert not (tmp_path / "new" / "vectors.jsonl").exists()  # nothing at the target until the block ends
    assert (tmp_path / "new" / "vectors.jsonl").read_text() == "whole\n"

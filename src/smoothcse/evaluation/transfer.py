"""SentEval's transfer tasks: logistic regression on frozen sentence embeddings, as SimCSE runs them.

MR, CR, SUBJ and MPQA by stratified 10-fold CV (L2 chosen by an inner CV in each training fold); SST2 with L2
chosen on dev; TREC and MRPC (pair features ``[|u-v|, u*v]``) with L2 chosen by CV on train; Avg is the plain
mean of the 7 accuracies. scikit-learn's lbfgs on standardised features, per-sample L2 strengths mapped to
C = 1/(λ·n), each grid fitted strongest-first with warm starts, one BLAS thread per fit. The folds' fits may
run in joblib's worker processes (``n_jobs``) with the same numbers as the serial run. The protocol, and why
it differs from SentEval's PyTorch classifier: docs/evaluation.md.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, cast

import numpy as np
from joblib import Parallel, delayed
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from smoothcse.datadir import resolve_data_dir
from smoothcse.errors import ConfigError, DataError
from smoothcse.evaluation.data import (
    TRANSFER_TASKS,
    LabelledPairs,
    LabelledSentences,
    PairClassificationTask,
    PathLike,
    TransferTask,
    canonical_task_name,
    load_transfer,
)
from smoothcse.evaluation.embedding import EmbedFn, encode_unique, rows

#: Per-sample L2 strengths tried: SentEval's grid (1e-5..1e-2) plus 1e-1, strongest first.
L2_GRID: tuple[float, ...] = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)
MRPC_FEATURES: dict[str, str] = {"senteval": "[|u-v|, u*v]", "full": "[u, v, |u-v|, u*v]"}
CV_TASKS: tuple[str, ...] = ("MR", "CR", "SUBJ", "MPQA")
#: (features (n, d), labels (n,)) of one split.
Split = tuple[np.ndarray, np.ndarray]
#: joblib's ``n_jobs``: worker processes for the folds (-1: every core, -2: all but one; 1: serial, in this process).
DEFAULT_JOBS = -1


@dataclass(frozen=True)
class TransferSettings:
    """How the classifiers are trained and validated (recorded in every result)."""

    seed: int = 1111  # SentEval's default seed: fold shuffling and subsampling
    folds: int = 10  # outer CV (MR, CR, SUBJ, MPQA) and CV on train (TREC, MRPC)
    inner_folds: int = 5  # CV inside each outer training fold that picks the L2 strength
    l2_grid: tuple[float, ...] = L2_GRID
    standardize: bool = True
    max_iter: int = 1000
    max_samples: int | None = None  # subsample each split to at most this many (quick checks only)
    mrpc_features: str = "senteval"
    blas_threads: int | None = 1  # BLAS threads while fitting (None: the library's default)

    def __post_init__(self) -> None:
        if self.folds < 2 or self.inner_folds < 2:
            raise ConfigError(f"folds and inner_folds must be at least 2 (got {self.folds}, {self.inner_folds}).")
        if not self.l2_grid or any(l2 <= 0 for l2 in self.l2_grid):
            raise ConfigError(f"l2_grid must hold positive strengths (got {self.l2_grid}).")
        if self.max_samples is not None and self.max_samples < 2 * self.folds:
            raise ConfigError(f"max_samples must be at least 2 x folds = {2 * self.folds} (got {self.max_samples}).")
        if self.mrpc_features not in MRPC_FEATURES:
            raise ConfigError(f"Unknown mrpc_features '{self.mrpc_features}'; valid: {', '.join(MRPC_FEATURES)}.")
        object.__setattr__(self, "l2_grid", tuple(sorted(self.l2_grid, reverse=True)))


@dataclass
class LinearClassifier:
    """A fitted logistic regression with the standardisation it was trained under."""

    mean: np.ndarray
    scale: np.ndarray
    model: LogisticRegression
    l2: float

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted labels for (n, d) features."""
        return cast(np.ndarray, self.model.predict((features - self.mean) / self.scale))

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        """The fraction of correct predictions, in [0, 1]."""
        return float(np.mean(self.predict(features) == labels))


def _standardisation(features: np.ndarray, standardize: bool) -> tuple[np.ndarray, np.ndarray]:
    if not standardize:
        return np.zeros(features.shape[1]), np.ones(features.shape[1])
    scale = features.std(axis=0)
    return features.mean(axis=0), np.where(scale > 0, scale, 1.0)


def fit_l2_path(
    features: np.ndarray, labels: np.ndarray, l2_path: Sequence[float], settings: TransferSettings
) -> list[LinearClassifier]:
    """One classifier per L2 strength in ``l2_path`` (in that order), each fit warm-started from the previous.

    λ maps to scikit-learn's C = 1/(λ·n): the objective is mean cross-entropy + λ/2·‖w‖².
    """
    mean, scale = _standardisation(features, settings.standardize)
    standardised = (features - mean) / scale
    model = LogisticRegression(warm_start=True, max_iter=settings.max_iter)
    fitted: list[LinearClassifier] = []
    with threadpool_limits(limits=settings.blas_threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for l2 in l2_path:
            model.set_params(C=1.0 / (l2 * len(labels)))
            model.fit(standardised, labels)
            fitted.append(LinearClassifier(mean, scale, copy.deepcopy(model), l2))
    return fitted


def fit_at(features: np.ndarray, labels: np.ndarray, l2: float, settings: TransferSettings) -> LinearClassifier:
    """A classifier at strength ``l2``, reached along the grid from its strongest end (faster convergence)."""
    path = [g for g in settings.l2_grid if g > l2] + [l2]
    return fit_l2_path(features, labels, path, settings)[-1]


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Shuffled stratified ``folds``-fold splits (train indices, held-out indices), fixed by ``seed``."""
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The least populated class")
        yield from splitter.split(np.zeros(len(labels)), labels)


def check_jobs(n_jobs: int, name: str = "n_jobs") -> int:
    """``n_jobs`` if joblib accepts it (not 0), else a ConfigError naming the option ``name``."""
    if not isinstance(n_jobs, int) or isinstance(n_jobs, bool) or n_jobs == 0:
        raise ConfigError(f"{name} must be a non-zero integer (1: serial, -1: every core), got {n_jobs!r}.")
    return n_jobs


def map_folds(function: Callable[..., Any], arguments: Sequence[tuple[Any, ...]], n_jobs: int) -> list[Any]:
    """``[function(*args) for args in arguments]``, in this process (``n_jobs=1``) or in joblib's worker processes:
    the same results, in the same order. Every ``n_jobs`` below is handed on to here."""
    if n_jobs == 1 or len(arguments) < 2:
        return [function(*args) for args in arguments]
    return list(Parallel(n_jobs=n_jobs)(delayed(function)(*args) for args in arguments))


def _fold_path_accuracy(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, held_out: np.ndarray, settings: TransferSettings
) -> list[float]:
    """Fit the L2 grid on the ``train`` rows; the held-out accuracy of each strength (one CV fold)."""
    with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
        path = fit_l2_path(features[train], labels[train], settings.l2_grid, settings)
        return [clf.accuracy(features[held_out], labels[held_out]) for clf in path]


def select_l2(
    features: np.ndarray, labels: np.ndarray, folds: int, settings: TransferSettings, n_jobs: int = 1
) -> tuple[float, float]:
    """The grid strength with the best mean ``folds``-fold CV accuracy, and that accuracy (in [0, 1])."""
    splits = list(stratified_folds(labels, folds, settings.seed))
    arguments = [(features, labels, train, held_out, settings) for train, held_out in splits]
    accuracy = np.array(map_folds(_fold_path_accuracy, arguments, n_jobs))  # (folds, grid)
    mean = accuracy.mean(axis=0)
    best = int(np.argmax(mean))  # first maximum: the strongest penalty on ties
    return settings.l2_grid[best], float(mean[best])


def _outer_fold(
    features: np.ndarray, labels: np.ndarray, train: np.ndarray, test: np.ndarray, settings: TransferSettings
) -> tuple[float, float, float]:
    """One outer fold of :func:`nested_cv`: (test accuracy × 100, inner-CV accuracy × 100, chosen L2)."""
    with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
        l2, dev = select_l2(features[train], labels[train], settings.inner_folds, settings)
        clf = fit_at(features[train], labels[train], l2, settings)
        return 100.0 * clf.accuracy(features[test], labels[test]), 100.0 * dev, l2


def nested_cv(features: np.ndarray, labels: np.ndarray, settings: TransferSettings, n_jobs: int = 1) -> dict[str, Any]:
    """Outer ``folds``-fold CV; L2 chosen by inner CV on each training fold (MR, CR, SUBJ, MPQA)."""
    splits = list(stratified_folds(labels, settings.folds, settings.seed))
    arguments = [(features, labels, train, test, settings) for train, test in splits]
    fold_accuracy, fold_dev, fold_l2 = (list(column) for column in zip(*map_folds(_outer_fold, arguments, n_jobs)))
    return {
        "accuracy": float(np.mean(fold_accuracy)),
        "dev_accuracy": float(np.mean(fold_dev)),
        "n_samples": int(len(labels)),
        "protocol": f"{settings.folds}-fold CV, L2 by inner {settings.inner_folds}-fold CV",
        "l2": fold_l2,
        "fold_accuracies": fold_accuracy,
    }


def train_dev_test(train: Split, dev: Split, test: Split, settings: TransferSettings) -> dict[str, Any]:
    """Fit the grid on train, pick L2 on dev, report test accuracy (SST2)."""
    path = fit_l2_path(*train, settings.l2_grid, settings)
    dev_accuracy = [clf.accuracy(*dev) for clf in path]
    best = int(np.argmax(dev_accuracy))
    return {
        "accuracy": 100.0 * path[best].accuracy(*test),
        "dev_accuracy": 100.0 * dev_accuracy[best],
        "n_train": int(len(train[1])),
        "n_dev": int(len(dev[1])),
        "n_test": int(len(test[1])),
        "protocol": "L2 chosen on dev, accuracy on test",
        "l2": path[best].l2,
    }


def cv_then_test(
    train: Split, test: Split, settings: TransferSettings, n_jobs: int = 1
) -> tuple[dict[str, Any], np.ndarray]:
    """Pick L2 by ``folds``-fold CV on train, refit on train, score test (TREC, MRPC); also the test predictions."""
    l2, dev = select_l2(*train, settings.folds, settings, n_jobs)
    clf = fit_at(*train, l2, settings)
    predictions = clf.predict(test[0])
    result = {
        "accuracy": 100.0 * float(np.mean(predictions == test[1])),
        "dev_accuracy": 100.0 * dev,
        "n_train": int(len(train[1])),
        "n_test": int(len(test[1])),
        "protocol": f"L2 by {settings.folds}-fold CV on train, accuracy on test",
        "l2": l2,
    }
    return result, predictions


def pair_features(u: np.ndarray, v: np.ndarray, kind: str = "senteval") -> np.ndarray:
    """MRPC pair features: ``[|u-v|, u*v]`` (``"senteval"``) or ``[u, v, |u-v|, u*v]`` (``"full"``)."""
    if kind not in MRPC_FEATURES:
        raise ConfigError(f"Unknown pair features '{kind}'; valid: {', '.join(MRPC_FEATURES)}.")
    return np.hstack(([u, v] if kind == "full" else []) + [np.abs(u - v), u * v])


def subsample(labels: np.ndarray, max_samples: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a stratified random subset of at most ``max_samples`` (all indices if ``None``)."""
    everything = np.arange(len(labels))
    if max_samples is None or max_samples >= len(labels):
        return everything
    kept, _ = train_test_split(everything, train_size=max_samples, stratify=labels, random_state=seed)
    return np.sort(kept)


def _subsampled(task: TransferTask, settings: TransferSettings) -> TransferTask:
    if settings.max_samples is None:
        return task
    splits: dict[str, Any] = {}
    for name, split in task.splits.items():
        keep = subsample(split.labels, settings.max_samples, settings.seed)
        if isinstance(split, LabelledPairs):
            first, second = [split.sentences1[i] for i in keep], [split.sentences2[i] for i in keep]
            splits[name] = LabelledPairs(first, second, split.labels[keep])
        else:
            splits[name] = LabelledSentences([split.sentences[i] for i in keep], split.labels[keep])
    return dataclasses.replace(task, splits=splits)  # type: ignore[arg-type]  # a union of two dataclasses


def score_transfer_task(
    embed: EmbedFn, task: TransferTask, settings: TransferSettings, n_jobs: int = DEFAULT_JOBS
) -> dict[str, Any]:
    """Embed a loaded task's distinct sentences once (in this process) and run its SentEval protocol."""
    task = _subsampled(task, settings)
    vectors, index = encode_unique(embed, task.sentences(), desc=task.name)
    vectors = vectors.astype(np.float64, copy=False)
    with threadpool_limits(limits=settings.blas_threads, user_api="blas"):
        if isinstance(task, PairClassificationTask):
            data = {}
            for name, split in task.splits.items():
                u, v = rows(vectors, index, split.sentences1), rows(vectors, index, split.sentences2)
                data[name] = (pair_features(u, v, settings.mrpc_features), split.labels)
            result, predictions = cv_then_test(data["train"], data["test"], settings, n_jobs)
            result["f1"] = 100.0 * float(f1_score(data["test"][1], predictions))
            result["features"] = MRPC_FEATURES[settings.mrpc_features]
            return result
        data = {name: (rows(vectors, index, s.sentences), s.labels) for name, s in task.splits.items()}
        if task.name in CV_TASKS:
            return nested_cv(*data["all"], settings, n_jobs)
        if "dev" in data:
            return train_dev_test(data["train"], data["dev"], data["test"], settings)
        return cv_then_test(data["train"], data["test"], settings, n_jobs)[0]


def evaluate_transfer(
    embed: EmbedFn,
    data_dir: PathLike | None = None,
    tasks: Sequence[str] | None = None,
    *,
    seed: int = 1111,
    folds: int = 10,
    inner_folds: int = 5,
    l2_grid: Sequence[float] = L2_GRID,
    max_samples: int | None = None,
    mrpc_features: str = "senteval",
    progress: bool = False,
    n_jobs: int = DEFAULT_JOBS,
) -> dict[str, Any]:
    """Score ``embed`` on SentEval's transfer tasks (accuracy × 100; MRPC also F1), default all 7.

    ``inner_folds``: the CV that picks L2 inside each outer training fold (SentEval uses ``folds``; 5 halves the
    cost). ``max_samples``: subsample every split, stratified (quick checks only: not the papers' scores).
    ``n_jobs``: worker processes for the folds' fits (-1: every core, 1: serial); the scores do not depend on it.

    Returns ``{"settings", "data_dir", "tasks": {name: result | {"error": msg}}, "avg": {"accuracy", "tasks"},
    "failed": [names]}``; each result has ``accuracy`` and ``dev_accuracy`` (× 100), sample counts, ``protocol``
    and the chosen ``l2`` (MRPC adds ``f1`` and ``features``, the CV tasks ``fold_accuracies``).
    """
    settings = TransferSettings(
        seed=seed,
        folds=folds,
        inner_folds=inner_folds,
        l2_grid=tuple(l2_grid),
        max_samples=max_samples,
        mrpc_features=mrpc_features,
    )
    check_jobs(n_jobs)
    requested = TRANSFER_TASKS if tasks is None else tasks
    names = list(dict.fromkeys(canonical_task_name(t, TRANSFER_TASKS) for t in requested))
    root = resolve_data_dir(data_dir)
    task_results: dict[str, dict[str, Any]] = {}
    bar = tqdm(names, desc="transfer", unit="task", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        try:
            task = load_transfer(name, root)
        except DataError as err:
            task_results[name] = {"error": str(err)}
            continue
        task_results[name] = score_transfer_task(embed, task, settings, n_jobs)
    failed = [name for name, result in task_results.items() if "error" in result]
    accuracies = [r["accuracy"] for r in task_results.values() if "error" not in r]
    return {
        "settings": {**asdict(settings), "l2_grid": list(settings.l2_grid)},
        "data_dir": str(root),
        "tasks": task_results,
        "avg": {"accuracy": float(np.mean(accuracies)) if accuracies and not failed else None, "tasks": names},
        "failed": failed,
    }

"""Loaders for the evaluation sets in SentEval's ``data/downstream`` layout.

Each loader reads the files exactly as SentEval's task classes do (files, columns, encodings, pairs kept; the
formats: docs/evaluation.md), sentences whitespace-normalised as SentEval hands them to an encoder. A missing
file raises a :class:`~smoothcse.errors.DataError` naming it, the data directory searched and how to get the
data; a malformed line raises one naming ``file:line`` and what is wrong with it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smoothcse.datadir import data_file
from smoothcse.errors import ConfigError, DataError, closest

PathLike = str | os.PathLike[str]
Row = tuple[list[str], Path, int]
"""A line's tab-separated columns, its file and its line number."""

#: The 7 STS tasks in the papers' column order.
STS_TASKS: tuple[str, ...] = ("STS12", "STS13", "STS14", "STS15", "STS16", "STSb", "SICK-R")
#: The STS tasks that have a dev split (STS-B dev, SICK trial), used by ``mode="dev"``.
DEV_STS_TASKS: tuple[str, ...] = ("STSb", "SICK-R")
#: The 7 SentEval transfer tasks in the papers' column order.
TRANSFER_TASKS: tuple[str, ...] = ("MR", "CR", "SUBJ", "MPQA", "SST2", "TREC", "MRPC")

#: The subsets SentEval scores for each STS year (STS13 without SMT), in SentEval's order.
STS_YEAR_SUBSETS: dict[str, tuple[str, ...]] = {
    "STS12": ("MSRpar", "MSRvid", "SMTeuroparl", "surprise.OnWN", "surprise.SMTnews"),
    "STS13": ("FNWN", "headlines", "OnWN"),
    "STS14": ("deft-forum", "deft-news", "headlines", "images", "OnWN", "tweet-news"),
    "STS15": ("answers-forums", "answers-students", "belief", "headlines", "images"),
    "STS16": ("answer-answer", "headlines", "plagiarism", "postediting", "question-question"),
}

STS_DIR = "downstream/STS"
STSB_FILES = {split: f"{STS_DIR}/STSBenchmark/sts-{split}.csv" for split in ("train", "dev", "test")}
#: SentEval calls SICK's trial file its dev split; so do we.
SICK_FILES: dict[str, str] = {
    "train": "downstream/SICK/SICK_train.txt",
    "dev": "downstream/SICK/SICK_trial.txt",
    "test": "downstream/SICK/SICK_test_annotated.txt",
}
#: (positive/label-1 file, negative/label-0 file, class names by label) for the one-file-per-class tasks.
BINARY_FILES: dict[str, tuple[str, str, tuple[str, str]]] = {
    "MR": ("downstream/MR/rt-polarity.pos", "downstream/MR/rt-polarity.neg", ("negative", "positive")),
    "CR": ("downstream/CR/custrev.pos", "downstream/CR/custrev.neg", ("negative", "positive")),
    "SUBJ": ("downstream/SUBJ/subj.objective", "downstream/SUBJ/subj.subjective", ("subjective", "objective")),
    "MPQA": ("downstream/MPQA/mpqa.pos", "downstream/MPQA/mpqa.neg", ("negative", "positive")),
}
SST2_FILES = {split: f"downstream/SST/binary/sentiment-{split}" for split in ("train", "dev", "test")}
TREC_FILES: dict[str, str] = {"train": "downstream/TREC/train_5500.label", "test": "downstream/TREC/TREC_10.label"}
TREC_CLASSES: tuple[str, ...] = ("ABBR", "DESC", "ENTY", "HUM", "LOC", "NUM")
MRPC_FILES = {split: f"downstream/MRPC/msr_paraphrase_{split}.txt" for split in ("train", "test")}

_ALIASES: dict[str, str] = {
    "stsbenchmark": "STSb",
    "sts-b": "STSb",
    "sickrelatedness": "SICK-R",
    "sick": "SICK-R",
    "sickr": "SICK-R",
    "sst": "SST2",
    "sst-2": "SST2",
}


@dataclass(frozen=True)
class STSPairs:
    """Scored sentence pairs of one STS subset or split (gold scores as floats)."""

    name: str
    sentences1: list[str]
    sentences2: list[str]
    scores: np.ndarray  # (n,) float64

    def __post_init__(self) -> None:
        if not len(self.sentences1) == len(self.sentences2) == len(self.scores):
            raise ValueError(f"STSPairs {self.name}: sentences1, sentences2 and scores differ in length")

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class STSTask:
    """One STS task: a year's subsets (STS12-16) or one split of STS-B / SICK-R."""

    name: str
    subsets: dict[str, STSPairs]

    @property
    def n_pairs(self) -> int:
        """The number of scored pairs over all subsets."""
        return sum(len(pairs) for pairs in self.subsets.values())

    def sentences(self) -> list[str]:
        """Every sentence of the task, both sides of every pair, duplicates included."""
        return [s for pairs in self.subsets.values() for s in pairs.sentences1 + pairs.sentences2]


@dataclass(frozen=True)
class LabelledSentences:
    """Sentences with integer class labels (indices into the task's ``classes``)."""

    sentences: list[str]
    labels: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ClassificationTask:
    """A single-sentence classification task. CV tasks have one split, ``"all"``."""

    name: str
    classes: tuple[str, ...]
    splits: dict[str, LabelledSentences]

    def sentences(self) -> list[str]:
        """Every sentence of every split, duplicates included."""
        return [s for split in self.splits.values() for s in split.sentences]


@dataclass(frozen=True)
class LabelledPairs:
    """Sentence pairs with integer class labels."""

    sentences1: list[str]
    sentences2: list[str]
    labels: np.ndarray  # (n,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class PairClassificationTask:
    """A sentence-pair classification task (MRPC)."""

    name: str
    classes: tuple[str, ...]
    splits: dict[str, LabelledPairs]

    def sentences(self) -> list[str]:
        """Every sentence of every split, both sides, duplicates included."""
        return [s for split in self.splits.values() for s in split.sentences1 + split.sentences2]


TransferTask = ClassificationTask | PairClassificationTask


def match_task_name(name: str, choices: Sequence[str]) -> str | None:
    """The canonical spelling of ``name`` among ``choices`` (case-insensitive, common aliases accepted), or None."""
    by_lower = {c.lower(): c for c in choices}
    key = name.strip().lower()
    return by_lower.get(key) or by_lower.get(_ALIASES.get(key, "").lower())


def canonical_task_name(name: str, choices: Sequence[str]) -> str:
    """:func:`match_task_name`, or a ConfigError listing the valid names and the closest one."""
    found = match_task_name(name, choices)
    if found is None:
        raise ConfigError(f"Unknown task '{name}'; valid tasks: {', '.join(choices)}.{closest(name, choices)}")
    return found


def normalise_whitespace(text: str) -> str:
    """Split on whitespace and re-join with single spaces, as SentEval's loaders and SimCSE's batcher do."""
    return " ".join(text.split())


def read_lines(path: Path, encoding: str) -> list[str]:
    """The lines of a text file without their LF or CRLF ends (no extra empty line after a final newline; a UTF-8
    BOM is dropped with ``utf-8-sig``). Undecodable bytes raise a DataError."""
    try:
        text = path.read_text(encoding=encoding)
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: cannot decode as {encoding} ({err.reason} at byte {err.start}).") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def malformed(path: Path, lineno: int, problem: str) -> DataError:
    """A DataError pointing at ``path:lineno``."""
    return DataError(f"{path}:{lineno}: {problem}")


def parse_score(text: str, path: Path, lineno: int) -> float:
    """A finite float gold score, or a DataError naming the file and line."""
    try:
        value = float(text)
    except ValueError:
        raise malformed(path, lineno, f"score {text!r} is not a number.") from None
    if not math.isfinite(value):
        raise malformed(path, lineno, f"score {text!r} is not a finite number.")
    return value


def parse_label(text: str, classes: Sequence[str], path: Path, lineno: int) -> int:
    """An integer label in ``range(len(classes))``, or a DataError naming the file and line."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < len(classes):
        valid = ", ".join(str(i) for i in range(len(classes)))
        raise malformed(path, lineno, f"label {text!r} is not one of {valid}.")
    return value


def split_columns(line: str, minimum: int, what: str, path: Path, lineno: int) -> list[str]:
    """Tab-separated columns of a stripped line (SentEval: ``line.strip().split('\\t')``), at least ``minimum``."""
    columns = line.strip().split("\t")
    if len(columns) < minimum:
        raise malformed(path, lineno, f"expected {minimum} tab-separated columns ({what}), found {len(columns)}.")
    return columns


def load_sts_subset(year: str, subset: str, data_dir: PathLike | None = None) -> STSPairs:
    """One subset of an STS year, e.g. ``("STS12", "MSRpar")``, with unscored pairs dropped."""
    folder = f"{STS_DIR}/{year}-en-test"
    input_path = data_file(f"{folder}/STS.input.{subset}.txt", data_dir)
    gold_path = data_file(f"{folder}/STS.gs.{subset}.txt", data_dir)
    inputs = read_lines(input_path, "utf-8-sig")
    golds = read_lines(gold_path, "utf-8-sig")
    if len(inputs) != len(golds):
        raise DataError(
            f"{input_path} has {len(inputs)} lines but {gold_path} has {len(golds)}; "
            "every input line needs one gold line (empty for an unscored pair)."
        )
    sentences1: list[str] = []
    sentences2: list[str] = []
    scores: list[float] = []
    for lineno, (pair, gold) in enumerate(zip(inputs, golds), start=1):
        columns = pair.split("\t")
        if len(columns) != 2:
            raise malformed(input_path, lineno, f"expected 2 tab-separated sentences, found {len(columns)} column(s).")
        if not gold.strip():
            continue  # unscored pair (STS15, STS16): SentEval drops it
        scores.append(parse_score(gold.strip(), gold_path, lineno))
        sentences1.append(normalise_whitespace(columns[0]))
        sentences2.append(normalise_whitespace(columns[1]))
    return STSPairs(subset, sentences1, sentences2, np.asarray(scores, dtype=np.float64))


def load_sts_year(year: str, data_dir: PathLike | None = None) -> STSTask:
    """All subsets SentEval scores for one of STS12..STS16."""
    year = canonical_task_name(year, tuple(STS_YEAR_SUBSETS))
    subsets = {subset: load_sts_subset(year, subset, data_dir) for subset in STS_YEAR_SUBSETS[year]}
    return STSTask(year, subsets)


def _check_split(split: str, files: dict[str, str], task: str) -> str:
    if split not in files:
        raise ConfigError(f"{task} has no split '{split}'; valid splits: {', '.join(files)}.{closest(split, files)}")
    return files[split]


def _columns(relative: str, data_dir: PathLike | None, minimum: int, what: str, header: bool = False) -> Iterator[Row]:
    """The tab-separated columns of every line of a UTF-8 file (after its header line), with the file and line."""
    path = data_file(relative, data_dir)
    lines = read_lines(path, "utf-8-sig")
    for lineno, line in enumerate(lines[1:] if header else lines, start=2 if header else 1):
        yield split_columns(line, minimum, what, path, lineno), path, lineno


def _scored_pairs(split: str, rows: Iterator[Row], score: int, first: int, second: int) -> STSPairs:
    """Gold scores and both sentences of every row (from the columns ``score``, ``first`` and ``second``)."""
    sentences1: list[str] = []
    sentences2: list[str] = []
    scores: list[float] = []
    for columns, path, lineno in rows:
        scores.append(parse_score(columns[score], path, lineno))
        sentences1.append(normalise_whitespace(columns[first]))
        sentences2.append(normalise_whitespace(columns[second]))
    return STSPairs(split, sentences1, sentences2, np.asarray(scores, dtype=np.float64))


def load_stsb(split: str = "test", data_dir: PathLike | None = None) -> STSPairs:
    """One split of STS Benchmark (score: column 5; sentences: columns 6 and 7; no quote handling)."""
    what = "genre, file, year, id, score, sentence 1, sentence 2"
    return _scored_pairs(split, _columns(_check_split(split, STSB_FILES, "STSb"), data_dir, 7, what), 4, 5, 6)


def load_sick_relatedness(split: str = "test", data_dir: PathLike | None = None) -> STSPairs:
    """One split of SICK with its relatedness scores (``dev`` is SICK_trial.txt, as in SentEval)."""
    what = "pair_ID, sentence_A, sentence_B, relatedness_score, ..."
    rows = _columns(_check_split(split, SICK_FILES, "SICK-R"), data_dir, 4, what, header=True)
    return _scored_pairs(split, rows, 3, 1, 2)


def load_sts(name: str, split: str = "test", data_dir: PathLike | None = None) -> STSTask:
    """Any of the 7 STS tasks. STS12-16 are test-only; STSb and SICK-R give one split as one subset."""
    name = canonical_task_name(name, STS_TASKS)
    if name in STS_YEAR_SUBSETS:
        if split != "test":
            dev_tasks = ", ".join(DEV_STS_TASKS)
            raise ConfigError(f"{name} has only a test split (asked for '{split}'); dev tasks: {dev_tasks}.")
        return load_sts_year(name, data_dir)
    loader = load_stsb if name == "STSb" else load_sick_relatedness
    return STSTask(name, {split: loader(split, data_dir)})


def _sentences_of(path: Path, encoding: str) -> list[str]:
    return [normalise_whitespace(line) for line in read_lines(path, encoding)]


def load_binary(name: str, data_dir: PathLike | None = None) -> ClassificationTask:
    """MR, CR, SUBJ or MPQA: latin-1, one sentence a line, one file per class; split ``"all"`` (for CV)."""
    name = canonical_task_name(name, tuple(BINARY_FILES))
    positive_file, negative_file, classes = BINARY_FILES[name]
    positive = _sentences_of(data_file(positive_file, data_dir), "latin-1")
    negative = _sentences_of(data_file(negative_file, data_dir), "latin-1")
    labels = np.array([1] * len(positive) + [0] * len(negative), dtype=np.int64)
    return ClassificationTask(name, classes, {"all": LabelledSentences(positive + negative, labels)})


def _load_sst2_split(relative: str, data_dir: PathLike | None) -> LabelledSentences:
    sentences: list[str] = []
    labels: list[int] = []
    for columns, path, lineno in _columns(relative, data_dir, 2, "sentence, label"):
        labels.append(parse_label(columns[1].strip(), ("negative", "positive"), path, lineno))
        sentences.append(normalise_whitespace(columns[0]))
    return LabelledSentences(sentences, np.asarray(labels, dtype=np.int64))


def load_sst2(data_dir: PathLike | None = None) -> ClassificationTask:
    """SST binary (``SST/binary/sentiment-{train,dev,test}``): UTF-8 ``sentence<TAB>0|1``."""
    splits = {split: _load_sst2_split(relative, data_dir) for split, relative in SST2_FILES.items()}
    return ClassificationTask("SST2", ("negative", "positive"), splits)


def _load_trec_split(relative: str, data_dir: PathLike | None) -> LabelledSentences:
    path = data_file(relative, data_dir)
    sentences: list[str] = []
    labels: list[int] = []
    for lineno, line in enumerate(read_lines(path, "latin-1"), start=1):
        coarse, colon, rest = line.strip().partition(":")
        if not colon:
            raise malformed(path, lineno, "expected 'COARSE:fine question...', found no ':'.")
        if coarse not in TREC_CLASSES:
            raise malformed(path, lineno, f"coarse label {coarse!r} is not one of {', '.join(TREC_CLASSES)}.")
        _fine, space, question = rest.partition(" ")
        if not space:
            raise malformed(path, lineno, "expected 'COARSE:fine question...', found no question after the label.")
        labels.append(TREC_CLASSES.index(coarse))
        sentences.append(normalise_whitespace(question))
    return LabelledSentences(sentences, np.asarray(labels, dtype=np.int64))


def load_trec(data_dir: PathLike | None = None) -> ClassificationTask:
    """TREC question types (6 coarse classes): latin-1 ``COARSE:fine question``, train/test."""
    splits = {split: _load_trec_split(relative, data_dir) for split, relative in TREC_FILES.items()}
    return ClassificationTask("TREC", TREC_CLASSES, splits)


def _load_mrpc_split(relative: str, data_dir: PathLike | None) -> LabelledPairs:
    sentences1: list[str] = []
    sentences2: list[str] = []
    labels: list[int] = []
    what = "Quality, #1 ID, #2 ID, #1 String, #2 String"
    for columns, path, lineno in _columns(relative, data_dir, 5, what, header=True):
        labels.append(parse_label(columns[0].strip(), ("not paraphrase", "paraphrase"), path, lineno))
        sentences1.append(normalise_whitespace(columns[3]))
        sentences2.append(normalise_whitespace(columns[4]))
    return LabelledPairs(sentences1, sentences2, np.asarray(labels, dtype=np.int64))


def load_mrpc(data_dir: PathLike | None = None) -> PairClassificationTask:
    """MRPC paraphrase pairs: UTF-8 (BOM on the header), ``Quality #1ID #2ID #1String #2String``, train/test."""
    splits = {split: _load_mrpc_split(relative, data_dir) for split, relative in MRPC_FILES.items()}
    return PairClassificationTask("MRPC", ("not paraphrase", "paraphrase"), splits)


def load_transfer(name: str, data_dir: PathLike | None = None) -> TransferTask:
    """Any of the 7 transfer tasks by name (case-insensitive)."""
    name = canonical_task_name(name, TRANSFER_TASKS)
    if name in BINARY_FILES:
        return load_binary(name, data_dir)
    if name == "MRPC":
        return load_mrpc(data_dir)
    return load_sst2(data_dir) if name == "SST2" else load_trec(data_dir)

"""Harder positives than dropout alone: a second view from the unit's document, each view cropped and/or thinned.

A trained encoder tells two dropout views of one sentence from the rest of a batch at once, so their InfoNCE
teaches little; views that differ in their text keep the positive pair informative. ``crop`` is Contriever's
independent cropping, ``delete`` TSDAE's token deletion, :class:`DocumentPairs` another unit of the same
document, :class:`DocumentTitles` its document's title (E5's title-passage pairs). Crop, then deletion, act
on the ids between the first and last token, which stay; the draws come from a generator of (seed, step,
rank), so a resumed run sees the same views (docs/objectives.md, "Harder views").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from smoothcse.errors import ConfigError


@dataclass(frozen=True)
class ViewNoise:
    """How each view of a unit is made from its token ids (both 0: the two views are the same ids)."""

    crop: float = 0.0
    """Smallest fraction of the unit's inner tokens a view keeps (0 = no cropping)."""
    delete: float = 0.0
    """Probability of deleting each inner token (0 = no deletion)."""

    @property
    def active(self) -> bool:
        return self.crop > 0 or self.delete > 0

    def view(self, ids: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One view of a unit's ids: the first token, the cropped and thinned inner tokens, the last token."""
        if len(ids) <= 3:  # at most one inner token: nothing to take away
            return ids
        head, body, tail = ids[:1], ids[1:-1], ids[-1:]
        if self.crop > 0:
            keep = max(1, math.ceil(rng.uniform(self.crop, 1.0) * len(body)))
            start = int(rng.integers(0, len(body) - keep + 1))
            body = body[start : start + keep]
        if self.delete > 0:
            kept = rng.random(len(body)) >= self.delete  # (len,)
            if not kept.any():
                kept[int(rng.integers(len(body)))] = True
            body = body[kept]
        return np.concatenate([head, body, tail])

    def views(
        self, units: list[np.ndarray], partners: list[np.ndarray], seed: int, step: int, rank: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """A view of each unit and one of its partner (the unit itself, or a unit of its document), drawn from
        the generator of (seed, step, rank)."""
        if not self.active:
            return units, partners
        rng = np.random.default_rng([seed, step, rank])
        first = [self.view(ids, rng) for ids in units]
        second = [self.view(ids, rng) for ids in partners]
        return first, second


class DocumentPairs:
    """Each unit's partner for the second view: another unit of its document, uniform over the others.

    ``documents`` (n,): each unit's document id, equal and consecutive for one document's units (the token
    cache's ``documents.npy``). A document of one unit pairs the unit with itself (dropout alone then)."""

    def __init__(self, documents: np.ndarray) -> None:
        documents = np.asarray(documents)
        starts = np.flatnonzero(np.r_[True, documents[1:] != documents[:-1]])  # (D,) first unit of each run
        counts = np.diff(np.r_[starts, len(documents)])
        run = np.repeat(np.arange(len(starts)), counts)  # (n,) each unit's document run
        self.start, self.count = starts[run], counts[run]

    @classmethod
    def of(cls, documents: np.ndarray, data: str) -> DocumentPairs:
        """The pairs of ``--data``'s units; refused when no document holds two units."""
        pairs = cls(documents)
        if not pairs.paired:
            raise ConfigError(
                f"--view-source document: no document of --data {data} holds two units, so every positive would "
                "be the unit itself; give a JSONL document corpus (--units sentences cuts each document into its "
                "sentences), or use --view-source unit."
            )
        return pairs

    @property
    def paired(self) -> int:
        """How many units have a partner other than themselves."""
        return int((self.count > 1).sum())

    def partners(self, indices: np.ndarray, seed: int, step: int, rank: int) -> np.ndarray:
        """The partner of each unit of ``indices`` at this step, from the generator of (seed, step, rank, 1)."""
        indices = np.asarray(indices, dtype=np.int64)
        start, count = self.start[indices], self.count[indices]
        rng = np.random.default_rng([seed, step, rank, 1])
        other = (rng.random(len(indices)) * np.maximum(count - 1, 1)).astype(np.int64)  # among the count - 1 others
        other += other >= indices - start  # skip the unit itself
        return np.where(count > 1, start + other, indices)

    def partner_rows(self, corpus: Any, indices: np.ndarray, partners: np.ndarray) -> list[np.ndarray]:
        """The token ids of each unit's partner (``partners``: this step's :meth:`partners` of ``indices``;
        ``corpus``: the token cache)."""
        return [corpus.sentence(int(j)) for j in partners]

    def partner_teacher(self, teacher: np.ndarray, indices: np.ndarray, partners: np.ndarray) -> np.ndarray:
        """``(n, d_t)`` the teacher's embeddings of each unit's partner (``teacher``: of the units)."""
        return np.asarray(teacher[partners])


@dataclass(frozen=True)
class DocumentTitles:
    """Each unit's partner for the second view: its document's title (BEIR's ``title``), tokenised as the units
    are; a unit of an untitled document pairs with itself. A short, query-like text against a sentence of the
    body: the title-passage pairs of E5's pre-training (Wang et al., 2022) at sentence grain."""

    documents: np.ndarray
    """(n,) each unit's document (its source line, the token cache's ``documents.npy``)."""
    title_ids: dict[int, np.ndarray]
    """Token ids of each titled document's title, by source line."""
    titles: tuple[str, ...] = ()
    """The titles' texts, in the order of ``title_ids`` (what a teacher embeds)."""
    teacher: np.ndarray | None = field(default=None, repr=False)
    """``(titles, d_t)`` a frozen teacher's embeddings of ``titles``, when the run reads a teacher."""

    @classmethod
    def of(
        cls, documents: np.ndarray, titles: dict[int, str], tokenizer: Any, max_len: int, data: str
    ) -> DocumentTitles:
        """The titles of ``--data``'s documents (``titles``: by source line); refused when no unit has one."""
        lines = sorted(set(np.unique(documents).tolist()) & titles.keys())
        if not lines:
            raise ConfigError(
                f"--view-source title: no document of --data {data} has a 'title' (the field of BEIR's "
                "corpus.jsonl), so every positive would be the unit itself; use --view-source document or unit."
            )
        texts = tuple(titles[k] for k in lines)
        encoded = tokenizer(list(texts), truncation=True, max_length=max_len)["input_ids"]
        title_ids = {k: np.asarray(ids, dtype=np.int64) for k, ids in zip(lines, encoded)}
        return cls(np.asarray(documents), title_ids, texts)

    @property
    def paired(self) -> int:
        """How many units have a title for a partner."""
        return int(np.isin(self.documents, list(self.title_ids)).sum())

    @cached_property
    def _title_of_unit(self) -> np.ndarray:
        """(n,) each unit's row in ``titles``, or -1 when its document has none."""
        position = {line: k for k, line in enumerate(self.title_ids)}
        return np.array([position.get(int(line), -1) for line in self.documents], dtype=np.int64)

    @cached_property
    def _title_rows(self) -> list[np.ndarray]:
        """The titles' token ids in the order of :attr:`titles` (built once, not at every step)."""
        return list(self.title_ids.values())

    def partners(self, indices: np.ndarray, seed: int, step: int, rank: int) -> np.ndarray:
        """Each unit's row in :attr:`titles` (-1: its document has none, so it pairs with itself); the same
        at every step (the arguments after ``indices`` are :meth:`DocumentPairs.partners`')."""
        return self._title_of_unit[np.asarray(indices, dtype=np.int64)]

    def partner_rows(self, corpus: Any, indices: np.ndarray, partners: np.ndarray) -> list[np.ndarray]:
        """The token ids of each unit's title (the unit itself when it has none); ``partners``: :meth:`partners`."""
        return [self._title_rows[k] if k >= 0 else corpus.sentence(int(i)) for i, k in zip(indices, partners)]

    def partner_teacher(self, teacher: np.ndarray, indices: np.ndarray, partners: np.ndarray) -> np.ndarray:
        """``(n, d_t)`` the teacher's embeddings of each unit's title (``teacher``: of the units, for a unit
        without one); needs :attr:`teacher`, the titles' own."""
        if self.teacher is None:
            raise ValueError("DocumentTitles.teacher is unset: embed the titles with the teacher first.")
        rows = np.array(teacher[np.asarray(indices, dtype=np.int64)], dtype=np.float32)  # (n, d_t) a copy
        rows[partners >= 0] = self.teacher[partners[partners >= 0]]
        return rows


ViewPartners = DocumentPairs | DocumentTitles | None
"""Where each unit's second view comes from: another unit of its document, its title, or (None) itself."""

"""Class 3: the token cache is verified when it is opened; a damaged entry is rebuilt with one warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smoothcse.data.corpus import TokenizedCorpus


def damage(folder: Path, how: str) -> None:
    if how == "ids-half":
        ids = folder / "ids.bin"
        ids.write_bytes(ids.read_bytes()[: ids.stat().st_size // 2])
    elif how == "offsets-half":
        offsets = folder / "offsets.npy"
        offsets.write_bytes(offsets.read_bytes()[: offsets.stat().st_size // 2])
    elif how == "meta-cut":
        meta = folder / "meta.json"
        meta.write_text(meta.read_text()[:20])
    elif how == "meta-wrong-count":
        meta = json.loads((folder / "meta.json").read_text())
        meta["stats"]["sentences"] -= 1
        (folder / "meta.json").write_text(json.dumps(meta))
    elif how == "ids-missing":
        (folder / "ids.bin").unlink()


@pytest.mark.parametrize("how", ["ids-half", "offsets-half", "meta-cut", "meta-wrong-count", "ids-missing"])
def test_damaged_cache_entry_is_rebuilt_with_one_warning(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    good = TokenizedCorpus.build(small_corpus, tokenizer, 24, cache_dir=tmp_path, progress=False)
    sentences, tokens, folder = len(good), int(good.stats.tokens), good.folder
    ends = [list(good.sentence(0)), list(good.sentence(sentences - 1))]
    del good  # its memory maps, before the files under them are cut
    damage(folder, how)
    capsys.readouterr()
    again = TokenizedCorpus.build(small_corpus, tokenizer, 24, cache_dir=tmp_path, progress=False)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "damaged" in warnings[0] and str(folder) in warnings[0]
    assert len(again) == sentences and int(again.offsets[-1]) == tokens
    assert (again.folder / "ids.bin").stat().st_size == tokens * 4
    assert [list(again.sentence(i)) for i in (0, sentences - 1)] == ends

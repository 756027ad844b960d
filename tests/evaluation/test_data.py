"""Loaders for SentEval's downstream layout: counts, encodings, and errors on bad input."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from smoothcse.errors import ConfigError, DataError
from smoothcse.evaluation.data import (
    STS_YEAR_SUBSETS,
    canonical_task_name,
    load_binary,
    load_mrpc,
    load_sick_relatedness,
    load_sst2,
    load_sts,
    load_sts_year,
    load_stsb,
    load_transfer,
    load_trec,
)


def copy_into(tmp_path: Path, data_dir: Path, relative: str) -> Path:
    """Copy one file or folder of the data dir into a temporary data dir (writable), return the copy."""
    source, target = data_dir / relative, tmp_path / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target)
        for path in target.rglob("*"):
            path.chmod(0o644 if path.is_file() else 0o755)
    else:
        shutil.copyfile(source, target)
        target.chmod(0o644)
    return target


def replace_line(path: Path, lineno: int, text: str, encoding: str = "utf-8") -> None:
    lines = path.read_text(encoding=encoding).split("\n")
    lines[lineno - 1] = text
    path.write_text("\n".join(lines), encoding=encoding)


# --------------------------------------------------------------------------- counts (SentEval's)

STS_COUNTS = {
    "STS12": {"MSRpar": 750, "MSRvid": 750, "SMTeuroparl": 459, "surprise.OnWN": 750, "surprise.SMTnews": 399},
    "STS13": {"FNWN": 189, "headlines": 750, "OnWN": 561},
    "STS14": {"deft-forum": 450, "deft-news": 300, "headlines": 750, "images": 750, "OnWN": 750, "tweet-news": 750},
    "STS15": {"answers-forums": 375, "answers-students": 750, "belief": 375, "headlines": 750, "images": 750},
    "STS16": {"answer-answer": 254, "headlines": 249, "plagiarism": 230, "postediting": 244, "question-question": 209},
}
STS_TOTALS = {"STS12": 3108, "STS13": 1500, "STS14": 3750, "STS15": 3000, "STS16": 1186}


@pytest.mark.parametrize("year", sorted(STS_COUNTS))
def test_sts_year_pair_counts(data_dir: Path, year: str) -> None:
    task = load_sts_year(year, data_dir)
    assert {name: len(pairs) for name, pairs in task.subsets.items()} == STS_COUNTS[year]
    assert task.n_pairs == STS_TOTALS[year]
    assert list(task.subsets) == list(STS_YEAR_SUBSETS[year])
    for pairs in task.subsets.values():
        assert pairs.scores.dtype == np.float64
        assert np.all((pairs.scores >= 0) & (pairs.scores <= 5))


def test_sts13_has_no_smt_subset(data_dir: Path) -> None:
    assert (data_dir / "downstream/STS/STS13-en-test/STS.gs.SMT.txt").exists()
    assert "SMT" not in load_sts_year("STS13", data_dir).subsets


@pytest.mark.parametrize(
    ("loader", "split", "count"),
    [
        (load_stsb, "train", 5749),
        (load_stsb, "dev", 1500),
        (load_stsb, "test", 1379),
        (load_sick_relatedness, "train", 4500),
        (load_sick_relatedness, "dev", 500),
        (load_sick_relatedness, "test", 4927),
    ],
)
def test_stsb_and_sick_counts(data_dir: Path, loader, split: str, count: int) -> None:
    pairs = loader(split, data_dir)
    assert len(pairs) == count
    assert pairs.name == split


def test_load_sts_dispatches_by_task_name(data_dir: Path) -> None:
    assert load_sts("STSBenchmark", "dev", data_dir).n_pairs == 1500
    assert list(load_sts("sick-r", "test", data_dir).subsets) == ["test"]
    with pytest.raises(ConfigError, match="only a test split"):
        load_sts("STS12", "dev", data_dir)
    with pytest.raises(ConfigError, match="valid splits: train, dev, test"):
        load_stsb("validation", data_dir)


def test_stsb_quotes_are_plain_characters(data_dir: Path) -> None:
    """csv-style quoting would merge lines of sts-dev.csv (110 lines hold a '"'); SentEval splits on tabs."""
    pairs = load_stsb("dev", data_dir)
    assert len(pairs) == 1500
    assert any('"' in s for s in pairs.sentences1 + pairs.sentences2)


def test_sick_test_crlf_is_stripped(data_dir: Path) -> None:
    assert b"\r\n" in (data_dir / "downstream/SICK/SICK_test_annotated.txt").read_bytes()
    pairs = load_sick_relatedness("test", data_dir)
    assert not any("\r" in s for s in pairs.sentences1 + pairs.sentences2)
    assert pairs.sentences1[0] == "There is no boy playing outdoors and there is no man smiling"
    assert pairs.scores[:2].tolist() == [3.3, 3.7]


def test_sentences_are_whitespace_joined(data_dir: Path) -> None:
    task = load_sts_year("STS16", data_dir)
    for sentence in task.sentences():
        assert sentence == " ".join(sentence.split())


TRANSFER_COUNTS = {
    "MR": {"all": [5331, 5331]},
    "CR": {"all": [1368, 2407]},
    "SUBJ": {"all": [5000, 5000]},
    "MPQA": {"all": [7294, 3312]},
    "SST2": {"train": [29780, 37569], "dev": [428, 444], "test": [912, 909]},
    "TREC": {"train": [86, 1162, 1250, 1223, 835, 896], "test": [9, 138, 94, 65, 81, 113]},
    "MRPC": {"train": [1323, 2753], "test": [578, 1147]},
}


@pytest.mark.parametrize("name", list(TRANSFER_COUNTS))
def test_transfer_counts_per_class(data_dir: Path, name: str) -> None:
    task = load_transfer(name, data_dir)
    counts = {split: np.bincount(s.labels, minlength=len(task.classes)).tolist() for split, s in task.splits.items()}
    assert counts == TRANSFER_COUNTS[name]


def test_transfer_totals(data_dir: Path) -> None:
    assert len(load_binary("MR", data_dir).splits["all"]) == 10662
    assert len(load_binary("CR", data_dir).splits["all"]) == 3775
    assert len(load_binary("SUBJ", data_dir).splits["all"]) == 10000
    assert len(load_binary("MPQA", data_dir).splits["all"]) == 10606
    assert len(load_sst2(data_dir).splits["test"]) == 1821
    assert len(load_trec(data_dir).splits["test"]) == 500
    assert len(load_mrpc(data_dir).splits["test"]) == 1725


def test_empty_lines_are_kept_as_empty_sentences(data_dir: Path) -> None:
    """SentEval counts CR's and MPQA's empty lines as samples (3775 and 10606)."""
    assert load_binary("CR", data_dir).splits["all"].sentences.count("") == 4
    assert load_binary("MPQA", data_dir).splits["all"].sentences.count("") == 3


def test_trec_latin1_byte_and_coarse_labels(data_dir: Path) -> None:
    train = load_trec(data_dir).splits["train"]
    assert train.sentences[65] == "Which city has the oldest relationship as a sister\u00f0city with Los Angeles ?"
    test = load_trec(data_dir).splits["test"]
    assert test.sentences[0] == "How far is it from Denver to Aspen ?"  # 'NUM:dist' removed
    assert load_trec(data_dir).classes[test.labels[0]] == "NUM"


def test_mrpc_bom_header_is_skipped(data_dir: Path) -> None:
    assert (data_dir / "downstream/MRPC/msr_paraphrase_test.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    test = load_mrpc(data_dir).splits["test"]
    assert test.sentences1[0].startswith("PCCW 's chief operating officer")
    assert not any("\ufeff" in s or "Quality" == s for s in test.sentences1)
    assert test.labels[0] == 1


def test_sst2_utf8(data_dir: Path) -> None:
    task = load_sst2(data_dir)
    assert any("é" in s for s in task.sentences())
    assert task.splits["test"].sentences[0] == "uneasy mishmash of styles and genres ."


# --------------------------------------------------------------------------- bad input


def test_missing_file_names_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_stsb("test", tmp_path)
    message = str(caught.value)
    assert "downstream/STS/STSBenchmark/sts-test.csv" in message
    assert str(tmp_path) in message
    assert "get_transfer_data.bash" in message  # how to get the data


def test_missing_sts_gold_file(tmp_path: Path, data_dir: Path) -> None:
    folder = copy_into(tmp_path, data_dir, "downstream/STS/STS13-en-test")
    (folder / "STS.gs.OnWN.txt").unlink()
    with pytest.raises(DataError, match=r"STS\.gs\.OnWN\.txt.*" + str(tmp_path)):
        load_sts_year("STS13", tmp_path)


def data_error(call, *args) -> str:
    """The message of the DataError that ``call(*args)`` raises."""
    with pytest.raises(DataError) as caught:
        call(*args)
    return str(caught.value)


def test_stsb_non_numeric_score(tmp_path: Path, data_dir: Path) -> None:
    path = copy_into(tmp_path, data_dir, "downstream/STS/STSBenchmark/sts-test.csv")
    columns = path.read_text(encoding="utf-8").split("\n")[4].split("\t")
    columns[4] = "high"
    replace_line(path, 5, "\t".join(columns))
    assert f"{path}:5: score 'high' is not a number" in data_error(load_stsb, "test", tmp_path)


def test_stsb_missing_column(tmp_path: Path, data_dir: Path) -> None:
    path = copy_into(tmp_path, data_dir, "downstream/STS/STSBenchmark/sts-test.csv")
    columns = path.read_text(encoding="utf-8").split("\n")[9].split("\t")
    replace_line(path, 10, "\t".join(columns[:6]))
    message = data_error(load_stsb, "test", tmp_path)
    assert f"{path}:10: expected 7 tab-separated columns" in message
    assert "found 6" in message


def test_sts_bad_gold_and_bad_input(tmp_path: Path, data_dir: Path) -> None:
    folder = copy_into(tmp_path, data_dir, "downstream/STS/STS13-en-test")
    gold = folder / "STS.gs.FNWN.txt"
    replace_line(gold, 7, "n/a")
    assert f"{gold}:7: score 'n/a' is not a number" in data_error(load_sts_year, "STS13", tmp_path)
    shutil.copyfile(data_dir / "downstream/STS/STS13-en-test/STS.gs.FNWN.txt", gold)
    source = folder / "STS.input.FNWN.txt"
    replace_line(source, 3, "only one sentence here")
    expected = f"{source}:3: expected 2 tab-separated sentences, found 1"
    assert expected in data_error(load_sts_year, "STS13", tmp_path)


def test_sts_line_count_mismatch(tmp_path: Path, data_dir: Path) -> None:
    folder = copy_into(tmp_path, data_dir, "downstream/STS/STS13-en-test")
    gold = folder / "STS.gs.FNWN.txt"
    gold.write_text("\n".join(gold.read_text().split("\n")[:100]) + "\n")
    message = data_error(load_sts_year, "STS13", tmp_path)
    assert f"{folder / 'STS.input.FNWN.txt'} has 189 lines but {gold} has 100" in message


def test_sick_bad_score(tmp_path: Path, data_dir: Path) -> None:
    path = copy_into(tmp_path, data_dir, "downstream/SICK/SICK_trial.txt")
    columns = path.read_text(encoding="utf-8").split("\n")[2].split("\t")
    columns[3] = "nan"
    replace_line(path, 3, "\t".join(columns))
    assert f"{path}:3: score 'nan' is not a finite number" in data_error(load_sick_relatedness, "dev", tmp_path)


def test_transfer_malformed_lines(tmp_path: Path, data_dir: Path) -> None:
    sst = copy_into(tmp_path, data_dir, "downstream/SST/binary")
    replace_line(sst / "sentiment-dev", 4, "a fine film .\tpositive")
    assert f"{sst / 'sentiment-dev'}:4: label 'positive' is not one of 0, 1" in data_error(load_sst2, tmp_path)

    trec = copy_into(tmp_path, data_dir, "downstream/TREC") / "TREC_10.label"
    replace_line(trec, 2, "What county is Modesto in ?", encoding="latin-1")
    assert f"{trec}:2: expected 'COARSE:fine question...', found no ':'" in data_error(load_trec, tmp_path)
    replace_line(trec, 2, "PLACE:city What county is Modesto in ?", encoding="latin-1")
    assert f"{trec}:2: coarse label 'PLACE' is not one of ABBR" in data_error(load_trec, tmp_path)

    mrpc = copy_into(tmp_path, data_dir, "downstream/MRPC") / "msr_paraphrase_train.txt"
    replace_line(mrpc, 6, "1\t123\t456\tonly one sentence")
    message = data_error(load_mrpc, tmp_path)
    assert f"{mrpc}:6: expected 5 tab-separated columns" in message
    assert "found 4" in message


def test_undecodable_bytes_name_file_and_line(tmp_path: Path, data_dir: Path) -> None:
    path = copy_into(tmp_path, data_dir, "downstream/STS/STSBenchmark/sts-test.csv")
    data = path.read_bytes().split(b"\n")
    data[2] = data[2] + b"\xff"
    path.write_bytes(b"\n".join(data))
    assert f"{path}:3: cannot decode as utf-8" in data_error(load_stsb, "test", tmp_path)


def test_task_names() -> None:
    choices = ("STS12", "STSb", "SICK-R")
    assert canonical_task_name("stsbenchmark", choices) == "STSb"
    assert canonical_task_name("SICKRelatedness", choices) == "SICK-R"
    assert canonical_task_name("sts12", choices) == "STS12"
    expected = r"Unknown task 'STS21'; valid tasks: STS12, STSb, SICK-R\. Did you mean 'STS12'\?"
    with pytest.raises(ConfigError, match=expected):
        canonical_task_name("STS21", choices)

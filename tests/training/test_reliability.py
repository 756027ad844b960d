"""Interruption and exact resume, corrupt checkpoints, and non-finite steps."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from smoothcse.config import build_config
from smoothcse.training.checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint
from smoothcse.training.loop import NumericalFault, train
from tests.helpers import final_weights, module_command, process_env, spawn, train_args

HOLD_AFTER_STEP_8 = """
import pathlib, sys, time
import smoothcse.training.run as run
marker = pathlib.Path(sys.argv.pop())
save = run.save_checkpoint
def held(out_dir, step, payload, keep=2):
    path = save(out_dir, step, payload, keep=keep)
    if step == 8:
        marker.touch()
        time.sleep(600)
    return path
run.save_checkpoint = held
"""
"""A prelude (see :func:`tests.helpers.spawn`) that holds the run after it has written step 8's checkpoint
(after touching the marker named by the last argument), where the test kills it."""


@pytest.mark.parametrize("objective", ["simcse", "simcse+gs+is"])
def test_sigkill_then_resume_matches_uninterrupted_run(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path, objective: str
) -> None:
    steps = ["--max-steps", "14", "--save-every", "4", "--objective", objective, "--is-bank-size", "32"]
    reference = tmp_path / "reference"
    subprocess.run(
        module_command(*train_args(tiny_bert, small_corpus, reference, *steps)),
        check=True,
        env=process_env(cache_dir),
        timeout=300,
    )

    interrupted = tmp_path / "interrupted"
    # hold the run right after step 8's checkpoint is written, then kill it hard mid-run (at step 8 on any
    # machine: polling for the file instead would kill it wherever a fast machine had got to by then)
    marker = tmp_path / "held-after-step-8"
    proc = spawn(
        [*train_args(tiny_bert, small_corpus, interrupted, *steps), str(marker)], cache_dir, prelude=HOLD_AFTER_STEP_8
    )
    deadline = time.monotonic() + 240  # a guard against a hang only
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the run never reached step 8's checkpoint"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert list_checkpoints(interrupted)[-1].name == "step-00000008.pt"
    assert not (interrupted / "model" / "model.safetensors").exists()  # never exported
    resumed = subprocess.run(
        module_command(*train_args(tiny_bert, small_corpus, interrupted, *steps, "--resume")),
        env=process_env(cache_dir),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr
    a, b = final_weights(reference), final_weights(interrupted)
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-6, worst
    assert (interrupted / "model" / "model.safetensors").exists()


def test_sigterm_saves_a_checkpoint_and_says_how_to_resume(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path
) -> None:
    out = tmp_path / "run"
    proc = subprocess.Popen(
        module_command(*train_args(tiny_bert, small_corpus, out, "--max-steps", "100000")),
        env=process_env(cache_dir),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 240
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "checkpoint saved" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert len(list_checkpoints(out)) == 1


def test_corrupt_newest_checkpoint_falls_back_to_previous(tmp_path: Path) -> None:
    save_checkpoint(tmp_path, 1, {"step": 1}, keep=2)
    newest = save_checkpoint(tmp_path, 2, {"step": 2}, keep=2)
    save_checkpoint(tmp_path, 3, {"step": 3}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002.pt", "step-00000003.pt"]
    last = list_checkpoints(tmp_path)[-1]
    last.write_bytes(last.read_bytes()[:10])  # truncated
    path, payload, skipped = load_latest_checkpoint(tmp_path)
    assert path == newest and payload["step"] == 2
    assert "checksum mismatch" in skipped[0]


def test_non_finite_steps_are_skipped_and_counted(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smoothcse.training.run as run_module

    poisoned = {2, 3}
    real_build = run_module.build_objective

    def build_poisoned(config, **options):
        objective = real_build(config, **options)
        forward = objective.forward

        def poisoned_forward(z1, z2, *, step, total_steps):
            terms = forward(z1, z2, step=step, total_steps=total_steps)
            if step in poisoned:
                terms["loss"] = terms["loss"] * float("nan")
            return terms

        objective.forward = poisoned_forward
        return objective

    monkeypatch.setattr(run_module, "build_objective", build_poisoned)
    config = build_config(
        overrides=dict(
            model=str(tiny_bert),
            data=str(small_corpus),
            out=str(tmp_path / "run"),
            batch_size=16,
            max_len=24,
            max_steps=6,
            eval_every=0,
            log_every=1,
            device="cpu",
        )
    )
    result = train(config, progress=False)
    assert result.skipped_steps == 2
    _, payload, _ = load_latest_checkpoint(tmp_path / "run")
    assert payload["step"] == 6 and payload["skipped_steps"] == 2  # the final checkpoint counts each once
    weights = final_weights(tmp_path / "run")
    assert all(torch.isfinite(v).all() for v in weights.values())

    poisoned.update(range(6))
    config.out = str(tmp_path / "run2")
    with pytest.raises(NumericalFault, match="consecutive steps had a non-finite loss"):
        train(config, progress=False)


def test_skipped_step_leaves_weights_untouched(
    tiny_bert: Path, small_corpus: Path, tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import smoothcse.training.run as run_module

    real_build = run_module.build_objective

    def always_nan(config, **options):
        objective = real_build(config, **options)
        forward = objective.forward
        objective.forward = lambda z1, z2, *, step, total_steps: {
            k: v * float("nan") for k, v in forward(z1, z2, step=step, total_steps=total_steps).items()
        }
        return objective

    monkeypatch.setattr(run_module, "build_objective", always_nan)
    config = build_config(
        overrides=dict(
            model=str(tiny_bert),
            data=str(small_corpus),
            out=str(tmp_path / "run"),
            batch_size=16,
            max_len=24,
            max_steps=2,
            eval_every=0,
            log_every=1,
            device="cpu",
            max_bad_steps=10,
        )
    )
    train(config, progress=False)
    from smoothcse.model.encoder import load_encoder

    before = load_encoder(str(tiny_bert)).state_dict()  # the head is freshly initialised: compare the backbone
    after = final_weights(tmp_path / "run")
    backbone = [k for k in before if k.startswith("backbone.")]
    assert backbone
    for key in backbone:
        assert torch.equal(before[key], after[key]), key

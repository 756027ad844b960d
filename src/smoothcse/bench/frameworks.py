"""The two frameworks: smoothcse's training run stepped by the benchmark, and sentence-transformers' Trainer
with smoothcse's blocks run from its callback, alternating."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from smoothcse.bench.config import BenchConfig
from smoothcse.bench.measure import (
    MEMORY_STEPS,
    SENTENCE_TRANSFORMERS,
    SMOOTHCSE,
    Block,
    MemoryMeter,
    Work,
    non_embedding_params,
    sync,
)
from smoothcse.model.st_modules import build_sentence_transformer, mnrl_class


class SmoothCSERunner:
    """smoothcse's side: the training run itself, built by :func:`~smoothcse.training.run.build_run` from the
    benchmark's settings and driven step by step with the loop's own
    :func:`~smoothcse.training.steps.train_step`, so it times exactly what ``smoothcse train`` runs
    (without its log steps, evaluation and checkpoints)."""

    TOTAL_STEPS = 1_000_000
    """The run's length by default: the linear decay never reaches 0 within a benchmark."""

    def __init__(
        self, config: BenchConfig, device: Any = None, amp_dtype: Any = None, *, total_steps: int = TOTAL_STEPS
    ) -> None:
        """``device`` and ``amp_dtype``, when given, must be what the config resolves to (checked)."""
        import shutil

        from smoothcse.config import TrainConfig
        from smoothcse.data.corpus import find_corpus
        from smoothcse.objectives import ObjectiveConfig
        from smoothcse.training.distributed import DistInfo
        from smoothcse.training.run import build_run

        self.out = Path(tempfile.mkdtemp(prefix="smoothcse-bench-"))  # the run writes only its config file there
        shared = {f.name for f in dataclasses.fields(TrainConfig)} & {f.name for f in dataclasses.fields(config)}
        self.train_config = TrainConfig(  # the settings both configs have, under the same names
            **{name: getattr(config, name) for name in shared - {"objective"}},
            out=str(self.out),
            max_steps=total_steps,
            eval_every=0,
            objective=ObjectiveConfig(spec=config.objective),
        )
        try:
            self.train_config.validate()
            self.run = build_run(self.train_config, info=DistInfo(), resume=False, overwrite=True, progress=False)
        except BaseException:
            shutil.rmtree(self.out, ignore_errors=True)
            raise
        if device is not None and (device, amp_dtype) != (self.run.device, self.run.amp_dtype):
            self.close()
            raise ValueError(
                f"SmoothCSERunner: given {device}/{amp_dtype}, the config resolves to "
                f"{self.run.device}/{self.run.amp_dtype}."
            )
        self.device = self.run.device
        self.encoder = self.run.encoder
        self.layout = self.run.layout
        self.corpus_path = find_corpus(config.data, config.data_dir)

    def train_step(self, work: Work) -> None:
        """One optimizer step, as ``smoothcse train`` takes it; adds its forward's shape to ``work``."""
        from smoothcse.training.steps import train_step

        batch = next(self.run.batches)
        train_step(self.run, batch)
        for rows, width in self.layout.forwards(batch.lengths, batch.input_ids.shape[1]):
            work.add(len(rows), width)

    def close(self) -> None:
        import shutil

        self.run.close()
        shutil.rmtree(self.out, ignore_errors=True)

    def block(self, steps: int) -> Block:
        """``steps`` timed steps (no memory meter: its sampling and heap trimming cost time)."""
        sync(self.device)
        work = Work()
        start, cpu_start = time.perf_counter(), time.process_time()
        for _ in range(steps):
            self.train_step(work)
        sync(self.device)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
        return Block(SMOOTHCSE, steps, seconds, work, cpu_seconds)

    def memory_block(self, steps: int = MEMORY_STEPS) -> int | None:
        """Peak memory above the starting point over ``steps`` untimed steps."""
        with MemoryMeter(self.device) as meter:
            for _ in range(steps):
                self.train_step(Work())
            sync(self.device)
        return meter.peak


@dataclasses.dataclass
class Alternation:
    """Drives the alternating schedule from inside the sentence-transformers Trainer.

    At the end of the Trainer's warm-up it warms up smoothcse and runs smoothcse's first block; after
    every ``steps`` further Trainer steps it closes the Trainer's block and runs the next smoothcse
    block, until both have ``repeats`` blocks. Then smoothcse's memory block runs, and the Trainer's
    next :data:`MEMORY_STEPS` steps are its memory block.
    """

    config: BenchConfig
    device: Any
    smoothcse: SmoothCSERunner
    st_work: Work
    on_block: Callable[[Block], None]
    st_blocks: int = 0
    block_start: float = 0.0
    block_cpu_start: float = 0.0
    meter: MemoryMeter | None = None
    memory_start_step: int | None = None
    smoothcse_peak: int | None = None
    st_peak: int | None = None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        outer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                if outer.config.warmup == 0:  # no warm-up: the first smoothcse block goes first
                    outer.next_pair()
                return control

            def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
                outer.after_trainer_step(state.global_step, control)
                return control

        return _Callback()

    def after_trainer_step(self, global_step: int, control: Any) -> None:
        """Called after every Trainer step (``global_step`` counts from 1)."""
        config = self.config
        if self.memory_start_step is not None:  # inside the Trainer's memory block
            if global_step - self.memory_start_step >= MEMORY_STEPS:
                assert self.meter is not None
                sync(self.device)
                self.meter.__exit__(None, None, None)
                self.st_peak = self.meter.peak
                control.should_training_stop = True
            return
        done = global_step - config.warmup
        if done < 0 or (done > 0 and done % config.steps):  # warming up, or inside a Trainer block
            return
        if done == 0:  # the Trainer is warm: warm smoothcse up too, then start alternating
            self.smoothcse.block(config.warmup)
        else:  # a Trainer block just ended
            sync(self.device)
            seconds, cpu_seconds = time.perf_counter() - self.block_start, time.process_time() - self.block_cpu_start
            block = Block(SENTENCE_TRANSFORMERS, config.steps, seconds, dataclasses.replace(self.st_work), cpu_seconds)
            self.on_block(block)
            self.st_blocks += 1
            if self.st_blocks >= config.repeats:  # timing done: memory, smoothcse's then the Trainer's
                self.smoothcse_peak = self.smoothcse.memory_block()
                self.memory_start_step = global_step
                self.meter = MemoryMeter(self.device).__enter__()
                return
        self.next_pair()

    def next_pair(self) -> None:
        """A measured smoothcse block, then start timing the Trainer's next block."""
        self.on_block(self.smoothcse.block(self.config.steps))
        self.st_work.__init__()  # type: ignore[misc]  # count the next Trainer block from zero
        sync(self.device)
        self.block_start, self.block_cpu_start = time.perf_counter(), time.process_time()


def run_sentence_transformers(
    config: BenchConfig, device: Any, amp_dtype: Any, smoothcse: SmoothCSERunner, on_block: Callable[[Block], None]
) -> tuple[dict[str, Any], int | None, int | None]:
    """Train with SentenceTransformerTrainer + MultipleNegativesRankingLoss, smoothcse's blocks in between.

    Returns facts about the sentence-transformers model, and the peak memory of smoothcse's and of
    the Trainer's memory blocks.
    """
    import logging

    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments

    from smoothcse.data.corpus import iter_sentences

    logging.getLogger("sentence_transformers").setLevel(logging.ERROR)
    sentences = [text for _, text in iter_sentences(smoothcse.corpus_path)]
    dataset = Dataset.from_dict({"anchor": sentences, "positive": sentences})
    model = build_sentence_transformer(smoothcse.encoder, config.model, config.max_len, device)
    work = Work()

    def count(module: Any, args: Any) -> None:  # the Transformer module's input: a features dict
        ids = args[0].get("input_ids") if args and isinstance(args[0], dict) else None
        if ids is not None:
            work.add(int(ids.shape[0]), int(ids.shape[1]))

    backbone = model[0].auto_model
    handle = model[0].register_forward_pre_hook(count)
    alternation = Alternation(config, device, smoothcse, work, on_block)
    with tempfile.TemporaryDirectory(prefix="smoothcse-bench-") as scratch:
        args = SentenceTransformerTrainingArguments(
            output_dir=scratch,
            max_steps=config.warmup + config.repeats * config.steps + MEMORY_STEPS + 1,
            per_device_train_batch_size=config.batch_size,
            learning_rate=config.lr,
            weight_decay=0.0,
            adam_epsilon=1e-8,
            max_grad_norm=1.0,
            warmup_steps=0,
            lr_scheduler_type="linear",
            bf16=amp_dtype == torch.bfloat16,
            fp16=amp_dtype == torch.float16,
            use_cpu=device.type == "cpu",
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=config.seed,
            dataloader_num_workers=0,
        )
        loss = mnrl_class()(model, scale=1.0 / 0.05)
        with contextlib.redirect_stderr(io.StringIO()):  # its model-card callback's progress bar
            trainer = SentenceTransformerTrainer(
                model=model, args=args, train_dataset=dataset, loss=loss, callbacks=[alternation.callback()]
            )
        if config.threads:
            torch.set_num_threads(config.threads)
        with contextlib.redirect_stdout(sys.stderr):  # the Trainer prints its own summary line
            trainer.train()
    handle.remove()
    if alternation.meter is not None and alternation.st_peak is None:  # the Trainer stopped early
        alternation.meter.__exit__(None, None, None)
    info = {
        "non_embedding_params": non_embedding_params(model),
        "attn_implementation": getattr(backbone.config, "_attn_implementation", None),
        "optimizer": type(getattr(trainer.optimizer, "optimizer", trainer.optimizer)).__name__,
        "optim": str(args.optim),
    }
    return info, alternation.smoothcse_peak, alternation.st_peak

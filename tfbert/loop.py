"""The fit loop that `train.py` and `pretrain.py` share: strategy, run paths, resume, TensorBoard, NaN guard.

    run = start_run(config.strategy, config.tpu, ...)   # strategy, worker, paths, resumed epoch
    with run.strategy.scope(): build and compile the model
    fit(model, train_ds, val_ds, epochs, steps, [*logging_callbacks(...), ...], run)

Backups are written at epoch ends only: Keras' BackupAndRestore restores
the epoch but not the position inside it, so mid-epoch backups would replay
part of an epoch and change the number of optimizer steps.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import time

import keras
import tensorflow as tf

from tfbert import atomic, tensorboard
from tfbert.distribute import WorkerInfo, describe_devices, get_strategy, set_precision, worker_info
from tfbert.resume import OrderedBackupAndRestore, RunPaths, recover_backup, resolve_run_dir, resumed_epoch

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Run:
    """One process of a run: its strategy, its place among the workers, its paths and the epoch it starts at."""

    strategy: tf.distribute.Strategy
    worker: WorkerInfo
    paths: RunPaths
    resumed_at: int


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What `start_run` needs from a script's config."""

    strategy: str = "auto"
    tpu: str | None = None
    seed: int = 42
    mixed_precision: bool = False
    log_dir: str = "logs"
    run_name: str | None = None
    backup_dir: str | None = None


def start_run(settings: RunSettings, name: str) -> Run:
    """Resolve the strategy first (multi-worker needs a fresh runtime), seed, set precision, find the run dir.

    Without a run name the run directory is the newest unfinished run of
    `name` (so the same command resumes a killed run), else `<name>-<time>`.
    """
    strategy = get_strategy(settings.strategy, settings.tpu)
    keras.utils.set_random_seed(settings.seed)
    policy = set_precision(settings.mixed_precision)
    logger.info(describe_devices(strategy, policy))
    worker = worker_info(strategy)
    run_dir = resolve_run_dir(settings.log_dir, settings.run_name, name,
                              resume_unfinished=not settings.backup_dir, multi_worker=worker.multi_worker)
    paths = RunPaths.create(run_dir, settings.backup_dir, worker)
    recover_backup(paths.backup_dir)  # a crash while the last backup was being written
    resumed_at = resumed_epoch(paths.backup_dir)
    if resumed_at:
        logger.info("Resuming from the backup in %s: epoch %d is next.", paths.backup_dir, resumed_at + 1)
    return Run(strategy, worker, paths, resumed_at)


def logging_callbacks(run: Run, batch_size: int, log_every: int, examples_per_epoch: int,
                      summaries: list[keras.callbacks.Callback] = (),
                      profile_steps: tuple[int, int] | None = None) -> list[keras.callbacks.Callback]:
    """Throughput and learning rate, then `summaries`, then TensorBoard, which writes what they add to the logs."""
    return [
        tensorboard.TrainingSpeed(batch_size, log_every, examples_per_epoch),
        *summaries,
        tensorboard.TensorBoard(log_dir=run.paths.log_dir, update_freq=log_every, profile_batch=profile_steps or 0),
    ]


def _kept(run: Run) -> str:
    backup_dir = run.paths.backup_dir
    return f"the backup in {backup_dir}" if os.path.isdir(backup_dir) else "nothing yet (no epoch finished)"


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """TerminateOnNaN that remembers where it stopped, so the run can report it and save nothing."""

    def __init__(self):
        super().__init__()
        self.stopped_at: tuple[int, int] | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        super().on_batch_end(batch, logs)
        if self.model.stop_training and self.stopped_at is None:
            self.stopped_at = (self._epoch, batch)


@dataclasses.dataclass(frozen=True)
class Fitted:
    """What `fit` returns: Keras' history and the wall-clock seconds of training."""

    history: keras.callbacks.History
    seconds: float


def fit(model: keras.Model, train_ds: tf.data.Dataset, val_ds: tf.data.Dataset | None, epochs: int, steps: int,
        callbacks: list[keras.callbacks.Callback], run: Run) -> Fitted:
    """`model.fit` with a backup every epoch (resumed by the same command) and a clear stop on a NaN loss.

    `val_ds` None: a callback computes the validation logs (fine-tuning's one pass per epoch).

    Raises:
        ValueError: the loss became NaN (nothing is exported from such a run).
    """
    nan_guard = StopOnNaN()
    backup = OrderedBackupAndRestore(run.paths.backup_dir, save_freq="epoch")
    start = time.time()
    try:
        # shuffle=False: train_ds reshuffles itself every epoch. One line per epoch when stdout is a log file.
        history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, steps_per_epoch=steps,
                            callbacks=[backup, *callbacks, nan_guard, backup.last], shuffle=False,
                            verbose=1 if sys.stdout.isatty() else 2)
    except KeyboardInterrupt:
        logger.error("Interrupted. Kept %s; run the same command again to resume.", _kept(run))
        raise
    except Exception as error:
        reason = atomic.disk_full_reason(error)
        if not reason:
            raise
        raise ValueError(f"Training stopped writing a backup, checkpoint or log under {run.paths.run_dir}: "
                         f"{reason}. Kept {_kept(run)}; free space, then run the same command to resume.") from None
    if nan_guard.stopped_at is not None:
        epoch, batch = nan_guard.stopped_at
        best = run.paths.best_checkpoint
        kept = f"The last good checkpoint is {best}." if os.path.isfile(best) else "No epoch finished, so no checkpoint was kept."
        raise ValueError(
            f"Training stopped: the loss became NaN at epoch {epoch + 1}, batch {batch + 1}. {kept} "
            "Nothing was exported. Lower --learning-rate (or check the data), then rerun."
        )
    return Fitted(history, time.time() - start)

"""Backups, the best epoch and early stopping, across restarts: a killed run resumes where it was.

A run directory holds everything a restart needs:

    <log-dir>/<run-name>/
      backup/                   Keras BackupAndRestore (deleted when fit ends)
      checkpoints/best.keras    the best epoch's model (ModelCheckpoint)
      checkpoints/best.json     that epoch's number and validation logs (`BestEpoch`)

Keras' EarlyStopping, ModelCheckpoint(save_best_only=True) and the HParams
summary keep their best in memory, so a resumed run would restore, report
and export the best epoch *since the restart* and overwrite best.keras with
a worse one. `best.json` carries it across the restart, and
`OrderedBackupAndRestore` writes the backup only after every other callback
is done with the epoch, so a crash in between replays that epoch.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import shutil
import tempfile
import time

import keras

from tfbert import atomic, keras_compat
from tfbert.distribute import WorkerInfo

logger = logging.getLogger(__name__)

# The files keras.callbacks.BackupAndRestore reads back on restart (tfbert writes them, see `commit_backup`).
BACKUP_METADATA = "training_metadata.json"
BACKUP_WEIGHTS = "latest.weights.h5"
COMPLETE = "COMPLETE"  # written last into a staged backup


@dataclasses.dataclass(frozen=True)
class Monitor:
    """The validation value that picks the best epoch (`--metric-for-best-model`): its log name and direction."""

    name: str = "val_loss"
    mode: str = "min"

    def improves(self, value: float | None, best: float | None) -> bool:
        """Whether `value` beats `best` (None: nothing yet). As Keras' callbacks: a NaN never improves."""
        if value is None or not math.isfinite(value):
            return False
        return best is None or (value < best if self.mode == "min" else value > best)


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Where one process of a run writes.

    Args:
        run_dir: the run's directory (TensorBoard logs, run_summary.json, checkpoints).
        log_dir: where this process writes logs and checkpoints: `run_dir` on the chief, a scratch
            directory on other workers (their logs would repeat the chief's).
        backup_dir: BackupAndRestore's directory (one per worker, beside the chief's, so a restarted
            cluster resumes every worker).
        best_file: best.json; on a non-chief worker in its backup directory, which a restart finds again.
    """

    run_dir: str
    log_dir: str
    backup_dir: str
    best_file: str

    @property
    def best_checkpoint(self) -> str:
        return os.path.join(self.log_dir, "checkpoints", "best.keras")

    @classmethod
    def create(cls, run_dir: str, backup_dir: str | None, worker: WorkerInfo) -> RunPaths:
        """The paths of `worker` in `run_dir`; `backup_dir` overrides `<run_dir>/backup`."""
        log_dir = run_dir if worker.chief else tempfile.mkdtemp(prefix=f"tfbert-worker{worker.index}-")
        backup = backup_dir or os.path.join(run_dir, "backup")
        if worker.index:
            backup = f"{backup}-worker{worker.index}"
        best_dir = os.path.join(log_dir, "checkpoints") if worker.chief else backup
        return cls(run_dir, log_dir, backup, os.path.join(best_dir, "best.json"))


def resolve_run_dir(log_dir: str, run_name: str | None, name: str, resume_unfinished: bool = True,
                    multi_worker: bool = False) -> str:
    """`<log_dir>/<run_name>`; without a run name, the newest unfinished run of `name`, else a new one.

    A run that dies leaves `<run dir>/backup/` behind (Keras deletes it when
    training finishes), so the same command finds that run and resumes it.
    Multi-worker runs default to `<log_dir>/<name>` (no timestamp) so that
    all workers agree.
    """
    if run_name:
        return os.path.join(log_dir, run_name)
    if multi_worker:
        return os.path.join(log_dir, name)
    if resume_unfinished and os.path.isdir(log_dir):
        prefix = f"{name}-"
        unfinished = sorted(
            entry for entry in os.listdir(log_dir)
            if entry.startswith(prefix) and os.path.isfile(os.path.join(log_dir, entry, "backup", BACKUP_METADATA))
        )
        if unfinished:
            logger.info("Resuming the unfinished run %s.", unfinished[-1])
            return os.path.join(log_dir, unfinished[-1])
    return os.path.join(log_dir, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def resumed_epoch(backup_dir: str) -> int:
    """The epoch a run restarted with this backup directory trains first (0: a fresh run)."""
    path = os.path.join(backup_dir, BACKUP_METADATA)
    if not os.path.isfile(path):
        return 0
    with open(path, encoding="utf-8") as f:
        return int(json.load(f)["epoch"])


@dataclasses.dataclass(frozen=True)
class BestEpochRecord:
    """The epoch with the best monitored value so far (0-based), its validation logs and what was monitored."""

    epoch: int
    logs: dict[str, float]
    monitor: str = "val_loss"

    @property
    def value(self) -> float:
        return self.logs[self.monitor]

    @classmethod
    def read(cls, path: str) -> BestEpochRecord | None:
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        return cls(int(values["epoch"]), {k: float(v) for k, v in values["logs"].items()},
                   values.get("monitor", "val_loss"))

    def write(self, path: str) -> None:
        atomic.write_text(path, json.dumps(dataclasses.asdict(self)))


def previous_best(paths: RunPaths, resumed_at: int, monitor: Monitor = Monitor()) -> BestEpochRecord | None:
    """The best epoch before a restart at epoch `resumed_at`; None for a fresh run or a stale file."""
    best = BestEpochRecord.read(paths.best_file) if resumed_at else None  # a fresh run ignores an old file
    if best is not None and (best.epoch >= resumed_at or best.monitor != monitor.name):
        # Not from this run's epochs (an old run of the same name), or another metric's best.
        logger.warning("Ignoring %s: its epoch %d (%s) is not this run's best before the resumed epoch %d.",
                       paths.best_file, best.epoch + 1, best.monitor, resumed_at + 1)
        return None
    if best is not None:
        logger.info("Resumed at epoch %d; the best epoch so far is %d (%s %.4f).",
                    resumed_at + 1, best.epoch + 1, monitor.name, best.value)
    return best


def best_epoch_callbacks(paths: RunPaths, patience: int, resumed_at: int, best: BestEpochRecord | None,
                         monitor: Monitor = Monitor()) -> list[keras.callbacks.Callback]:
    """[early stopping, best.keras checkpoint, best.json], resuming from `best` (`previous_best`).

    The best epoch's weights are restored (and exported) also when that
    epoch ran before a crash. A non-chief worker writes its checkpoints to a
    scratch directory a restart does not find again, so only its stop
    decision resumes; its weights are never exported.
    """
    return [
        ResumableEarlyStopping(best, paths.best_checkpoint, resumed_at, monitor=monitor.name, mode=monitor.mode,
                               patience=patience),
        keras.callbacks.ModelCheckpoint(paths.best_checkpoint, monitor=monitor.name, mode=monitor.mode,
                                        save_best_only=True, initial_value_threshold=best.value if best else None),
        BestEpoch(paths.best_file, best, monitor),
    ]


class BestEpoch(keras.callbacks.Callback):
    """Writes the epoch with the best monitored value, and its validation logs, to `path` (JSON), across restarts.

    Put it after ModelCheckpoint: the file then never names an epoch whose
    checkpoint is not written yet.
    """

    def __init__(self, path: str, best: BestEpochRecord | None = None, monitor: Monitor = Monitor()):
        super().__init__()
        self.path = path
        self.best = best
        self.monitor = monitor

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor.name)
        if not self.monitor.improves(value, None if self.best is None else self.best.value):
            return
        logs = {k: float(v) for k, v in logs.items() if k.startswith("val_")}
        self.best = BestEpochRecord(epoch, logs, self.monitor.name)
        self.best.write(self.path)


class OrderedBackupAndRestore(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that restores first and backs up last: put it first in the list and `.last` at the end.

    Keras' callback writes the backup in its own `on_epoch_end`, before the
    callbacks after it have run theirs; a crash in between would resume past
    an epoch whose best.json / best.keras were never written. `.last` writes
    it once every other callback is done with the epoch, whole or not at all
    (`commit_backup`).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.last = _CommitBackup(self)

    def on_epoch_end(self, epoch, logs=None):
        pass  # see `.last`


class _CommitBackup(keras.callbacks.Callback):
    def __init__(self, backup: OrderedBackupAndRestore):
        super().__init__()
        self.backup = backup

    def on_epoch_end(self, epoch, logs=None):
        commit_backup(self.backup.backup_dir, self.model, epoch + 1)


def commit_backup(backup_dir: str, model: keras.Model, next_epoch: int) -> None:
    """Write the backup BackupAndRestore restores, so that a crash at any point leaves a complete one.

    Keras overwrites its weights file, then its metadata, in place: a crash in
    between left a damaged file, or new weights with the old epoch number. Here
    both go into `<backup_dir>.staging`, a COMPLETE marker last, and the
    directories are swapped by renames; `recover_backup` finishes or undoes
    an interrupted swap before the next run reads the backup.
    """
    staging, old = backup_dir + ".staging", backup_dir + ".old"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    model.save_weights(os.path.join(staging, BACKUP_WEIGHTS))
    with open(os.path.join(staging, BACKUP_METADATA), "w", encoding="utf-8") as f:
        json.dump({"epoch": next_epoch, "batch": 0}, f)
    open(os.path.join(staging, COMPLETE), "w").close()
    if os.path.exists(backup_dir):
        os.rename(backup_dir, old)
    os.rename(staging, backup_dir)
    shutil.rmtree(old, ignore_errors=True)


def recover_backup(backup_dir: str) -> None:
    """Leave `backup_dir` holding the newest complete backup after a crash inside `commit_backup`."""
    staging, old = backup_dir + ".staging", backup_dir + ".old"
    if os.path.isfile(os.path.join(staging, COMPLETE)):  # written whole; the swap was cut short
        shutil.rmtree(backup_dir, ignore_errors=True)
        os.rename(staging, backup_dir)
    elif not os.path.exists(backup_dir) and os.path.isdir(old):  # cut between the two renames
        os.rename(old, backup_dir)
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """EarlyStopping(restore_best_weights=True) that, in a resumed run, remembers the best epoch before the restart.

    Args:
        best: the interrupted run's `BestEpochRecord`, or None for a fresh run.
        checkpoint: the `.keras` file holding that epoch's weights (ModelCheckpoint's); when it
            is missing, only the count toward `patience` resumes.
        resumed_at: the first epoch this run trains (BackupAndRestore's).
        **kwargs: passed to keras.callbacks.EarlyStopping.
    """

    def __init__(self, best: BestEpochRecord | None = None, checkpoint: str | None = None, resumed_at: int = 0,
                 **kwargs):
        super().__init__(restore_best_weights=True, **kwargs)
        self.previous, self.checkpoint, self.resumed_at = best, checkpoint, resumed_at

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.previous is None:
            return
        wait = max(self.resumed_at - 1 - self.previous.epoch, 0)  # epochs since the best, as if never interrupted
        best_weights = None
        if self.checkpoint and os.path.isfile(self.checkpoint):
            best_weights = self._checkpoint_weights()
        keras_compat.resume_early_stopping(self, self.previous.value, self.previous.epoch, wait, best_weights)

    def _checkpoint_weights(self) -> list:
        # load_weights of a .keras file also loads its optimizer (step count, moments): put BackupAndRestore's back.
        current = self.model.get_weights()
        optimizer = [(v, v.numpy()) for v in getattr(self.model.optimizer, "variables", [])]
        self.model.load_weights(self.checkpoint)
        weights = self.model.get_weights()
        self.model.set_weights(current)
        for variable, value in optimizer:
            variable.assign(value)
        return weights

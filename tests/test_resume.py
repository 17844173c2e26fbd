"""Backups, the best epoch and early stopping across restarts."""

import json
import os

import numpy as np
import pytest

from tfbert.distribute import WorkerInfo
from tfbert.resume import RunPaths


def test_a_resumed_run_restores_and_keeps_the_best_epoch_before_the_restart(tmp_path):
    import keras

    from tfbert.resume import OrderedBackupAndRestore, best_epoch_callbacks, previous_best, resumed_epoch

    forced = [0.30, 0.35, 0.40, 0.45]  # val_loss by epoch: the first epoch is the best
    seen = {}

    class ForceAndRecord(keras.callbacks.Callback):  # first in the list: the callbacks after it read the forced loss
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = forced[epoch]
            seen[epoch] = self.model.get_weights()

    class Crash(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    def run(crash: bool):
        keras.utils.set_random_seed(len(seen))
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        paths = RunPaths.create(str(tmp_path), None, WorkerInfo())
        backup = OrderedBackupAndRestore(paths.backup_dir, save_freq="epoch")
        resumed_at = resumed_epoch(paths.backup_dir)
        keep_best = best_epoch_callbacks(paths, 4, resumed_at, previous_best(paths, resumed_at))
        x, y = np.random.default_rng(0).normal(size=(64, 3)), np.ones((64, 1))
        model.fit(x, y, validation_data=(x, y), epochs=4, verbose=0,
                  callbacks=[backup, ForceAndRecord(), *keep_best, *([Crash()] if crash else []), backup.last])
        return model, resumed_at

    with pytest.raises(KeyboardInterrupt):
        run(crash=True)
    model, resumed_at = run(crash=False)
    assert resumed_at == 2 and sorted(seen) == [0, 1, 2, 3]
    assert int(model.optimizer.iterations) == 4 * 2  # BackupAndRestore's optimizer state, not best.keras's
    for restored, best in zip(model.get_weights(), seen[0]):  # epoch 1's weights, not epoch 3's (best since restart)
        np.testing.assert_array_equal(restored, best)
    checkpoint = keras.saving.load_model(RunPaths.create(str(tmp_path), None, WorkerInfo()).best_checkpoint)
    for kept, best in zip(checkpoint.get_weights(), seen[0]):  # best.keras was not overwritten by epoch 3 or 4
        np.testing.assert_array_equal(kept, best)
    assert json.load(open(os.path.join(tmp_path, "checkpoints", "best.json")))["epoch"] == 0


@pytest.mark.parametrize("seeded", [True, False])
def test_resumed_early_stopping_counts_patience_from_the_best_epoch_before_the_restart(seeded):
    """Without a checkpoint (a non-chief worker) the count still resumes, so every worker stops at the same epoch."""
    import keras

    from tfbert.resume import BestEpochRecord, ResumableEarlyStopping

    class Force(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["val_loss"] = 0.4  # worse than the best before the restart (0.3 at epoch 0)

    best = BestEpochRecord(0, {"val_loss": 0.3}) if seeded else None
    stopping = ResumableEarlyStopping(best, checkpoint=None, resumed_at=2, monitor="val_loss", patience=2)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x, y = np.zeros((8, 3)), np.zeros((8, 1))
    history = model.fit(x, y, validation_data=(x, y), epochs=6, initial_epoch=2, verbose=0, callbacks=[Force(), stopping])
    # Seeded: epoch 1 did not improve on epoch 0, epoch 2 is the second miss -> stop there, as uninterrupted.
    assert history.epoch == ([2] if seeded else [2, 3, 4])


def test_the_backup_is_written_after_every_other_callback_is_done_with_the_epoch(tmp_path):
    """A crash before best.json / best.keras are written must not resume past that epoch."""
    import keras

    from tfbert.resume import OrderedBackupAndRestore, resumed_epoch

    on_disk = []

    class Probe(keras.callbacks.Callback):  # stands for ModelCheckpoint, BestEpoch, ...
        def on_epoch_end(self, epoch, logs=None):
            on_disk.append(resumed_epoch(str(tmp_path)))

    backup = OrderedBackupAndRestore(str(tmp_path), save_freq="epoch", delete_checkpoint=False)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((8, 3)), np.zeros((8, 1)), epochs=3, verbose=0, callbacks=[backup, Probe(), backup.last])
    assert on_disk == [0, 1, 2] and resumed_epoch(str(tmp_path)) == 3  # each epoch's backup lands after the probe


@pytest.mark.parametrize("losses,expected", [([0.5, float("nan"), 0.6], 0), ([0.5, 0.4, 0.4], 1)])
def test_best_epoch_file_keeps_the_lowest_finite_loss(tmp_path, losses, expected):
    from tfbert.resume import BestEpoch, BestEpochRecord

    best = BestEpoch(str(tmp_path / "best.json"))
    for epoch, loss in enumerate(losses):
        best.on_epoch_end(epoch, {"val_loss": loss, "val_accuracy": 0.5})
    assert BestEpochRecord.read(str(tmp_path / "best.json")).epoch == expected


def test_a_best_file_not_from_before_the_resumed_epoch_is_ignored(tmp_path):
    from tfbert.resume import BestEpoch, previous_best

    paths = RunPaths.create(str(tmp_path), None, WorkerInfo())
    BestEpoch(paths.best_file).on_epoch_end(3, {"val_loss": 0.1})  # an older run of the same name got further
    assert previous_best(paths, resumed_at=2) is None
    assert previous_best(paths, resumed_at=5).epoch == 3


def test_run_paths_of_a_non_chief_worker(tmp_path):
    """Its logs go to scratch, its backup beside the chief's, and best.json into that backup (a restart finds it)."""
    chief = RunPaths.create(str(tmp_path / "run"), None, WorkerInfo(2, 0, True))
    other = RunPaths.create(str(tmp_path / "run"), None, WorkerInfo(2, 1, False))
    assert chief.log_dir == chief.run_dir and chief.backup_dir == str(tmp_path / "run" / "backup")
    assert other.log_dir != other.run_dir and other.backup_dir == str(tmp_path / "run" / "backup-worker1")
    assert os.path.dirname(other.best_file) == other.backup_dir
    assert os.path.dirname(chief.best_file) == os.path.dirname(chief.best_checkpoint)


def test_an_unfinished_run_is_found_again(tmp_path):
    from tfbert.resume import BACKUP_METADATA, resolve_run_dir

    logs = tmp_path / "logs"
    (logs / "m-20260101-000000" / "backup").mkdir(parents=True)
    (logs / "m-20260101-000000" / "backup" / BACKUP_METADATA).write_text('{"epoch": 1}')
    (logs / "m-20260102-000000").mkdir()  # finished: no backup left
    assert resolve_run_dir(str(logs), None, "m") == str(logs / "m-20260101-000000")
    assert resolve_run_dir(str(logs), "named", "m") == str(logs / "named")
    assert resolve_run_dir(str(logs), None, "m", multi_worker=True) == str(logs / "m")
    assert resolve_run_dir(str(logs), None, "m", resume_unfinished=False).startswith(str(logs / "m-"))
    assert resolve_run_dir(str(logs), None, "m", resume_unfinished=False) != str(logs / "m-20260101-000000")


def _fit_with_backups(tmp_path, epochs, crash=None):
    import keras

    from tfbert.resume import OrderedBackupAndRestore

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    backup = OrderedBackupAndRestore(str(tmp_path / "backup"), save_freq="epoch", delete_checkpoint=False)
    model.fit(np.zeros((8, 3)), np.zeros((8, 1)), epochs=epochs, verbose=0,
              callbacks=[backup, *([crash] if crash else []), backup.last])
    return model


@pytest.mark.parametrize("stage", ["weights", "metadata", "marker", "first rename", "second rename"])
def test_a_crash_while_a_backup_is_written_resumes_from_the_last_complete_one(tmp_path, monkeypatch, stage):
    import builtins

    from tfbert import resume

    backup_dir = str(tmp_path / "backup")
    _fit_with_backups(tmp_path, 2)
    assert resume.resumed_epoch(backup_dir) == 2
    real_open, real_rename, renames = builtins.open, os.rename, []

    def crash_open(path, mode="r", *args, **kwargs):
        name = os.path.basename(str(path))
        if "w" in mode and ((stage == "metadata" and name == resume.BACKUP_METADATA)
                            or (stage == "marker" and name == resume.COMPLETE)):
            raise KeyboardInterrupt  # the process dies here
        return real_open(path, mode, *args, **kwargs)

    def crash_rename(source, target):
        renames.append(target)
        if (stage == "first rename" and len(renames) == 1) or (stage == "second rename" and len(renames) == 2):
            raise KeyboardInterrupt
        return real_rename(source, target)

    def crash_save(self, path, *args, **kwargs):
        raise KeyboardInterrupt

    import keras

    newer = _fit_with_backups(tmp_path / "other", 1)
    if stage == "weights":
        monkeypatch.setattr(keras.Model, "save_weights", crash_save)
    monkeypatch.setattr(resume, "open", crash_open, raising=False)
    monkeypatch.setattr(resume.os, "rename", crash_rename)
    with pytest.raises(KeyboardInterrupt):
        resume.commit_backup(backup_dir, newer, 3)
    monkeypatch.undo()
    resume.recover_backup(backup_dir)
    # The marker was written for "first rename" and later: the new backup (epoch 3) is complete and kept.
    expected = 3 if stage in ("first rename", "second rename") else 2
    assert resume.resumed_epoch(backup_dir) == expected
    assert sorted(os.listdir(tmp_path)) == ["backup", "other"]  # no staging or old directory left
    restored = _fit_with_backups(tmp_path, expected + 1)  # Keras loads the recovered backup and trains on
    assert resume.resumed_epoch(backup_dir) == expected + 1 and restored.built

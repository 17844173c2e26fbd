"""Importing Hugging Face BERT checkpoints without PyTorch (tfbert/convert_checkpoint.py).

The fixture tests/data/tiny_hf_bert is a random 2-layer BERT saved by
transformers as pytorch_model.bin with its vocabulary only in tokenizer.json,
plus Hugging Face's own outputs on two inputs (tests/data/make_tiny_hf_bert.py
regenerates it).
"""

import io
import json
import os
import pickle
import shutil
import zipfile

import keras_hub
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tfbert import convert_checkpoint
from tfbert.presets import load_tokenizer

FIXTURE = os.path.join(os.path.dirname(__file__), "data", "tiny_hf_bert")


@pytest.fixture()
def fixture_copy(tmp_path):
    path = tmp_path / "ckpt"
    shutil.copytree(FIXTURE, path)
    return path


def test_imported_checkpoint_matches_hugging_face_outputs(tmp_path):
    out = convert_checkpoint.import_checkpoint(FIXTURE, str(tmp_path / "preset"))
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer_config.json", "vocab.txt"]
    expected = json.load(open(os.path.join(FIXTURE, "expected.json")))
    backbone = keras_hub.models.BertBackbone.from_preset(out)
    got = backbone({k: np.array(expected[k]) for k in ("token_ids", "segment_ids", "padding_mask")})
    # Hugging Face's BERT uses the erf GELU, keras-hub's the tanh one: equal to ~1e-6 here.
    np.testing.assert_allclose(got["sequence_output"], np.array(expected["sequence_output"]), atol=1e-4)
    # The vocabulary came out of tokenizer.json and the case setting out of its BertNormalizer (lowercase).
    tokenizer = load_tokenizer(out)
    assert tokenizer.lowercase is True
    assert tokenizer.vocabulary[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    # "A" reads as "a" (lowercased); "abc" is no word of this vocabulary and "##b" no piece of it.
    ids = np.asarray(tokenizer(["很好A abc"])[0]).tolist()
    assert ids == [tokenizer.token_to_id(t) for t in ("很", "好", "a", "[UNK]")]


def test_state_dict_reader_refuses_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    path = tmp_path / "pytorch_model.bin"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": Payload()}, protocol=2))
    with pytest.raises(ValueError, match="names posix.system, which is not part of a plain state dict"):
        convert_checkpoint.read_pytorch_state_dict(str(path))
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "offset, size, stride",
    [(0, (3, 5), (5, 1)), (8, (2, 2), (2, 1)), (0, (2, 6), (1, 2)), (-1, (2,), (1,)), (0, (2, 2), (-1, 1))],
)
def test_a_tensor_that_overruns_its_storage_is_refused(offset, size, stride):
    # as_strided would read past the 10-element buffer (other memory) instead of failing.
    with pytest.raises(ValueError, match="does not fit its storage of 10 elements"):
        convert_checkpoint._rebuild_tensor(np.arange(10, dtype=np.float32), offset, size, stride)


def test_state_dict_reader_refuses_legacy_and_non_tensor_files(tmp_path):
    legacy = tmp_path / "old.bin"
    legacy.write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ValueError, match="not a zip-format PyTorch file"):
        convert_checkpoint.read_pytorch_state_dict(str(legacy))
    plain = tmp_path / "plain.bin"
    with zipfile.ZipFile(plain, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"w": 1}, protocol=2))
    with pytest.raises(ValueError, match="flat state dict of tensors"):
        convert_checkpoint.read_pytorch_state_dict(str(plain))


@settings(max_examples=60, deadline=None)
@given(
    array=hnp.arrays(
        np.float32, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), elements=st.floats(-9, 9, width=32)
    ),
    data=st.data(),
)
def test_rebuild_tensor_reads_any_strided_view(array, data):
    """PyTorch stores views (a transposed weight, a slice of a shared storage) as storage + offset + strides."""
    offset = data.draw(st.integers(0, 3))
    storage = np.concatenate([np.full(offset, np.nan, np.float32), array.ravel()])
    order = data.draw(st.permutations(range(array.ndim)))
    view = array.transpose(order)
    strides = tuple(s // array.itemsize for s in view.strides)
    rebuilt = convert_checkpoint._rebuild_tensor(storage, offset, view.shape, strides)
    np.testing.assert_array_equal(rebuilt, view)
    assert rebuilt.flags.c_contiguous


def test_case_setting_is_required_and_a_capital_free_cased_vocabulary_warns(fixture_copy, tmp_path, caplog):
    tokenizer_json = fixture_copy / "tokenizer.json"
    spec = json.loads(tokenizer_json.read_text())
    del spec["normalizer"]
    tokenizer_json.write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="pass --lowercase for an uncased"):
        convert_checkpoint.import_checkpoint(str(fixture_copy), str(tmp_path / "a"))
    convert_checkpoint.import_checkpoint(str(fixture_copy), str(tmp_path / "b"), lowercase=False)
    assert "has no capital letters" in caplog.text
    assert json.loads((tmp_path / "b" / "tokenizer_config.json").read_text())["do_lower_case"] is False


def test_bad_checkpoints_fail_with_the_fix(fixture_copy, tmp_path):
    config_path = fixture_copy / "config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "vocab_size": 36}))
    with pytest.raises(ValueError, match="has 35 tokens but config.json says vocab_size 36"):
        convert_checkpoint.import_checkpoint(str(fixture_copy), str(tmp_path / "a"))
    config_path.write_text(json.dumps({**config, "model_type": "roberta"}))
    with pytest.raises(ValueError, match="model_type 'roberta'; only 'bert'"):
        convert_checkpoint.import_checkpoint(str(fixture_copy), str(tmp_path / "a"))
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="is the checkpoint itself"):
        convert_checkpoint.import_checkpoint(str(fixture_copy), str(fixture_copy))
    (fixture_copy / "pytorch_model.bin").unlink()
    with pytest.raises(FileNotFoundError, match="none of model.safetensors, pytorch_model.bin"):
        convert_checkpoint.import_checkpoint(str(fixture_copy), str(tmp_path / "a"))


def test_train_on_an_unconverted_checkpoint_names_the_conversion(capsys, tmp_path):
    from tfbert.scripts import train_main

    argv = ["--preset", FIXTURE, "--export-dir", str(tmp_path / "sm"), "--log-dir", str(tmp_path / "logs")]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert "has no model.safetensors or vocab.txt" in err and f"python -m tfbert.convert_checkpoint {FIXTURE}" in err


def test_a_sharded_safetensors_checkpoint_is_not_refused(tmp_path):
    out = tmp_path / "preset"
    convert_checkpoint.import_checkpoint(FIXTURE, str(out))
    (out / "model.safetensors").rename(out / "model-00001-of-00001.safetensors")
    with pytest.raises(FileNotFoundError, match="has no model.safetensors, which keras-hub reads"):
        load_tokenizer(str(out))
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "model-00001-of-00001.safetensors"}})
    )
    assert load_tokenizer(str(out)).vocabulary_size() == 35


def test_cli_reports_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    assert convert_checkpoint.main([str(tmp_path / "nope"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "has no config.json" in err and "\n" not in err


def test_an_imported_safetensors_checkpoint_round_trips(tmp_path):
    first = convert_checkpoint.import_checkpoint(FIXTURE, str(tmp_path / "first"), lowercase=True)
    second = convert_checkpoint.import_checkpoint(first, str(tmp_path / "second"))
    for name in ("model.safetensors", "vocab.txt", "config.json"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    assert io.open(os.path.join(second, "tokenizer_config.json")).read() == io.open(
        os.path.join(first, "tokenizer_config.json")
    ).read()


@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_damaged_pytorch_file_is_a_clear_error(tmp_path_factory, data):
    """Truncated or bit-flipped pytorch_model.bin: tensors, or a ValueError that says so; never another exception."""
    raw = open(os.path.join(FIXTURE, "pytorch_model.bin"), "rb").read()
    truncate = data.draw(st.booleans(), label="truncate")
    damaged = bytearray(raw[: data.draw(st.integers(0, len(raw) - 1), label="cut")] if truncate else raw)
    for _ in range(data.draw(st.integers(0 if truncate else 1, 3), label="flips")):
        if damaged:
            damaged[data.draw(st.integers(0, len(damaged) - 1))] ^= 1 << data.draw(st.integers(0, 7))
    path = tmp_path_factory.mktemp("bin") / "pytorch_model.bin"
    path.write_bytes(bytes(damaged))
    try:
        state = convert_checkpoint.read_pytorch_state_dict(str(path))
    except ValueError as error:
        assert type(error) is ValueError, repr(error)  # ours, with a message; not a decoder's ValueError subclass
        return
    assert not truncate and all(isinstance(v, np.ndarray) for v in state.values())  # a flip inside tensor data


def test_a_name_in_the_zip_directory_that_is_not_utf8_is_damage(tmp_path):
    raw = bytearray(open(os.path.join(FIXTURE, "pytorch_model.bin"), "rb").read())
    central = raw.rfind(b"PK\x01\x02")  # the last central-directory entry; its file name starts 46 bytes in
    raw[central + 7] |= 0x08  # the "name is UTF-8" flag
    raw[central + 46] = 0xB0  # a byte no UTF-8 text starts with
    path = tmp_path / "pytorch_model.bin"
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is damaged .*download or copy it again") as error:
        convert_checkpoint.read_pytorch_state_dict(str(path))
    assert type(error.value) is ValueError

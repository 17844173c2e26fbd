import pytest

from tfbert.cli import build_parser, parse_config
from tfbert.config import EvaluateConfig, ModelConfig, PredictConfig, PretrainConfig, TrainConfig

from tfbert.scripts import train_main


@pytest.mark.parametrize("config", [TrainConfig, PretrainConfig, EvaluateConfig, PredictConfig])
def test_every_field_is_a_flag_with_its_default(config):
    """Nested groups (model, reading) contribute their own fields; every flag shows its default."""
    import dataclasses

    text = " ".join(build_parser(config, "").format_help().split())
    for f in dataclasses.fields(config):
        fields = dataclasses.fields(f.default_factory()) if f.default_factory is not dataclasses.MISSING else [f]
        for field in fields:
            if field.name in ("texts", "text_files"):  # positional arguments
                continue
            assert "--" + field.name.replace("_", "-") in text, field.name
            if field.default not in (dataclasses.MISSING, None, False, True):
                assert f"(default: {field.default})" in text, field.name


def test_parse_nested_and_bools():
    config = parse_config(TrainConfig, ["--num-layers", "3", "--no-bucket-by-length", "--learning-rate", "1e-4"], "")
    assert config.model.num_layers == 3 and config.bucket_by_length is False and config.learning_rate == 1e-4


def test_positional_texts():
    config = parse_config(PredictConfig, ["--model", "m", "a", "b"], "")
    assert config.texts == ("a", "b")


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
        (["--max-seq-length", "2"], "--max-seq-length must be >= 3"),
        (["--hidden-dim", "30", "--num-heads", "4"], "--hidden-dim 30 is not divisible by --num-heads 4"),
        (["--strategy", "gpu"], "--strategy 'gpu' is not one of"),
        (["--truncation", "tail"], "--truncation 'tail' is not one of head, head_tail"),
        (["--data", "/nonexistent/file.csv"], "Data file '/nonexistent/file.csv' does not exist"),
        (["--log-every", "0"], "--log-every must be >= 1"),
        (["--profile-batch", "5"], "--profile-batch must be START,STOP with 1 <= START <= STOP"),
        (["--profile-batch", "20,10"], "got '20,10'"),
        (["--profile-batch", "0,3"], "got '0,3'"),
        (["--profile-batch", "a,b"], "got 'a,b'"),
    ],
)
def test_bad_flags_fail_in_one_line(capsys, argv, message):
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

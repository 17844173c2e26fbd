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


@pytest.mark.parametrize("config", [TrainConfig, PretrainConfig])
def test_help_groups_every_flag_in_order(config):
    """--help shows data, model, training, distribution, (export,) logging, each flag in exactly one of them."""
    import dataclasses

    groups = config.flag_groups
    listed = [name for names in groups.values() for name in names]
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(config)) and len(set(listed)) == len(listed)
    text = build_parser(config, "").format_help()
    positions = [text.index(f"\n{title}:\n") for title in groups]
    assert positions == sorted(positions)
    assert list(groups)[:4] == ["data", "model", "training", "distribution"] and list(groups)[-1] == "logging"
    training = text[text.index("\ntraining:\n"):text.index("\ndistribution:\n")]
    assert "--epochs" in training and "--data" not in training and "--export-dir" not in training


@pytest.mark.parametrize("config", [TrainConfig, PretrainConfig, EvaluateConfig, PredictConfig])
def test_every_flag_shows_a_default(config):
    parser = build_parser(config, "")
    for action in parser._actions:
        if action.option_strings and action.dest != "help":
            assert "default" in (action.help or "").lower(), action.option_strings


def test_choices_are_listed():
    text = " ".join(build_parser(TrainConfig, "").format_help().split())
    assert "Choices: classification, multi_label, regression." in text
    assert "Choices: auto, default, mirrored, multiworker, tpu." in text
    assert "(default: --bucket-by-length)" in text and "(default: --no-verbose)" in text


@pytest.mark.parametrize("argv, preset, ensemble", [
    ([], "tfbert_zh_mini", True),                                   # the quick start
    (["--data", "x.csv"], None, False),                             # from scratch, with a warning
    (["--data", "x.csv", "--preset", "tfbert_zh_mini"], "tfbert_zh_mini", True),
    (["--preset", "bert_base_zh"], "bert_base_zh", False),
    (["--preset", "scratch"], "scratch", False),
    (["--no-baseline"], "tfbert_zh_mini", False),
    (["--no-ensemble-baseline"], "tfbert_zh_mini", False),
])
def test_preset_and_ensemble_defaults_resolve_once(argv, preset, ensemble):
    config = parse_config(TrainConfig, argv, "")
    assert config.preset == preset and config.ensemble_baseline is ensemble
    assert config.backbone_preset == (None if preset in (None, "scratch") else preset)
    assert TrainConfig(**{**config.to_dict(), "model": config.model, "reading": config.reading}) == config

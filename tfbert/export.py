"""SavedModel export in TF Serving's layout: `<export-dir>/<model-name>/<version>/`.

Signatures (see README "Serving"):
- `serving_default`: `text` (tf.string, [batch]) [+ `text_pair` for pair
  models] -> the task's outputs (`Task.serving_outputs`):
  classification: `probabilities` (float32, [batch, num_labels]; binary
  models return [P(label 0), P(label 1)] per row), `label` and `label_names`;
  multi_label: `probabilities`, `labels` (bool, [batch, num_labels], the
  predicted set at the exported threshold) and `label_names`;
  regression: `prediction` (float32, [batch], in the targets' units).
- `serve_token_ids`: `token_ids`, `segment_ids`, `padding_mask` (int32,
  [batch, seq]) -> the same outputs, for clients that tokenize themselves.
  Not in an `--ensemble-baseline` export, whose serving_default adds
  `bert_<output>` and `baseline_<output>` (see `build_archive`).

Tokenization happens inside the graph with tensorflow-text ops, so the
export answers raw strings with only `tensorflow` + `tensorflow_text`.

A version is written to a hidden temporary directory beside the target and
renamed into place in one step (`tfbert.atomic`): a server polling the base
path never sees a half-written model, and an existing version is never
overwritten.
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from tfbert import atomic, keras_compat
from tfbert.baseline import GraphBaseline
from tfbert.preprocessor import FEATURES
from tfbert.serving import ASSETS_EXTRA, predict_request, version_numbers
from tfbert.tasks import Task

logger = logging.getLogger(__name__)

WARMUP_FILE = "tf_serving_warmup_requests"
# Texts per length-sorted chunk inside the serving graph, by the model's compute dtype: smaller chunks
# pad less but run smaller matmuls, and the balance depends on the precision (docs/performance.md,
# `python bench/bench.py`).
SERVING_CHUNK = {"float32": 8, "bfloat16": 16, "float16": 16}

# The only non-core ops an export may contain. TF Serving's model server links
# tensorflow-text's op library (`@org_tensorflow_text//tensorflow_text:ops_lib`
# in SUPPORTED_TENSORFLOW_OPS of tensorflow_serving/model_servers/BUILD), but
# at the tf-text version pinned by each server release; these ops are older
# than every server release since 2.7. Newer ones such as `TFText>RoundRobinTrim`
# are missing from servers up to 2.19 (tensorflow/serving#2267), which is why
# packing uses "waterfall" truncation. tests/test_serving.py enforces the list.
SERVING_TF_TEXT_OPS = frozenset({
    "CaseFoldUTF8",  # keras-hub lowercasing (unused by tfbert's own normalization, allowed for presets)
    "NormalizeUTF8",  # NFD before accent stripping
    "RegexSplitWithOffsets",  # BERT basic tokenizer splitting
    "FastWordpieceTokenizeWithOffsets",  # WordPiece
    "WordpieceTokenizeWithOffsets",
})
WARMUP_BATCH_SIZES = (1, 8)
# Most bytes of 16-bit weights `constant_forward` bakes into the graph: a SavedModel's graph is one protobuf,
# which cannot pass 2 GiB (BERT-large in bf16 is 0.67 GiB).
FROZEN_WEIGHTS_LIMIT = 1 << 30  # TF Serving replays each record once per model load


def write_warmup_requests(path: str, model_name: str, texts: Sequence[str] | Sequence[tuple[str, str]]) -> int:
    """Write TF Serving warmup records (PredictionLog protos in a TFRecord file); return their count.

    One request per batch size in WARMUP_BATCH_SIZES, cut from `texts`, so the
    first real request of each common shape does not pay for graph warmup.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for size in WARMUP_BATCH_SIZES:
            chunk = list(texts[:size])
            if not chunk:
                continue
            request = predict_request(model_name, chunk)
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
            count += 1
    return count


def next_version(base_dir: str) -> int:
    versions = version_numbers(base_dir)
    return versions[-1] + 1 if versions else 1


def serving_chunk(model: keras.Model) -> int:
    """Texts per serving chunk for `model`'s compute dtype (SERVING_CHUNK)."""
    return SERVING_CHUNK.get(model.compute_dtype, SERVING_CHUNK["float32"])


def run_by_length(model: keras.Model, features: dict[str, tf.Tensor], chunk_size: int | None = None,
                  forward: Callable[[dict], tf.Tensor] | None = None) -> tf.Tensor:
    """Model outputs for a padded batch, computed in length-sorted chunks trimmed to their longest row.

    The serving signature packs every text to max_seq_length, but the
    model ignores padding (masked attention and pooling), so each chunk of
    `chunk_size` similar-length texts only needs columns up to its own
    longest text. On the default corpus (~60 real tokens of 128) this about
    halves serving compute. Outputs come back in the request's order.
    `chunk_size` defaults to `serving_chunk(model)`; `forward` (features ->
    outputs) to `model` in inference mode.
    """
    chunk_size = chunk_size or serving_chunk(model)
    forward = forward or (lambda chunk: model(chunk, training=False))
    lengths = tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1)
    order = tf.argsort(lengths)
    sorted_lengths = tf.gather(lengths, order)
    ordered = {name: tf.gather(value, order) for name, value in features.items()}
    n = tf.shape(lengths)[0]
    num_chunks = (n + chunk_size - 1) // chunk_size
    width = model.output_shape[-1]
    outputs = tf.TensorArray(tf.float32, size=num_chunks, infer_shape=False, element_shape=tf.TensorShape([None, width]))

    def body(i, outputs):
        start, end = i * chunk_size, tf.minimum((i + 1) * chunk_size, n)
        longest = tf.reduce_max(sorted_lengths[start:end])
        chunk = {name: value[start:end, :longest] for name, value in ordered.items()}
        return i + 1, outputs.write(i, tf.cast(forward(chunk), tf.float32))

    _, outputs = tf.while_loop(lambda i, _: i < num_chunks, body, [tf.constant(0), outputs])
    return tf.gather(tf.reshape(outputs.concat(), [-1, width]), tf.math.invert_permutation(order))


def constant_forward(model: keras.Model, copies: list) -> Callable[[dict], tf.Tensor] | None:
    """`model`'s inference pass with its 16-bit weights baked into the graph as constants; None when not worth it.

    oneDNN packs a constant weight into its matmul layout once and keeps
    it; a variable is re-packed at every call, which is most of the gap
    between one text's latency and ONNX Runtime's (which pre-packs too):
    MiniLM bf16, one 60-token text, 12.4 -> 10.3 ms for the model
    (`python bench/bench.py`'s latency, docs/performance.md). Float32 is
    left as variables (no gain measured, 4 bytes per parameter in the graph),
    as are models whose weights would push the graph, one protobuf, near
    its 2 GiB limit. `copies`: `keras_compat.half_precision_copies(model)`,
    whose values become the constants. The outputs match the variable
    path's to bf16 rounding, not bit for bit: grappler folds and fuses
    constant weights differently.
    """
    if not copies or sum(copy.shape.num_elements() * copy.dtype.size for _, copy in copies) > FROZEN_WEIGHTS_LIMIT:
        return None
    specs = {name: tf.TensorSpec([None, None], tf.int32, name=name) for name in FEATURES}

    @tf.function(input_signature=[specs])
    def forward(features):
        with keras_compat.reading(copies):
            return model(features, training=False)

    frozen = keras_compat.with_constant_weights(forward.get_concrete_function())
    # The frozen function takes the flattened signature: the features in tf.nest's (sorted) key order.
    return lambda features: tf.nest.flatten(frozen(*tf.nest.flatten({name: features[name] for name in FEATURES})))[0]


def _outputs(model: keras.Model, task: Task, features: dict, copies=(), forward=None,
             baseline_scores: tf.Tensor | None = None) -> dict[str, tf.Tensor]:
    """The task's serving outputs; with a baseline, of the equal-weight mean, both parts reported beside it."""
    labels = tf.constant(list(task.label_names), tf.string)
    with keras_compat.reading(copies):
        scores = task.scores(run_by_length(model, features, forward=forward))
    if baseline_scores is None:
        return task.serving_outputs(scores, labels)
    outputs = task.serving_outputs((scores + baseline_scores) / 2.0, labels)
    name = task.score_output
    return {**outputs, f"bert_{name}": task.serving_outputs(scores, labels)[name],
            f"baseline_{name}": task.serving_outputs(baseline_scores, labels)[name]}


def build_archive(model: keras.Model, task: Task,
                  baseline: GraphBaseline | None = None) -> keras.export.ExportArchive:
    """An ExportArchive with the raw-text and token-id signatures; `model.preprocessor` tokenizes.

    With `baseline` (train.py --ensemble-baseline), serving_default also
    returns `bert_probabilities` and `baseline_probabilities`, and
    `probabilities` is their mean. There is no serve_token_ids signature
    then: the baseline reads the text itself, which token ids do not carry,
    and a signature that silently answered with BERT alone would disagree
    with serving_default.
    """
    preprocessor = model.preprocessor
    archive = keras.export.ExportArchive()
    archive.track(model)  # the preprocessor and its vocabulary with it
    if baseline is not None:
        archive.track(baseline)  # its vocabulary hash table is a resource ExportArchive does not find by itself
    copies = keras_compat.half_precision_copies(model)
    forward = constant_forward(model, copies)
    if forward is not None:
        copies = []  # their values are the graph's constants
    text_specs = [tf.TensorSpec([None], tf.string, name="text")]

    def serve(*texts):
        return _outputs(model, task, preprocessor(*texts), copies, forward,
                        None if baseline is None else baseline(*texts))

    if preprocessor.pair:
        text_specs.append(tf.TensorSpec([None], tf.string, name="text_pair"))

        def serve_text(text, text_pair):
            return serve(text, text_pair)
    else:
        def serve_text(text):
            return serve(text)

    archive.add_endpoint("serving_default", serve_text, input_signature=text_specs)
    if baseline is None:
        def serve_token_ids(token_ids, segment_ids, padding_mask):
            features = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask}
            return _outputs(model, task, features, copies, forward)

        archive.add_endpoint(
            "serve_token_ids", serve_token_ids,
            input_signature=[tf.TensorSpec([None, None], tf.int32, name=name) for name in FEATURES],
        )
    return archive


def export_saved_model(
    model: keras.Model,
    task: Task,
    base_dir: str,
    version: int | None = None,
    extra_files: dict[str, str | Callable[[dict], str]] | None = None,
    warmup_texts: Sequence[str] | Sequence[tuple[str, str]] = (),
    baseline: GraphBaseline | None = None,
) -> str:
    """Write `<base_dir>/<version>/` atomically and return its path.

    Args:
        model: a `TextClassifier` carrying its preprocessor.
        task: the task whose outputs the signatures return.
        extra_files: name -> text content, written to `assets.extra/` (labels, config, metrics, vocab), or
            a function of the written signatures (`signatures_of`) that returns it (the model card).
        warmup_texts: texts (or (text, text_pair) tuples) for `assets.extra/tf_serving_warmup_requests`.
        baseline: the TF-IDF baseline to average with BERT (see `build_archive`).

    Raises:
        ValueError: `version` already exists (exports never overwrite).
    """
    os.makedirs(base_dir, exist_ok=True)
    for stale in atomic.remove_stale(base_dir):
        logger.warning("Removed %s, left in %s by an export that was killed.", stale, base_dir)
    if version is not None and os.path.exists(os.path.join(base_dir, str(version))):
        raise ValueError(
            f"Export version {os.path.join(base_dir, str(version))!r} already exists and is never overwritten. "
            "Drop --version to take the next free one, or choose another."
        )
    tmp = tempfile.mkdtemp(prefix=atomic.staged_name("export"), dir=base_dir)
    try:
        files = ExportFiles(extra_files or {}, list(warmup_texts), os.path.basename(base_dir))
        _write_version(tmp, model, task, files, baseline)
        target = _publish(tmp, base_dir, version)
    except BaseException as error:
        shutil.rmtree(tmp, ignore_errors=True)
        reason = atomic.disk_full_reason(error)
        if reason:
            raise ValueError(f"Exporting to {base_dir!r} stopped: {reason}. The partial version was removed and "
                             "earlier versions are intact; free space (or raise the file-size limit) and export "
                             "again.") from None
        raise
    logger.info("Exported SavedModel to %s", target)
    return target


@dataclasses.dataclass(frozen=True)
class ExportFiles:
    """What goes into `assets.extra/` beside the SavedModel (see `export_saved_model`)."""

    extra: dict[str, str | Callable[[dict], str]]
    warmup_texts: list
    model_name: str


def signatures_of(directory: str) -> dict[str, dict[str, dict[str, str]]]:
    """The serving signatures a written SavedModel declares: name -> inputs / outputs -> tensor -> "dtype [shape]"."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(directory, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())

    def describe(info) -> str:
        shape = ", ".join("None" if d.size < 0 else str(d.size) for d in info.tensor_shape.dim)
        return f"{tf.dtypes.as_dtype(info.dtype).name} [{shape}]"

    return {name: {"inputs": {k: describe(v) for k, v in sig.inputs.items()},
                   "outputs": {k: describe(v) for k, v in sig.outputs.items()}}
            for name, sig in proto.meta_graphs[0].signature_def.items() if not name.startswith("__")}


def _write_version(directory: str, model: keras.Model, task: Task, files: ExportFiles,
                   baseline: GraphBaseline | None) -> None:
    build_archive(model, task, baseline).write_out(directory, verbose=False)
    extra = os.path.join(directory, ASSETS_EXTRA)
    os.makedirs(extra, exist_ok=True)
    signatures = signatures_of(directory) if any(map(callable, files.extra.values())) else None  # read once
    for name, content in files.extra.items():
        with open(os.path.join(extra, name), "w", encoding="utf-8") as f:
            f.write(content(signatures) if callable(content) else content)
    if files.warmup_texts:
        write_warmup_requests(os.path.join(extra, WARMUP_FILE), files.model_name, files.warmup_texts)


def _publish(tmp: str, base_dir: str, version: int | None) -> str:
    """Rename the finished `tmp` into place as `version`, or as the next free version.

    Two exports running at once may both pick the same next version: the
    rename of the second fails (the target exists and is not empty), and it
    takes the next one, so each gets its own complete version.
    """
    while True:
        target = os.path.join(base_dir, str(version if version is not None else next_version(base_dir)))
        try:
            os.rename(tmp, target)  # atomic on one filesystem: the version appears complete or not at all
            return target
        except OSError as error:
            if version is not None or error.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise

"""The systems bench.py and cost_curves.py time: tfbert and each peer in each precision it documents.

Training: tfbert; keras-hub stock (BertTextClassifier with its preprocessor, fixed padding) in float32 and,
on a CPU with native bf16, under `mixed_bfloat16`; Hugging Face (BertForSequenceClassification, PyTorch eager,
the fast tokenizer padding to the longest text per batch) in float32 and, with native bf16, under
`torch.autocast("cpu", torch.bfloat16)`, which is what `Trainer(bf16=True)` runs on a CPU.
Serving: tfbert's SavedModel; ONNX Runtime on the same checkpoint exported from PyTorch with dynamic batch and
length axes, the CPU execution provider on every core, as exported and after onnxruntime's transformer
optimizer (attention, LayerNorm and GELU fusions).
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np

from bench.measure import anchor_matmul, fit_seconds, model_matmuls, sustained_rates, training_flops


class TfbertSystem:
    name = "tfbert"

    def __init__(self, ckpt, texts, labels, args, mixed: bool):
        import keras
        import keras_hub

        from tfbert.distribute import set_precision
        from tfbert.keras_compat import use_fast_layers
        from tfbert.model import build_classifier
        from tfbert.optimization import build_optimizer
        from tfbert.pipeline import EpochPlan, make_training_dataset
        from tfbert.preprocessor import TextPreprocessor
        from tfbert.presets import load_tokenizer
        from tfbert.tasks import ClassificationTask

        self.policy = set_precision(mixed)
        keras.utils.set_random_seed(0)
        self.task = ClassificationTask(("negative", "positive"))
        self.pre = TextPreprocessor.from_tokenizer(load_tokenizer(ckpt), args.max_seq_length)
        self.backbone = keras_hub.models.BertBackbone.from_preset(ckpt)
        self.model = use_fast_layers(build_classifier(self.backbone, self.task.output_units, self.task.activation,
                                                      preprocessor=self.pre))
        self.model.compile(optimizer=build_optimizer(2e-5, 10_000, 0.1, 0.01), loss=self.task.loss(),
                           jit_compile=args.jit_compile)
        self.ds, self.epoch_steps = make_training_dataset(self.pre, texts, labels[:, None].astype("float32"),
                                                          plan=EpochPlan(args.batch_size, 0, bucket=args.bucket))
        keras.mixed_precision.set_global_policy("float32")
        self.batch_size, self.position = args.batch_size, 0
        self.calls = []  # (examples, real tokens, model FLOPs, seconds) per call, counted in the very batches timed
        # (anchor matmul rate, model-shaped matmul rate), measured right after each timed call once
        # main() sets the length to measure the model's matmuls at.
        self.rates, self.rate_length = [], None

    @property
    def config(self) -> str:
        return "bf16" if self.policy == "mixed_bfloat16" else "fp32"

    def timed_steps(self, args) -> int:
        # Length-bucketed batches differ in length (4 to 128 tokens), so a few of
        # them say more about which buckets they came from than about speed: the
        # timed calls of one bench run together cover a whole epoch of the stream.
        return max(args.steps, math.ceil(self.epoch_steps / args.repeats) + 1)

    def warmup_steps(self, args) -> int:
        # The fused GELU's XLA kernels compile once per (batch, length) shape, ~0.2 s
        # each, and the first epoch meets all of them (32 lengths at 4-token buckets):
        # warm up over one epoch so the timed calls see the steady state, as keras-hub's
        # single shape does after its warmup. The first epoch's cost is printed apart.
        return max(args.warmup_steps, self.epoch_steps)

    def train(self, steps):
        # Every fit call starts a new iterator: skip what earlier calls consumed, so the
        # timed batches walk through the epochs' length mix instead of repeating its start.
        ds, self.position = self.ds.skip(self.position), self.position + steps
        # The stream is deterministic: count the timed batches' real lengths (what MFU is taken on).
        lengths = np.concatenate([np.sum(features["padding_mask"], axis=1) for features, _ in ds.skip(1).take(steps - 1)])
        seconds = fit_seconds(self.model, ds, steps)
        self.calls.append(((steps - 1) * self.batch_size, int(lengths.sum()), training_flops(self.backbone, lengths), seconds))
        if self.rate_length:
            dtype = "bfloat16" if self.policy == "mixed_bfloat16" else "float32"
            self.rates.append(sustained_rates([anchor_matmul(dtype),
                                               model_matmuls(self.backbone, dtype, self.batch_size, self.rate_length)]))
        return (steps - 1) * self.batch_size / seconds

    def serving(self):
        """tfbert's exported serving signature: raw texts in, probabilities out."""
        import tensorflow as tf

        from tfbert.export import export_saved_model

        export = export_saved_model(self.model, self.task, tempfile.mkdtemp())
        serve = tf.saved_model.load(export).signatures["serving_default"]
        return lambda chunk: serve(text=tf.constant(list(chunk)))


class KerasHubSystem:
    """keras-hub stock: its classifier, preprocessor and default compile, in float32 or under mixed_bfloat16."""

    def __init__(self, ckpt, texts, labels, args, mixed: bool):
        import keras
        import keras_hub
        import tensorflow as tf

        self.config = "bf16" if mixed else "fp32"
        self.name = f"keras_hub_{self.config}"
        keras.mixed_precision.set_global_policy("mixed_bfloat16" if mixed else "float32")
        keras.utils.set_random_seed(0)
        # from_preset(..., sequence_length=128) does not reach the preprocessor: build it ourselves.
        pre = keras_hub.models.BertTextClassifierPreprocessor.from_preset(ckpt, sequence_length=args.max_seq_length)
        self.model = keras_hub.models.BertTextClassifier(
            backbone=keras_hub.models.BertBackbone.from_preset(ckpt), preprocessor=pre, num_classes=2)
        keras.mixed_precision.set_global_policy("float32")
        self.ds = tf.data.Dataset.from_tensor_slices((list(texts), labels)).repeat().batch(args.batch_size)
        self.batch_size = args.batch_size

    def train(self, steps):
        return (steps - 1) * self.batch_size / fit_seconds(self.model, self.ds, steps)

    def serving(self):
        return lambda chunk: self.model.predict(list(chunk), batch_size=64, verbose=0)


class HuggingFaceSystem:
    """transformers' BertForSequenceClassification, PyTorch eager, in float32 or under bf16 autocast."""

    def __init__(self, ckpt, texts, labels, args, bf16: bool):
        import torch
        import transformers

        transformers.logging.set_verbosity_error()  # not the "newly initialized classifier" notice
        torch.manual_seed(0)
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        self.torch, self.bf16 = torch, bf16
        self.config = "bf16" if bf16 else "fp32"
        self.name = f"hf_{self.config}"
        self.tok = transformers.AutoTokenizer.from_pretrained(ckpt)
        self.model = transformers.AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=2e-5)
        self.texts, self.labels, self.args, self.pos = list(texts), labels, args, 0

    def step(self, texts, labels) -> None:
        enc = self.tok(texts, padding="longest", truncation=True, max_length=self.args.max_seq_length,
                       return_tensors="pt")
        with self.torch.autocast("cpu", dtype=self.torch.bfloat16, enabled=self.bf16):
            out = self.model(**enc, labels=self.torch.tensor(labels))
        out.loss.backward()  # outside autocast, as Trainer does
        self.opt.step()
        self.opt.zero_grad()

    def train(self, steps):
        self.model.train()
        b = self.args.batch_size
        for step in range(steps):
            if step == 1:
                start = time.perf_counter()
            i = self.pos % (len(self.texts) - b)
            self.pos += b
            self.step(self.texts[i:i + b], self.labels[i:i + b])
        return (steps - 1) * b / (time.perf_counter() - start)


class OnnxRuntimeServer:
    """The Hugging Face checkpoint exported to ONNX (dynamic batch and length), served by ONNX Runtime's CPU EP.

    `optimized`: after `onnxruntime.transformers.optimizer` fused attention, LayerNorm and GELU for BERT.
    Each call tokenizes with the fast tokenizer, padding to the longest text, and returns probabilities.
    """

    def __init__(self, ckpt: str, max_seq_length: int, optimized: bool):
        import onnxruntime as ort
        import transformers

        self.config = "optimized" if optimized else "exported"
        self.name = f"ort_{self.config}"
        self.tok = transformers.AutoTokenizer.from_pretrained(ckpt)
        self.max_seq_length = max_seq_length
        path = export_onnx(ckpt, optimized)
        options = ort.SessionOptions()
        options.intra_op_num_threads = len(os.sched_getaffinity(0))
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, texts):
        enc = self.tok(list(texts), padding="longest", truncation=True, max_length=self.max_seq_length,
                       return_tensors="np")
        logits = self.session.run(None, {name: enc[name].astype(np.int64) for name in self.inputs})[0]
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def export_onnx(ckpt: str, optimized: bool) -> str:
    """`ckpt` as an ONNX file with dynamic batch and length axes (opset 17), optionally BERT-optimized."""
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForSequenceClassification.from_pretrained(ckpt, num_labels=2).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    dummy = tuple(torch.ones((2, 16), dtype=torch.int64) for _ in names)
    path = os.path.join(tempfile.mkdtemp(), "model.onnx")
    axes = {name: {0: "batch", 1: "length"} for name in names}
    torch.onnx.export(model, dummy, path, input_names=names, output_names=["logits"],
                      dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=17, dynamo=False)
    if not optimized:
        return path
    from onnxruntime.transformers import optimizer

    config = model.config
    fused = optimizer.optimize_model(path, model_type="bert", num_heads=config.num_attention_heads,
                                     hidden_size=config.hidden_size)
    fused_path = path.replace(".onnx", ".optimized.onnx")
    fused.save_model_to_file(fused_path)
    return fused_path

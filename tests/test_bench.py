"""The bench's FLOP count, which its MFU figure rests on (the bench itself is timed, so it is not run here)."""

from __future__ import annotations

import importlib.util
import os
import sys

import keras_hub
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench", "bench.py")


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("tfbert_bench", BENCH)


def test_training_flops_golden(bench):
    """6 x the weights multiplied per token + attention over each text; not the embeddings, not the pooler the head skips."""
    backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    # Per layer: q, k, v, output kernels 4 * (8*8 + 8), two LayerNorms 2 * (8 + 8),
    # feed-forward (8*16 + 16) + (16*8 + 8).
    per_layer = 4 * (64 + 8) + 2 * 16 + (128 + 16) + (128 + 8)
    assert per_layer == 600
    # Texts of 10 and 4 real tokens: each token attends over its own text, 12 x layers x hidden x L per token.
    attention = 12 * 2 * 8 * (10 * 10 + 4 * 4)
    assert bench.training_flops(backbone, [10, 4]) == 6 * 2 * per_layer * 14 + attention


@pytest.mark.parametrize("flags, auto", [({"avx512f", "amx_bf16"}, True), ({"avx512f", "avx512_vnni"}, False)])
def test_precision_auto_follows_the_cpu(bench, monkeypatch, flags, auto):
    from tfbert import distribute

    monkeypatch.setattr(distribute, "cpu_flags", lambda: flags)
    assert bench.resolve_precision("auto") is auto
    assert bench.resolve_precision("mixed") is True and bench.resolve_precision("fp32") is False


@pytest.fixture(scope="module")
def device_check():
    return _load("tfbert_device_check", os.path.join(os.path.dirname(BENCH), "device_check.py"))


def test_gpu_anchor_runs_the_whole_chain(device_check):
    """The GPU anchor's FLOPs must be the matmuls it runs: its element is that of a^(chain + 1), its count chain x 2n^3."""
    import numpy as np

    fn, flops = device_check._gpu_anchor("float32", n=4, chain=3)
    assert flops == 3 * 2 * 4**3
    value = float(fn())
    # The operand is random and reachable only as the function's captured input.
    (operand,) = fn.get_concrete_function().captured_inputs
    expected = np.linalg.matrix_power(operand.numpy(), 4)[0, 0]
    np.testing.assert_allclose(value, expected, rtol=1e-5)


@pytest.mark.parametrize("argv, message", [(["--variants", "fp16"], "not one of fp32, mixed, bf16"),
                                           (["--variants", "bf16+jit"], "not one of fp32, mixed, bf16"),
                                           (["--steps", "1"], "at least 2")])
def test_device_check_rejects_bad_flags_before_any_work(device_check, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        device_check.main(argv)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_profile_kinds_golden():
    profile = _load("tfbert_profile_step", os.path.join(os.path.dirname(BENCH), "profile_step.py"))
    assert profile.kind_of("_MklMatMul", "model/dense/MatMul") == "matmul (dense, attention)"
    assert profile.kind_of("BatchMatMulV2", "attention/einsum") == "matmul (dense, attention)"
    assert profile.kind_of("AddV2", "adamw/update/add") == "optimizer (AdamW, clipping)"
    assert profile.kind_of("AddN", "encoder/layer_norm/ArithmeticOptimizer/AddOpsRewrite_add") == "layer norm"
    assert profile.kind_of("AddV2", "encoder/ArithmeticOptimizer/AddOpsRewrite_add") != "optimizer (AdamW, clipping)"
    assert profile.kind_of("Mean", "encoder/layer_norm/moments/mean") == "layer norm"
    assert profile.kind_of("_XlaRun", "fused_gelu_tanh") == "GELU"
    assert profile.kind_of("Softmax", "attention/softmax") == "softmax"
    assert profile.kind_of("IteratorGetNext", "IteratorGetNext") == "input pipeline"
    assert profile.kind_of("Cast", "encoder/cast") == "other (casts, adds, gathers, host)"
    assert profile.kind_of("_MklTranspose", "attention/transpose") == "attention head transposes"
    assert profile.kind_of("Bitcast", "attention/Bitcast_2") == "attention head transposes"
    assert profile.kind_of("FastWordpieceTokenizeWithOffsets", "preprocessor/x") == "tokenization (tf-text)"
    assert profile.kind_of("RaggedTensorToTensor", "preprocessor/pack") == "tokenization (tf-text)"
    assert profile.kind_of("StridedSlice", "encoder/strided_slice") == "other (casts, adds, gathers, host)"
    shares = profile.breakdown([{"type": "MatMul", "operation": "a", "self_us": 3.0},
                                {"type": "Cast", "operation": "b", "self_us": 1.0},
                                {"type": "MatMul", "operation": "c", "self_us": 2.0}])
    assert list(shares.items()) == [("matmul (dense, attention)", 5.0), ("other (casts, adds, gathers, host)", 1.0)]


def test_onednn_kernel_times_golden():
    """ONEDNN_VERBOSE's exec lines (times in ms) summed by kind in us; creation lines and other output ignored."""
    profile = _load("tfbert_profile_step", os.path.join(os.path.dirname(BENCH), "profile_step.py"))
    head = "onednn_verbose,v1,primitive"
    lines = [
        f"{head},exec,cpu,inner_product,brgemm:avx512_core_bf16,forward_inference,src:bf16 wei:bf16,,mb49ic384oc384,0.075",
        f"{head},exec,cpu,matmul,brg_matmul:avx512_core_bf16,undef,src:bf16,,1x12x49x32:1x12x32x49,0.05",
        f"{head},exec,cpu,softmax,jit:avx512_core_bf16,forward_inference,src:bf16,,alg:softmax_accurate axis:3,0.06",
        f"{head},exec,cpu,reorder,jit:uni,undef,src:bf16 dst:bf16,,,384x384,0.2",
        f"{head},create:cache_miss,cpu,inner_product,brgemm:avx512_core_bf16,forward_inference,,,mb49,1.5",
        "onednn_verbose,v1,info,oneDNN v3.7.1",
        "=== timed texts ===",
    ]
    kernels = profile.onednn_kernel_us(lines)
    assert kernels == pytest.approx({"matmul (dense, attention)": 125.0, "softmax": 60.0,
                                     "other (casts, adds, gathers, host)": 200.0})


@pytest.fixture(scope="module")
def cost_curves():
    return _load("tfbert_cost_curves", os.path.join(os.path.dirname(BENCH), "cost_curves.py"))


def test_cost_configurations_ascend_in_tokens_per_step(cost_curves):
    configs = cost_curves.configurations((64, 128, 256, 512), (8, 32, 64))
    assert len(configs) == 12 and configs[0] == (64, 8) and configs[-1] == (512, 64)
    tokens = [length * batch for length, batch in configs]
    assert tokens == sorted(tokens)  # peak memory read after each is that configuration's


def test_cost_table_and_filled_texts(cost_curves):
    rows = [{"system": "tfbert", "mode": "train", "length": 64, "batch": 8, "real_tokens_per_s": 1234.5,
             "peak_rss_mb": 2000.0},
            {"system": "ort", "mode": "serve", "length": 64, "batch": 8, "real_tokens_per_s": 99.0, "peak_rss_mb": 900.0}]
    table = cost_curves.table(rows).splitlines()
    assert table[0] == "| length | batch | tfbert:train tokens/s (peak MB) | ort:serve tokens/s (peak MB) |"
    assert table[2] == "| 64 | 8 | 1,234 (2,000) | 99 (900) |"
    texts = cost_curves.filled_texts(5, 300)
    assert len(texts) == 5 and min(map(len, texts)) >= 300 and len(set(texts)) == 5


def test_attention_crossover_golden(cost_curves, monkeypatch):
    """Attention's 12 x layers x hidden x L FLOPs per token equal the dense 6 x params at L = params / (2 layers hidden)."""
    backbone = keras_hub.models.BertBackbone(vocabulary_size=50, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16)
    monkeypatch.setattr(keras_hub.models.BertBackbone, "from_preset", lambda ckpt: backbone)
    assert cost_curves.attention_crossover("any") == round(6 * 2 * 600 / (12 * 2 * 8))


def test_embedding_update_bench_times_both_modes(capsys):
    """The copy-on-read bench runs end to end on a tiny table and ends with its JSON line."""
    import json

    embedding_update = _load("tfbert_embedding_update", os.path.join(os.path.dirname(BENCH), "embedding_update.py"))
    assert embedding_update.main(["--rows", "50", "--width", "8", "--batch-size", "2", "--length", "4",
                                  "--steps", "2", "--repeats", "2"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["ms_per_step"]) == {"tfbert", "copy_on_read"} and result["copy_on_read_vs_tfbert"] > 0

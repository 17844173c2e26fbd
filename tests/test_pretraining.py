"""Masked-LM pretraining: corpus preparation, masking invariants, and pretrain -> preset -> train.py --preset."""

import json
import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pretrain
import train
from tests.conftest import TINY_FLAGS, TINY_VOCAB, synthetic_rows
from tfbert import data as data_lib
from tfbert import pretraining
from tfbert.config import TrainConfig


def test_strip_pos_tags_golden():
    line = "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  一九九八年/t  新年/t  讲话/n  （/w  附/v  图片/n  １/m  张/q  ）/w"
    assert pretraining.strip_pos_tags(line) == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    # PKU compound brackets: "[word/tag ...]tag"
    assert pretraining.strip_pos_tags("[中央/n  人民/n  广播/vn  电台/n]nt  播音/vn") == "中央人民广播电台播音"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="好的。！？；ab c", max_size=80), st.integers(1, 20))
def test_chunks_cover_the_paragraph_and_respect_the_limit(paragraph, max_chars):
    chunks = pretraining.chunk_sentences(paragraph, max_chars)
    assert "".join(chunks) == paragraph
    assert all(0 < len(chunk) <= max_chars for chunk in chunks)


def test_chunks_break_at_sentence_ends():
    assert pretraining.chunk_sentences("今天很好。明天也好！后天呢？", 6) == ["今天很好。", "明天也好！", "后天呢？"]
    assert pretraining.chunk_sentences("今天很好。明天也好！", 20) == ["今天很好。明天也好！"]


def test_default_corpus_never_contains_a_validation_review():
    corpus = set(pretraining.default_corpus(126))
    train_set, validation = data_lib.split(data_lib.deduplicate(data_lib.load_default_corpus()))
    assert not corpus & set(validation.texts)
    assert set(train_set.texts) <= corpus
    assert len(corpus) > len(train_set) + 20_000  # the People's Daily chunks are in too



def test_peoples_daily_is_untagged_and_fits():
    import re

    texts = pretraining.peoples_daily_texts(126)
    assert len(texts) > 20_000 and all(0 < len(t) <= 126 for t in texts)
    tagged = [t for t in texts if re.search(r"/[A-Za-z]|\][a-z]|\s", t)]
    assert not tagged, tagged[:3]


def test_masking_follows_bert(tiny_tokenizer):
    import tensorflow as tf

    from tfbert.preprocessing import TextPreprocessor

    pre = TextPreprocessor(tiny_tokenizer, sequence_length=32)
    texts = [row["text"] for row in synthetic_rows(400, seed=3)]
    features = pre(tf.constant(texts))
    ds = tf.data.Dataset.from_tensors((features, tf.zeros(len(texts))))
    x, mask_ids, weights = next(iter(pretraining._masked(ds, pretraining.masker_for(pre, 0.15))))
    original, masked = features["token_ids"].numpy(), x["token_ids"].numpy()
    positions, mask_ids, weights = x["mask_positions"].numpy(), mask_ids.numpy(), weights.numpy()
    lengths = features["padding_mask"].numpy().sum(axis=1)
    selected = weights > 0
    rows = np.nonzero(selected)[0]
    cols = positions[selected]
    # Never [CLS] (position 0), [SEP] (last real position) or padding; labels are the original tokens.
    assert (cols > 0).all() and (cols < lengths[rows] - 1).all()
    np.testing.assert_array_equal(mask_ids[selected], original[rows, cols])
    # Tokens that were not selected are untouched, padding included.
    untouched = np.ones_like(original, dtype=bool)
    untouched[rows, cols] = False
    np.testing.assert_array_equal(masked[untouched], original[untouched])
    np.testing.assert_array_equal(x["padding_mask"].numpy(), features["padding_mask"].numpy())
    # Exactly ceil(15%) of each text's maskable tokens (tf-text rounds up, in float32) ...
    expected = np.ceil((lengths - 2).astype(np.float32) * np.float32(0.15)).astype(int)
    np.testing.assert_array_equal(selected.sum(axis=1), expected)
    # ... most of them replaced by [MASK] (80%), the rest random (10%) or kept (10%).
    share_mask = (masked[rows, cols] == TINY_VOCAB.index("[MASK]")).mean()
    assert 0.7 < share_mask < 0.9, share_mask


def test_word_continuations_golden(tiny_tokenizer):
    from tfbert.preprocessing import TextPreprocessor

    pre = TextPreprocessor(tiny_tokenizer, sequence_length=16)
    segmented = {"我们喜欢这个手机bc": ["我们", "喜欢", "这个", "手机", "bc"],
                 "服务很好": ["服务很好"],  # a four-character word
                 "很满意": ["很", "满意"],
                 "喜欢极了": ["喜欢", "极了"]}  # "极" is [UNK] here: a word that no longer matches falls apart
    flags = pretraining.word_continuations(pre, list(segmented), segment=segmented.__getitem__)
    # [CLS] 我 们 喜 欢 这 个 手 机 b ##c [SEP]: each two-character word is one word, WordPiece's "##c" continues "b".
    np.testing.assert_array_equal(flags[0], [0, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(flags[1], [0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(flags[2], [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(flags[3], [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])


def test_jieba_segments_offline():
    assert pretraining.jieba_words("我们喜欢这个手机") == ["我们", "喜欢", "这个", "手机"]


def _whole_word_masker(vocabulary_size=50, rate=0.15, slots=8):
    return pretraining.WholeWordMaskGenerator(vocabulary_size=vocabulary_size, mask_rate=rate, selection_length=slots,
                                              mask_token_id=4, unselectable_token_ids=[1, 2, 0])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_whole_word_masking_invariants(data):
    import tensorflow as tf

    batch, length = data.draw(st.integers(1, 6)), data.draw(st.integers(3, 24))
    rate = data.draw(st.sampled_from([0.15, 0.3, 0.45]))
    # Up to twice the length: length-bucketed batches are often shorter than the mask slots.
    slots = data.draw(st.integers(int(np.ceil(rate * length)), 2 * length))
    lengths = [data.draw(st.integers(2, length)) for _ in range(batch)]
    ids = np.zeros((batch, length), np.int32)
    for row, n in enumerate(lengths):
        ids[row, 0], ids[row, n - 1] = 1, 2
        ids[row, 1:n - 1] = data.draw(st.lists(st.integers(5, 49), min_size=n - 2, max_size=n - 2))
    continuations = np.array(data.draw(st.lists(st.lists(st.integers(0, 1), min_size=length, max_size=length),
                                                min_size=batch, max_size=batch)), np.int8)
    tf.random.set_seed(data.draw(st.integers(0, 1000)))
    out = {k: v.numpy() for k, v in _whole_word_masker(rate=rate, slots=slots)(tf.constant(ids), tf.constant(continuations)).items()}
    for row, n in enumerate(lengths):
        real = out["mask_weights"][row] > 0
        positions = out["mask_positions"][row][real]
        selected = np.zeros(length, bool)
        selected[positions] = True
        # Real predictions come first, ascending, inside the text, never [CLS]/[SEP]/padding; labels are the originals.
        assert real.tolist() == sorted(real.tolist(), reverse=True)
        assert (np.diff(positions) > 0).all() and (positions >= 1).all() and (positions <= n - 2).all()
        np.testing.assert_array_equal(out["mask_ids"][row][real], ids[row, positions])
        np.testing.assert_array_equal(out["token_ids"][row][~selected], ids[row][~selected])
        # Never more than the single-token masker's count ...
        budget = int(np.ceil(np.float32(n - 2) * np.float32(rate)))
        assert len(positions) <= budget
        # ... and words are taken whole: a continuing token is selected exactly when the token before it is.
        for t in range(2, n - 1):
            if continuations[row, t]:
                assert selected[t] == selected[t - 1], (row, t)
        if not continuations[row, 2:n - 1].any():  # single-token words: exactly the single-token count
            assert len(positions) == budget


def test_whole_word_masking_rates():
    import tensorflow as tf

    tf.random.set_seed(0)
    rng = np.random.default_rng(0)
    ids = np.concatenate([np.ones((2000, 1)), rng.integers(5, 50, (2000, 40)), np.full((2000, 1), 2)], axis=1).astype(np.int32)
    continuations = np.zeros_like(ids, np.int8)
    continuations[:, 2:41:2] = 1  # twenty two-token words per text; budget ceil(0.15 * 40) = 6 tokens = 3 words
    out = _whole_word_masker(slots=9)(tf.constant(ids), tf.constant(continuations))
    weights, positions, masked = out["mask_weights"].numpy(), out["mask_positions"].numpy(), out["token_ids"].numpy()
    assert (weights.sum(axis=1) == 6).all()
    rows = np.repeat(np.arange(2000), 6)
    cols = positions[weights > 0]
    changed = masked[rows, cols]
    assert abs((changed == 4).mean() - 0.8) < 0.02
    kept = (changed == ids[rows, cols]).mean()  # 10% kept, plus random draws that hit the same token
    assert abs(kept - (0.1 + 0.1 / 50)) < 0.015
    # Every word is equally likely to be chosen: each position is selected about 6/40 of the time.
    per_position = np.bincount(cols, minlength=42)[1:41] / 2000
    assert np.abs(per_position - 0.15).max() < 0.04


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("corpus") / "texts.txt"
    path.write_text("".join(row["text"] + "\n" for row in synthetic_rows(300, seed=7)), encoding="utf-8")
    return str(path)


def test_pretrain_writes_a_preset_that_train_fine_tunes(tmp_path, text_file, review_csv, capsys):
    import keras_hub

    preset = str(tmp_path / "presets" / "tiny")
    argv = [text_file, "--output-dir", preset, "--epochs", "3", "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]
    assert pretrain.main(argv) == 0
    assert "Masked-LM held-out loss" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "presets")) == ["tiny"]  # the temp dir was renamed, nothing left behind
    summary = json.loads((tmp_path / "presets" / "tiny" / "pretrain_summary.json").read_text())
    loss = summary["history"]["loss"]
    assert loss[-1] < loss[0] and np.isfinite(summary["history"]["val_loss"]).all()
    # Short texts fill few of the 7 mask slots: Keras' slot-averaged loss reads far below the per-token mean.
    assert summary["history"]["val_masked_loss"][-1] > 2 * summary["history"]["val_loss"][-1]
    assert summary["steps"] == 3 * summary["steps_per_epoch"]
    tokenizer = keras_hub.models.BertTokenizer.from_preset(preset)
    assert tokenizer.lowercase is True and tokenizer.vocabulary_size() == summary["vocabulary_size"]
    assert TrainConfig(preset=preset).resolved_learning_rate == pretraining.FINE_TUNE_LEARNING_RATE
    backbone = keras_hub.models.BertBackbone.from_preset(preset)
    assert backbone.num_layers == 1 and backbone.hidden_dim == 16

    # Rerunning into the same directory is refused unless asked for.
    assert pretrain.main(argv) == 2
    assert "--output-dir" in capsys.readouterr().err

    export = tmp_path / "sm"
    assert train.main(["--data", review_csv, "--preset", preset, "--epochs", "1", "--batch-size", "16",
                       "--max-seq-length", "32", "--learning-rate", "5e-3", "--no-baseline",
                       "--export-dir", str(export), "--log-dir", str(tmp_path / "logs"), "--model-name", "m"]) == 0
    vocab = (export / "m" / "1" / "assets.extra" / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab == tokenizer.get_vocabulary()  # fine-tuning used the pretrained vocabulary, not a new one


def test_pretrain_with_whole_word_masking(tmp_path, text_file, capsys):
    preset = str(tmp_path / "wwm")
    assert pretrain.main([text_file, "--whole-word-masking", "--output-dir", preset, "--epochs", "2",
                          "--log-dir", str(tmp_path / "logs"), *TINY_FLAGS]) == 0
    summary = json.loads((tmp_path / "wwm" / "pretrain_summary.json").read_text())
    assert summary["config"]["whole_word_masking"] is True
    # The log line run_script's logging writes to stderr: jieba found multi-character words in the synthetic reviews.
    continuing = re.search(r"Whole-word masking: (\d+) tokens", capsys.readouterr().err)
    assert continuing and int(continuing.group(1)) > 100
    history = summary["history"]
    assert history["loss"][-1] < history["loss"][0] and np.isfinite(history["val_masked_loss"]).all()


def test_unknown_characters_golden(tiny_tokenizer):
    from tfbert.preprocessing import TextPreprocessor

    pre = TextPreprocessor(tiny_tokenizer, 16)
    # 酷 x3, 赞 x2, 夯 x1 are not in the vocabulary; 好 and "great" are; "Ａ" normalizes to "a" (known).
    texts = ["酷酷好", "赞 酷 great", "赞夯", "Ａ"]
    assert pretraining.unknown_characters(pre, texts, min_count=2) == ["酷", "赞"]
    assert pretraining.unknown_characters(pre, texts, min_count=1) == ["酷", "赞", "夯"]
    assert pretraining.unknown_characters(pre, ["好很"], min_count=1) == []


def test_grown_backbone_keeps_every_trained_weight():
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=12)
    grown = pretraining.grown_backbone(backbone, 5)
    assert grown.vocabulary_size == 25
    old, new = backbone.token_embedding.embeddings.numpy(), grown.token_embedding.embeddings.numpy()
    np.testing.assert_array_equal(new[:20], old)
    assert new[20:].std() > 0.005  # fresh rows drawn from the initializer, not zeros or copies
    for a, b in zip(backbone.weights, grown.weights):
        if "token_embedding" not in a.path:
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    # Texts made of old tokens get exactly the old outputs.
    x = {"token_ids": np.array([[1, 7, 19, 2, 0]]), "segment_ids": np.zeros((1, 5), "int32"),
         "padding_mask": np.array([[1, 1, 1, 1, 0]])}
    np.testing.assert_allclose(grown(x)["sequence_output"], backbone(x)["sequence_output"], atol=1e-6)
    assert pretraining.grown_backbone(backbone, 0) is backbone


def test_init_from_continues_a_checkpoint_and_grows_its_vocabulary(tmp_path, tiny_tokenizer):
    import keras_hub

    start = str(tmp_path / "start")
    backbone = keras_hub.models.BertBackbone(vocabulary_size=len(TINY_VOCAB), num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=64)
    backbone.save_to_preset(start)
    tiny_tokenizer.save_to_preset(start)
    corpus = tmp_path / "new.txt"
    rows = [row["text"] for row in synthetic_rows(200, seed=3)]
    corpus.write_text("".join(f"{text}酷毙了\n" for text in rows) + "罕\n", encoding="utf-8")
    preset = str(tmp_path / "continued")
    assert pretrain.main([str(corpus), "--init-from", start, "--output-dir", preset, "--epochs", "1",
                          "--max-seq-length", "32", "--batch-size", "16", "--learning-rate", "1e-3",
                          "--log-dir", str(tmp_path / "logs")]) == 0
    summary = json.loads((tmp_path / "continued" / "pretrain_summary.json").read_text())
    assert sorted(summary["added_characters"]) == sorted("酷毙")  # 罕 appears once: below --add-characters 2
    vocab = keras_hub.models.BertTokenizer.from_preset(preset).get_vocabulary()
    assert vocab[: len(TINY_VOCAB)] == TINY_VOCAB and sorted(vocab[len(TINY_VOCAB):]) == sorted("酷毙")
    continued = keras_hub.models.BertBackbone.from_preset(preset)
    assert continued.vocabulary_size == len(vocab) and continued.num_layers == 1
    # Pretraining moved the start's weights; a continued checkpoint recommends no learning rate of its own.
    layer = "transformer_layer_0"
    assert not np.allclose(continued.get_layer(layer).weights[0].numpy(), backbone.get_layer(layer).weights[0].numpy())
    assert TrainConfig(preset=preset).resolved_learning_rate == 2e-5


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--init-from", "bert_tiny_en_uncased", "--num-layers", "4"], "cannot be combined with --num-layers"),
        (["--add-characters", "-1"], "--add-characters must be >= 0"),
        (["--mask-rate", "0.6"], "--mask-rate must be in (0, 0.5)"),
        (["--strategy", "multiworker"], "--strategy 'multiworker' is not one of auto, default, mirrored"),
        (["/nonexistent/corpus.txt"], "Text file '/nonexistent/corpus.txt' does not exist"),
        (["--epochs", "0"], "--epochs must be >= 1, got 0"),
    ],
)
def test_bad_pretrain_flags_fail_in_one_line(capsys, argv, message, tmp_path):
    assert pretrain.main([*argv, "--output-dir", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err

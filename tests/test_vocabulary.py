import numpy as np
import pytest
import tensorflow as tf
from tfbert.preprocessor import TextPreprocessor
from tfbert.vocabulary import grown_backbone, unknown_characters


def _many_characters(count):
    """Texts using `count` distinct CJK characters, character i appearing count - i times, plus Latin words."""
    chars = [chr(0x4E00 + 7 * i) for i in range(count)]  # spread over the block: common and rare ones alike
    stream = "".join(c * (count - i) for i, c in enumerate(chars))
    texts = [stream[i:i + 40] + " thinkpad battery!" for i in range(0, len(stream), 40)]
    return chars, texts


def test_learned_vocabulary_keeps_every_character():
    from tfbert.vocabulary import RESERVED_TOKENS, learn_vocabulary

    # keras-hub's compute_word_piece_vocabulary keeps only the 1000 most frequent characters.
    chars, texts = _many_characters(1200)
    vocab = learn_vocabulary(texts, vocabulary_size=8000)
    assert vocab[:len(RESERVED_TOKENS)] == RESERVED_TOKENS and len(set(vocab)) == len(vocab) <= 8000
    assert set(chars) <= set(vocab)
    # BERT splits every CJK character and punctuation mark off, so "##好" or "##!" could never be produced.
    assert not [t for t in vocab if t.startswith("##") and len(t) == 3 and (0x4E00 <= ord(t[2]) <= 0x9FFF or t[2] == "!")]
    assert "thinkpad" in vocab and "battery" in vocab  # frequent Latin words are still learned whole
    assert _unknown_count(vocab, texts) == 0


def _unknown_count(vocab, texts):
    import keras_hub

    tokenizer = keras_hub.models.BertTokenizer(vocabulary=vocab, lowercase=True)
    ids = tokenizer(tf.constant(texts))
    ids = np.concatenate([np.asarray(row) for row in (ids.to_list() if hasattr(ids, "to_list") else ids)])
    return int((ids == tokenizer.token_to_id("[UNK]")).sum())


def test_learned_vocabulary_drops_the_rarest_characters_at_its_bound():
    from tfbert.vocabulary import RESERVED_TOKENS, learn_vocabulary

    chars, texts = _many_characters(300)
    vocab = learn_vocabulary(texts, vocabulary_size=120)
    assert len(vocab) == 120 and vocab[:len(RESERVED_TOKENS)] == RESERVED_TOKENS
    kept = [c for c in chars if c in vocab]
    assert kept == chars[:len(kept)] and len(kept) >= 60  # the most frequent ones
    # Sub-words went first: the Latin words are spelled letter by letter, never [UNK].
    assert "thinkpad" not in vocab and "##a" in vocab
    assert _unknown_count(vocab, [" thinkpad battery!"]) == 0


def test_unknown_characters_golden(tiny_tokenizer):
    from tfbert.preprocessor import TextPreprocessor

    pre = TextPreprocessor.from_tokenizer(tiny_tokenizer, 16)
    # 酷 x3, 赞 x2, 夯 x1 are not in the vocabulary; 好 and "great" are; "Ａ" normalizes to "a" (known).
    texts = ["酷酷好", "赞 酷 great", "赞夯", "Ａ"]
    assert unknown_characters(pre, texts, min_count=2) == ["酷", "赞"]
    assert unknown_characters(pre, texts, min_count=1) == ["酷", "赞", "夯"]
    assert unknown_characters(pre, ["好很"], min_count=1) == []


def test_grown_backbone_keeps_every_trained_weight():
    import keras_hub

    backbone = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=1, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=12)
    grown = grown_backbone(backbone, 5)
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
    assert grown_backbone(backbone, 0) is backbone

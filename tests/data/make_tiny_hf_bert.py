"""Regenerate tests/data/tiny_hf_bert (needs torch and transformers; the tests themselves need neither).

    python tests/data/make_tiny_hf_bert.py

A 2-layer, 16-wide BERT with random weights, saved the way transformers < 4.35
saved checkpoints (pytorch_model.bin, the vocabulary only in tokenizer.json),
and Hugging Face's own outputs on two fixed inputs (expected.json) for the
parity test in tests/test_checkpoints.py.
"""

import json
import os

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import BertConfig, BertModel

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tiny_hf_bert")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"好差很不是的了我们这个酒店服务房间"]
VOCAB += [*"abcdefghij", "##s", "，", "。"]

torch.manual_seed(0)
config = BertConfig(
    vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
    max_position_embeddings=16, type_vocab_size=2,
)
model = BertModel(config).eval()
os.makedirs(OUT, exist_ok=True)
model.save_pretrained(OUT, safe_serialization=False)  # pytorch_model.bin + config.json

tokenizer = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
tokenizer.save(os.path.join(OUT, "tokenizer.json"))

token_ids = [[2, 5, 7, 6, 3, 0], [2, 9, 10, 3, 11, 3]]
segment_ids = [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1]]
padding_mask = [[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1]]
with torch.no_grad():
    hidden = model(
        input_ids=torch.tensor(token_ids), token_type_ids=torch.tensor(segment_ids),
        attention_mask=torch.tensor(padding_mask),
    ).last_hidden_state
with open(os.path.join(OUT, "expected.json"), "w") as f:
    json.dump({"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": padding_mask,
               "sequence_output": hidden.numpy().round(6).tolist()}, f)

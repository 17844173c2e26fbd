from hypothesis import given, settings, strategies as st

from tfbert import corpus, data as data_lib


def test_strip_pos_tags_golden():
    line = "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  一九九八年/t  新年/t  讲话/n  （/w  附/v  图片/n  １/m  张/q  ）/w"
    assert corpus.strip_pos_tags(line) == "迈向充满希望的新世纪——一九九八年新年讲话（附图片１张）"
    # PKU compound brackets: "[word/tag ...]tag"
    assert corpus.strip_pos_tags("[中央/n  人民/n  广播/vn  电台/n]nt  播音/vn") == "中央人民广播电台播音"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="好的。！？；ab c", max_size=80), st.integers(1, 20))
def test_chunks_cover_the_paragraph_and_respect_the_limit(paragraph, max_chars):
    chunks = corpus.chunk_sentences(paragraph, max_chars)
    assert "".join(chunks) == paragraph
    assert all(0 < len(chunk) <= max_chars for chunk in chunks)


def test_chunks_break_at_sentence_ends():
    assert corpus.chunk_sentences("今天很好。明天也好！后天呢？", 6) == ["今天很好。", "明天也好！", "后天呢？"]
    assert corpus.chunk_sentences("今天很好。明天也好！", 20) == ["今天很好。明天也好！"]


def test_default_corpus_never_contains_a_validation_review():
    texts = set(corpus.default_corpus(126))
    train_set, validation = data_lib.split(data_lib.deduplicate(data_lib.load_default_corpus()))
    assert not texts & set(validation.texts)
    assert set(train_set.texts) <= texts
    assert len(texts) > len(train_set) + 20_000  # the People's Daily chunks are in too


def test_peoples_daily_is_untagged_and_fits():
    import re

    texts = corpus.peoples_daily_texts(126)
    assert len(texts) > 20_000 and all(0 < len(t) <= 126 for t in texts)
    tagged = [t for t in texts if re.search(r"/[A-Za-z]|\][a-z]|\s", t)]
    assert not tagged, tagged[:3]

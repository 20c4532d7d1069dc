"""SentencePiece training (Python side) and `TextTokenizer` (TensorFlow side)."""

import os
import random
import warnings

import numpy as np
import pytest
import sentencepiece as spm

from tt_cli.data.tokenizer import EOS_ID, PAD_ID, VocabSizeCapped, train_sentencepiece
from tt_cli.errors import TtError

WORDS = "a photo of the cat dog bird sky grass red blue green small big running sitting on in".split()


def _captions(n=400, seed=0):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tok") / "tokenizer.model")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 40 fits this corpus: no cap warning
        assert train_sentencepiece(_captions(), path, 40) == 40
    return path


def test_special_ids_and_deterministic(model_path, tmp_path):
    sp = spm.SentencePieceProcessor(model_file=model_path)
    assert sp.vocab_size() == 40
    assert [sp.id_to_piece(i) for i in range(3)] == ["<pad>", "<unk>", "</s>"]
    assert sp.bos_id() == -1
    again = str(tmp_path / "again.model")
    train_sentencepiece(iter(_captions()), again, 40)  # any iterable, e.g. a generator
    assert open(again, "rb").read() == open(model_path, "rb").read()
    assert os.listdir(tmp_path) == ["again.model"]  # no temporary files left behind


def test_vocab_cap_warns_and_fits(tmp_path):
    path = str(tmp_path / "small.model")
    with pytest.warns(VocabSizeCapped, match="capped at"):
        size = train_sentencepiece(["a cat", "a dog", "a bird"] * 10, path, 5000)
    assert 3 < size < 5000
    assert spm.SentencePieceProcessor(model_file=path).vocab_size() == size
    messages = []
    train_sentencepiece(["a cat", "a dog"] * 10, str(tmp_path / "b.model"), 5000, on_warning=messages.append)
    assert len(messages) == 1 and "capped" in messages[0]


def test_too_small_vocab_and_empty_corpus_are_user_errors(tmp_path):
    with pytest.raises(TtError, match="larger vocabulary size"):
        train_sentencepiece(_captions(), str(tmp_path / "x.model"), 5)
    with pytest.raises(TtError, match="no captions"):
        train_sentencepiece(["", "  "], str(tmp_path / "y.model"), 50)


def _expected(sp, text, max_len):
    """Independent reference: Python SentencePiece, truncate, EOS, pad."""
    ids = sp.encode(text)[: max_len - 1] + [EOS_ID]
    return ids + [PAD_ID] * (max_len - len(ids))


def test_text_tokenizer_eos_padding_truncation(model_path):
    import tensorflow as tf

    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.data.tokenizer_interface import Tokenizer

    max_len = 8
    tok = TextTokenizer(model_path, max_len)
    assert isinstance(tok, tf.Module)
    assert tok.vocab_size == 40
    assert tok.model_bytes == open(model_path, "rb").read()
    sp = spm.SentencePieceProcessor(model_file=model_path)
    texts = ["a cat", "The BIG red dog is running on the green grass in the sky", ""]
    out = tok.tokenize(tf.constant(texts)).numpy()
    assert out.dtype == np.int32 and out.shape == (3, max_len)
    assert out.tolist() == [_expected(sp, t, max_len) for t in texts]
    assert out[1, -1] == EOS_ID  # truncated to max_len-1 pieces, EOS still present
    assert out[2].tolist() == [EOS_ID] + [PAD_ID] * (max_len - 1)
    # Case folding: upper case tokenizes as lower case.
    assert tok.tokenize(tf.constant("A CAT")).numpy().tolist() == out[0].tolist()
    # Built from bytes, and its copy for another input pipeline: the same ids.
    assert isinstance(tok, Tokenizer) and tok.max_len == max_len
    for same in (TextTokenizer(tok.model_bytes, max_len), tok.copy()):
        np.testing.assert_array_equal(same.tokenize(tf.constant(texts)).numpy(), out)


def test_text_tokenizer_in_tf_data_and_saved_model(model_path, tmp_path):
    import tensorflow as tf

    from tt_cli.data.text_tokenizer import TextTokenizer

    tok = TextTokenizer(model_path, 6)
    texts = _captions(10, seed=1)
    direct = tok.tokenize(tf.constant(texts)).numpy()
    per_row = tf.data.Dataset.from_tensor_slices(texts).map(tok.tokenize).batch(10)
    np.testing.assert_array_equal(next(iter(per_row)).numpy(), direct)
    batched = tf.data.Dataset.from_tensor_slices(texts).batch(10).map(tok.tokenize)
    np.testing.assert_array_equal(next(iter(batched)).numpy(), direct)

    # A SavedModel tracks the tokenizer resource: it works without the .model file.
    module = tf.Module()
    module.tok = tok
    module.tokenize = tf.function(tok.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    np.testing.assert_array_equal(loaded.tokenize(tf.constant(texts)).numpy(), direct)

"""A small KerasHub CLIP preset with random weights and a byte-pair tokenizer trained on the
captions it will see: a stand-in for `clip_vit_base_patch16` where nothing can be
downloaded (the forgetting benchmark starts from one; the tests make tiny ones).

The tokenizer is CLIP's kind, byte-level BPE with `</w>` word ends, trained here with the
`tokenizers` library that KerasHub's `CLIPTokenizer` itself runs on; the end-of-text token
is the largest id, which CLIP's text pooling relies on. Images are normalised with CLIP's
mean and standard deviation and resized as CLIP's presets do (bicubic, centre crop).

Example:
>>> import tempfile
>>> from tt_cli.demo.shapes import shape_rows
>>> texts = [t for row in shape_rows(50, seed=0, image_size=8) for t in row["texts"]]
>>> vocabulary, merges = bpe_vocabulary(texts, merges_wanted=20)
>>> max(vocabulary, key=vocabulary.get), len(merges) <= 20
('<|endoftext|>', True)
>>> preset = write_clip_preset(tempfile.mkdtemp(), texts, image_size=16, patch_size=8, width=8, depth=1,
...                            heads=2, projection_dim=8, max_len=8)
"""

import json

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def bpe_vocabulary(texts, merges_wanted=120):
    """(vocabulary, merges) of a byte-level BPE with CLIP's `</w>` word ends, trained on `texts`:
    every byte alone and at a word's end, the merged pieces, then the start and end tokens."""
    import tokenizers
    from tokenizers import models, normalizers, pre_tokenizers, trainers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    bpe = tokenizers.Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=2 * len(alphabet) + merges_wanted,
        end_of_word_suffix="</w>",
        initial_alphabet=alphabet,
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer)
    merges = [" ".join(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]][:merges_wanted]
    tokens = alphabet + [a + "</w>" for a in alphabet]
    tokens += list(dict.fromkeys(m.replace(" ", "") for m in merges if m.replace(" ", "") not in tokens))
    tokens += ["<|startoftext|>", "<|endoftext|>"]  # end of text last: CLIP pools at the largest id
    return {token: i for i, token in enumerate(tokens)}, merges


def write_clip_preset(
    directory, texts, image_size=32, patch_size=8, width=16, depth=1, heads=2, projection_dim=12, max_len=16, seed=0
):
    """Writes a randomly initialised `CLIPBackbone` (both encoders `width` wide and `depth`
    deep) with its `CLIPPreprocessor` to `directory`; returns it."""
    import keras
    import keras_hub
    import numpy as np

    keras.utils.set_random_seed(seed)
    vocabulary, merges = bpe_vocabulary(texts)
    encoder = dict(hidden_dim=width, num_layers=depth, num_heads=heads, intermediate_dim=2 * width)
    vision = keras_hub.models.CLIPVisionEncoder(
        patch_size=patch_size, image_shape=(image_size, image_size, 3), **encoder
    )
    # Converted checkpoints number the patch positions 0..N; a new encoder holds zeros.
    ids = vision.embedding.position_ids
    ids.assign(np.arange(ids.shape[1])[None].astype(ids.dtype))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary), embedding_dim=width, max_sequence_length=max_len, **encoder
    )
    keras_hub.models.CLIPBackbone(vision, text, projection_dim=projection_dim).save_to_preset(directory)
    converter = keras_hub.layers.CLIPImageConverter(
        image_size=(image_size, image_size),
        scale=[1 / (255 * s) for s in CLIP_STD],
        offset=[-m / s for m, s in zip(CLIP_MEAN, CLIP_STD)],
        interpolation="bicubic",
    )
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=merges)
    keras_hub.models.CLIPPreprocessor(tokenizer, converter, sequence_length=max_len).save_to_preset(directory)
    return str(directory)

"""Tiny KerasHub CLIP, SigLIP and MetaCLIP 2 presets with random weights and their own
tokenizers, made with `save_to_preset` (nothing is downloaded): stand-ins for
`clip_vit_base_patch16`, `siglip2_base_patch16_224`, ... at a size a test can train.

The tokenizers are real ones, trained here on the demo's captions: a byte-level BPE
vocabulary and merges for CLIP (its end-of-text token the largest id, as CLIP's text
pooling needs), a SentencePiece model with T5's special ids for SigLIP, and one with
fairseq's for MetaCLIP 2. The image converters normalise as the real presets do (CLIP's
mean and standard deviation; SigLIP's [-1, 1]), with bicubic resizing and centre crops.
"""

import io
import json

from tt_cli.demo.shapes import shape_rows

IMAGE_SIZE, PATCH, WIDTH, MAX_LEN, PROJECTION = 32, 8, 16, 16, 12
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
ENCODER = dict(hidden_dim=WIDTH, num_layers=1, num_heads=2, intermediate_dim=32)


def captions():
    return [text for row in shape_rows(200, seed=0, image_size=8) for text in row["texts"]]


def clip_vocabulary(texts, merges_wanted=120):
    """(vocabulary, merges) of a byte-level BPE with CLIP's `</w>` word ends, trained on `texts`."""
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
    merges = [" ".join(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]
    tokens = alphabet + [a + "</w>" for a in alphabet]
    tokens += list(dict.fromkeys("".join(m.split(" ")) for m in merges if "".join(m.split(" ")) not in tokens))
    tokens += ["<|startoftext|>", "<|endoftext|>"]  # end of text last: CLIP pools at the largest id
    return {token: i for i, token in enumerate(tokens)}, merges


def sentencepiece_proto(texts, **ids):
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=40, model_type="unigram", minloglevel=2, **ids
    )
    return model.getvalue()


def _vision_kwargs():
    return dict(patch_size=PATCH, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), **ENCODER)


def _with_positions(encoder):
    """A randomly initialised CLIP-like vision encoder numbers every position 0 (converted
    checkpoints store 0..N-1): number them, as a real preset does."""
    import numpy as np

    ids = encoder.embedding.position_ids
    ids.assign(np.arange(ids.shape[1])[None].astype(ids.dtype))
    return encoder


def make_tiny_clip_preset(directory):
    import keras_hub

    vocabulary, merges = clip_vocabulary(captions())
    tokenizer = keras_hub.models.CLIPTokenizer(vocabulary=vocabulary, merges=merges)
    converter = keras_hub.layers.CLIPImageConverter(
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        scale=[1 / (255 * s) for s in CLIP_STD],
        offset=[-m / s for m, s in zip(CLIP_MEAN, CLIP_STD)],
        interpolation="bicubic",
    )
    vision = _with_positions(keras_hub.models.CLIPVisionEncoder(**_vision_kwargs()))
    text = keras_hub.models.CLIPTextEncoder(
        vocabulary_size=len(vocabulary), embedding_dim=WIDTH, max_sequence_length=MAX_LEN, **ENCODER
    )
    backbone = keras_hub.models.CLIPBackbone(vision, text, projection_dim=PROJECTION)
    backbone.save_to_preset(directory)
    keras_hub.models.CLIPPreprocessor(tokenizer, converter, sequence_length=MAX_LEN).save_to_preset(directory)
    return str(directory)


def make_tiny_siglip_preset(directory):
    import keras_hub

    proto = sentencepiece_proto(captions(), pad_id=0, eos_id=1, unk_id=2, bos_id=-1)  # T5's ids, as SigLIP's
    tokenizer = keras_hub.models.SigLIPTokenizer(proto=proto)
    converter = keras_hub.layers.SigLIPImageConverter(
        image_size=(IMAGE_SIZE, IMAGE_SIZE), scale=1 / 127.5, offset=-1.0, interpolation="bicubic"
    )
    vision = keras_hub.models.SigLIPVisionEncoder(**_vision_kwargs())
    text = keras_hub.models.SigLIPTextEncoder(
        vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=WIDTH, max_sequence_length=MAX_LEN, **ENCODER
    )
    backbone = keras_hub.models.SigLIPBackbone(vision, text)
    # A trained SigLIP's logit layer, not the initial t = 1, b = 0 (t is 112 in siglip_base).
    backbone.siglip_head.logit_scale.assign(2.3)
    backbone.siglip_head.logit_bias.assign(-4.0)
    backbone.save_to_preset(directory)
    keras_hub.models.SigLIPPreprocessor(tokenizer, converter, sequence_length=MAX_LEN).save_to_preset(directory)
    return str(directory)


def make_tiny_metaclip_2_preset(directory):
    import keras_hub

    proto = sentencepiece_proto(captions())  # SentencePiece's own ids, which MetaCLIP 2 shifts as fairseq does
    tokenizer = keras_hub.models.MetaCLIP2Tokenizer(proto=proto)
    converter = keras_hub.layers.MetaCLIP2ImageConverter(
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        scale=[1 / (255 * s) for s in CLIP_STD],
        offset=[-m / s for m, s in zip(CLIP_MEAN, CLIP_STD)],
        interpolation="bicubic",
    )
    vision = keras_hub.models.MetaCLIP2VisionEncoder(**_vision_kwargs())  # numbers its positions itself
    text = keras_hub.models.MetaCLIP2TextEncoder(
        vocabulary_size=tokenizer.vocabulary_size(), embedding_dim=WIDTH, max_sequence_length=MAX_LEN, **ENCODER
    )
    backbone = keras_hub.models.MetaCLIP2Backbone(vision, text, projection_dim=PROJECTION)
    backbone.save_to_preset(directory)
    keras_hub.models.MetaCLIP2CausalLMPreprocessor(tokenizer, converter, sequence_length=MAX_LEN).save_to_preset(
        directory
    )
    return str(directory)

"""Tiny KerasHub CLIP, SigLIP and MetaCLIP 2 presets with random weights and their own
tokenizers, made with `save_to_preset` (nothing is downloaded): stand-ins for
`clip_vit_base_patch16`, `siglip2_base_patch16_224`, ... at a size a test can train.

The tokenizers are real ones, trained here on the demo's captions: a byte-level BPE
vocabulary and merges for CLIP (`tt_cli.demo.clip_preset`, which the forgetting benchmark
also starts from), a SentencePiece model with T5's special ids for SigLIP, and one with
fairseq's for MetaCLIP 2. The image converters normalise as the real presets do (CLIP's
mean and standard deviation; SigLIP's [-1, 1]), with bicubic resizing and centre crops.
"""

import io

from tt_cli.demo.clip_preset import CLIP_MEAN, CLIP_STD, write_clip_preset
from tt_cli.demo.shapes import shape_rows

IMAGE_SIZE, PATCH, WIDTH, MAX_LEN, PROJECTION = 32, 8, 16, 16, 12
ENCODER = dict(hidden_dim=WIDTH, num_layers=1, num_heads=2, intermediate_dim=32)


def captions():
    return [text for row in shape_rows(200, seed=0, image_size=8) for text in row["texts"]]


def sentencepiece_proto(texts, **ids):
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=40, model_type="unigram", minloglevel=2, **ids
    )
    return model.getvalue()


def _vision_kwargs():
    return dict(patch_size=PATCH, image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), **ENCODER)


def make_tiny_clip_preset(directory):
    return write_clip_preset(
        directory, captions(), image_size=IMAGE_SIZE, patch_size=PATCH, width=WIDTH, projection_dim=PROJECTION
    )


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
    # A trained SigLIP's kind of logit layer (a scale above 1, a negative bias), not the initial t = 1, b = 0.
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


def make_tiny_sentence_encoder_preset(directory):
    """A tiny BERT sentence encoder (a `BertTextEmbedder`, mean pooling, as `all_minilm_l6_v2_en`)
    with a WordPiece vocabulary of the demo's words: a text third tower."""
    import keras_hub

    words = sorted({w.strip(",.") for text in captions() for w in text.lower().split()} - {""})
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words])
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16
    )
    preprocessor = keras_hub.models.BertTextEmbedderPreprocessor(tokenizer, sequence_length=128)
    keras_hub.models.BertTextEmbedder(backbone, preprocessor).save_to_preset(directory)
    return str(directory)

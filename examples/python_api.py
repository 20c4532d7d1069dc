"""tt as a library: build and train a Three Towers model from Python with `model.fit`.

The same model `tt train` trains, without the CLI:

  1. write your rows (image bytes, captions, label) as TFRecord shards of tt's schema;
  2. train a SentencePiece tokenizer on the captions (`tt_cli.data.tokenizer`);
  3. get a third tower h: `models.PretrainedTower.from_preset(PRESET)` for a real
     pretrained model, or (offline, as here by default) wrap the backbone of a small
     KerasHub ViT classifier trained for a few steps on the labels;
  4. `models.ThreeTowers.from_scale(...)`, `compile`, and `fit` on the `tf.data`
     pipeline of `tt_cli.data.pipeline.train_dataset`;
  5. zero-shot accuracy and retrieval R@1 on held-out rows with `encode_image` /
     `encode_text`, computed in NumPy; save the model as a `.keras` file.

Run it:
    python examples/python_api.py --size smallest                  # ~30 s: checks that it works
    python examples/python_api.py --size small                     # ~1 minute: numbers worth reading
    python examples/python_api.py --pretrained path/to/keras_hub_preset --mode lit
"""

import argparse
import io
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before Keras is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SIZES = {
    "smallest": dict(num_train=96, num_val=36, h_steps=4, steps=6, batch_size=16),
    "small": dict(num_train=2000, num_val=200, h_steps=300, steps=400, batch_size=64),
}
IMAGE_SIZE = 32  # the "tiny" scale's input size
MAX_TEXT_LEN = 16
TEMPLATES = ("a {}", "{}", "a picture of a {}")  # zero-shot prompts in the captions' wording


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="smallest", help="How much data and training.")
    parser.add_argument("--workdir", default="runs/python_api", help="Where shards, tokenizer and model go.")
    parser.add_argument("--mode", choices=("3t", "lit", "clip"), default="3t")
    parser.add_argument(
        "--pretrained",
        help="A KerasHub preset (name or directory) for the third tower [default: train a small one here].",
    )
    return parser.parse_args()


def labelled_images(files, batch_size):
    """(uint8 images, labels) batches read straight from tt shards with tf.data."""
    import tensorflow as tf

    from tt_cli.data import schema
    from tt_cli.data.pipeline import decode_image
    from tt_cli.data.tf_schema import parse_example

    def parse(serialized):
        example = parse_example(serialized, (schema.IMAGE, schema.LABEL))
        return decode_image(example[schema.IMAGE], (IMAGE_SIZE, IMAGE_SIZE)), example[schema.LABEL]

    return tf.data.TFRecordDataset(files).map(parse).shuffle(1000, seed=0).repeat().batch(batch_size)


def small_third_tower(files, num_classes, steps, batch_size):
    """A stand-in for a pretrained model: a tiny KerasHub ViT classifier fit on the labels.

    Any KerasHub backbone works as h; `PretrainedTower` freezes it and pools its output.
    """
    import keras
    import keras_hub

    from models import PretrainedTower

    backbone = keras_hub.models.ViTBackbone(
        image_shape=(IMAGE_SIZE, IMAGE_SIZE, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128
    )
    converter = keras_hub.layers.ViTImageConverter(image_size=(IMAGE_SIZE, IMAGE_SIZE), scale=1 / 127.5, offset=-1.0)
    classifier = keras_hub.models.ViTImageClassifier(
        backbone=backbone,
        num_classes=num_classes,
        preprocessor=keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter),
    )
    classifier.compile(
        optimizer=keras.optimizers.AdamW(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    print(f"fitting a tiny ViT classifier ({num_classes} classes, {steps} steps) to serve as the third tower")
    classifier.fit(labelled_images(files, batch_size), steps_per_epoch=steps, epochs=1, verbose=2, shuffle=False)
    return PretrainedTower(backbone, converter, name="pretrained_tower")


def evaluate(model, tokenizer, val_rows, class_names):
    """Zero-shot top-1 and retrieval R@1 (both ways) on in-memory rows, in NumPy."""
    import numpy as np
    import tensorflow as tf

    from tt_cli.data.pipeline import decode_image

    images = tf.stack([decode_image(row["image"], model.image_size) for row in val_rows])
    image_emb = model.encode_image(images).numpy()  # [N, d], unit norm
    labels = np.array([row["label"] for row in val_rows])

    # Zero-shot: average the normalised prompt embeddings of each class, re-normalise.
    prompts = [t.format(name) for name in class_names for t in TEMPLATES]
    prompt_emb = model.encode_text(tokenizer.tokenize(prompts)).numpy().reshape(len(class_names), len(TEMPLATES), -1)
    class_emb = prompt_emb.mean(axis=1)
    class_emb /= np.linalg.norm(class_emb, axis=-1, keepdims=True)
    top1 = float(np.mean((image_emb @ class_emb.T).argmax(axis=1) == labels))

    # Retrieval: every caption of every image; a hit when the best match is a correct partner.
    captions = [text for row in val_rows for text in row["texts"]]
    owner = np.array([i for i, row in enumerate(val_rows) for _ in row["texts"]])
    similarity = image_emb @ model.encode_text(tokenizer.tokenize(captions)).numpy().T  # [N images, M captions]
    image_to_text = float(np.mean(owner[similarity.argmax(axis=1)] == np.arange(len(val_rows))))
    text_to_image = float(np.mean(similarity.argmax(axis=0) == owner))
    return {
        "zero_shot_top1": top1,
        "image_to_text_R@1": image_to_text,
        "text_to_image_R@1": text_to_image,
        "chance_top1": 1 / len(class_names),
    }


def main():
    args = parse_args()
    size = SIZES[args.size]
    os.makedirs(args.workdir, exist_ok=True)

    import keras
    import numpy as np
    from PIL import Image

    from models import PretrainedTower, ThreeTowers, get_scale
    from tt_cli.data import schema
    from tt_cli.data.pipeline import read_captions, train_dataset
    from tt_cli.data.text_tokenizer import TextTokenizer
    from tt_cli.data.tf_shards import write_shards
    from tt_cli.data.third_towers import ThirdTower
    from tt_cli.data.tokenizer import train_sentencepiece
    from tt_cli.demo.shapes import CLASS_NAMES, shape_rows

    keras.utils.set_random_seed(0)

    # 1. Rows are dicts {"image": encoded JPEG/PNG bytes, "texts": [captions], "label": int, "key": str};
    #    here synthetic coloured shapes, in your code whatever you have.
    train_dir = os.path.join(args.workdir, "train_shards")
    write_shards(
        train_dir,
        shape_rows(size["num_train"], seed=1, image_size=IMAGE_SIZE),
        num_shards=2,
        source="python_api example",
        class_names=CLASS_NAMES,
    )
    files, _ = schema.resolve_shards(train_dir)
    val_rows = list(shape_rows(size["num_val"], seed=2, image_size=IMAGE_SIZE))

    # 2. The tokenizer: SentencePiece trained on the captions, run inside tf.data (0 = pad, ends with EOS).
    tokenizer_path = os.path.join(args.workdir, "tokenizer.model")
    vocab_size = train_sentencepiece(read_captions(files), tokenizer_path, vocab_size=40, on_warning=print)
    tokenizer = TextTokenizer(tokenizer_path, max_len=MAX_TEXT_LEN)

    # 3. The frozen third tower h (not used by CLIP).
    tower = None
    if args.mode != "clip":
        tower = (
            PretrainedTower.from_preset(args.pretrained)
            if args.pretrained
            else small_third_tower(files, len(CLASS_NAMES), size["h_steps"], size["batch_size"])
        )

    # 4. The model and the input pipeline. In 3T mode f and g train from scratch and are also
    #    aligned with h through four linear heads; LiT trains only g against the locked h.
    model = ThreeTowers.from_scale(
        get_scale("tiny"), mode=args.mode, vocab_size=vocab_size, max_len=MAX_TEXT_LEN, pretrained_tower=tower
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.1, global_clipnorm=1.0))
    dataset = train_dataset(
        files,
        batch_size=size["batch_size"],
        image_size=(IMAGE_SIZE, IMAGE_SIZE),
        tokenizer=tokenizer,
        third_towers=[ThirdTower.online(tower)] if tower else (),
    )
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    print(
        f"training {args.mode} for {size['steps']} steps ({trainable:,} trainable parameters"
        + ("; h stays frozen)" if tower else ")")
    )
    history = model.fit(dataset, steps_per_epoch=size["steps"], epochs=1, verbose=2, shuffle=False)
    print(f"final loss {history.history['loss'][-1]:.3f}")

    # 5. Use the embeddings, then save the whole model (`keras.saving.load_model` reads it after `import models`).
    metrics = evaluate(model, tokenizer, val_rows, CLASS_NAMES)
    print("held-out: " + ", ".join(f"{k} {v:.1%}" for k, v in metrics.items()))
    path = os.path.join(args.workdir, f"model_{args.mode}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # tt's classes are registered by `import models`
    probe = np.stack([np.asarray(Image.open(io.BytesIO(row["image"])).convert("RGB")) for row in val_rows[:4]])
    same = np.allclose(reloaded.encode_image(probe), model.encode_image(probe), atol=1e-5)
    print(f"saved {path} (tokenizer: {tokenizer_path}); reloaded, same image embeddings: {same}")


if __name__ == "__main__":
    sys.exit(main())

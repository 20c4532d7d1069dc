"""`ThreeTowers`: the 3T model and its two baselines, CLIP and LiT.

| mode   | loss                                               | image embedding |
| ------ | -------------------------------------------------- | --------------- |
| `clip` | L(f, g)                                            | f               |
| `lit`  | L(h, g); h locked                                  | h               |
| `3t`   | (L(f, g) + w L(f_h, h_f) + w L(g_h, h_g)) / (1+2w) | f               |

L is CLIP's softmax loss (`loss="softmax"`, the paper's) or SigLIP's sigmoid loss
(`loss="sigmoid"`, with a learned bias per pair), for every pair alike.

Batches are dicts: `image` (pixels in [0, 255] at the image tower's size), `tokens`
(int32, 0 = padding, EOS-terminated), and for `lit`/`3t` either `h_image` (pixels at
the pretrained tower's size) or `h_embedding` (precomputed pooled features of h; when
present, h is not run).

Example:
>>> import numpy as np
>>> from models import ThreeTowers, get_scale
>>> model = ThreeTowers.from_scale(get_scale("tiny"), mode="clip", vocab_size=100, max_len=8)
>>> model.compile(optimizer="adam")
>>> batch = {"image": np.zeros((4, 32, 32, 3), "uint8"),
...          "tokens": np.tile(np.array([[5, 6, 2, 0, 0, 0, 0, 0]], "int32"), (4, 1))}
>>> sorted(model.train_on_batch(batch, return_dict=True))[:2]
['accuracy', 'loss']
"""

import math

import keras
import tensorflow as tf

from models.contrastive_loss import contrastive_loss, temperature
from models.gradient_cache import cached_gradients
from models.heads import ProjectionHead
from models.image_tower import ImageTower
from models.normalize import l2_normalize
from models.sigmoid_loss import sigmoid_loss
from models.text_tower import TextTower

MODES = ("clip", "lit", "3t")
LOSSES = ("softmax", "sigmoid")
INITIAL_LOG_TEMPERATURE = math.log(10.0)
INITIAL_SIGMOID_BIAS = -10.0  # SigLIP's: every pair starts as a likely negative

# The contrastive pairs each mode trains, by the name of their loss/temperature.
PAIRS = {"clip": ("image_text",), "lit": ("image_text",), "3t": ("image_text", "image_pretrained", "text_pretrained")}


@keras.saving.register_keras_serializable(package="tt")
class ThreeTowers(keras.Model):
    """The contrastive image-text model of one mode (`clip`, `lit` or `3t`), with its
    own `train_step` (the global-batch loss of every pair) and learned temperatures.

    Args:
      text_tower: the `TextTower` g.
      image_tower: the `ImageTower` f (not used, and may be None, in `lit` mode).
      pretrained_tower: the frozen `PretrainedTower` h (not used in `clip` mode).
      mode: one of `MODES`.
      aux_weight: w, the weight of each of 3T's two pairs with h.
      lit_head: in `lit` mode, put a trainable linear head on h (else h is used as is,
        and the text tower must project to h's width).
      loss: `softmax` (CLIP's InfoNCE) or `sigmoid` (SigLIP's; each pair then also
        learns a bias, `biases[pair]`), for every pair of the mode.
      **kwargs: standard `keras.Model` arguments (`name`).

    Example:
    >>> from models import TextTower, ImageTower, get_scale
    >>> scale = get_scale("tiny")
    >>> model = ThreeTowers(TextTower.from_scale(scale, 100, 8), ImageTower.from_scale(scale), mode="clip")
    >>> model.image_size
    (32, 32)
    """

    def __init__(
        self,
        text_tower,
        image_tower=None,
        pretrained_tower=None,
        mode="3t",
        aux_weight=1.0,
        lit_head=False,
        loss="softmax",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")
        if mode != "lit" and image_tower is None:
            raise ValueError(f"mode {mode!r} needs an image tower")
        if mode != "clip" and pretrained_tower is None:
            raise ValueError(f"mode {mode!r} needs a pretrained tower")
        self.mode, self.aux_weight, self.lit_head = mode, float(aux_weight), bool(lit_head)
        self.loss_name = loss  # not `self.loss`: `compile` sets that
        self.text_tower = text_tower
        self.image_tower = image_tower if mode != "lit" else None
        self.pretrained_tower = pretrained_tower if mode != "clip" else None
        embed_dim = text_tower.embed_dim
        if mode == "lit":
            h_dim = pretrained_tower.output_dim
            if not lit_head and embed_dim != h_dim:
                raise ValueError(f"LiT without a head needs the text tower to project to h's width {h_dim}")
            # The locked image side: h, optionally followed by one trainable linear head.
            self.lit_image_head = ProjectionHead(embed_dim, h_dim, name="lit_image_head") if lit_head else None
        if mode == "3t":
            h_dim = pretrained_tower.output_dim
            self.image_head = ProjectionHead(embed_dim, image_tower.embed_dim, name="f_h")
            self.pretrained_image_head = ProjectionHead(embed_dim, h_dim, name="h_f")
            self.text_head = ProjectionHead(embed_dim, embed_dim, name="g_h")
            self.pretrained_text_head = ProjectionHead(embed_dim, h_dim, name="h_g")
        self.log_temperatures = {
            pair: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(INITIAL_LOG_TEMPERATURE),
                dtype="float32",
                name=f"log_t_{pair}",
            )
            for pair in PAIRS[mode]
        }
        # The sigmoid loss's learned bias β of each pair (not log-parametrised: it is negative).
        self.biases = {
            pair: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(INITIAL_SIGMOID_BIAS),
                dtype="float32",
                name=f"bias_{pair}",
            )
            for pair in (PAIRS[mode] if loss == "sigmoid" else ())
        }
        self.loss_trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ["loss", "accuracy"]
            + [f"loss_{p}" for p in PAIRS[mode]]
            + [f"t_{p}" for p in PAIRS[mode]]
            + [f"bias_{p}" for p in self.biases]
        }
        self.built = True

    @classmethod
    def from_scale(cls, scale, mode="3t", vocab_size=32000, max_len=16, pretrained_tower=None,
                   pooling="token", aux_weight=1.0, lit_head=False, loss="softmax", dtype=None):
        """Builds the towers from a `Scale`. In `lit` mode without a head the text tower
        projects to h's width so that it can be compared with h directly."""
        embed_dim = scale.embed_dim
        if mode == "lit" and not lit_head:
            embed_dim = pretrained_tower.output_dim
        image_tower = None if mode == "lit" else ImageTower.from_scale(scale, pooling, dtype=dtype)
        text_tower = TextTower.from_scale(scale, vocab_size, max_len, embed_dim=embed_dim, dtype=dtype)
        return cls(text_tower, image_tower, pretrained_tower, mode=mode, aux_weight=aux_weight,
                   lit_head=lit_head, loss=loss, name=f"three_towers_{mode}")

    # -- Embeddings for downstream use ------------------------------------------

    @property
    def image_size(self):
        """(H, W) of the images `encode_image` takes."""
        tower = self.pretrained_tower if self.mode == "lit" else self.image_tower
        return tower.image_size

    def encode_image(self, images, training=False):
        """L2-normalised image embeddings: f, or in `lit` mode the locked h side."""
        if self.mode == "lit":
            return self._lit_image_embedding(self.pretrained_tower(images))
        return l2_normalize(self.image_tower(images, training=training))

    def encode_text(self, tokens, training=False):
        return l2_normalize(self.text_tower(tokens, training=training))

    def _lit_image_embedding(self, h):
        return self.lit_image_head(h) if self.lit_head else l2_normalize(h)

    def call(self, inputs, training=False):
        """Returns {"image": ..., "text": ...} embeddings of a batch dict."""
        if self.mode == "lit":
            image = self._lit_image_embedding(self._pretrained_features(inputs))
        else:
            image = self.encode_image(inputs["image"], training=training)
        return {"image": image, "text": self.encode_text(inputs["tokens"], training=training)}

    # -- The objective ----------------------------------------------------------

    def _pretrained_features(self, batch):
        if "h_embedding" in batch:
            return tf.cast(batch["h_embedding"], tf.float32)
        return self.pretrained_tower(batch["h_image"])

    def compute_embeddings(self, batch, training=False):
        """The towers' outputs that the losses consume, before heads and normalisation:
        `text` (g), `image` (f; not in `lit`) and `pretrained` (h's features; not in `clip`).

        Only `text` and `image` carry gradients (h is frozen); everything after them,
        the heads, temperatures and losses, is `losses_from_embeddings`. The split is what
        lets a step compute the loss of a batch larger than fits through the towers at once
        (`models.gradient_cache`).
        """
        embeddings = self.trained_embeddings(batch, training=training)
        if self.mode != "clip":
            embeddings["pretrained"] = self._pretrained_features(batch)
        return embeddings

    def trained_embeddings(self, batch, training=False):
        """The part of `compute_embeddings` that carries gradients: `text` and `image`
        (not in `lit`), made by the towers whose weights are `tower_variables`."""
        embeddings = {"text": self.text_tower(batch["tokens"], training=training)}
        if self.mode != "lit":
            embeddings["image"] = self.image_tower(batch["image"], training=training)
        return embeddings

    @property
    def trained_embedding_names(self):
        """The keys of `trained_embeddings`."""
        return ("text",) if self.mode == "lit" else ("text", "image")

    @property
    def tower_variables(self):
        """The trainable weights of the towers behind `trained_embeddings`; every other
        trainable weight (heads, temperatures, biases) is used only by `losses_from_embeddings`."""
        towers = [self.text_tower] + ([self.image_tower] if self.image_tower is not None else [])
        return [v for tower in towers for v in tower.trainable_variables]

    def _pair_loss(self, pair, a, b):
        """(loss, a->b accuracy) of one pair's L2-normalised embeddings, with the pair's own
        temperature (and, for the sigmoid loss, bias)."""
        if self.loss_name == "sigmoid":
            return sigmoid_loss(a, b, self.log_temperatures[pair], self.biases[pair])
        return contrastive_loss(a, b, self.log_temperatures[pair])

    def losses_from_embeddings(self, embeddings):
        """Per-pair losses, the weighted total and the image->text accuracy of a batch's
        `compute_embeddings` (this replica's rows; the losses gather every replica's)."""
        text = embeddings["text"]
        if self.mode == "lit":
            image_embedding = self._lit_image_embedding(embeddings["pretrained"])
        else:
            image = embeddings["image"]
            image_embedding = l2_normalize(image)
        losses = {}
        losses["loss_image_text"], accuracy = self._pair_loss("image_text", image_embedding, l2_normalize(text))
        if self.mode == "3t":
            h = embeddings["pretrained"]
            losses["loss_image_pretrained"], _ = self._pair_loss(
                "image_pretrained", self.image_head(image), self.pretrained_image_head(h)
            )
            losses["loss_text_pretrained"], _ = self._pair_loss(
                "text_pretrained", self.text_head(text), self.pretrained_text_head(h)
            )
            w = self.aux_weight
            aux = losses["loss_image_pretrained"] + losses["loss_text_pretrained"]
            total = (losses["loss_image_text"] + w * aux) / (1 + 2 * w)
        else:
            total = losses["loss_image_text"]
        losses["loss"], losses["accuracy"] = total, accuracy
        return losses

    def compute_losses(self, batch, training=False):
        """Per-pair losses, the weighted total and the image->text accuracy of a batch."""
        return self.losses_from_embeddings(self.compute_embeddings(batch, training=training))

    def train_step(self, data, accum_steps=1):
        """One optimizer step on this replica's rows of the global batch. `accum_steps`
        > 1 runs the towers on that many equal micro-batches at a time and still computes
        the loss over the whole global batch (`models.gradient_cache`): the same step,
        in less memory."""
        data, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync

        def scale(loss):
            # Each replica's loss is the mean over its rows of the global-batch loss;
            # Keras sums replica gradients, so divide to get the global mean.
            return self.optimizer.scale_loss(loss / replicas)

        if accum_steps > 1:
            losses, gradients = cached_gradients(self, data, accum_steps, scale)
        else:
            with tf.GradientTape() as tape:
                losses = self.compute_losses(data, training=True)
                scaled = scale(losses["loss"])
            gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(gradients, self.trainable_variables)
        return self._update_metrics(losses)

    def test_step(self, data):
        data, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._update_metrics(self.compute_losses(data, training=False))

    def _update_metrics(self, losses):
        for name, value in losses.items():
            self.loss_trackers[name].update_state(value)
        for pair, log_t in self.log_temperatures.items():
            self.loss_trackers[f"t_{pair}"].update_state(temperature(log_t))
        for pair, bias in self.biases.items():
            self.loss_trackers[f"bias_{pair}"].update_state(bias)
        return {name: tracker.result() for name, tracker in self.loss_trackers.items()}

    @property
    def metrics(self):
        return list(self.loss_trackers.values())

    def get_config(self):
        config = super().get_config()
        serialize = keras.saving.serialize_keras_object
        config.update(
            text_tower=serialize(self.text_tower),
            image_tower=serialize(self.image_tower) if self.image_tower is not None else None,
            pretrained_tower=serialize(self.pretrained_tower) if self.pretrained_tower is not None else None,
            mode=self.mode,
            aux_weight=self.aux_weight,
            lit_head=self.lit_head,
            loss=self.loss_name,
        )
        return config

    @classmethod
    def from_config(cls, config):
        for key in ("text_tower", "image_tower", "pretrained_tower"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)

"""`ThreeTowers`: the 3T model and its two baselines, CLIP and LiT.

| mode   | loss                                               | image embedding |
| ------ | -------------------------------------------------- | --------------- |
| `clip` | L(f, g)                                            | f               |
| `lit`  | L(h, g); h locked                                  | h               |
| `3t`   | (L(f, g) + w L(f_h, h_f) + w L(g_h, h_g)) / (1+2w) | f               |

3T may learn from K third towers h_1..h_K at once: each has its own two pairs of
heads and temperatures, and the objective generalises the equal weighting,
`(L(f, g) + w Σ_k [L(f_hk, hk_f) + L(g_hk, hk_g)]) / (1 + 2wK)`. With one tower it is
the paper's 3T, operation for operation. LiT locks one tower only.

L is CLIP's softmax loss (`loss="softmax"`, the paper's) or SigLIP's sigmoid loss
(`loss="sigmoid"`, with a learned bias per pair), for every pair alike.

Batches are dicts: `image` (pixels in [0, 255] at the image tower's size), `tokens`
(int32, 0 = padding, EOS-terminated), and for `lit`/`3t` either `h_image` (pixels at
the pretrained tower's size) or `h_embedding` (precomputed pooled features of h; when
present, h is not run). Tower k >= 1 reads `h_image_{k}` / `h_embedding_{k}`
(`tower_input_key`).

Example:
>>> import numpy as np
>>> from models import ThreeTowers, get_scale
>>> model = ThreeTowers.from_scale(get_scale("tiny"), mode="clip", vocab_size=100, max_len=8)
>>> model.compile(optimizer="adam", run_eagerly=True)   # one step: tracing it would take longer
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
from models.gradients import optimizer_gradients
from models.heads import ProjectionHead
from models.image_tower import ImageTower
from models.normalize import l2_normalize
from models.sigmoid_loss import sigmoid_loss
from models.text_tower import TextTower

MODES = ("clip", "lit", "3t")
LOSSES = ("softmax", "sigmoid")
INITIAL_LOG_TEMPERATURE = math.log(10.0)
INITIAL_SIGMOID_BIAS = -10.0  # SigLIP's: every pair starts as a likely negative

# The contrastive pairs each mode trains, by the name of their loss/temperature (3T with
# one third tower; tower k >= 1 adds `tower_pairs(k)`).
PAIRS = {"clip": ("image_text",), "lit": ("image_text",), "3t": ("image_text", "image_pretrained", "text_pretrained")}


def _numbered(name, k):
    """Tower 0 keeps the single-tower name (old runs' weights and metrics); tower k >= 1 adds `_k`."""
    return name if k == 0 else f"{name}_{k}"


def tower_pairs(k):
    """The two pairs of third tower k, by loss/temperature name.

    >>> tower_pairs(0), tower_pairs(1)
    (('image_pretrained', 'text_pretrained'), ('image_pretrained_1', 'text_pretrained_1'))
    """
    return _numbered("image_pretrained", k), _numbered("text_pretrained", k)


# What third tower k reads from a batch (`tower_input_key`): the pixels it runs on, or its
# precomputed features (when present, the tower is not run). The one place these names are decided.
TOWER_IMAGE, TOWER_EMBEDDING = "h_image", "h_embedding"
TOWER_TEXT = "h_text"  # the caption, as a text third tower's own preprocessor packs it


def tower_input_key(key, k):
    """The batch key of third tower k's input `key` (`TOWER_IMAGE` or `TOWER_EMBEDDING`).

    >>> tower_input_key("h_image", 0), tower_input_key("h_embedding", 2)
    ('h_image', 'h_embedding_2')
    """
    return _numbered(key, k)


def _as_towers(pretrained_tower):
    """One tower, a list of towers or None -> a list."""
    if pretrained_tower is None:
        return []
    return list(pretrained_tower) if isinstance(pretrained_tower, (list, tuple)) else [pretrained_tower]


@keras.saving.register_keras_serializable(package="tt")
class ThreeTowers(keras.Model):
    """The contrastive image-text model of one mode (`clip`, `lit` or `3t`), with its
    own `train_step` (the global-batch loss of every pair) and learned temperatures.

    Args:
      text_tower: the `TextTower` g.
      image_tower: the `ImageTower` f (not used, and may be None, in `lit` mode).
      pretrained_tower: the frozen `PretrainedTower` h (not used in `clip` mode), or in
        `3t` mode a list of K of them, each teaching through its own heads.
      mode: one of `MODES`.
      aux_weight: w, the weight of each of 3T's two pairs with each h.
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
        towers = _as_towers(pretrained_tower) if mode != "clip" else []
        if mode != "clip" and not towers:
            raise ValueError(f"mode {mode!r} needs a pretrained tower")
        if mode == "lit" and len(towers) > 1:
            raise ValueError(f"LiT locks one pretrained tower, not {len(towers)}")
        self.mode, self.aux_weight, self.lit_head = mode, float(aux_weight), bool(lit_head)
        self.loss_name = loss  # not `self.loss`: `compile` sets that
        self.text_tower = text_tower
        self.image_tower = image_tower if mode != "lit" else None
        self.pretrained_tower = towers[0] if towers else None
        for k, tower in enumerate(towers[1:], start=1):  # attribute names are checkpoint paths
            setattr(self, _numbered("pretrained_tower", k), tower)
        self.num_pretrained_towers = len(towers)
        embed_dim = text_tower.embed_dim
        if mode == "lit":
            h_dim = self.pretrained_tower.output_dim
            if not lit_head and embed_dim != h_dim:
                raise ValueError(f"LiT without a head needs the text tower to project to h's width {h_dim}")
            # The locked image side: h, optionally followed by one trainable linear head.
            self.lit_image_head = ProjectionHead(embed_dim, h_dim, name="lit_image_head") if lit_head else None
        if mode == "3t":
            for k, tower in enumerate(towers):
                self._add_tower_heads(k, tower.output_dim, image_tower.embed_dim, embed_dim)
        pairs = PAIRS[mode] + tuple(p for k in range(1, len(towers)) for p in tower_pairs(k))
        self.log_temperatures = {
            pair: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(INITIAL_LOG_TEMPERATURE),
                dtype="float32",
                name=f"log_t_{pair}",
            )
            for pair in pairs
        }
        # The sigmoid loss's learned bias β of each pair (not log-parametrised: it is negative).
        self.biases = {
            pair: self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(INITIAL_SIGMOID_BIAS),
                dtype="float32",
                name=f"bias_{pair}",
            )
            for pair in (pairs if loss == "sigmoid" else ())
        }
        self.loss_trackers = {
            name: keras.metrics.Mean(name=name)
            for name in ["loss", "accuracy"]
            + [f"loss_{p}" for p in pairs]
            + [f"t_{p}" for p in pairs]
            + [f"bias_{p}" for p in self.biases]
        }
        self.built = True

    def _add_tower_heads(self, k, h_dim, image_dim, embed_dim):
        """Tower k's heads f_hk, hk_f (image pair) and g_hk, hk_g (text pair); tower 0's
        keep the single-tower names (`f_h`, ...), so that old checkpoints load."""
        suffix = "" if k == 0 else str(k)
        heads = {
            "image_head": ProjectionHead(embed_dim, image_dim, name=f"f_h{suffix}"),
            "pretrained_image_head": ProjectionHead(embed_dim, h_dim, name=f"h{suffix}_f"),
            "text_head": ProjectionHead(embed_dim, embed_dim, name=f"g_h{suffix}"),
            "pretrained_text_head": ProjectionHead(embed_dim, h_dim, name=f"h{suffix}_g"),
        }
        for attribute, head in heads.items():
            setattr(self, _numbered(attribute, k), head)

    @property
    def pretrained_towers(self):
        """The K frozen third towers (one in `lit`, none in `clip`), in `--pretrained` order."""
        return [getattr(self, _numbered("pretrained_tower", k)) for k in range(self.num_pretrained_towers)]

    def tower_heads(self, k):
        """(f_hk, hk_f, g_hk, hk_g): third tower k's heads in 3T."""
        names = ("image_head", "pretrained_image_head", "text_head", "pretrained_text_head")
        return tuple(getattr(self, _numbered(name, k)) for name in names)

    @classmethod
    def from_scale(
        cls,
        scale,
        mode="3t",
        vocab_size=32000,
        max_len=16,
        pretrained_tower=None,
        pooling="token",
        aux_weight=1.0,
        lit_head=False,
        loss="softmax",
        dtype=None,
    ):
        """Builds the towers from a `Scale` (`pretrained_tower`: one tower or a list). In
        `lit` mode without a head the text tower projects to h's width so that it can be
        compared with h directly."""
        embed_dim = scale.embed_dim
        if mode == "lit" and not lit_head and _as_towers(pretrained_tower):
            embed_dim = _as_towers(pretrained_tower)[0].output_dim
        image_tower = None if mode == "lit" else ImageTower.from_scale(scale, pooling, dtype=dtype)
        text_tower = TextTower.from_scale(scale, vocab_size, max_len, embed_dim=embed_dim, dtype=dtype)
        return cls(
            text_tower,
            image_tower,
            pretrained_tower,
            mode=mode,
            aux_weight=aux_weight,
            lit_head=lit_head,
            loss=loss,
            name=f"three_towers_{mode}",
        )

    # -- Embeddings for downstream use ------------------------------------------

    @property
    def image_size(self):
        """(H, W) of the images `encode_image` takes."""
        tower = self.pretrained_tower if self.mode == "lit" else self.image_tower
        return tower.image_size

    @property
    def image_resizing(self):
        """How images are resized for `encode_image` (`keras.layers.Resizing` arguments): a
        preset's own way for towers from a KerasHub preset, else None (tt's)."""
        tower = self.pretrained_tower if self.mode == "lit" else self.image_tower
        return getattr(tower, "resizing", None)

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

    def _pretrained_features(self, batch, k=0):
        """Third tower k's features: its precomputed embeddings when the batch has them."""
        embedding = tower_input_key(TOWER_EMBEDDING, k)
        if embedding in batch:
            return tf.cast(batch[embedding], tf.float32)
        tower = self.pretrained_towers[k]  # reads its own input: pixels, or a text tower's (`TOWER_TEXT`)
        return tower(batch[tower_input_key(getattr(tower, "input_key", TOWER_IMAGE), k)])

    def compute_embeddings(self, batch, training=False):
        """The towers' outputs that the losses consume, before heads and normalisation:
        `text` (g), `image` (f; not in `lit`) and `pretrained` (the list of each h's
        features, in tower order; not in `clip`).

        Only `text` and `image` carry gradients (h is frozen); everything after them,
        the heads, temperatures and losses, is `losses_from_embeddings`. The split is what
        lets a step compute the loss of a batch larger than fits through the towers at once
        (`models.gradient_cache`).
        """
        embeddings = self.trained_embeddings(batch, training=training)
        if self.mode != "clip":
            embeddings["pretrained"] = [self._pretrained_features(batch, k) for k in range(self.num_pretrained_towers)]
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
            image_embedding = self._lit_image_embedding(embeddings["pretrained"][0])
        else:
            image = embeddings["image"]
            image_embedding = l2_normalize(image)
        losses = {}
        losses["loss_image_text"], accuracy = self._pair_loss("image_text", image_embedding, l2_normalize(text))
        if self.mode == "3t":
            aux = None
            for k, h in enumerate(embeddings["pretrained"]):
                image_head, pretrained_image_head, text_head, pretrained_text_head = self.tower_heads(k)
                image_pair, text_pair = tower_pairs(k)
                losses[f"loss_{image_pair}"], _ = self._pair_loss(
                    image_pair, image_head(image), pretrained_image_head(h)
                )
                losses[f"loss_{text_pair}"], _ = self._pair_loss(text_pair, text_head(text), pretrained_text_head(h))
                tower_terms = losses[f"loss_{image_pair}"] + losses[f"loss_{text_pair}"]
                aux = tower_terms if aux is None else aux + tower_terms
            # With one tower: (L(f,g) + w (L_ih + L_th)) / (1 + 2w), the same float ops as 3T.
            w = self.aux_weight
            total = (losses["loss_image_text"] + w * aux) / (1 + 2 * w * self.num_pretrained_towers)
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
        in less memory. The optimizer gets the gradients as the textbook step needs them
        (`models.gradients.optimizer_gradients`)."""
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
        self.optimizer.apply(optimizer_gradients(self.optimizer, gradients), self.trainable_variables)
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
            # One tower as runs before several towers wrote it; K > 1 as a list.
            pretrained_tower=(
                serialize(self.pretrained_tower)
                if self.num_pretrained_towers == 1
                else [serialize(t) for t in self.pretrained_towers] or None
            ),
            mode=self.mode,
            aux_weight=self.aux_weight,
            lit_head=self.lit_head,
            loss=self.loss_name,
        )
        return config

    @classmethod
    def from_config(cls, config):
        for key in ("text_tower", "image_tower"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        towers = config.get("pretrained_tower")
        if towers is not None:
            deserialize = keras.saving.deserialize_keras_object
            config["pretrained_tower"] = (
                [deserialize(t) for t in towers] if isinstance(towers, list) else deserialize(towers)
            )
        return cls(**config)

"""The classifier `tt pretrain` trains: a KerasHub `ViTImageClassifier` at a tt scale, and
the Keras model that gives it the training step `tt train`'s loop runs
(`tt_cli.training.loop`).

Example:
>>> from models import get_scale
>>> classifier = build_classifier(get_scale("tiny"), num_classes=3)
>>> training = ClassifierTraining(classifier)
>>> training.compile(optimizer="adamw")
>>> import numpy as np
>>> logs = training.train_step((np.zeros((2, 32, 32, 3), "uint8"), np.array([0, 2])))
>>> sorted(logs)
['accuracy', 'loss']
"""

import keras
import tensorflow as tf

from models.gradients import optimizer_gradients
from models.image_tower import rescale_pixels


def build_classifier(scale, num_classes):
    """A `ViTImageClassifier` at a `models.scales` scale, with the preprocessor its preset keeps
    (the [-1, 1] rescaling of tt's own image tower, at the scale's size)."""
    import keras_hub

    from models import vit_backbone, vit_image_converter

    converter = vit_image_converter((scale.image_size, scale.image_size))
    preprocessor = keras_hub.models.ViTImageClassifierPreprocessor(image_converter=converter)
    return keras_hub.models.ViTImageClassifier(
        backbone=vit_backbone(scale), num_classes=num_classes, preprocessor=preprocessor
    )


class ClassifierTraining(keras.Model):
    """`classifier` trained on (uint8 images, int labels) batches with the softmax cross-entropy,
    one replica's rows at a time under `tf.distribute`; its metrics are the loss and the top-1
    accuracy. The classifier's weights are this model's."""

    def __init__(self, classifier, **kwargs):
        super().__init__(**kwargs)
        self.classifier = classifier
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    def call(self, images, training=False):
        """Logits of uint8 images, preprocessed as the preset's image converter does."""
        return self.classifier(rescale_pixels(images, self.classifier.compute_dtype), training=training)

    def train_step(self, data):
        images, labels = data
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        with tf.GradientTape() as tape:
            logits = tf.cast(self(images, training=True), tf.float32)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
            # The mean over this replica's rows; Keras sums replica gradients, so divide.
            scaled = self.optimizer.scale_loss(loss / replicas)
        gradients = tape.gradient(scaled, self.trainable_variables)
        self.optimizer.apply(optimizer_gradients(self.optimizer, gradients), self.trainable_variables)
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(labels, logits)
        return {metric.name: metric.result() for metric in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

"""`tt pretrain`: trains a ViT image classifier on labelled shards and saves it as a
KerasHub preset directory, ready to be the third tower (`tt train --pretrained PRESET_DIR`).

This is how a user brings a domain model, as in the paper's Places365 experiment.
The preset holds the backbone (`config.json`, `model.weights.h5`) and the image
converter the classifier was trained with (pixels scaled to [-1, 1] at the
scale's resolution), so `models.PretrainedTower.from_preset` preprocesses exactly
as training did; the classification head is kept too (`task.json`), so
`keras_hub.models.ImageClassifier.from_preset(OUT)` gives back the classifier.
`tt_pretrain.json` beside them records the command, the classes and the accuracies.

It trains on `tt train`'s loop (`tt_cli.training`): any `tf.distribute` strategy,
checkpoints that let the same command resume, `metrics.jsonl`, the same progress,
signal and NaN handling. One module each: the settings (`config.py`), the labelled
input (`data.py`), the classifier and its training step (`classifier.py`), the output
folder (`output.py`) and the run (`run.py`).

`pretrain(PretrainConfig(data="shards/labelled", out="presets/shapes_vit", scale="tiny",
steps=200))` trains and returns the summary it wrote (`train_accuracy`, `heldout_accuracy`,
`num_classes`, ...).
"""

from tt_cli.pretrain.config import PRETRAIN_JSON, PretrainConfig
from tt_cli.pretrain.data import labelled_dataset
from tt_cli.pretrain.output import COMMAND
from tt_cli.pretrain.run import pretrain

__all__ = ["COMMAND", "PRETRAIN_JSON", "PretrainConfig", "labelled_dataset", "pretrain"]

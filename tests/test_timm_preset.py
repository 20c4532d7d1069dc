"""A timm-format directory (config.json + model.safetensors) loads as the third tower.

KerasHub reads timm checkpoints through `safetensors`; tt depends on it for this.
The directory is written here: a random ResNet-18 in timm's parameter names and
layouts (PyTorch OIHW convolution kernels), with timm's `pretrained_cfg`.
"""

import json

import numpy as np
import pytest

from models import PretrainedTower


class _RecordNames:
    """Stands in for KerasHub's safetensors reader to learn which timm key fills
    which Keras variable (and whether it is a transposed convolution kernel)."""

    def __init__(self):
        self.pairs = []

    def port_weight(self, keras_variable, hf_weight_key, hook_fn=None):
        self.pairs.append((keras_variable, hf_weight_key, hook_fn is not None))


def write_timm_resnet18(directory, image_size=64):
    import keras_hub
    from keras_hub.src.utils.timm import convert_resnet
    from safetensors.numpy import save_file

    config = {
        "architecture": "resnet18",
        "num_classes": 10,
        "pretrained_cfg": {
            "input_size": [3, image_size, image_size],
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
            "interpolation": "bilinear",
        },
    }
    backbone = keras_hub.models.ResNetBackbone(**convert_resnet.convert_backbone_config(config))
    rng = np.random.default_rng(0)
    for weight in backbone.weights:  # not the initial values, so a skipped load would show
        weight.assign(rng.normal(0, 0.05, weight.shape).astype("float32") + (1.0 if "variance" in weight.path else 0.0))
    recorder = _RecordNames()
    convert_resnet.convert_weights(backbone, recorder, config)
    tensors = {}
    for variable, key, is_conv in recorder.pairs:
        value = np.asarray(variable.numpy())
        tensors[key] = np.ascontiguousarray(value.transpose(3, 2, 0, 1) if is_conv else value)  # HWIO -> OIHW
    save_file(tensors, str(directory / "model.safetensors"))
    (directory / "config.json").write_text(json.dumps(config))
    return backbone


def test_timm_directory_loads_as_pretrained_tower(tmp_path):
    original = write_timm_resnet18(tmp_path)
    tower = PretrainedTower.from_preset(str(tmp_path))
    assert tower.output_dim == 512 and tower.image_size == (64, 64)
    # timm's mean/std preprocessing, from pretrained_cfg.
    assert tower.preprocessing["scale"] == pytest.approx([1 / 255 / s for s in (0.229, 0.224, 0.225)])
    images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3)).astype("uint8")
    normalised = (images / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    expected = np.asarray(original(normalised.astype("float32"), training=False)).mean(axis=(1, 2))
    np.testing.assert_allclose(np.asarray(tower(images)), expected, rtol=1e-4, atol=1e-4)

"""`tt train --init PRESET`: a run that starts from a KerasHub CLIP, SigLIP or MetaCLIP 2
preset, and everything later read back from the run alone.

The preset is fetched once (a name, `kaggle://`, `hf://` or a directory; a remote one is
probed first, so that an offline machine fails within seconds) and copied into the run:

    RUN/init/                    the preset as KerasHub writes one: config.json,
                                 model.weights.h5 (the weights at step 0), preprocessor.json,
                                 tokenizer.json, image_converter.json, assets/ (the vocabulary)
    RUN/init/tt_init.json        which preset it is a copy of; written last (a copy without
                                 it is unfinished and is made again)

Resuming, evaluating, reporting and exporting the run read that copy (its tokenizer, its
image converter, its step-0 weights for `--interpolate`), never the network. The copy
costs the preset's size once per run (its weights in float32: ~600 MB for
`clip_vit_base_patch16`, ~800 MB for `siglip_base_patch16_224`).

A KerasHub preset directory (`tt export preset` writes one) can also be evaluated as it
is (`load_preset_model`): its model at step 0, in `clip` mode.

`tt train` calls, in order: `check_source` (before TensorFlow starts), `prepare_init`
(the copy; an `InitPreset` such as ('CLIPBackbone', max_len 77, image size 224x224) for
`clip_vit_base_patch16`), `resolve_config`, `third_towers` and `build_model`.
"""

import dataclasses
import json
import math
import os
import tempfile

from tt_cli import storage
from tt_cli.errors import InvalidValueError, TtError, UnreadableDataError
from tt_cli.jsonfile import write_json

INIT_DIR = "init"
SOURCE_JSON = "tt_init.json"
FROZEN_COPY = "init"  # the third tower's name for a frozen copy of the preset's image tower
REMEDY = (
    "init",
    "/path/to/preset",
    "(a local KerasHub CLIPBackbone, SigLIPBackbone or MetaCLIP2Backbone preset directory with its "
    "preprocessor, e.g. one saved with `save_to_preset` or written by `tt export preset`)",
)


@dataclasses.dataclass(frozen=True)
class InitPreset:
    """A preset a run starts from, read from its local copy."""

    source: str  # the preset as the user named it
    path: str  # its copy (RUN/init), which everything reads
    family: object  # models.preset_backbones.Family
    max_len: int  # the preprocessor's sequence length
    image_size: tuple  # the image converter's (H, W)
    copy_bytes: int  # what the copy costs on disk

    def describe(self):
        """What run.json records about it."""
        return {
            "preset": self.source,
            "class": self.family.backbone,
            "copy": INIT_DIR,
            "copy_bytes": self.copy_bytes,
            "max_text_len": self.max_len,
            "image_size": list(self.image_size),
        }


def _first_line(error):
    return (str(error).strip().splitlines() or [error.__class__.__name__])[0][:200]


def _unavailable(source, reason):
    return InvalidValueError(f"cannot load init preset {source!r} ({reason})", remedy=REMEDY)


def _read_json(path):
    with storage.open(path) as f:
        return json.load(f)


def _family(preset_dir):
    """The `models.preset_backbones.Family` of a preset directory, or why it has none."""
    from models.preset_backbones import family_of

    try:
        return family_of(_read_json(os.path.join(preset_dir, "config.json"))["class_name"]), None
    except ValueError as e:  # not an image-text backbone, or not JSON
        return None, _first_line(e)
    except (OSError, KeyError, TypeError):
        return None, "no KerasHub config.json"


def _tree_bytes(path):
    return sum(storage.getsize(os.path.join(folder, n)) for folder, _, names in storage.walk(path) for n in names)


def read_init(path):
    """The `InitPreset` of a finished copy (or of any KerasHub preset directory with its
    preprocessor), without the network."""
    from tt_cli.data.preset_tokenizer import PREPROCESSOR_JSON

    family, reason = _family(path)
    if family is None:
        raise InvalidValueError(f"{path}: not a preset tt reads ({reason}).")
    source = path
    if storage.isfile(os.path.join(path, SOURCE_JSON)):
        source = _read_json(os.path.join(path, SOURCE_JSON))["preset"]
    try:
        preprocessor = _read_json(os.path.join(path, PREPROCESSOR_JSON))["config"]
        converter = _read_json(os.path.join(path, "image_converter.json"))["config"]
    except (OSError, KeyError, ValueError):
        raise UnreadableDataError(
            f"{path}: the preset has no readable {PREPROCESSOR_JSON} and image_converter.json "
            "(its tokenizer and image preprocessing)."
        ) from None
    return InitPreset(
        source=source,
        path=path,
        family=family,
        max_len=int(preprocessor["sequence_length"]),
        image_size=tuple(int(s) for s in converter["image_size"]),
        copy_bytes=_tree_bytes(path),
    )


def check_source(config):
    """Fails within seconds, before TensorFlow starts, when `config.init` cannot be what the
    run starts from: its host does not answer, or it is a directory of another kind of
    model. A run that holds a finished copy of it is not asked about the network."""
    from tt_cli.presets import unreachable_reason

    if _copied_from(os.path.join(config.out, INIT_DIR)) == config.init:
        return
    reason = unreachable_reason(config.init)
    if reason is not None:
        raise _unavailable(config.init, reason)
    if storage.isdir(config.init):  # a ViT or a text model fails here, before its weights load
        family, reason = _family(config.init)
        if family is None:
            raise _unavailable(config.init, reason)


def copy_preset(source, dest):
    """Fetches `source` and writes its backbone and preprocessor as a KerasHub preset in
    `dest`, `tt_init.json` last (`check_source` has probed it)."""
    import keras_hub

    from models.preset_backbones import family_of

    try:
        backbone = keras_hub.models.Backbone.from_preset(source)
        family = family_of(type(backbone).__name__)
        preprocessor = getattr(keras_hub.models, family.preprocessor).from_preset(source)
    except Exception as e:  # hub, file and format errors all mean the same to a user
        raise _unavailable(source, _first_line(e)) from None
    with storage.staged_folder(dest) as local:
        backbone.save_to_preset(local)
        preprocessor.save_to_preset(local)
    write_json(os.path.join(dest, SOURCE_JSON), {"preset": source, "class": family.backbone})


def _copied_from(dest):
    path = os.path.join(dest, SOURCE_JSON)
    try:
        return _read_json(path)["preset"] if storage.isfile(path) else None
    except (OSError, ValueError, KeyError):
        return None


def prepare_init(config, chief, log):
    """The run's copy of `config.init`: reused when the run holds a finished copy of it
    (a resume, a restart), else made (replacing tt's own copy of another preset). Other
    workers than the chief make their own copy in a private folder."""
    from tt_cli.ownership import OutputFolder

    dest = os.path.join(config.out, INIT_DIR)
    if not chief:
        dest = os.path.join(tempfile.mkdtemp(prefix="tt-worker-"), INIT_DIR)
    if _copied_from(dest) != config.init:
        if chief and storage.exists(dest):  # tt's own copy (claimed with the run), unfinished or of another preset
            OutputFolder(config.out, "tt train").remove_owned([INIT_DIR])
        log(f"copying the init preset {config.init} into {dest} (weights at step 0, tokenizer, image converter)")
        copy_preset(config.init, dest)
        if chief:  # stamped as tt's, so that a restart from another preset may replace it
            OutputFolder(config.out, "tt train").record([INIT_DIR], created=True)
    return read_init(dest)


def resolve_config(config, init):
    """`config` with what the preset decides: the sequence length, and the loss when none
    was given (the preset's own: sigmoid for SigLIP). An image size or a tokenizer of
    another kind than the preset's is refused."""
    if config.image_size is not None and (config.image_size,) * 2 != tuple(init.image_size):
        raise InvalidValueError(
            f"image size {config.image_size}: the init preset {init.source} takes "
            f"{init.image_size[0]}x{init.image_size[1]} images."
        )
    if config.tokenizer:
        raise InvalidValueError(
            f"tokenizer {config.tokenizer}: a run from the init preset {init.source} uses the preset's own tokenizer."
        )
    return dataclasses.replace(config, max_text_len=init.max_len, loss=config.loss or init.family.loss)


def third_towers(names, init, scale, log):
    """The frozen third towers `names` of an --init run, in order: `FROZEN_COPY` is a frozen
    copy of the preset's image tower, any other name a `--pretrained` tower as without --init."""
    from models.preset_model import frozen_image_tower
    from tt_cli.presets import load_pretrained_tower

    towers = []
    for name in names:
        if name == FROZEN_COPY:
            tower = frozen_image_tower(init.path)
            tower.preset = FROZEN_COPY  # recorded by its name (the copy's path may move with the run)
        else:
            tower = load_pretrained_tower(name, scale, log)
        towers.append(tower)
    return towers


def build_model(config, init, towers, log):
    """The `ThreeTowers` of an --init run at step 0 (f, g, temperature and bias from the preset)."""
    from models.preset_model import clipped_temperature, load_preset_parts, three_towers_from_preset

    parts = load_preset_parts(init.path)
    start, clipped = clipped_temperature(parts.log_temperature)
    if clipped is not None:
        log(f"the init preset's temperature {clipped:.1f} starts at tt's ceiling {math.exp(start):.0f}")
    try:
        return three_towers_from_preset(
            init.path,
            mode=config.mode,
            pretrained_tower=list(towers) or None,
            aux_weight=config.aux_weight,
            lit_head=config.lit_head,
            loss=config.loss,
            parts=parts,
        )
    except ValueError as e:  # e.g. LiT of a tower whose width is not the text tower's, without a head
        raise InvalidValueError(f"init preset {init.source}: {e}.") from None


def initial_model(run):
    """The model of an --init run at step 0 (for WiSE-FT), from the run's copy of the preset:
    the same mode, loss and third towers (frozen, never moved)."""
    from models.preset_model import three_towers_from_preset

    model = run.model
    if model.mode == "lit" and model.lit_head:
        raise InvalidValueError(
            f"{run.path}: a LiT head starts from random weights, not from the preset, so there is no "
            "initial model to interpolate with."
        )
    return three_towers_from_preset(
        os.path.join(run.path, INIT_DIR),
        mode=model.mode,
        pretrained_tower=model.pretrained_towers or None,
        aux_weight=model.aux_weight,
        lit_head=model.lit_head,
        loss=model.loss_name,
    )


def interpolate(run, alpha):
    """WiSE-FT of a loaded --init run in place: f, g, temperature and bias become
    `alpha * trained + (1 - alpha) * step 0`."""
    from models.weight_interpolation import interpolate_towers

    if not run.config.get("init"):
        raise InvalidValueError(
            f"{run.path}: interpolation {alpha} needs a run started from a preset (trained with an init preset); "
            "this one started from random weights."
        )
    if not 0.0 <= float(alpha) <= 1.0:
        raise InvalidValueError(f"interpolation {alpha}: the weight of the fine-tuned model must be in [0, 1].")
    interpolate_towers(run.model, initial_model(run), alpha)
    run.interpolate = float(alpha)


def run_tokenizer(path):
    """The tokenizer of an --init run (`path`: its copy of the preset), or of a preset directory."""
    from tt_cli.data.preset_tokenizer import PresetTokenizer

    try:
        return PresetTokenizer(path)
    except TtError:
        raise
    except Exception as e:  # KerasHub's file and format errors
        raise UnreadableDataError(f"{path}: cannot load the preset's tokenizer ({_first_line(e)}).") from None


def is_preset_dir(path):
    """Whether `path` is a KerasHub preset directory (a config.json, and no run.json)."""
    return storage.isfile(os.path.join(path, "config.json")) and not storage.isfile(os.path.join(path, "run.json"))


def load_preset_model(path):
    """(record, model, tokenizer) of a KerasHub CLIP, SigLIP or MetaCLIP 2 preset directory
    (e.g. `tt export preset`'s), evaluated as it is: its model at step 0, in `clip` mode.
    Its `run_record.RunRecord` holds the mode and the preset (`InitPreset.describe`)."""
    from models.preset_model import three_towers_from_preset
    from tt_cli.run_record import RunRecord

    init = read_init(path)
    model = three_towers_from_preset(path, mode="clip")
    record = RunRecord({"mode": "clip", "init": path}, {"init": init.describe(), "loss": model.loss_name})
    return record, model, run_tokenizer(path)

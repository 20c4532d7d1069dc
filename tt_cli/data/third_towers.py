"""The frozen third towers of a run as its input pipeline feeds them: one `ThirdTower`
record per tower, made once (`third_towers`) and passed whole from the build to `tf.data`
and into `run.json`.

A third tower's features come from one of three sources: it runs every step on the
pictures at its own size (`ONLINE`), or they were computed before by `tt data embed`
and are read inside the training shards (`SHARDS`: the first tower only, an earlier
`tt data embed` wrote them there) or from an embeddings folder beside them, in lockstep
(`FOLDER`, `lockstep`). The batch key of that input is the model's to name
(`models.three_towers.tower_input_key`): `h_image`, `h_embedding`, `h_image_1`, ...

`modality` says what a tower embeds: the pictures (`IMAGE`), or the captions (`TEXT`: a
frozen sentence encoder, `models.PretrainedTextTower`, which reads the caption the text
tower reads through its own preprocessor, under the batch key `h_text`).

Example:
>>> tower = ThirdTower(index=1, preset="/presets/vit", embedding_dim=16, image_size=(32, 32))
>>> tower.input_key, tower.precomputed
('h_image_1', False)
>>> ThirdTower(index=0, preset="/presets/vit", embedding_dim=16, source=SHARDS).input_key
'h_embedding'
"""

import dataclasses

from tt_cli.data import lockstep
from tt_cli.errors import InvalidValueError

ONLINE, SHARDS, FOLDER = "online", "shards", "folder"
IMAGE, TEXT = "image", "text"  # what a tower embeds: the pictures, or the captions


@dataclasses.dataclass(frozen=True)
class ThirdTower:
    """One frozen third tower: what it is and where the input pipeline finds its input."""

    index: int  # its place in the run's `pretrained` order, which numbers its batch key
    preset: str  # the preset it was loaded from (a local one as an absolute directory)
    embedding_dim: int  # the width of its features
    source: str = ONLINE  # ONLINE, SHARDS or FOLDER (see the module's docstring)
    image_size: tuple = None  # (H, W) of the pictures it runs on (ONLINE)
    folder: str = None  # the embeddings folder (FOLDER)
    embedding_files: tuple = ()  # its embedding shard for each training shard, in order (FOLDER)
    modality: str = IMAGE  # what it embeds

    @classmethod
    def online(cls, tower, index=0):
        """Tower `index`, the loaded `tower` (a `models.PretrainedTower`), run on the pictures,
        or on the captions for a text tower (`models.PretrainedTextTower`)."""
        if getattr(tower, "modality", IMAGE) == TEXT:
            return cls(index, tower.preset, tower.output_dim, modality=TEXT)
        return cls(index, tower.preset, tower.output_dim, image_size=tuple(tower.image_size))

    @property
    def precomputed(self):
        return self.source != ONLINE

    @property
    def input_key(self):
        """The batch key of this tower's input (its pixels, or its precomputed features)."""
        from models.three_towers import TOWER_EMBEDDING, TOWER_IMAGE, TOWER_TEXT, tower_input_key

        if self.precomputed:
            return tower_input_key(TOWER_EMBEDDING, self.index)
        return tower_input_key(TOWER_TEXT if self.modality == TEXT else TOWER_IMAGE, self.index)

    def to_json(self):
        """What `run.json` records of it (not the embedding shards: the folder names them)."""
        fields = dataclasses.asdict(self)
        fields.pop("embedding_files")
        fields["image_size"] = list(self.image_size) if self.image_size else None
        return fields


def third_towers(towers, folders, files, info):
    """One `ThirdTower` per loaded tower (`models.PretrainedTower`s, in `pretrained` order)
    for training on `files` (with their `DatasetInfo` `info`, or None): tower i reads the
    embeddings folder `folders[i]` when there is one (checked against the data and the
    tower, one line when it does not fit); else the first tower reads the shards' own
    embeddings when its preset and preprocessing made them; else it runs on the pictures."""
    if folders and not towers:
        raise InvalidValueError("embeddings are the third tower's; a CLIP run has none (train 3t or lit).")
    if len(folders) > len(towers):
        raise InvalidValueError(
            f"{len(folders)} embedding folders for {len(towers)} pretrained tower(s): "
            "give one embedding folder per tower."
        )
    records = []
    for index, tower in enumerate(towers):
        if index < len(folders):
            records.append(folder_tower(index, folders[index], files, info, tower))
        elif index == 0 and _made_by(info, tower):
            records.append(ThirdTower(index, tower.preset, tower.output_dim, source=SHARDS))
        else:
            records.append(ThirdTower.online(tower, index))
    return tuple(records)


def folder_tower(index, folder, files, info, tower=None):
    """Tower `index` read from the embeddings folder `folder` of `files`, after checking that
    the folder was made for them and, when given, by `tower` (the loaded tower); its preset
    is the tower's, else the one the folder records."""
    if tower is not None:
        lockstep.check_tower(folder, tower)
    paths, dim = lockstep.embedding_files(folder, files, info)
    preset = tower.preset if tower is not None else lockstep.read_folder_info(folder).h_embedding.get("pretrained")
    return ThirdTower(index, preset, dim, source=FOLDER, folder=folder, embedding_files=tuple(paths))


def _made_by(info, tower):
    """Whether the shards' own `h_embedding` were made by this tower with its preprocessing."""
    made = (info.h_embedding or {}) if info else {}
    return bool(made) and made.get("pretrained") == tower.preset and made.get("preprocessing") == tower.preprocessing

"""`run.json`: what a run of `tt train` was asked and what tt resolved from it, each once.

    {
      "format":   2,
      "config":   the settings as given (`TrainConfig`: one per flag of `tt train`),
      "resolved": what tt decided from them: "scale" (the main image tower's `Scale`),
                  "third_towers" (`ThirdTower.to_json` of each), "vocab_size" (of the
                  tokenizer as trained), "steps", "warmup_steps", "precision", "jit",
                  "strategy", "replicas",
      "dataset":  the training shards' fingerprint (names and sizes),
      "versions": of Python, TensorFlow, Keras, KerasHub and tt
    }

`tt train` writes it once per session; everything that reads a run (the resume checks,
`tt eval`, `tt export`, `tt report`, the demo) reads it as a `RunRecord`
(`tt_cli.run_dir.read_run_record`). Runs of earlier versions (no "format"; the settings
in "config" and some again at the top level, beside the resolved values) still load:
`RunRecord.from_json` reads that layout too.

Example:
>>> record = RunRecord.from_json({"config": {"mode": "clip", "scale": "tiny"}, "mode": "clip",
...     "scale": "tiny", "scale_config": {"image_size": 32}, "steps": 4, "pretrained_towers": []})
>>> record.mode, record.image_size, record.resolved["steps"], record.to_json()["format"]
('clip', 32, 4, 2)
"""

import dataclasses

from tt_cli.data.third_towers import FOLDER, ONLINE, SHARDS
from tt_cli.errors import UnreadableDataError

FORMAT = 2
# The top-level keys of the first layout that held a value tt resolved (the rest of its top
# level repeated "config").
_FIRST_LAYOUT_RESOLVED = ("vocab_size", "steps", "warmup_steps", "precision", "jit", "strategy", "replicas")


@dataclasses.dataclass(frozen=True)
class RunRecord:
    config: dict  # the settings as given
    resolved: dict  # what tt resolved from them
    dataset: dict = None
    versions: dict = None

    @property
    def mode(self):
        return self.config.get("mode")

    @property
    def image_size(self):
        """The side of the main image tower's images (the resolved scale's)."""
        return self.resolved["scale"]["image_size"]

    @property
    def pretrained_presets(self):
        """The presets of the third towers, in order (none for CLIP)."""
        return [tower["preset"] for tower in self.resolved.get("third_towers", [])]

    def to_json(self):
        return {
            "format": FORMAT,
            "config": self.config,
            "resolved": self.resolved,
            "dataset": self.dataset,
            "versions": self.versions,
        }

    @classmethod
    def from_json(cls, raw, path="run.json"):
        """The record of a parsed `run.json` (`path` names it in errors), of either layout."""
        if not isinstance(raw, dict) or not isinstance(raw.get("config"), dict):
            raise UnreadableDataError(f"{path}: not a run.json of tt train (no settings in it).")
        if "format" not in raw:
            return cls._from_first_layout(raw)
        if raw["format"] != FORMAT:
            raise UnreadableDataError(f"{path}: run.json format {raw['format']!r}; this version of tt reads {FORMAT}.")
        return cls(raw["config"], raw.get("resolved", {}), raw.get("dataset"), raw.get("versions"))

    @classmethod
    def _from_first_layout(cls, raw):
        config = raw["config"]
        presets = raw.get("pretrained_towers")
        if presets is None:  # before several third towers: one name, or none
            presets = [raw["pretrained"]] if raw.get("pretrained") else []
        precomputed = raw.get("precomputed_h_embeddings") or [bool(raw.get("precomputed_h_embedding"))] * len(presets)
        folders = list(config.get("embeddings") or [])
        towers = []
        for index, preset in enumerate(presets):
            source = FOLDER if index < len(folders) else (SHARDS if precomputed[index] else ONLINE)
            folder = folders[index] if source == FOLDER else None
            towers.append({"index": index, "preset": preset, "source": source, "folder": folder, "modality": "image"})
        resolved = {"scale": raw.get("scale_config"), "third_towers": towers}
        resolved.update({key: raw[key] for key in _FIRST_LAYOUT_RESOLVED if key in raw})
        return cls(config, resolved, raw.get("dataset"), raw.get("versions"))

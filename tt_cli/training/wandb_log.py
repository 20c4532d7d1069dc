"""`tt train --wandb PROJECT`: the run in Weights & Biases, beside TensorBoard and `metrics.jsonl`.

`WandbLog` receives every line `callbacks.MetricsLog` writes (the same scalars at the
same global steps: losses, accuracy, temperatures, learning rate, pairs per second and
the `val/...` numbers), starts its W&B run with the run's settings (`run.json`'s
`config`) as the W&B config, and at the end of training logs the curve PNGs of
`tt report` (`tt_cli.report.curves`) as images. Only the chief makes one.

The W&B run's id is kept in `RUN/wandb.json`: a resumed `tt train` continues the same
W&B run (`resume="allow"`); `--restart` removes the file, so the run starts a new one.
W&B writes its local files (the whole run, in offline mode) under `RUN/wandb/`. Nothing
imports `wandb` unless the flag is given; `WANDB_MODE=offline` needs no network (upload
later with `wandb sync RUN/wandb/offline-run-*`).

Usage (what `callbacks.training_callbacks` does): `logger = WandbLog("my-project", None,
"runs/demo", config.to_json())`, given to `MetricsLog(..., also=[logger])` and to the
callbacks; `logger.write(50, {"loss": 3.2})` logs one step by hand.
"""

import io
import json
import os

import keras

from tt_cli import run_dir as rd
from tt_cli import storage
from tt_cli.errors import InvalidValueError
from tt_cli.jsonfile import write_json
from tt_cli.optional import require


def _saved_id(out, project):
    """The W&B run id an earlier session of this run recorded for `project`, or None."""
    path = os.path.join(out, rd.WANDB_JSON)
    if not storage.isfile(path):
        return None
    try:
        with storage.open(path) as f:
            saved = json.load(f)
    except ValueError:
        return None
    return saved.get("id") if isinstance(saved, dict) and saved.get("project") == project else None


class WandbLog(keras.callbacks.Callback):
    """One W&B run of a `tt train` run directory `out`.

    Args:
      project: the W&B project.
      name: the W&B run's display name (None: W&B picks one).
      out: the run directory (where `wandb.json` and, for local runs, `wandb/` go).
      config: the run's settings, logged as the W&B config.
    """

    def __init__(self, project, name, out, config):
        super().__init__()
        wandb = require("wandb", "wandb", "logging to Weights & Biases")
        self.out, self.last_step = out, None
        local = None
        if not storage.is_url(out):  # W&B writes local files only; a URL run keeps them in ./wandb
            local = out
            storage.makedirs(os.path.join(out, rd.WANDB))
        try:
            self.run = wandb.init(
                project=project,
                name=name,
                id=_saved_id(out, project),  # None: a new run, with an id W&B makes
                resume="allow",
                config=config,
                dir=local,
                settings=wandb.Settings(console="off", silent=True),
            )
        except wandb.Error as e:
            raise InvalidValueError(
                f"Weights & Biases project {project}: cannot start a run ({str(e).strip().splitlines()[0]}); "
                "log in with `wandb login`, or set WANDB_MODE=offline to log without a network."
            ) from None
        write_json(os.path.join(out, rd.WANDB_JSON), {"project": project, "id": self.run.id})

    def write(self, step, values):
        """Logs the numbers `MetricsLog` wrote for `step` (the global step)."""
        self.run.log({k: v for k, v in values.items() if isinstance(v, (int, float))}, step=step)
        self.last_step = step

    def on_train_end(self, logs=None):
        import wandb
        from PIL import Image

        from tt_cli.report.curves import curve_pngs, read_metrics

        metrics = os.path.join(self.out, rd.METRICS)
        if storage.isfile(metrics):
            records, _ = read_metrics(metrics)
            images = {
                f"curves/{title}": wandb.Image(Image.open(io.BytesIO(png)), caption=title)
                for title, png in curve_pngs(records)
            }
            if images:
                self.run.log(images, step=self.last_step)
        self.run.finish()

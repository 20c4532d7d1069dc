"""Times training steps of each mode on synthetic batches, in one process.

For every mode the model is built at the scale with `ThreeTowers.from_scale`, compiled
with the optimizer `tt train` uses (AdamW with global-norm clipping), and fed one fixed
synthetic batch of the right shapes through the distributed step `tt train` runs
(`tt_cli.training.step`). The first `warmup` steps (tracing, XLA compilation, allocator growth) are
timed apart and excluded; each timed step is synchronised by reading its loss, and the
median over the timed steps is reported. All models stay built and the modes take
turns step by step, so that other work on a shared machine slows every mode alike
rather than whichever ran while it was busy. Peak memory is each mode's own: the peak
during its build and warm-up above what was in use before it was built (earlier
modes' models included in that baseline).

The third tower for `lit`/`3t` is, by default, a randomly initialised ViT of the
scale's own size (no weights are needed to measure time); `pretrained` names presets
to load instead: several make 3T learn from each (LiT locks one, so its modes are then
left out). `3t-precomputed` feeds `h_embedding` (and `h_embedding_{k}` for tower k)
instead of `h_image`, as training on shards made by `tt data embed` does.
`accum_steps` runs every step in that many micro-batches, as `tt train --accum-steps`
does (the global batch stays `batch_size`); `remat` rematerialises the towers' blocks, as
`tt train --remat` does.

In use (what `tt bench --scale tiny --batch-size 8 --steps 3` runs; its numbers are this machine's):

```python
settings = BenchSettings(scale="tiny", batch_size=8, steps=3, warmup=1, modes=("clip",))
result = run_bench(settings)
result["modes"][0]["step_ms"]  # 41.2
```
"""

import dataclasses
import gc
import os
import platform
import statistics
import time

from tt_cli import storage
from tt_cli.bench import flops as flops_lib
from tt_cli.bench import memory
from tt_cli.errors import InvalidValueError, UnreadableDataError

# Bench mode -> (ThreeTowers mode, h embeddings precomputed?)
MODES = {
    "clip": ("clip", False),
    "lit": ("lit", False),
    "3t": ("3t", False),
    "3t-precomputed": ("3t", True),
    "lit-precomputed": ("lit", True),
}
DEFAULT_MODES = ("clip", "lit", "3t", "3t-precomputed")


@dataclasses.dataclass
class BenchSettings:
    scale: str = "b16"
    image_size: int = None  # the trained image tower's side; None: the scale's
    batch_size: int = 256
    accum_steps: int = 1
    remat: bool = False  # rematerialise the towers' transformer blocks, as `tt train --remat`
    steps: int = 20
    warmup: int = 3
    modes: tuple = None  # None: DEFAULT_MODES (without LiT's when there are several towers)
    precision: str = "auto"
    jit: bool = None  # None: as `tt train` resolves it
    strategy: str = "auto"
    pretrained: tuple = ()  # preset names, one per third tower; none: a random ViT of the scale's size
    max_text_len: int = 32
    vocab_size: int = 32000
    pooling: str = "token"
    lit_head: bool = False
    seed: int = 0

    def __post_init__(self):
        self.pretrained = (self.pretrained,) if isinstance(self.pretrained, str) else tuple(self.pretrained or ())
        several = len(self.pretrained) > 1
        if self.modes is None:
            self.modes = tuple(m for m in DEFAULT_MODES if not (several and MODES[m][0] == "lit"))
        lit = [m for m in self.modes if MODES[m][0] == "lit"]
        if several and lit:
            others = ",".join(m for m in self.modes if m not in lit) or "3t"
            raise InvalidValueError(
                f"LiT locks one pretrained tower, not {len(self.pretrained)} (modes {', '.join(lit)})",
                remedy=("modes", others, "to time the others"),
            )


def parse_modes(text):
    modes = tuple(m.strip() for m in text.split(",") if m.strip())
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise InvalidValueError(f"unknown mode(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(MODES)}.")
    return modes


def check_pipeline_inputs(data, tokenizer, tfds=None):
    """Fails with one line, before any model is built, when the shards or the tokenizer
    for timing the input pipeline are missing (the timing runs after the models')."""
    from tt_cli.data import schema, tfds_catalog
    from tt_cli.data.tokenizer import check_sentencepiece_file

    if data is None:
        return
    if not tfds_catalog.is_tfds(data) and not storage.exists(data) and not any(c in data for c in "*?["):
        raise UnreadableDataError(f"{data}: no such file or directory.")
    schema.resolve_shards(data, tfds)
    if tokenizer is not None:
        check_sentencepiece_file(tokenizer)


def _device_description(strategy):
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
        return f"{len(gpus)} x {names[0]}", "GPU"
    if "TPU" in type(strategy).__name__:
        return f"TPU ({strategy.num_replicas_in_sync} cores)", "TPU"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU: {model}, {os.cpu_count()} logical cores", "CPU"


def _random_vit_tower(scale):
    """A frozen third tower with random weights, the scale's size: timing needs no weights."""
    from models import PretrainedTower, vit_backbone

    return PretrainedTower(vit_backbone(scale, name="bench_h_backbone"), name="pretrained_tower")


def _load_towers(settings, scale):
    """(the third towers, what they are in words)."""
    from tt_cli.presets import load_pretrained_tower

    if not settings.pretrained:
        return [_random_vit_tower(scale)], f"random ViT at {scale.name} (no weights needed for timing)"
    towers = [load_pretrained_tower(name, settings.scale) for name in settings.pretrained]
    return towers, " + ".join(tower.preset for tower in towers)


def synthetic_batch(rng, batch_size, image_size, max_len, vocab_size, h_image_size=None, h_dim=None):
    """A batch of the shapes training sees: pixels, EOS-terminated token ids, h inputs.
    `h_image_size`/`h_dim` may be lists, one entry per third tower."""
    import tensorflow as tf

    from models.three_towers import TOWER_EMBEDDING, TOWER_IMAGE, tower_input_key
    from models.tokens import EOS_ID, PAD_ID

    tokens = rng.integers(3, vocab_size, size=(batch_size, max_len)).astype("int32")
    lengths = rng.integers(2, max_len + 1, size=batch_size)
    for row, n in zip(tokens, lengths):
        row[n - 1], row[n:] = EOS_ID, PAD_ID
    batch = {
        "image": rng.integers(0, 256, size=(batch_size, image_size, image_size, 3)).astype("uint8"),
        "tokens": tokens,
    }
    as_list = lambda value: value if isinstance(value, list) else ([] if value is None else [value])
    for k, size in enumerate(as_list(h_image_size)):
        batch[tower_input_key(TOWER_IMAGE, k)] = rng.integers(0, 256, size=(batch_size, *size, 3)).astype("uint8")
    for k, dim in enumerate(as_list(h_dim)):
        batch[tower_input_key(TOWER_EMBEDDING, k)] = rng.standard_normal((batch_size, dim)).astype("float32")
    return {k: tf.constant(v) for k, v in batch.items()}


class _ModeUnderTest:
    """One mode's model, compiled, warmed up and ready to time a step."""

    def __init__(self, name, settings, scale, strategy, policy, jit, towers, on_step):
        import keras
        import numpy as np
        import tensorflow as tf

        from models import ThreeTowers
        from models.remat import rematerialize_towers
        from tt_cli.training.optimizer import make_optimizer
        from tt_cli.training.step import make_distributed_step

        self.name, self.settings = name, settings
        self.model_mode, self.precomputed = MODES[name]
        gc.collect()
        keras.mixed_precision.set_global_policy(policy)
        memory_before = memory.current_bytes()
        memory.reset_peak()
        h = towers if self.model_mode != "clip" else []
        with strategy.scope():
            keras.utils.set_random_seed(settings.seed)
            self.model = ThreeTowers.from_scale(
                scale,
                mode=self.model_mode,
                vocab_size=settings.vocab_size,
                max_len=settings.max_text_len,
                pretrained_tower=h or None,
                pooling=settings.pooling,
                lit_head=settings.lit_head,
            )
            if settings.remat:
                rematerialize_towers(self.model)
            # tt train's optimizer, at a constant learning rate (a schedule costs nothing).
            self.model.compile(optimizer=make_optimizer(5e-4, policy=policy))
            # Slots made now, eagerly: a tf.function that creates variables is traced twice.
            self.model.optimizer.build(self.model.trainable_variables)
        rng = np.random.default_rng(settings.seed)
        batch = synthetic_batch(
            rng,
            settings.batch_size,
            scale.image_size,
            settings.max_text_len,
            settings.vocab_size,
            h_image_size=[tower.image_size for tower in h] if not self.precomputed else None,
            h_dim=[tower.output_dim for tower in h] if self.precomputed else None,
        )
        dataset = tf.data.Dataset.from_tensors(batch).repeat()
        self.iterator = iter(strategy.experimental_distribute_dataset(dataset))
        self.train_step = make_distributed_step(self.model, strategy, jit, settings.accum_steps)
        self.warmup_seconds = []
        for _ in range(settings.warmup):
            self.warmup_seconds.append(self.step()[0])
            on_step()
        peak, self.peak_source = memory.peak_bytes()
        # What this mode adds at its peak over what was in use before it was built.
        self.peak_memory = max(0, peak - memory_before)
        self.times, self.loss = [], None
        self.flops = flops_lib.train_step_flops(
            self.model,
            settings.batch_size,
            precomputed=self.precomputed,
            accum_steps=settings.accum_steps,
            remat=settings.remat,
        )

    def step(self):
        start = time.perf_counter()
        logs = self.train_step(self.iterator)
        loss = float(logs["loss"])  # reading the loss waits for the step to finish
        return time.perf_counter() - start, loss

    def timed_step(self):
        seconds, self.loss = self.step()
        self.times.append(seconds)

    def result(self):
        import numpy as np

        median = statistics.median(self.times)
        total = self.flops["total"]
        return {
            "mode": self.name,
            "model_mode": self.model_mode,
            "precomputed_h": self.precomputed,
            "pairs_per_second": self.settings.batch_size / median,
            "step_ms": median * 1e3,
            "step_ms_min": min(self.times) * 1e3,
            "step_ms_max": max(self.times) * 1e3,
            "step_ms_all": [t * 1e3 for t in self.times],
            "warmup_seconds": self.warmup_seconds,
            "peak_memory_bytes": int(self.peak_memory),
            "peak_memory_source": self.peak_source + ", above the memory in use before the mode was built",
            "flops_per_step": total,
            "flops_trained_forward": self.flops["trained_forward"],
            "flops_frozen_forward": self.flops["frozen_forward"],
            "achieved_flops_per_second": total / median,
            "trainable_parameters": int(sum(np.prod(v.shape) for v in self.model.trainable_variables)),
            "final_loss": self.loss,
        }


def run_bench(settings, log=lambda message: None, on_step=lambda: None, embeddings=()):
    """Benchmarks every mode of `settings.modes`; returns {"header": ..., "modes": [...]}.
    `embeddings`: the embedding folders the input pipeline will be timed with; each must
    have been made by its `settings.pretrained` tower (`lockstep.check_tower`), as in training."""
    from tt_cli.training.runtime import start_runtime, versions

    runtime = start_runtime(
        settings.strategy, seed=settings.seed, precision=settings.precision, jit=settings.jit
    )  # before any other TensorFlow op
    strategy, policy, jit = runtime.strategy, runtime.policy, runtime.jit

    from models import get_scale
    from tt_cli.step_memory import check_step_fits, out_of_memory_named
    from tt_cli.training.config import model_scale
    from tt_cli.training.step import check_accum_steps

    check_accum_steps(settings.batch_size, strategy.num_replicas_in_sync, settings.accum_steps)
    scale = model_scale(settings.scale, settings.image_size)  # the trained image tower's
    check_step_fits(
        scale,
        settings.batch_size,
        strategy.num_replicas_in_sync,
        settings.max_text_len,
        settings.vocab_size,
        settings.accum_steps,
    )
    device, device_kind = _device_description(strategy)
    towers, tower_name = ([], None)
    if any(MODES[m][0] != "clip" for m in settings.modes):
        towers, tower_name = _load_towers(settings, get_scale(settings.scale))  # h at its own size
    if settings.pretrained:  # without it the towers are random: timing reads any embeddings
        from tt_cli.data.lockstep import check_tower

        for folder, tower in zip(embeddings, towers):
            check_tower(folder, tower)
    header = {
        "device": device,
        "device_kind": device_kind,
        "strategy": runtime.strategy_name,
        "replicas": strategy.num_replicas_in_sync,
        "precision": policy,
        "jit": jit,
        "scale": settings.scale,
        "image_size": scale.image_size,
        "batch_size": settings.batch_size,
        "accum_steps": settings.accum_steps,
        "remat": settings.remat,
        "steps": settings.steps,
        "warmup": settings.warmup,
        "max_text_len": settings.max_text_len,
        "vocab_size": settings.vocab_size,
        "pretrained": tower_name,
        "pretrained_towers": len(towers),
        **versions(),
        # Other processes on the machine slow every number down: the load says how busy it was.
        "load_average_start": os.getloadavg()[0],
    }
    header["baseline_memory_bytes"] = memory.current_bytes()
    modes = []
    sizes = dict(batch_size=settings.batch_size, max_text_len=settings.max_text_len, vocab_size=settings.vocab_size)
    with out_of_memory_named(**sizes):
        for name in settings.modes:
            log(f"{name}: building and warming up ({settings.warmup} steps)")
            modes.append(_ModeUnderTest(name, settings, scale, strategy, policy, jit, towers, on_step))
        log(f"timing {settings.steps} steps per mode, the modes taking turns")
        for _ in range(settings.steps):
            for mode in modes:
                mode.timed_step()
                on_step()
    results = [mode.result() for mode in modes]
    header["load_average_end"] = os.getloadavg()[0]
    clip = next((r for r in results if r["mode"] == "clip"), None)
    for r in results:
        r["time_vs_clip"] = r["step_ms"] / clip["step_ms"] if clip else None
    return {"header": header, "modes": results}

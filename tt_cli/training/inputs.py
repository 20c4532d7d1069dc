"""The input of `tt train`: the training shards as endless per-replica batches, resumed
at the step the run restarts from.

In use (inside `trainer.train`, which makes every argument):

```python
dataset = training_input(config, runtime, files, tokenizer, built, start_step=0)
```
"""


def training_input(config, runtime, files, tokenizer, built, start_step, fields=None):
    """A distributed dataset: each input pipeline (worker) reads its own shards, and feeds
    each frozen third tower as its record says (`built.third_towers`). `fields`: the files
    are a TFDS dataset's (`schema.record_fields`)."""
    from tt_cli.data.pipeline import train_dataset

    model = built.model
    image_size = model.image_tower.image_size if model.image_tower is not None else (built.scale.image_size,) * 2
    if config.init and model.image_tower is None:  # LiT: the locked tower's images, decoded once
        image_size = model.image_size
    # Each input pipeline makes its own tokenizer: the SentencePiece resource must
    # live where the dataset is built.
    return runtime.strategy.distribute_datasets_from_function(
        lambda ctx: train_dataset(
            files,
            config.batch_size,
            image_size,
            tokenizer.copy(),
            third_towers=built.third_towers,
            seed=config.seed,
            start_step=start_step,
            shuffle_buffer=config.shuffle_buffer,
            input_context=ctx,
            augment=config.augment,
            fields=fields,
            resizing=model.image_resizing,
        )
    )

"""The input of `tt train`: the training shards as endless per-replica batches, resumed
at the step the run restarts from.

Example:
>>> dataset = training_input(config, runtime, files, tokenizer, built, start_step=0)   # doctest: +SKIP
"""


def training_input(config, runtime, files, tokenizer, built, start_step):
    """A distributed dataset: each input pipeline (worker) reads its own shards. Each frozen
    tower's images are decoded at its own size unless its embeddings are precomputed (in an
    embeddings folder beside the shards, or, for the first tower, in the shards themselves)."""
    from models.three_towers import tower_input_key
    from tt_cli.data.pipeline import train_dataset
    from tt_cli.data.preset_tokenizer import PresetTokenizer
    from tt_cli.data.tokenizer import TextTokenizer

    model, towers, precomputed = built.model, built.towers, built.precomputed
    image_size = model.image_tower.image_size if model.image_tower is not None else (built.scale.image_size,) * 2
    if config.init and model.image_tower is None:  # LiT: the locked tower's images, decoded once
        image_size = model.image_size
    # Per tower, in order: the size its images are decoded at, or the width of the shards' own embeddings.
    h_sizes = [None if pre else getattr(tower, "image_size", None) for tower, pre in zip(towers, precomputed)]
    folders = len(built.embeddings)  # towers 0..folders-1 read theirs from an embeddings folder
    h_dims = [
        tower.output_dim if pre and k >= folders else None for k, (tower, pre) in enumerate(zip(towers, precomputed))
    ]
    # Each input pipeline makes its own tokenizer: the SentencePiece resource (and the
    # byte-pair tables of a CLIP preset's) must live where the dataset is built.
    if config.init:
        own_tokenizer = lambda: PresetTokenizer(tokenizer.preset_dir)
    else:
        own_tokenizer = lambda: TextTokenizer(tokenizer.model_bytes, config.max_text_len)
    # Text third towers read the caption through their own preprocessor, made per pipeline too.
    text_towers = [(k, t) for k, t in enumerate(towers) if getattr(t, "input_key", None) == "h_text"]
    own_text_inputs = lambda: [(tower_input_key("h_text", k), tower.preprocessor()) for k, tower in text_towers]
    return runtime.strategy.distribute_datasets_from_function(
        lambda ctx: train_dataset(
            files,
            config.batch_size,
            image_size,
            own_tokenizer(),
            h_image_size=h_sizes,
            h_embedding_dim=h_dims,
            seed=config.seed,
            start_step=start_step,
            shuffle_buffer=config.shuffle_buffer,
            input_context=ctx,
            embeddings=built.embeddings,
            augment=config.augment,
            resizing=model.image_resizing,
            text_inputs=own_text_inputs(),
        )
    )

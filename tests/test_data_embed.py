"""`tt data embed`: precomputed third-tower embeddings, beside the data, equal running the tower directly.

Conversion and inspection run in `tt` subprocesses (TF-free side); `embed`
runs in this process through Click's runner (it is TF side).
"""

import json

import numpy as np
from click.testing import CliRunner
from support.data_corpus import decode_pil, good_rows, run_tt, write_jsonl

from tt_cli.main import cli


def test_embed_equals_the_tower_on_the_same_images(tmp_path, tiny_vit_preset):
    import tensorflow as tf

    from models.pretrained_tower import PretrainedTower
    from tt_cli.data.lockstep import tower_fingerprint

    rows = good_rows(str(tmp_path), n=5, with_jpeg=False)  # non-square sizes: 16x40 ... 28x32
    write_jsonl(tmp_path / "c.jsonl", rows)
    shards, out = tmp_path / "shards", tmp_path / "shards_h"
    run_tt("data", "convert", tmp_path / "c.jsonl", shards, "--num-shards", 2, "--workers", 1)

    result = CliRunner().invoke(
        cli, ["data", "embed", str(shards), "--pretrained", tiny_vit_preset, "--out", str(out), "--batch-size", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "embedded 5 images" in result.output

    tower = PretrainedTower.from_preset(tiny_vit_preset)
    info = json.loads((out / "dataset.json").read_text())
    assert info["h_embedding"] == {
        "pretrained": tiny_vit_preset,
        "preprocessing": tower.preprocessing,
        "dim": 16,
        "weights_sha256": tower_fingerprint(tower),
    }
    assert info["embeddings_of"] == {"dataset": str(shards), "num_examples": 5, "num_shards": 2}
    source = json.loads((shards / "dataset.json").read_text())
    assert info["num_examples"] == 5 and info["shards"] == source["shards"]

    # Only what is new: per source shard, the keys in its record order and their embeddings.
    spec = {"key": tf.io.FixedLenFeature([], tf.string), "h_embedding": tf.io.FixedLenFeature([16], tf.float32)}
    stored = {}
    for name in info["shards"]:
        records = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(out / name))]
        assert all(sorted(r.features.feature) == ["h_embedding", "key"] for r in records)
        source_keys = [
            tf.train.Example.FromString(r.numpy()).features.feature["key"].bytes_list.value[0]
            for r in tf.data.TFRecordDataset(str(shards / name))
        ]
        assert [r.features.feature["key"].bytes_list.value[0] for r in records] == source_keys
        stored.update(
            {
                ex["key"].numpy().decode(): ex["h_embedding"].numpy()
                for ex in tf.data.TFRecordDataset(str(out / name)).map(lambda s: tf.io.parse_single_example(s, spec))
            }
        )
    for row in rows:
        # Directly: the source file decoded by Pillow, resized to the tower's input as
        # training feeds h online (antialiased bilinear, rounded to uint8), one at a time.
        image = tf.image.resize(decode_pil(str(tmp_path / row["image"])), tower.image_size, antialias=True)
        image = tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)
        direct = np.asarray(tower(image[None]))[0]
        np.testing.assert_allclose(stored[row["key"]], direct, rtol=1e-5, atol=1e-5)

    # Shards written by TensorFlow read back on the TF-free side, CRCs included.
    run_tt("data", "inspect", out, "--verify", "--json", tmp_path / "s.json")
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["features"]["h_embedding"] == {"type": "float", "examples": 5}
    assert summary["h_embedding_dims"] == {"16": 5}

    # The same command again has nothing left to do; embeddings of other shards need --overwrite.
    again = CliRunner().invoke(cli, ["data", "embed", str(shards), "--pretrained", tiny_vit_preset, "--out", str(out)])
    assert again.exit_code == 0 and "(2 already finished)" in again.output, again.output
    other = CliRunner().invoke(
        cli,
        [
            "data",
            "embed",
            str(shards / "shard-00000-of-00002.tfrecord"),
            "--pretrained",
            tiny_vit_preset,
            "--out",
            str(out),
        ],
    )
    assert other.exit_code == 2 and "--overwrite" in other.output, other.output


def test_embed_unavailable_preset_is_a_user_error(tmp_path):
    rows = good_rows(str(tmp_path), n=2)
    write_jsonl(tmp_path / "c.jsonl", rows)
    run_tt("data", "convert", tmp_path / "c.jsonl", tmp_path / "shards", "--workers", 1)
    result = CliRunner().invoke(
        cli,
        [
            "data",
            "embed",
            str(tmp_path / "shards"),
            "--pretrained",
            str(tmp_path / "no_such_preset"),
            "--out",
            str(tmp_path / "h"),
        ],
    )
    assert result.exit_code == 2 and "local preset directory" in result.output

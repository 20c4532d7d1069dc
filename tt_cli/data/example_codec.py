"""The TF-free codec of the shard schema's Examples, with the `tfrecord` package's protobuf.

The schema itself (keys, how an Example is built and read back) lives in
`schema`; this module only supplies the `tfrecord` package's protobuf classes.
Never import it next to TensorFlow: the two register the same protobuf names.
The TensorFlow side's counterpart is `tf_schema`.

Example:
>>> data = encode_example(image=b"<the image file's bytes>", texts=["a cat"], key="cat.png", label=0)
>>> example = decode_example(data)
>>> example["texts"], example["key"], example["label"]
([b'a cat'], [b'cat.png'], [0])
"""

from tfrecord import example_pb2

from tt_cli.data import schema


def encode_example(image, texts, key, label=None, h_embedding=None):
    """One serialized Example: `image` bytes, `texts` str, `key` str, optional int `label` and floats."""
    return schema.build_example(example_pb2, image, texts, key, label, h_embedding)


def decode_example(data):
    """{feature name: list of values} of one serialized Example; raises
    `google.protobuf.message.DecodeError` when `data` is not one."""
    example = example_pb2.Example()
    example.ParseFromString(data)
    return schema.feature_values(example)

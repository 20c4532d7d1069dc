"""`tt export`: take a trained run out of the toolkit, from the run directory alone.

One module per export format, each importing TensorFlow/Keras only when used:

- `savedmodel` -- a servable TensorFlow SavedModel taking raw images and raw text;
- `keras_file` -- the whole `ThreeTowers` model as a `.keras` file;
- `preset`     -- the image tower as a KerasHub preset, text side and tokenizer beside it;
- `litert`, `onnx` -- image and text encoders for devices and non-TensorFlow runtimes, both
  converted from the encoders of `encoders` (with the tokenizer and `encoders.json` beside).
"""

"""`tt export`: take a trained run out of the toolkit, from the run directory alone.

`from_run` is the entry point, for the commands and for Python alike: `savedmodel`,
`keras` and `preset` check OUT against tt's ownership rule (never the run, never a file
tt cannot prove it wrote) before the run is read, then write the export and record it.
Below it, one module per format writes a loaded run, importing TensorFlow/Keras only when
used:

- `savedmodel` -- a servable TensorFlow SavedModel taking raw images and raw text;
- `keras_file` -- the whole `ThreeTowers` model as a `.keras` file;
- `preset`     -- the image tower as a KerasHub preset, text side and tokenizer beside it;
- `litert`, `onnx` -- image and text encoders for devices and non-TensorFlow runtimes, both
  converted from the encoders of `encoders` (with the tokenizer and `encoders.json` beside).
"""

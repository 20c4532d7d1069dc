"""What the tests share that is not a test: helper modules they import (`data_corpus`,
`ranking_reference`, `tiny_clip_presets`, `combined_shards`) and the scripts they run in a
subprocess of their own (`mirrored_step`, `accum_step`, `remat_step`, `embed_two_replicas`:
two logical CPUs must be configured before any TensorFlow op runs)."""

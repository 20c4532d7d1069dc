"""The token-id convention the text tower is built on, owned by the model package.

Ids: 0 = padding, 1 = unknown, 2 = end of sequence (EOS); there is no BOS. Every
token sequence ends with EOS and is right-padded with PAD, so the text tower pools
at the last non-padding position. Any tokenizer feeding `TextTower` follows this
(tt's SentencePiece tokenizer is trained with these ids).

This module imports nothing, so that TensorFlow-free code (the tokenizer trainer)
can use it without importing Keras; see `tt_cli.data.tokenizer` for how.

Example:
>>> [EOS_ID, PAD_ID, PAD_ID]  # an empty caption of max_len 3
[2, 0, 0]
"""

PAD_ID = 0
UNK_ID = 1
EOS_ID = 2

"""`tt train` and `tt pretrain`: configuration, distribution, the loop and its callbacks."""

"""`tt eval`: zero-shot classification, retrieval, few-shot linear probes and the 3T + LiT ensemble, one module each."""

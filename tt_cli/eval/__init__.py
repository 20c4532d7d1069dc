"""Evaluation: zero-shot classification, retrieval, few-shot, the 3T + LiT ensemble, and what `tt eval` reports."""

"""Data layer: conversion to TFRecord shards, the schema, tokenizer, tf.data input."""

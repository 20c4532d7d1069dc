"""The built-in demo: a synthetic captioned image set that needs no network."""

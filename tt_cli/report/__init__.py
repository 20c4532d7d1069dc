"""`tt report` and `tt eval --report`: one self-contained HTML page of a run (see build.py)."""

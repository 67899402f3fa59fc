"""Legacy ``llava.model`` package: re-exports of :mod:`streamforest.model` in its submodules (no eager imports)."""

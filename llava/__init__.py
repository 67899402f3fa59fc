"""Legacy import paths of the original StreamForest (``llava.*``): thin re-exports of :mod:`streamforest`.

Import-light on purpose (the original eagerly imported its training stack); import submodules directly.
"""

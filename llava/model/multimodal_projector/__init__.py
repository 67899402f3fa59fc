"""Legacy ``llava.model.multimodal_projector``: see :mod:`llava.model.multimodal_projector.builder`."""

"""The scene model: CLIP image/text backbones and the shot encoder, the genre bank and
genre fusion (shot level), the context model and ``SceneModel``.

Nothing is imported here (no torch on ``import sseg.modeling``).
"""

"""Video in, scenes out: decoding, shot detection, keyframes, CLIP keyframe features,
the ``segment`` pipeline, scene grouping, timecodes and the demo model.

Nothing is imported here: ``import sseg`` and the CLI's start stay cheap; import
the modules themselves (``sseg.segment`` is ``sseg.segmentation.pipeline.segment``).
"""

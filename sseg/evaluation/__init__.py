"""Evaluation: scene-boundary metrics, test-time shot splitting, and prediction over a
feature store with scoring (``scoring``).

Nothing is imported here.
"""

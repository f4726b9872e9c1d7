"""Keyframe feature stores: the sharded fp16 store, its merge/verify tools, extraction
from videos or keyframe folders and its DataLoader side.

Nothing is imported here.
"""

"""Helpers that generate test inputs (procedural videos with known cuts)."""

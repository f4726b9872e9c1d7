"""File-name templates for split clips and saved images, with PySceneDetect's variables.

``$VIDEO_NAME-Scene-$SCENE_NUMBER`` style templates (``string.Template`` syntax, also
``${NAME}``). A template is checked when the command starts, before any decoding: an
unknown variable, a path separator, or a template that would give two scenes (or two
images, or two input videos) the same file name is an :class:`~sseg.errors.InputError`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from string import Template

from ..errors import InputError
from ..segmentation.timecode import format_timecode

SCENE_VARIABLES = (
    "VIDEO_NAME",
    "SCENE_NUMBER",
    "START_TIME",
    "END_TIME",
    "START_FRAME",
    "END_FRAME",
)
IMAGE_VARIABLES = (
    "VIDEO_NAME",
    "SCENE_NUMBER",
    "IMAGE_NUMBER",
    "FRAME_NUMBER",
    "TIMESTAMP_MS",
    "TIMECODE",
)
DEFAULT_SPLIT_TEMPLATE = "$VIDEO_NAME-Scene-$SCENE_NUMBER"
DEFAULT_IMAGE_TEMPLATE = "$VIDEO_NAME-Scene-$SCENE_NUMBER-$IMAGE_NUMBER"
# an extension the template itself ends with (as PySceneDetect: 2-4 characters)
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{2,4}$")


@dataclass(frozen=True)
class FileNameTemplate:
    """A checked template; :meth:`fill` substitutes the variables."""

    text: str
    variables: frozenset[str]

    def fill(self, **values: object) -> str:
        """The file name for ``values`` (every variable of the template must be given)."""
        return Template(self.text).substitute({k: str(v) for k, v in values.items()})

    @property
    def extension(self) -> str | None:
        """The extension the template ends with (``.mkv``), or None."""
        match = _EXTENSION.search(self.text)
        return match.group(0).lower() if match else None


def template_variables(text: str) -> set[str]:
    """Variable names used in ``text``; InputError on a stray ``$``."""
    names = set()
    for match in Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            raise InputError(
                f"file-name template {text!r}: a '$' at character {match.start() + 1} starts "
                "no variable (write $$ for a literal dollar sign)"
            )
        name = match.group("named") or match.group("braced")
        if name:
            names.add(name)
    return names


def parse_template(
    text: str,
    option: str,
    allowed: tuple[str, ...],
    unique_by: tuple[tuple[str, ...], ...],
    many_videos: bool = False,
) -> FileNameTemplate:
    """Check ``text`` for ``option``; return the template.

    ``unique_by``: alternatives, each a set of variables that together tell the files
    of one video apart (e.g. ``("SCENE_NUMBER",)``); one alternative must be used.
    ``many_videos``: several inputs share the output folder, so ``$VIDEO_NAME`` is needed.
    """
    if not text.strip():
        raise InputError(f"{option}: the file-name template is empty")
    if "/" in text or "\\" in text:
        raise InputError(f"{option} {text!r}: a file name, not a path (no '/' or '\\')")
    names = template_variables(text)
    unknown = sorted(names - set(allowed))
    if unknown:
        known = ", ".join(f"${n}" for n in allowed)
        prefix = next((n for n in allowed if unknown[0].startswith(n)), None)
        hint = f"; write ${{{prefix}}} when letters, digits or _ follow" if prefix else ""
        raise InputError(
            f"{option} {text!r}: unknown variable ${unknown[0]} (known: {known}){hint}"
        )
    if not any(set(group) <= names for group in unique_by):
        needs = " or ".join("+".join(f"${n}" for n in group) for group in unique_by)
        raise InputError(f"{option} {text!r}: every file would get the same name; use {needs}")
    if many_videos and "VIDEO_NAME" not in names:
        raise InputError(f"{option} {text!r}: several input videos need $VIDEO_NAME in it")
    return FileNameTemplate(text, frozenset(names))


def scene_number(index: int, total: int) -> str:
    """1-based scene number, zero-padded to at least 3 digits (PySceneDetect's width)."""
    width = max(3, math.floor(math.log10(max(total, 1))) + 1)
    return f"{index + 1:0{width}d}"


def image_number(index: int, per_scene: int) -> str:
    """1-based image number within a scene, zero-padded as PySceneDetect does."""
    width = math.floor(math.log10(max(per_scene, 1))) + 2
    return f"{index + 1:0{width}d}"


def file_timecode(seconds: float) -> str:
    """``HH;MM;SS.mmm``: a timecode that is safe in file names on every system."""
    return format_timecode(seconds).replace(":", ";")


def scene_values(video_name: str, scene, total: int) -> dict[str, str]:
    """Template values of one scene (frames as in PySceneDetect: 0-based start, end
    exclusive)."""
    return {
        "VIDEO_NAME": video_name,
        "SCENE_NUMBER": scene_number(scene.index, total),
        "START_TIME": file_timecode(scene.start_time),
        "END_TIME": file_timecode(scene.end_time),
        "START_FRAME": str(scene.start_frame),
        "END_FRAME": str(scene.end_frame),
    }

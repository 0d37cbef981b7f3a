"""Frame sources: what a stream pushes. Pure: no Tornado, no I/O but reading mock files.

A source is immutable and shared by every timeline of its stream; the
per-timeline part (generator state, replay position) lives in the timeline.
"""

from __future__ import annotations

import base64
import binascii
import json
from itertools import pairwise
from pathlib import Path
from random import Random
from typing import Any

from streams.jsontext import dumps
from streams.template import CompiledTemplate


class Frame:
    """One message ready to send: its payload and its type.

    ``wire`` and ``deflated`` are filled in by the transport the first time the
    frame is sent, so a frame sent to many clients is encoded once.
    """

    __slots__ = ("data", "binary", "wire", "deflated", "sse")
    is_json = False  # whether ``data`` is JSON text (a topic envelope embeds it as a value, not a string)
    event: str | None = None  # a frame the server sends about the stream itself (SSE: its event name)

    def __init__(self, data: bytes, binary: bool = False) -> None:
        self.data = data
        self.binary = binary
        self.wire: bytes | None = None  # the encoded WebSocket frame
        self.deflated: tuple[int, bytes] | None = None  # (window bits, the compressed frame)
        self.sse: tuple[int | None, str | None, bytes] | None = None  # (number, event, the encoded SSE event)

    @classmethod
    def text(cls, text: str) -> Frame:
        """A text frame."""
        return cls(text.encode("utf-8"))

    def __repr__(self) -> str:
        return f"Frame({self.data[:40]!r}{'...' if len(self.data) > 40 else ''}, binary={self.binary})"


class JsonFrame(Frame):
    """A frame whose data is JSON text: rendered from a template, or a JSON value of a mock file."""

    __slots__ = ()
    is_json = True


class RandomSource:
    """Endless frames rendered from a compiled template."""

    length = None  # endless
    offsets_s = None  # no recorded timing

    def __init__(self, template: CompiledTemplate) -> None:
        self.template = template

    def new_state(self) -> list:
        """Generator state for a new timeline."""
        return self.template.new_state()

    def frame(self, index: int, state: list, rng: Random) -> Frame:
        """The next frame of a timeline (``index`` is unused: every frame is fresh)."""
        return JsonFrame(self.template.render_utf8(state, rng))


class ReplaySource:
    """Frames read from a mock file, encoded once at load time."""

    def __init__(self, frames: list[Frame], offsets_s: list[float] | None) -> None:
        self.frames = tuple(frames)
        self.length = len(self.frames)
        # seconds from the first frame, for `timing: recorded`; None when the file has no "t"
        self.offsets_s = tuple(offsets_s) if offsets_s is not None else None

    def new_state(self) -> None:
        """Replay timelines need no state beyond their position."""
        return None

    def frame(self, index: int, state: None, rng: Random) -> Frame:
        """The frame at ``index``."""
        return self.frames[index]


class MockFileError(ValueError):
    """A mock file that cannot be replayed, with the line and column when known."""

    def __init__(self, path: Path, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f"{path}" + (f":{line}" if line else "") + (f":{column}" if line and column else "")
        super().__init__(f"{where}: {message}")
        self.path = path


def load_replay_file(path: Path) -> ReplaySource:
    """Load a .json (array or single value) or .jsonl/.ndjson (one frame per line) mock file."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise MockFileError(path, "file not found") from None
    except UnicodeDecodeError as e:
        raise MockFileError(path, f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise MockFileError(path, f"cannot read: {e.strerror}") from None
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        frames, offsets = _frames_from_lines(path, text)
    else:
        frames, offsets = _frames_from_json(path, text), None
    if not frames:
        raise MockFileError(path, "no frames to replay: the file is empty "
                                  "(a .json file needs an array with at least one element or one object)")
    return ReplaySource(frames, offsets)


def _parse_error(path: Path, e: json.JSONDecodeError, line_offset: int = 0) -> MockFileError:
    return MockFileError(path, f"invalid JSON: {e.msg}", e.lineno + line_offset, e.colno)


def _frames_from_json(path: Path, text: str) -> list[Frame]:
    if not text.strip():
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise _parse_error(path, e) from None
    values = value if isinstance(value, list) else [value]
    return [_frame_of(v) for v in values]


def _frame_of(value: Any) -> Frame:
    """A replay element: strings go out as raw text, everything else as compact JSON."""
    return Frame.text(value) if isinstance(value, str) else JsonFrame.text(dumps(value))


def _frames_from_lines(path: Path, text: str) -> tuple[list[Frame], list[float] | None]:
    """One frame per line; recorded lines ({"t", "data"|"text"|"b64"}) keep their timing."""
    frames: list[Frame] = []
    offsets: list[float] = []
    timed = True
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            raise _parse_error(path, e, number - 1) from None
        recorded = _recorded_frame(path, number, value)
        if recorded is None and _is_record_marker(value):
            continue  # e.g. {"t": .., "event": "reconnected"}: not a frame
        if recorded is None:
            frames.append(_frame_of(value))
            timed = False
        else:
            frames.append(recorded[0])
            offsets.append(recorded[1])
    if not timed or not offsets:
        return frames, None
    if any(b < a for a, b in pairwise(offsets)):
        raise MockFileError(path, "recorded \"t\" values must not decrease")
    return frames, [t - offsets[0] for t in offsets]


def _is_record_marker(value: Any) -> bool:
    return isinstance(value, dict) and "t" in value and not {"data", "text", "b64"} & value.keys()


def _recorded_frame(path: Path, number: int, value: Any) -> tuple[Frame, float] | None:
    """The frame and its offset (s) of a recorded line, or None if the line is not one."""
    if not (isinstance(value, dict) and "t" in value and {"data", "text", "b64"} & value.keys()):
        return None
    t = value["t"]
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t < 0:
        raise MockFileError(path, f"\"t\" must be a number of milliseconds >= 0, got {t!r}", number)
    if "data" in value:
        frame = JsonFrame.text(dumps(value["data"]))
    elif "text" in value:
        if not isinstance(value["text"], str):
            raise MockFileError(path, f"\"text\" must be a string, got {value['text']!r}", number)
        frame = Frame.text(value["text"])
    else:
        try:
            frame = Frame(base64.b64decode(value["b64"], validate=True), binary=True)
        except (binascii.Error, TypeError, ValueError):
            raise MockFileError(path, "\"b64\" is not valid base64", number) from None
    return frame, t / 1000


Source = RandomSource | ReplaySource

"""Response JSON, for HTTP bodies, SSE events and socket frames alike.

orjson, except where it refuses a string (a client's lone surrogate echoed in an error
message): the standard library escapes those. A value many responses carry (one subscription
event, completed once for all its subscribers) is encoded once and embedded as it is."""

from __future__ import annotations

import json
from typing import Any

import orjson


class Encoded:
    """A value and its JSON, encoded once: each frame that carries it copies the bytes."""

    __slots__ = ("fragment", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        # Raises orjson.JSONEncodeError for what orjson refuses, before any frame is built.
        self.fragment = orjson.Fragment(orjson.dumps(value))


def encode(body: object) -> bytes:
    try:
        return orjson.dumps(body, default=_as_fragment)
    except orjson.JSONEncodeError:
        return json.dumps(body, default=_as_value).encode()


def _as_fragment(value: object) -> orjson.Fragment:
    if isinstance(value, Encoded):
        return value.fragment
    raise TypeError(f"{type(value).__name__} is not JSON")


def _as_value(value: object) -> Any:
    if isinstance(value, Encoded):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")

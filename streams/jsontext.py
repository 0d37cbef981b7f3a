"""Compact JSON text, byte-for-byte what JavaScript's JSON.stringify produces.

Front-ends compare frames with what the Node server used to send, so numbers
follow ECMAScript's Number::toString (``1`` not ``1.0``, ``1e-7`` not
``1e-07``, ``1e+21`` but ``100000000000000000000``) and non-ASCII text stays
UTF-8 instead of ``\\uXXXX`` escapes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

_dumps_str = json.JSONEncoder(ensure_ascii=False).encode


def js_number(x: float) -> str:
    """Format a float exactly as JavaScript's ``String(x)`` does."""
    if math.isnan(x) or math.isinf(x):
        return "null"  # JSON.stringify(NaN) === "null"
    if x == 0:
        return "0"  # also -0
    sign = "-" if x < 0 else ""
    mantissa, _, exp_text = repr(abs(x)).partition("e")
    exponent = int(exp_text) if exp_text else 0
    int_part, _, frac_part = mantissa.partition(".")
    digits = (int_part + frac_part).lstrip("0").rstrip("0")
    # n: position of the decimal point relative to the first significant digit
    if int_part != "0":
        n = len(int_part) + exponent
    else:
        n = exponent - (len(frac_part) - len(frac_part.lstrip("0")))
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        e = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e >= 0 else "e-") + str(abs(e))
    return sign + text


def js_key(key: Any) -> str:
    """The property name JavaScript would use for a YAML/JSON mapping key."""
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, float):
        return js_number(key)
    return str(key)


def dumps(value: Any) -> str:
    """Encode a JSON-like value as compact JSON text, as JSON.stringify would."""
    by_type = _BY_TYPE.get(type(value))  # the common leaves in one step (rules render a field per message)
    if by_type is not None:
        return by_type(value)
    if isinstance(value, str):
        return _dumps_str(value)
    if value is None or isinstance(value, bool):
        return "true" if value is True else "false" if value is False else "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return js_number(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(_dumps_str(js_key(k)) + ":" + dumps(v) for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if hasattr(value, "isoformat"):  # YAML turns unquoted dates into date objects
        return _dumps_str(value.isoformat())
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_BY_TYPE = {str: _dumps_str, int: str, float: js_number, bool: lambda v: "true" if v else "false",
            type(None): lambda _: "null"}

"""Text from servers and files made inert for a terminal: no escape sequence ever reaches it.

A remote server or a shared session file controls the token texts, error messages and labels we
print. Written raw, ``ESC ] 0 ;`` sets the window title, ``ESC [ 2 J`` clears the screen and
``ESC ] 52`` writes the clipboard. Every plain-text output therefore passes through ``inert``,
which shows each control character as a visible escape (``\\x1b``) and keeps newlines and tabs.
The stored text stays exact; only what is printed changes.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, the C1 controls (U+0080-U+009F, which some terminals
# read as 8-bit CSI/OSC), and the bidi overrides and isolates that reorder what a reader sees.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str) -> str:
    """``text`` with every control character shown as a visible escape (newlines and tabs kept)."""
    return _CONTROL.sub(_visible, text)


def inert_line(text: str) -> str:
    """One line for stderr or a label: also newlines and tabs shown escaped."""
    return inert(text).replace("\n", "\\n").replace("\t", "\\t")


# What JSON leaves raw inside strings with ensure_ascii=False: DEL, C1 and the bidi controls.
_JSON_RAW_CONTROL = re.compile("[\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def inert_json(line: str) -> str:
    """A JSON text with the control characters json.dumps leaves raw written as ``\\u`` escapes.

    They can only occur inside JSON strings, where ``\\u00XX`` means the same character, so the
    parsed value is unchanged.
    """
    return _JSON_RAW_CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", line)

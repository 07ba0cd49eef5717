"""Lists of strings typed on one line (stop strings, DRY sequence breakers): ``|`` between them."""

from __future__ import annotations


def parse_stops(text: str) -> tuple[str, ...]:
    """Strings as typed on one line: separated by ``|``; ``\\n`` is a line break, ``\\|`` a bar."""
    out, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "n|\\t":
            current.append({"n": "\n", "t": "\t"}.get(text[i + 1], text[i + 1]))
            i += 2
            continue
        if ch == "|":
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    out.append("".join(current))
    return tuple(s for s in out if s)


def format_stops(stops: tuple[str, ...]) -> str:
    """The inverse of ``parse_stops``."""
    return "|".join(s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", "\\n").replace("\t", "\\t") for s in stops)

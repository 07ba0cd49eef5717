"""Cell-width helpers for token labels: wide (CJK) characters take two cells, so pad by cells."""

from __future__ import annotations

from rich.cells import cell_len, chop_cells

_VISIBLE = {"\n": "↵", "\t": "⇥", "\r": "␍"}


def token_label(text: str) -> str:
    """A token's text made visible: quoted, with line breaks and tabs shown as symbols."""
    shown = "".join(_VISIBLE.get(ch, ch if ch.isprintable() else f"\\x{ord(ch):02x}") for ch in text)
    return f'"{shown}"' if text else "(part of a character)"


def fit(text: str, width: int, *, align: str = "left") -> str:
    """Cut or pad ``text`` to exactly ``width`` cells ("…" marks a cut)."""
    if width <= 0:
        return ""
    if cell_len(text) > width:
        head = chop_cells(text, max(1, width - 1))[0]
        text = head + "…"
    pad = " " * (width - cell_len(text))
    return pad + text if align == "right" else text + pad


EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar of ``fraction`` (0..1) of ``width`` cells, in eighths of a cell."""
    fraction = min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    text = "█" * full + (EIGHTHS[part] if part else "")
    return text.ljust(width)


def percent(p: float | None) -> str:
    """A probability as a percentage with sensible precision ("n/a" when unknown)."""
    if p is None:
        return "n/a"
    if p >= 0.1:
        return f"{p * 100:.1f}%"
    if p >= 0.0001:
        return f"{p * 100:.2f}%"
    return "<0.01%" if p > 0 else "0%"

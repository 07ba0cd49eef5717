"""Word-wrapping a stream of tokens into rows, incrementally (pure: no Textual here).

A token is appended to the last row; if it does not fit, the word it continues is carried to a
new row when that fits, else the token itself starts one, else it is cut by cells. Only the last
row ever changes, so an append costs O(token), never O(completion). Widths are terminal cells:
wide (CJK) characters count two.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len, chop_cells

NEWLINE = "\n"
"""Chunk text of a line-break token (drawn as one cell)."""
MARKER = -1
"""Chunk index of a note that is not model output, e.g. "[cancelled]"."""


@dataclass(slots=True)
class Chunk:
    """A piece of one token on one row (a token may wrap over several rows)."""

    index: int
    """Token index, or MARKER."""
    text: str
    """Display text, or NEWLINE."""

    @property
    def cells(self) -> int:
        return 1 if self.text == NEWLINE else cell_len(self.text)


def clean(text: str) -> str:
    """Tabs as spaces and control characters escaped: they would break the cell arithmetic."""
    if text.isprintable() or not text:
        return text
    out = []
    for ch in text:
        if ch == "\t":
            out.append("    ")
        elif ch == "\n" or ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{ord(ch):02x}")
    return "".join(out)


class TokenLayout:
    """Rows of chunks for a given width; ``token_row[i]`` is the row of token i's first chunk."""

    def __init__(self, width: int) -> None:
        self.width = max(1, width)
        self.rows: list[list[Chunk]] = [[]]
        self.row_width: list[int] = [0]
        self.token_row: list[int] = []

    # --- appending -------------------------------------------------------------------------
    def place(self, index: int, text: str) -> None:
        """Append token ``index`` (or a MARKER note) with display text ``text``."""
        text = clean(text)
        if not text:  # e.g. the first bytes of a multi-byte character: selectable, zero width
            self._add(index, "")
            return
        for n, part in enumerate(text.split("\n")):
            if n:
                self._add(index, NEWLINE)
                self._new_row()
            if part:
                self._place_part(index, part)

    def _new_row(self) -> None:
        self.rows.append([])
        self.row_width.append(0)

    def _add(self, index: int, text: str) -> None:
        if index >= 0 and index == len(self.token_row):
            self.token_row.append(len(self.rows) - 1)
        chunk = Chunk(index, text)
        self.rows[-1].append(chunk)
        self.row_width[-1] += chunk.cells

    def _place_part(self, index: int, part: str) -> None:
        width, w, row = self.width, cell_len(part), self.rows[-1]
        if self.row_width[-1] + w <= width:
            self._add(index, part)
            return
        if row and not part[0].isspace() and self._carry_word(w):
            self._add(index, part)
            return
        if row and w <= width:
            self._new_row()
            self._add(index, part.lstrip())  # a wrapped line does not start with the space
            return
        # Wider than a row: fill this row, then row-sized pieces.
        room = width - self.row_width[-1]
        if room > 0:
            head = chop_cells(part, room)[0]
            self._add(index, head)
            part = part[len(head):]
        for piece in chop_cells(part, width):
            self._new_row()
            self._add(index, piece)

    def _carry_word(self, incoming: int) -> bool:
        """Move the unfinished word at the end of the last row to a new row, if it then fits."""
        row = self.rows[-1]
        start = len(row)
        while start > 0:
            prev = row[start - 1]
            if prev.index == MARKER or prev.text == NEWLINE or prev.text[-1:].isspace():
                break
            start -= 1
            if prev.text[:1].isspace():
                break
        carried = row[start:]
        carried_w = sum(c.cells for c in carried)
        if start == 0 or carried_w + incoming > self.width:
            return False
        old_row = len(self.rows) - 1
        del row[start:]
        self.row_width[-1] -= carried_w
        self._new_row()
        for n, chunk in enumerate(carried):
            if chunk.index >= 0 and self.token_row[chunk.index] == old_row:
                self.token_row[chunk.index] = old_row + 1
            self._add(chunk.index, chunk.text.lstrip() if n == 0 else chunk.text)
        return True

    # --- reading ---------------------------------------------------------------------------
    def x_of(self, index: int) -> int:
        """Cell column where token ``index`` starts on its first row."""
        x = 0
        for chunk in self.rows[self.token_row[index]]:
            if chunk.index == index:
                return x
            x += chunk.cells
        return x

    def token_at(self, x: int, row: int) -> int | None:
        """The token drawn at cell ``x`` of ``row`` (the row's last token if past its end)."""
        if not 0 <= row < len(self.rows):
            return None
        pos, last = 0, None
        for chunk in self.rows[row]:
            if chunk.index != MARKER:
                last = chunk.index
                if pos <= x < pos + chunk.cells:
                    return chunk.index
            pos += chunk.cells
        return last

    def markers(self) -> list[str]:
        return [c.text for row in self.rows for c in row if c.index == MARKER]

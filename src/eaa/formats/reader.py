"""A bounds-checked little-endian cursor, so every parser reports the field and offset that broke."""

from __future__ import annotations

from ..errors import FormatError


class Reader:
    __slots__ = ("data", "pos", "end", "context")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None, context: str = "") -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end
        self.context = context

    def _name(self, field: str) -> str:
        return f"{self.context}.{field}" if self.context else field

    def take(self, size: int, field: str) -> bytes:
        if size < 0 or self.pos + size > self.end:
            raise FormatError(
                f"truncated: need {size} bytes, {max(self.end - self.pos, 0)} left",
                field=self._name(field),
                offset=self.pos,
            )
        out = bytes(self.data[self.pos : self.pos + size])
        self.pos += size
        return out

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int.from_bytes(self.take(2, field), "little")

    def u32(self, field: str) -> int:
        return int.from_bytes(self.take(4, field), "little")

    def u64(self, field: str) -> int:
        return int.from_bytes(self.take(8, field), "little")

    def remaining(self) -> int:
        return self.end - self.pos

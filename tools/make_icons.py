"""Draw OmaKaiku's app icons (PNG) with the standard library only; run once and
commit the files: `python tools/make_icons.py`.

A white card with a QR-like corner on the site's brand teal. The maskable icon
keeps everything inside the central safe zone (80 %), so any mask shape fits.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "services/web/src/web/static/icons"
BRAND, WHITE, ACCENT, INK = (0x0B, 0x5A, 0x6E), (0xFF, 0xFF, 0xFF), (0x8A, 0x2B, 0x0C), \
    (0x1A, 0x1A, 0x1A)


def png(width: int, height: int, pixel) -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))


def painter(size: int, inset: float):
    """The card fills the square minus ``inset`` on each side (a fraction)."""
    left, right = size * inset, size * (1 - inset)
    top, bottom = size * (0.5 - (0.5 - inset) * 0.66), size * (0.5 + (0.5 - inset) * 0.66)
    radius = size * 0.04
    cell = (right - left) / 14

    def inside_card(x: float, y: float) -> bool:
        if not (left <= x < right and top <= y < bottom):
            return False
        cx = min(max(x, left + radius), right - radius)
        cy = min(max(y, top + radius), bottom - radius)
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2

    def qr(x: float, y: float) -> bool:
        qx, qy = int((x - (right - 6 * cell)) // cell), int((y - (top + cell)) // cell)
        if not (0 <= qx < 5 and 0 <= qy < 5):
            return False
        ring = qx in (0, 4) or qy in (0, 4)
        return ring or (qx, qy) == (2, 2)

    def pixel(px: int, py: int):
        x, y = px + 0.5, py + 0.5
        if not inside_card(x, y):
            return BRAND
        if qr(x, y):
            return INK
        if bottom - 3 * cell <= y < bottom - 1.8 * cell and left + cell <= x < right - cell:
            return ACCENT  # the stripe
        line = left + cell <= x < left + 7 * cell
        if line and (top + 2 * cell <= y < top + 2.8 * cell or top + 4 * cell <= y < top + 4.8 * cell):
            return BRAND
        return WHITE

    return pixel


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, size, inset in (("icon-192.png", 192, 0.1), ("icon-512.png", 512, 0.1),
                              ("maskable-512.png", 512, 0.2)):
        (OUT / name).write_bytes(png(size, size, painter(size, inset)))
        print("wrote", OUT / name)


if __name__ == "__main__":
    main()

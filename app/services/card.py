"""The digital library card: the card number as an SVG barcode, safe to inline under our CSP."""

from __future__ import annotations

import io
import re
from functools import lru_cache

import barcode
from barcode.writer import SVGWriter

_STYLE_FILL = re.compile(r'style="fill:\s*([#\w]+);?"')


@lru_cache(maxsize=256)
def barcode_svg(card_number: str, symbology: str) -> str:
    """SVG markup (no XML prolog, no style attributes) for `card_number` in `symbology`."""
    data = f"A{card_number}A" if symbology == "nw-7" else card_number  # Codabar needs start/stop characters
    code = barcode.get(symbology, data, writer=SVGWriter())
    out = io.BytesIO()
    code.write(
        out, options={"module_width": 0.33, "module_height": 18.0, "quiet_zone": 4.0, "write_text": False}
    )
    svg = out.getvalue().decode("utf-8")
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<!--.*?-->", "", svg, flags=re.S)
    # Scale to the phone's width: a viewBox in user units (1 mm = 3.7795 units, as the rects use mm).
    size = re.search(r'width="([\d.]+)mm" height="([\d.]+)mm"', svg)
    if size:
        width, height = (float(v) * 3.7795 for v in size.groups())
        svg = svg.replace(
            size.group(0), f'viewBox="0 0 {width:.1f} {height:.1f}" preserveAspectRatio="none"', 1
        )
    # Inline style attributes would need 'unsafe-inline' in the CSP: use presentation attributes.
    return _STYLE_FILL.sub(r'fill="\1"', svg)

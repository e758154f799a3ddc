"""Small HTML pieces every report page uses: an embedded PNG, a figure as text."""

from __future__ import annotations

import base64
from html import escape


def png_tag(data: bytes, alt: str, element_id: str = "") -> str:
    ident = f' id="{element_id}"' if element_id else ""
    return (f'<img{ident} alt="{escape(alt)}" style="max-width:100%" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}"/>')


def fmt(value: object, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))

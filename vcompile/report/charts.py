"""Bar charts as inline SVG text: no plotting library, no script, nothing fetched.

    hbars([Bar("conv2d_relu_3", 1.25, "#f4a261", "1.25 ms  18%")], title="...") => "<svg ...>...</svg>"
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str
    text: str          # printed after the bar (the number, with its unit)


def hbars(bars: list[Bar], title: str = "", width: int = 900, row: int = 18,
          label_width: int = 260) -> str:
    """One horizontal bar per row, scaled to the largest value."""
    top = 24 if title else 6
    height = top + row * len(bars) + 8
    vmax = max((b.value for b in bars), default=0.0) or 1.0
    span = width - label_width - 230  # room for the number after the longest bar
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12" '
           f'role="img" aria-label="{escape(title)}">']
    if title:
        out.append(f'<text x="0" y="15" font-weight="bold">{escape(title)}</text>')
    for i, b in enumerate(bars):
        y = top + i * row
        w = max(1.0, span * b.value / vmax) if b.value > 0 else 0.0
        out.append(f'<text x="{label_width - 6}" y="{y + 13}" text-anchor="end">'
                   f'<title>{escape(b.label)}</title>{escape(_clip(b.label, 40))}</text>')
        out.append(f'<rect x="{label_width}" y="{y + 2}" width="{w:.1f}" height="{row - 4}" '
                   f'fill="{b.color}" stroke="#444" stroke-width="0.5"/>')
        out.append(f'<text x="{label_width + w + 6:.1f}" y="{y + 13}">{escape(b.text)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def _clip(s: str, n: int) -> str:
    return s if len(s) <= n else s[:n - 1] + "\u2026"

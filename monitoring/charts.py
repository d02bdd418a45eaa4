"""Small inline SVG charts for the admin: no JavaScript, no static files, no chart library."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from monitoring.drift import PSI_THRESHOLD


def psi_sparkline(values: Sequence[float], *, width: int = 160, height: int = 32) -> SafeString:
    """PSI over time as a line, the 0.2 threshold dashed; the last point red when above it."""
    if not values:
        return SafeString("")
    top = max(max(values), PSI_THRESHOLD * 1.5)
    pad = 3

    def xy(i: int, v: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (i / (len(values) - 1) if len(values) > 1 else 1.0)
        return round(x, 1), round(height - pad - (height - 2 * pad) * (v / top), 1)

    points = " ".join(f"{x},{y}" for x, y in (xy(i, v) for i, v in enumerate(values)))
    _, threshold_y = xy(0, PSI_THRESHOLD)
    last_x, last_y = xy(len(values) - 1, values[-1])
    colour = "#ba2121" if values[-1] > PSI_THRESHOLD else "#417690"
    return format_html(
        '<svg class="psi-sparkline" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
        "<title>PSI over the last {n} computations, latest {last}</title>"
        '<line x1="0" y1="{ty}" x2="{w}" y2="{ty}" stroke="#ba2121" stroke-dasharray="3,3" stroke-width="1"/>'
        '<polyline fill="none" stroke="#417690" stroke-width="1.5" points="{points}"/>'
        '<circle cx="{lx}" cy="{ly}" r="2.5" fill="{colour}"/></svg>',
        w=width,
        h=height,
        n=len(values),
        last=f"{values[-1]:.3f}",
        ty=threshold_y,
        points=points,
        lx=last_x,
        ly=last_y,
        colour=colour,
    )


def share_bar(shares: Sequence[tuple[str, float]], *, width: int = 240, height: int = 14) -> SafeString:
    """Traffic shares of the variants as one stacked horizontal bar."""
    palette = ["#417690", "#e0a526", "#6a9f3a", "#a35bb0", "#ba2121"]
    x = 0.0
    rects = []
    for i, (name, share) in enumerate(shares):
        w = round(width * share, 1)
        rects.append((x, w, palette[i % len(palette)], name, round(share * 100)))
        x += w
    body = format_html_join(
        "",
        '<rect x="{}" y="0" width="{}" height="{}" fill="{}"><title>{}: {}%</title></rect>',
        ((rx, rw, height, c, n, pct) for rx, rw, c, n, pct in rects),
    )
    return format_html('<svg width="{}" height="{}" role="img">{}</svg>', width, height, body)

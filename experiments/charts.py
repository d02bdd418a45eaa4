"""The effect over time as inline SVG (no JavaScript, like monitoring's sparklines): challenger
minus champion at each look, its always-valid interval as a band, zero and +- the minimum effect."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.utils.html import format_html
from django.utils.safestring import SafeString


def effect_chart(
    points: Sequence[dict[str, Any]], *, minimum_effect: float, width: int = 560, height: int = 180
) -> SafeString:
    """``points``: [{"difference", "ci_low", "ci_high"}] per look, oldest first (None: no estimate yet)."""
    shown = [p for p in points if p.get("difference") is not None]
    if not shown:
        return SafeString('<p class="help">No estimate yet: each arm needs at least 30 units.</p>')
    values = [minimum_effect, -minimum_effect, 0.0]
    for p in shown:
        values += [v for v in (p["difference"], p["ci_low"], p["ci_high"]) if v is not None]
    top, bottom = max(values), min(values)
    span = (top - bottom) or 1.0
    top, bottom = top + span * 0.05, bottom - span * 0.05
    pad = 6

    def x(i: int) -> float:
        return round(pad + (width - 2 * pad) * (i / (len(shown) - 1) if len(shown) > 1 else 0.5), 1)

    def y(v: float) -> float:
        return round(pad + (height - 2 * pad) * (top - v) / (top - bottom), 1)

    band = [(x(i), y(p["ci_high"])) for i, p in enumerate(shown) if p["ci_high"] is not None]
    band += [(x(i), y(p["ci_low"])) for i, p in reversed(list(enumerate(shown))) if p["ci_low"] is not None]
    line = " ".join(f"{x(i)},{y(p['difference'])}" for i, p in enumerate(shown))
    return format_html(
        '<svg class="effect-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
        "<title>Challenger minus champion over {n} looks, with the always-valid interval</title>"
        '<polygon fill="#417690" fill-opacity="0.2" points="{band}"/>'
        '<line x1="0" y1="{zero}" x2="{w}" y2="{zero}" stroke="#333" stroke-width="1"/>'
        '<line x1="0" y1="{up}" x2="{w}" y2="{up}" stroke="#6a9f3a" stroke-dasharray="4,3" stroke-width="1"/>'
        '<line x1="0" y1="{down}" x2="{w}" y2="{down}" stroke="#ba2121" stroke-dasharray="4,3" stroke-width="1"/>'
        '<polyline fill="none" stroke="#417690" stroke-width="2" points="{line}"/></svg>',
        w=width,
        h=height,
        n=len(shown),
        band=" ".join(f"{a},{b}" for a, b in band),
        zero=y(0.0),
        up=y(minimum_effect),
        down=y(-minimum_effect),
        line=line,
    )

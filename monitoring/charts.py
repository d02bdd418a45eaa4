"""Small inline SVG charts for the admin: no JavaScript, no static files, no chart library."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

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


REFERENCE_COLOUR, LIVE_COLOUR = "#79aec8", "#e0a526"
MAX_CATEGORIES = 12  # more categories are summed into "other"


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _histogram_bins(reference: Mapping[str, Any], live: Any) -> list[tuple[str, float, float]]:
    """(bin label, reference share, live share) for a numeric or categorical summary."""
    if reference.get("kind") == "numeric":
        edges = [float(e) for e in reference["edges"]]
        labels = (
            [f"≤ {_fmt(edges[0])}"]
            + [f"{_fmt(a)} to {_fmt(b)}" for a, b in itertools.pairwise(edges)]
            + [f"> {_fmt(edges[-1])}"]
            if edges
            else ["all"]
        )
        live_shares = (
            list(live) if isinstance(live, list) and len(live) == len(labels) else [0.0] * len(labels)
        )
        return list(zip(labels, reference["shares"], live_shares, strict=True))
    ref: Mapping[str, float] = reference.get("shares", {})
    cur: Mapping[str, float] = live if isinstance(live, Mapping) else {}
    order = sorted(set(ref) | set(cur), key=lambda c: (-max(ref.get(c, 0.0), cur.get(c, 0.0)), c))
    bins = [(c, ref.get(c, 0.0), cur.get(c, 0.0)) for c in order[:MAX_CATEGORIES]]
    rest = order[MAX_CATEGORIES:]
    if rest:
        bins.append(("other", sum(ref.get(c, 0.0) for c in rest), sum(cur.get(c, 0.0) for c in rest)))
    return bins


def drift_histogram(
    feature: str, reference: Mapping[str, Any] | None, live: Any, *, width: int = 260, height: int = 70
) -> SafeString:
    """Reference (blue) against live (amber) share per bin, side by side; hover a bar for numbers.

    Numeric features use the reference's quantile bins, so the reference is roughly flat and a
    shift shows as live bars rising and falling across it.
    """
    if not reference or live is None:
        return SafeString("")
    bins = _histogram_bins(reference, live)
    top = max([max(r, c) for _, r, c in bins] + [1e-9])
    pad, label_h = 2, 12
    plot_h = height - label_h - pad
    step = (width - 2 * pad) / len(bins)
    bar = max(step / 2 - 1, 1)
    bars = []
    for i, (label, ref_share, live_share) in enumerate(bins):
        x = pad + i * step
        for dx, share, colour, side in (
            (0, ref_share, REFERENCE_COLOUR, "reference"),
            (bar, live_share, LIVE_COLOUR, "live"),
        ):
            h = round(plot_h * share / top, 1)
            bars.append(
                (
                    round(x + dx, 1),
                    round(pad + plot_h - h, 1),
                    round(bar, 1),
                    h,
                    colour,
                    label,
                    side,
                    f"{share:.1%}",
                )
            )
    body = format_html_join(
        "",
        '<rect class="{}" x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {} {}</title></rect>',
        ((side, x, y, w, h, c, label, side, pct) for x, y, w, h, c, label, side, pct in bars),
    )
    first, last = bins[0][0], bins[-1][0]
    return format_html(
        '<svg class="drift-histogram" data-feature="{f}" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">'
        "<title>{f}: reference (blue) against live (amber), share of values per bin</title>{body}"
        '<text x="{pad}" y="{ty}" font-size="9" fill="#666">{first}</text>'
        '<text x="{right}" y="{ty}" font-size="9" fill="#666" text-anchor="end">{last}</text></svg>',
        f=feature,
        w=width,
        h=height,
        body=body,
        pad=pad,
        right=width - pad,
        ty=height - 2,
        first=first,
        last=last,
    )

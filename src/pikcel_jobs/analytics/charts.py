"""Server-rendered SVG charts: stacked bars, a line, horizontal bars.

Plain SVG built in Python — no JavaScript, no chart library, nothing from a CDN. Every
chart is an `<svg role="img">` named by its `<title>` and `<desc>`, with a `<title>` on
each bar or point (the browser shows it as a tooltip), axes with labelled ticks, a
legend where there is more than one series, and an empty state. Colours are
presentation attributes, so the pages' Content-Security-Policy (no inline styles) holds.
The pages show the same figures in a table beside each chart for screen readers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
TEXT = "#616161"
GRID = "#e3e3e3"
AXIS = "#c9cccf"
WIDTH = 720

STATUS_COLORS = {
    "completed": "#29845a",
    "failed": "#e22c38",
    "cancelled": "#8a8a8a",
    "processing": "#e8a400",
    "pending": "#0094d5",
    "scheduled": "#8c6fd1",
}
CREDITS_COLOR = "#005bd3"
RATE_COLOR = "#29845a"
TIME_COLOR = "#8c6fd1"


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    color: str


def _e(value: object) -> str:
    return str(escape(str(value)))


def _num(value: float) -> str:
    """Tick labels: 950, 1.2k, 12k, 1.5M."""
    value = float(value)
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:.1f}"


def day_label(day: date) -> str:
    return f"{day:%b} {day.day}"


def duration_label(ms: float) -> str:
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    return f"{int(ms // 60_000)} min {int(ms % 60_000 // 1000)} s"


def nice_ticks(maximum: float, count: int = 4, *, integer: bool = True) -> list[float]:
    """0 … a round number ≥ maximum, in steps of 1, 2, 2.5 or 5 × 10^k (whole steps
    for counts)."""
    if maximum <= 0:
        return [0, 1]
    raw = maximum / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer and step < 1:
        step = 1
    top = math.ceil(maximum / step - 1e-9) * step
    return [round(i * step, 10) for i in range(round(top / step) + 1)]


def _open(
    chart_id: str, title: str, description: str, height: int, width: int = WIDTH
) -> list[str]:
    cid = _e(chart_id)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{cid}" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" viewBox="0 0 {width} {height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" font-family="{FONT}" '
        f'font-size="11" data-chart="{cid}">',
        f'<title id="{cid}-title">{_e(title)}</title>',
        f'<desc id="{cid}-desc">{_e(description)}</desc>',
    ]


def _empty(
    chart_id: str, title: str, message: str, height: int = 200, width: int = WIDTH
) -> Markup:
    parts = _open(chart_id, title, message, height, width)
    parts.append(
        f'<rect x="1" y="1" width="{width - 2}" height="{height - 2}" rx="8" fill="#f7f7f7" '
        f'stroke="{GRID}"/>'
    )
    parts.append(
        f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" dominant-baseline="middle" '
        f'fill="{TEXT}" font-size="13" data-empty="true">{_e(message)}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))


def _legend(series: Sequence[Series], x: float, y: float) -> list[str]:
    parts = ['<g class="chart__legend" aria-hidden="true">']
    for item in series:
        parts.append(
            f'<rect x="{x:.1f}" y="{y - 9:.1f}" width="10" height="10" rx="2" fill="{item.color}"/>'
        )
        parts.append(f'<text x="{x + 14:.1f}" y="{y:.1f}" fill="{TEXT}">{_e(item.label)}</text>')
        x += 24 + 6.2 * len(item.label)
    parts.append("</g>")
    return parts


@dataclass(frozen=True)
class _Frame:
    left: float
    top: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.top + self.height


def _y_axis(frame: _Frame, ticks: list[float], fmt: Callable[[float], str]) -> list[str]:
    parts = ['<g class="chart__y" aria-hidden="true">']
    top = ticks[-1] or 1
    for tick in ticks:
        y = frame.bottom - frame.height * tick / top
        color = AXIS if tick == 0 else GRID
        parts.append(
            f'<line x1="{frame.left:.1f}" x2="{frame.left + frame.width:.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{color}"/>'
        )
        parts.append(
            f'<text x="{frame.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" fill="{TEXT}">'
            f"{_e(fmt(tick))}</text>"
        )
    parts.append("</g>")
    return parts


def _x_labels(frame: _Frame, days: Sequence[date]) -> list[str]:
    n = len(days)
    every = max(1, math.ceil(n / 8))
    slot = frame.width / n
    parts = ['<g class="chart__x" aria-hidden="true">']
    for i, day in enumerate(days):
        if i % every and i != n - 1:
            continue
        if i == n - 1 and i % every and (n - 1) % every < every / 2:
            continue  # too close to the previous label
        x = frame.left + slot * (i + 0.5)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.bottom:.1f}" y2="{frame.bottom + 4:.1f}" '
            f'stroke="{AXIS}"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{frame.bottom + 17:.1f}" text-anchor="middle" fill="{TEXT}">'
            f"{_e(day_label(day))}</text>"
        )
    parts.append("</g>")
    return parts


def stacked_bars(
    *,
    chart_id: str,
    title: str,
    days: Sequence[date],
    series: Sequence[Series],
    values: Sequence[dict[str, int]],
    unit: str = "jobs",
    empty_message: str = "No jobs in this range",
) -> Markup:
    """One bar per day, one segment per series (bottom to top in `series` order)."""
    totals = [sum(v.get(s.key, 0) for s in series) for v in values]
    if not days or not any(totals):
        return _empty(chart_id, title, empty_message)
    height = 280
    frame = _Frame(left=52, top=34, width=WIDTH - 52 - 12, height=height - 34 - 34)
    ticks = nice_ticks(max(totals))
    top = ticks[-1]
    total_all = sum(totals)
    peak = max(range(len(days)), key=totals.__getitem__)
    description = (
        f"{total_all:,} {unit} from {day_label(days[0])} to {day_label(days[-1])}; "
        f"the busiest day was {day_label(days[peak])} with {totals[peak]:,}."
    )
    parts = _open(chart_id, title, description, height)
    parts += _legend(series, frame.left, 16)
    parts += _y_axis(frame, ticks, _num)
    slot = frame.width / len(days)
    bar = max(1.0, min(28.0, slot * 0.72))
    parts.append('<g class="chart__bars">')
    for i, (day, counts) in enumerate(zip(days, values, strict=True)):
        if not totals[i]:
            continue
        x = frame.left + slot * i + (slot - bar) / 2
        detail = ", ".join(
            f"{counts.get(s.key, 0):,} {s.label.lower()}" for s in series if counts.get(s.key)
        )
        parts.append(f'<g data-day="{day.isoformat()}" data-total="{totals[i]}">')
        parts.append(
            f"<title>{_e(f'{day_label(day)}, {day.year}: {totals[i]:,} {unit} ({detail})')}</title>"
        )
        y = frame.bottom
        for s in series:
            value = counts.get(s.key, 0)
            if not value:
                continue
            h = frame.height * value / top
            y -= h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{s.color}" data-series="{_e(s.key)}" data-value="{value}"/>'
            )
        parts.append("</g>")
    parts.append("</g>")
    parts += _x_labels(frame, days)
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(
    *,
    chart_id: str,
    title: str,
    days: Sequence[date],
    values: Sequence[int | float],
    label: str,
    color: str = CREDITS_COLOR,
    unit: str = "credits",
    empty_message: str = "No credits used in this range",
) -> Markup:
    """A line over the days with a light area under it and a point per day."""
    if not days or not any(values):
        return _empty(chart_id, title, empty_message)
    height = 240
    frame = _Frame(left=52, top=30, width=WIDTH - 52 - 12, height=height - 30 - 34)
    ticks = nice_ticks(max(values))
    top = ticks[-1]
    slot = frame.width / len(days)
    points = [
        (frame.left + slot * (i + 0.5), frame.bottom - frame.height * v / top)
        for i, v in enumerate(values)
    ]
    total = sum(values)
    description = (
        f"{_num(total)} {unit} used from {day_label(days[0])} to {day_label(days[-1])}, "
        f"at most {_num(max(values))} on one day."
    )
    parts = _open(chart_id, title, description, height)
    parts += _legend([Series("credits", label, color)], frame.left, 14)
    parts += _y_axis(frame, ticks, _num)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    base = frame.bottom
    area = f"{points[0][0]:.1f},{base:.1f} {path} {points[-1][0]:.1f},{base:.1f}"
    parts.append(
        f'<polygon points="{area}" fill="{color}" fill-opacity="0.12" aria-hidden="true"/>'
    )
    parts.append(
        f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2" '
        f'stroke-linejoin="round" stroke-linecap="round" aria-hidden="true"/>'
    )
    radius = 3 if len(days) <= 45 else 2
    parts.append('<g class="chart__points">')
    for (x, y), day, value in zip(points, days, values, strict=True):
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{color}" '
            f'data-day="{day.isoformat()}" data-value="{value}">'
            f"<title>{_e(f'{day_label(day)}, {day.year}: {_num(value)} {unit}')}</title></circle>"
        )
    parts.append("</g>")
    parts += _x_labels(frame, days)
    parts.append("</svg>")
    return Markup("".join(parts))


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None  # None: no data for this row
    text: str  # what the value reads as, e.g. "94.5%" or "4.2 s"
    note: str = ""  # extra words for the tooltip, e.g. "of 1,204 finished jobs"


def horizontal_bars(
    *,
    chart_id: str,
    title: str,
    bars: Sequence[Bar],
    color: str,
    axis: Callable[[float], str],
    maximum: float | None = None,
    empty_message: str = "No finished jobs in this range",
    width: int = 480,
) -> Markup:
    """One row per item (tools); `maximum` fixes the axis (e.g. 1.0 for rates). Narrower
    than the day charts: it sits in a half-width card."""
    known = [b.value for b in bars if b.value is not None]
    if not bars or not known:
        return _empty(chart_id, title, empty_message, height=160, width=width)
    label_width = 150
    row = 30
    height = 24 + row * len(bars) + 30
    frame = _Frame(left=label_width, top=16, width=width - label_width - 64, height=row * len(bars))
    ticks = nice_ticks(maximum if maximum is not None else max(known), integer=maximum is None)
    top = ticks[-1] or 1
    best = max((b for b in bars if b.value is not None), key=lambda b: b.value or 0)
    description = f"{len(bars)} tools; highest: {best.label} at {best.text}."
    parts = _open(chart_id, title, description, height, width)
    parts.append('<g class="chart__x" aria-hidden="true">')
    for tick in ticks:
        x = frame.left + frame.width * tick / top
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{frame.top:.1f}" y2="{frame.bottom:.1f}" '
            f'stroke="{AXIS if tick == 0 else GRID}"/>'
        )
        parts.append(
            f'<text x="{x:.1f}" y="{frame.bottom + 16:.1f}" text-anchor="middle" fill="{TEXT}">'
            f"{_e(axis(tick))}</text>"
        )
    parts.append("</g>")
    parts.append('<g class="chart__bars">')
    for i, item in enumerate(bars):
        y = frame.top + row * i
        name = item.label if len(item.label) <= 22 else item.label[:21] + "…"
        parts.append(f'<g data-label="{_e(item.label)}">')
        tip = f"{item.label}: {item.text}" + (f" {item.note}" if item.note else "")
        parts.append(f"<title>{_e(tip)}</title>")
        parts.append(
            f'<text x="{frame.left - 8:.1f}" y="{y + row / 2 + 4:.1f}" text-anchor="end" '
            f'fill="#303030">{_e(name)}</text>'
        )
        if item.value is None:
            parts.append(
                f'<text x="{frame.left + 6:.1f}" y="{y + row / 2 + 4:.1f}" fill="{TEXT}">'
                f"{_e(item.text)}</text>"
            )
        else:
            w = frame.width * min(item.value, top) / top
            parts.append(
                f'<rect x="{frame.left:.1f}" y="{y + 6:.1f}" width="{max(w, 1):.1f}" '
                f'height="{row - 12}" rx="3" fill="{color}" data-value="{item.value}"/>'
            )
            parts.append(
                f'<text x="{frame.left + w + 6:.1f}" y="{y + row / 2 + 4:.1f}" fill="#303030">'
                f"{_e(item.text)}</text>"
            )
        parts.append("</g>")
    parts.append("</g>")
    parts.append("</svg>")
    return Markup("".join(parts))

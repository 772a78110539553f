"""The report's two charts, drawn server-side as SVG by pygal (no JavaScript, no CDN).

pygal's own script tags point nowhere (`js=[]`): the charts are read as drawn, and pages
stay usable offline, which pbxd hosts often are.
"""

from __future__ import annotations

import sys

import pygal
from pygal.style import Style

from pbxd.cdr.reports import WEEKDAYS, NumberReport

# pygal appends a legacy import hook (for its map plugins, unused here) that makes every later
# failed import warn on Python 3.11; take it out again.
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "PluginImportFixer"]

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222",
    foreground_strong="#111",
    foreground_subtle="#999",
    colors=("#2e7d32", "#c62828", "#1565c0", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037"),
    font_family="system-ui, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=12,
    title_font_size=14,
)


def _config(title: str) -> pygal.Config:
    config = pygal.Config()
    config.js = []  # no script from the internet: pbxd hosts are often offline
    config.disable_xml_declaration = True  # inlined into the page
    config.style = STYLE
    config.width = 800
    config.height = 320
    config.legend_at_bottom = True
    config.title = title
    return config


def calls_per_day(report: NumberReport) -> str:
    """Stacked bars, one per local day: answered (green) under missed (red)."""
    chart = pygal.StackedBar(_config(f"Calls per day, {report.period.label}"))
    chart.x_label_rotation = -45
    chart.x_labels = [f"{d.day:%d %b}" for d in report.per_day]
    chart.show_minor_x_labels = False
    chart.x_labels_major_every = max(1, len(report.per_day) // 10)
    chart.add("answered", [d.answered for d in report.per_day])
    chart.add("missed", [d.missed for d in report.per_day])
    return str(chart.render(is_unicode=True))


def calls_per_hour_of_week(report: NumberReport) -> str:
    """A punch card: one row per weekday, a dot per hour sized by its calls."""
    chart = pygal.Dot(_config(f"Calls per hour of the week ({report.time_zone})"))
    chart.x_labels = [f"{h:02d}" for h in range(24)]
    for day, row in zip(WEEKDAYS, report.by_hour_of_week, strict=True):
        chart.add(day, list(row))
    return str(chart.render(is_unicode=True))

"""A report as one self-contained HTML page: per attribute a bar chart of the counted and corrected shares
with the corrected share's interval (matplotlib, embedded as a base64 PNG) and the table of figures."""
from __future__ import annotations

import base64
import html
import io

COUNTED_COLOUR, CORRECTED_COLOUR = "#b0b0b0", "#2b6cb0"
STYLE = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.2rem .7rem;text-align:right}
th:first-child,td:first-child{text-align:left}tr:nth-child(even){background:#f3f3f3}img{max-width:100%}
.note{color:#555;font-size:.9rem}"""


def bar_chart_png(title: str, shares: dict, confidence: float = 0.95, unit: str = "faces") -> bytes:
    """Grouped bars (counted, corrected) per class, the corrected share's interval (if any) as error bars; PNG
    bytes (unit: what the shares are of, "faces" or "people")."""
    import numpy as np
    from matplotlib.figure import Figure

    names = list(shares)
    x = np.arange(len(names))
    estimate = np.array([shares[n].estimate for n in names]) * 100
    errors = np.array([[shares[n].estimate - (shares[n].estimate if shares[n].low is None else shares[n].low)
                        for n in names],
                       [(shares[n].estimate if shares[n].high is None else shares[n].high) - shares[n].estimate
                        for n in names]]) * 100
    interval = all(shares[n].low is not None for n in names)
    figure = Figure(figsize=(max(4.5, 0.9 * len(names) + 1.5), 3.2), dpi=110)
    axes = figure.subplots()
    axes.bar(x - 0.2, [shares[n].counted * 100 for n in names], 0.4, label="counted", color=COUNTED_COLOUR)
    axes.bar(x + 0.2, estimate, 0.4, yerr=np.maximum(errors, 0) if interval else None, capsize=3,
             color=CORRECTED_COLOUR, label=(f"corrected, {confidence:.0%} interval".replace("%", " %") if interval
                                            else "corrected"))
    axes.set_xticks(x, names)
    axes.set_ylabel(f"share of {unit} (%)")
    axes.set_title(title)
    top = max(5.0, float(np.max(estimate + errors[1])), max(s.counted * 100 for s in shares.values()))
    axes.set_ylim(0, top * 1.12)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(frameon=False, fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _section(title: str, shares: dict, confidence: float, unit: str) -> list[str]:
    image = base64.b64encode(bar_chart_png(title, shares, confidence, unit)).decode()
    level = f"{confidence:.0%}".replace("%", " %")
    rows = "".join(f"<tr><td>{html.escape(name)}</td><td>{100 * s.counted:.1f} %</td><td>{100 * s.estimate:.1f} %"
                   f"</td><td>{s.interval_text('–').strip()}</td></tr>" for name, s in shares.items())
    return [f"<h3>{html.escape(title)}</h3>", f'<img alt="{html.escape(title)}" src="data:image/png;base64,{image}">',
            f"<table><tr><th>class</th><th>counted</th><th>corrected</th><th>{level} interval</th></tr>{rows}</table>"]


def report_html(report) -> str:
    """The page of a reporting.report.Report."""
    skipped = report.skipped
    unit = {"faces": "faces", "people": "people"}.get(report.count, "time on screen")
    parts = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
             "<title>Face Analysis: collection report</title>", f"<style>{STYLE}</style></head><body>",
             f"<h1>Collection report: {unit} counted</h1>",
             "" if report.count != "people" else f"<p>Each of <b>{report.people} people</b> (<code>run --people</code>) "
             "counted once, with the mean of their faces' probabilities; the shares below are of people.</p>",
             "" if report.count != "screen_time" else f"<p>Each of <b>{report.people} people</b> (<code>run --video "
             "--people</code>) weighed by their time on screen (the frames they are in), with the mean of their "
             "faces' probabilities; the shares below are of time on screen.</p>",
             f"<p>{report.faces} faces analysed; {skipped['too_small']} too small (left out), "
             f"{skipped['no_face']} images without a face, {skipped['failed']} failed. Model "
             f"{html.escape(str(report.model or 'not named'))}; correction <b>{html.escape(report.method)}</b> "
             f"fitted on a calibration set of {report.calibration_faces} held-out faces.</p>",
             f"<p class=note>Counted: the share of {unit} whose most probable class it is (what counting the labels "
             "of <code>run</code> gives). Corrected: the share estimated from the model's probabilities, corrected "
             "for its errors as measured on the calibration set. The interval is a bootstrap over both the "
             "collection and the calibration set; it does not cover errors in the calibration set's labels, faces "
             "the detector missed, or faces unlike the calibration set's beyond their shares.</p>"]
    for attribute, shares in report.attributes.items():
        parts += _section(attribute, shares, report.confidence, unit)
    if report.by:
        for group, group_report in report.groups.items():
            parts.append(f"<h2>{html.escape(report.by)}: {html.escape(group)} "
                         f"(corrected share {100 * group_report.share.estimate:.1f} %)</h2>")
            for attribute, shares in group_report.attributes.items():
                parts += _section(f"{attribute} among {report.by} {group}", shares, report.confidence, unit)
    parts += [f"<p class=note>{html.escape(note)}</p>" for note in report.notes]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"

"""``--report FILE.html``: one self-contained page (inline CSS and SVG, no script, no CDN) readable offline.

Latency over time (p50 and p99 per phase, per time bucket), throughput over
time (sent, answered, errors per second), the latency distribution per phase
(HDR style: percentiles on a "nines" axis) and the verdict with every
threshold.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

from ._result import RunResult
from ._stats import PHASES

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 760, 260, 64, 36, 16, 150
COLORS = {"join": "#7b4fd6", "poll": "#1f9e89", "purchase": "#2b6cb0", "pay": "#d97706", "cancel": "#b91c1c"}
SERIES_COLORS = {"sent": "#64748b", "answered": "#2b6cb0", "errors": "#b91c1c"}

Line = tuple[str, str, list[tuple[float, float]], str]  # label, color, points, dash


def _ticks_log(lo: float, hi: float) -> list[float]:
    out = []
    e = math.floor(math.log10(lo))
    while 10**e <= hi * 1.0001:
        out.append(10.0**e)
        e += 1
    return out


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:g}k" if v < 1e6 else f"{v:.0e}"
    return f"{v:g}"


def chart(
    title: str, lines: list[Line], *, xlabel: str, ylabel: str, log_y: bool, x_ticks: list[tuple[float, str]]
) -> str:
    pts = [p for _, _, ps, _ in lines for p in ps]
    if not pts:
        return f"<h3>{escape(title)}</h3><p class=muted>no data</p>"
    xs, ys = [x for x, _ in pts], [y for _, y in pts]
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x1 = x0 + 1
    if log_y:
        lo = min((y for y in ys if y > 0.001), default=0.001)
        hi = max([*ys, lo * 10])
        y0, y1 = math.log10(lo) - 0.05, math.log10(hi) + 0.05

        def fy(y: float) -> float:
            v = math.log10(max(y, lo))
            return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - y0) / (y1 - y0))

        yt = _ticks_log(lo, hi)
    else:
        top = max(ys) * 1.05 or 1.0

        def fy(y: float) -> float:
            return PAD_T + (H - PAD_T - PAD_B) * (1 - y / top)

        step = 10 ** math.floor(math.log10(top)) if top > 0 else 1
        yt = [i * step for i in range(int(top // step) + 1)]

    def fx(x: float) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (x - x0) / (x1 - x0)

    out = [f'<h3>{escape(title)}</h3><svg viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img">']
    out.append(f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" class="plot"/>')
    for y in yt:
        yy = fy(y)
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{yy + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    for x, label in x_ticks:
        if x0 <= x <= x1:
            xx = fx(x)
            out.append(f'<line x1="{xx:.1f}" x2="{xx:.1f}" y1="{PAD_T}" y2="{H - PAD_B}" class="grid"/>')
            out.append(f'<text x="{xx:.1f}" y="{H - PAD_B + 14}" text-anchor="middle">{escape(label)}</text>')
    out.append(f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 4}" text-anchor="middle">{escape(xlabel)}</text>')
    out.append(f'<text x="12" y="{PAD_T + 8}" class="axis">{escape(ylabel)}</text>')
    for i, (label, color, ps, dash) in enumerate(lines):
        if not ps:
            continue
        path = " ".join(f"{fx(x):.1f},{fy(y):.1f}" for x, y in ps)
        d = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.8"{d}/>')
        ly = PAD_T + 14 + i * 16
        out.append(
            f'<line x1="{W - PAD_R + 10}" x2="{W - PAD_R + 30}" y1="{ly - 4}" y2="{ly - 4}" stroke="{color}"'
            f' stroke-width="2"{d}/><text x="{W - PAD_R + 36}" y="{ly}">{escape(label)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _time_ticks(end: float) -> list[tuple[float, str]]:
    step = max(1, 10 ** math.floor(math.log10(end)) if end >= 10 else 1)
    if end / step > 10:
        step *= 2
    return [(t, f"{t:g}s") for t in [i * step for i in range(int(end // step) + 1)]]


def render(result: RunResult) -> str:
    data = result.as_dict()
    series = data["series"]
    step = result.stats.step
    end = max((b["t"] for b in series), default=0) + step
    lat_lines: list[Line] = []
    for name in PHASES:
        p50 = [(b["t"], b["phases"][name]["p50_ms"]) for b in series if name in b["phases"]]
        p99 = [(b["t"], b["phases"][name]["p99_ms"]) for b in series if name in b["phases"]]
        if p50:
            lat_lines.append((f"{name} p50", COLORS[name], p50, ""))
            lat_lines.append((f"{name} p99", COLORS[name], p99, "5,3"))
    run_end = max(result.seconds, step)

    def per_second(b: dict[str, Any], k: str) -> float:
        width = min(step, run_end - b["t"])  # the last bucket covers only the end of the run
        return b[k] / width if width > 0 else 0.0

    thr_lines: list[Line] = [
        (k, SERIES_COLORS[k], [(b["t"], per_second(b, k)) for b in series], "") for k in ("sent", "answered", "errors")
    ]
    nines = [(0.0, "0%"), (1.0, "90%"), (2.0, "99%"), (3.0, "99.9%"), (4.0, "99.99%"), (5.0, "99.999%")]
    dist_lines: list[Line] = []
    for name in PHASES:
        pts = [(min(5.0, -math.log10(max(1e-5, 1 - q / 100))), ms) for q, ms in result.distribution(name)]
        if pts:
            dist_lines.append((name, COLORS[name], pts, ""))
    ticks = _time_ticks(end)
    verdict_rows = "".join(
        f"<tr class={'bad' if c['detail'] else 'ok'}><td>{'VIOLATED' if c['detail'] else 'ok'}</td>"
        f"<td>{escape(name)}</td><td>{escape(c['detail'])}</td></tr>"
        for name, c in data["verdict"]["checks"].items()
    )
    thr_rows = "".join(
        f"<tr class={'ok' if t['ok'] else 'bad'}><td>{'ok' if t['ok'] else 'BREACHED'}</td>"
        f"<td><code>{escape(t['threshold'])}</code>{' (always on)' if t['always'] else ''}</td>"
        f"<td>{(t['value'] or 0):,.3f}</td></tr>"
        for t in data["thresholds"]
    )
    phase_rows = "".join(
        f"<tr><td>{escape(n)}</td><td>{p['count']:,}</td><td>{p['rate']:,.1f}</td><td>{p['p50_ms']:.2f}</td>"
        f"<td>{p['p90_ms']:.2f}</td><td>{p['p99_ms']:.2f}</td><td>{p['p99.9_ms']:.2f}</td><td>{p['max_ms']:.2f}</td>"
        f"<td>{escape(' · '.join(f'{k} {v:,}' for k, v in p['status'].items()))}</td></tr>"
        for n, p in data["phases"].items()
        if p["count"]
    )
    ok = not result.breached
    sched = data["schedule"]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>flashsale load: {escape(result.url)}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 980px; color: #1e293b; padding: 0 12px; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 17px; margin-top: 28px; }} h3 {{ font-size: 15px; margin: 18px 0 4px; }}
table {{ border-collapse: collapse; margin: 8px 0; }}
td, th {{ border-bottom: 1px solid #e2e8f0; padding: 3px 10px 3px 0; text-align: left; vertical-align: top; }}
tr.bad td:first-child {{ color: #b91c1c; font-weight: 600; }}
tr.ok td:first-child {{ color: #15803d; }} .banner {{ padding: 10px 14px; border-radius: 6px; font-weight: 600; }}
.pass {{ background: #dcfce7; }} .fail {{ background: #fee2e2; }} .muted {{ color: #64748b; }}
svg {{ max-width: 100%; height: auto; }} svg text {{ font-size: 11px; fill: #475569; }}
svg .plot {{ fill: #f8fafc; stroke: #cbd5e1; }} svg .grid {{ stroke: #e2e8f0; }}
</style></head><body>
<h1>flashsale load: {escape(result.url)}</h1>
<p class=muted>{escape(result.crowd)}; {result.procs} process(es); run {escape(result.run_id)};
{result.seconds:.2f} s{"; INTERRUPTED" if result.outcome.interrupted else ""}</p>
<p class="banner {"pass" if ok else "fail"}">{
        "PASSED: every threshold held" if ok else "FAILED: " + escape(", ".join(t.text for t in result.breached))
    }</p>
<h2>Verdict (audited through the API)</h2>
<table>{verdict_rows}</table><p class=muted>{len(result.outcome.orders):,} orders. {escape(result.verdict.note)}</p>
<h2>Thresholds</h2><table>{thr_rows}</table>
<h2>Phases (latency from the scheduled send time, ms)</h2>
<table><tr><th>phase</th><th>count</th><th>rate/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th>
<th>answers</th></tr>{phase_rows}</table>
<p class=muted>schedule: {sched["arrivals_sent"]:,} of {sched["arrivals_planned"]:,} arrivals at {sched["rate"]:,.1f}/s
(asked {sched["asked_rate"]:,.1f}/s); dispatch lag p99 {sched["lag_p99_ms"]:.2f} ms, max {sched["lag_max_ms"]:.2f} ms.
feed: {escape(data["feed"])}; room: {escape(data["room"])}</p>
<h2>Over time</h2>
{
        chart(
            "Latency over time (ms, log scale)",
            lat_lines,
            xlabel="seconds into the run",
            ylabel="ms",
            log_y=True,
            x_ticks=ticks,
        )
    }
{
        chart(
            "Throughput over time (per second)",
            thr_lines,
            xlabel="seconds into the run",
            ylabel="req/s",
            log_y=False,
            x_ticks=ticks,
        )
    }
<h2>Latency distribution per phase</h2>
{
        chart(
            "Latency by percentile (ms, log scale)",
            dist_lines,
            xlabel="percentile",
            ylabel="ms",
            log_y=True,
            x_ticks=nines,
        )
    }
</body></html>
"""


def write_report(result: RunResult, path: str) -> None:
    Path(path).write_text(render(result), encoding="utf-8")

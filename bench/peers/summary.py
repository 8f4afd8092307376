"""One row per sender from its runs, and the issue-14 goal judged on those rows.

On a shared machine the runs of one sender differ by a third, in CPU and in link share alike
(a run whose device or sender was kept off the CPU leaves the wire idle). So every figure is
the median over the runs, each on its own; user and system time are the median-CPU run's, the
best link share is shown beside the median, and overflows and error replies are summed.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from peers.procs import median_run


def _median(runs: Sequence[dict[str, Any]], key: str) -> float:
    return float(statistics.median(float(r[key]) for r in runs))


def sender_row(sender: str, runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    middle = median_run(runs)
    row: dict[str, Any] = {
        "sender": sender,
        "runs": len(runs),
        "lines_per_s": round(_median(runs, "lines_per_s"), 1),
        "link_share": round(_median(runs, "link_share"), 4),
        "link_share_best": max(float(r["link_share"]) for r in runs),
        "overflow_lines": sum(int(r["overflow_lines"]) for r in runs),
        "error_replies": sum(int(r["error_replies"]) for r in runs),
        "cpu_us_per_line": round(_median(runs, "cpu_us_per_line"), 1),
        "user_us_per_line": middle["user_us_per_line"],
        "sys_us_per_line": middle["sys_us_per_line"],
    }
    device = [r["device_longest_run"] for r in runs if r.get("device_longest_run")]
    if device:
        shares = [float(d["link_share"]) for d in device if d.get("link_share") is not None]
        row["device_link_share"] = round(statistics.median(shares), 4) if shares else None
        row["device_lost_bytes"] = sum(int(d.get("lost_bytes") or 0) for d in device)
    return row


def goal(rows: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Issue 14: cncjs's share of the link at under a tenth of its CPU per line."""
    out: dict[str, Any] = {"text": "the agent's link share >= cncjs's, at < 1/10 of cncjs's "
                                   "CPU per line (medians)"}
    agent, cncjs = rows.get("agent"), rows.get("cncjs")
    if agent is None or cncjs is None:
        out.update({"met": None, "why": "no agent or no cncjs row in this run"})
        return out
    share_ok = round(agent["link_share"], 3) >= round(cncjs["link_share"], 3)
    ratio = agent["cpu_us_per_line"] / cncjs["cpu_us_per_line"]
    out.update({"link_share_met": share_ok, "cpu_ratio_agent_to_cncjs": round(ratio, 3),
                "cpu_met": ratio < 0.1, "met": share_ok and ratio < 0.1})
    return out

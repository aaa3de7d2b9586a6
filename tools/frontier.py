"""Compare models along the uniqueness-validity curve that sampling temperature traces.

    python tools/frontier.py latent=sweeps/a/members-latent-temperature.json \\
        energy5=sweeps/a/members-energy5-temperature.json --at-valid 0.75,0.65

Each input is the ``--json`` of ``tools/evaluate_members.py ... --temperatures ...`` (one row
per member and temperature), several joined by commas; ``@0,1,2`` after them keeps only those
members (a population holding several models); rows sampled at ``ATOMS:BONDS``
temperatures form a curve over whichever of the two varies (not both). Per model and
temperature the rows are averaged over members; the table gives the temperature of the
highest mean V.U.N. with its validity, uniqueness and V.U.N. (± std over members), and the
uniqueness at each ``--at-valid`` validity, read off the piecewise-linear curve through the
mean (valid, unique) points (empty outside the measured range). A training change that only
makes G's logits flatter or sharper moves a model along one curve; a better model lies above
it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys


def curve(rows: list[dict]) -> dict[float, dict[str, tuple[float, float]]]:
    """temperature -> metric -> (mean, std over members) for valid, unique, vun."""
    by_t: dict[float, list[dict]] = {}
    for row in rows:
        by_t.setdefault(float(row["temperature"]), []).append(row)
    out = {}
    for t, group in sorted(by_t.items()):
        out[t] = {}
        for name in ("valid", "unique", "vun"):
            values = [100 * r[name] for r in group]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            out[t][name] = (statistics.mean(values), std)
    return out


def unique_at(points: dict, valid: float) -> float | None:
    """Uniqueness at ``valid`` (%) on the line through the (valid, unique) means, or None."""
    xy = sorted((p["valid"][0], p["unique"][0]) for p in points.values())
    for (x0, y0), (x1, y1) in zip(xy[:-1], xy[1:], strict=True):
        if x0 <= valid <= x1 and x1 > x0:
            return y0 + (y1 - y0) * (valid - x0) / (x1 - x0)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models",
        nargs="+",
        help="NAME=members.json[,more.json][@0,1,2] (evaluate_members --json [, members])",
    )
    parser.add_argument("--at-valid", default="0.75", help="validities (0-1), comma-separated")
    args = parser.parse_args(argv)
    try:
        levels = [100 * float(v) for v in args.at_valid.split(",")]
        models = {}
        for item in args.models:
            name, sep, paths = item.partition("=")
            if not sep:
                raise ValueError(f"expected NAME=path.json, got {item!r}")
            paths, at, members = paths.partition("@")
            rows = []
            for path in paths.split(","):
                with open(path) as f:
                    rows += json.load(f)
            if at:
                keep = {int(k) for k in members.split(",")}
                rows = [r for r in rows if r["member"] in keep]
            if not rows:
                raise ValueError(f"{item}: no rows")
            if len({r.get("bond_temperature") for r in rows}) > 1:  # heated bonds alone
                if len({r["temperature"] for r in rows}) > 1:
                    raise ValueError(f"{item}: rows vary in both temperatures; one per NAME=")
                rows = [r | {"temperature": r["bond_temperature"]} for r in rows]
            models[name] = curve(rows)
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    head = ["model", "T range", "best V.U.N. at T", "valid", "unique", "V.U.N."]
    head += [f"unique at {v:.0f}% valid" for v in levels]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, points in models.items():
        best = max(points, key=lambda t: points[t]["vun"][0])
        p = points[best]
        cells = [name, f"{min(points):g}–{max(points):g}", f"{best:g}"]
        cells += [f"{p[k][0]:.1f} ± {p[k][1]:.1f}" for k in ("valid", "unique", "vun")]
        for level in levels:
            u = unique_at(points, level)
            cells.append("" if u is None else f"{u:.1f}")
        print("| " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""check_svg.py FILE.svg: cpool-bench's --plot output is well-formed SVG with
the two latency paths (whole call, checkout wait) and the requests/s path,
each with points inside the drawing; the latency paths go left to right and
never down (SVG y grows downwards, so y never increases)."""
import re
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"


def points(d):
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", d)]
    if not re.fullmatch(r"M[\d. ]+( L[\d. ]+)*", d) or len(nums) % 2:
        raise SystemExit(f"malformed path data: {d[:80]}")
    return list(zip(nums[0::2], nums[1::2]))


def main(path):
    root = ET.parse(path).getroot()
    if root.tag != NS + "svg":
        raise SystemExit("not an svg element at the root")
    _, _, w, h = (float(v) for v in root.get("viewBox").split())
    paths = {p.get("id"): p.get("d") for p in root.iter(NS + "path")}
    for pid in ("latency-call", "latency-wait", "rps"):
        if pid not in paths:
            raise SystemExit(f"no path {pid}")
        pts = points(paths[pid])
        if len(pts) < 2:
            raise SystemExit(f"path {pid} has {len(pts)} point(s)")
        for x, y in pts:
            if not (0 <= x <= w and 0 <= y <= h):
                raise SystemExit(f"path {pid}: point {x},{y} outside {w}x{h}")
        if pid.startswith("latency"):
            for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
                if x1 < x0 or y1 > y0 + 1e-9:
                    raise SystemExit(f"path {pid} goes back: {x0},{y0} -> {x1},{y1}")
    labels = {t.text for t in root.iter(NS + "text")}
    for want in ("0%", "50%", "90%", "99%", "99.9%"):
        if want not in labels:
            raise SystemExit(f"no x label {want}")
    print(f"{path}: ok ({', '.join(f'{k} {len(points(v))} points' for k, v in paths.items())})")


main(sys.argv[1])

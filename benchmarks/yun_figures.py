"""Yun, Krishnan, Mobahi (ICLR 2021), Figures 1-2 and the classification directions (the
figure's code: linflow/figures/yun.py, also run by `linflow reproduce yun-regression`).
Writes benchmarks/results/yun_figures.json, yun_regression.png, yun_classification.png."""

import json

import matplotlib
from _common import parse_with_options as parse, provenance

from linflow.figures import yun


matplotlib.use("Agg")


def main():
    args, out = parse(yun.__doc__)
    # Provenance first: the run writes the figures, which would mark the checkout dirty.
    head = provenance("yun_figures", args.quick)
    record = {**head, **yun.run(quick=args.quick, out=out)}
    (out / "yun_figures.json").write_text(json.dumps(record, indent=1))
    print(f"wrote {out}/yun_figures.json, yun_regression.png, yun_classification.png")


if __name__ == "__main__":
    main()

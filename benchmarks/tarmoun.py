"""Tarmoun et al. 2021, Figs. 1-2 and the closed forms' exactness (the figure's code:
linflow/figures/tarmoun.py, also run by `linflow reproduce tarmoun-fig1`).
Writes benchmarks/results/tarmoun.json, tarmoun_fig1.png, tarmoun_fig2.png."""

from _common import parse_with_options as parse, provenance, save_json

from linflow.figures import tarmoun


def main():
    args, out = parse(tarmoun.__doc__)
    # Provenance first: the run writes the figures, which would mark the checkout dirty.
    record = provenance("tarmoun", args.quick)
    res = tarmoun.run(quick=args.quick, out=out)
    save_json(out / "tarmoun.json", {**record, **res})
    print(f"wrote {out / 'tarmoun.json'}, tarmoun_fig1.png, tarmoun_fig2.png")


if __name__ == "__main__":
    main()

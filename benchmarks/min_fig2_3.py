"""Min et al. 2021, Figs. 2-3 (the figure's code: linflow/figures/min_fig2_3.py, also run by
`linflow reproduce min-fig2-3`). Writes benchmarks/results/min_fig2_3.{json,png}."""

from _common import parse_with_options as parse, provenance, save_json

from linflow.figures import min_fig2_3


def main():
    args, out = parse(min_fig2_3.__doc__)
    # Provenance first: the run writes the figure, which would mark the checkout dirty.
    record = provenance("min_fig2_3", args.quick)
    results = min_fig2_3.run(quick=args.quick, out=out)
    save_json(out / "min_fig2_3.json", {**record, **results})
    print(f"wrote {out / 'min_fig2_3.json'} and .png")


if __name__ == "__main__":
    main()

"""Min et al. 2021, Figs. 1 and 4: the width law (the figure's code:
linflow/figures/min_fig1_4.py, also run by `linflow reproduce min-fig1-4`).
Writes benchmarks/results/min_fig1_4.{json,png}."""

from _common import parse_with_options as parse, provenance, save_json

from linflow.figures import min_fig1_4


def main():
    def extra(p):
        p.add_argument("--widths", type=int, nargs="+", help="override the widths")
        p.add_argument("--seeds", type=int, help="override the number of seeds")

    args, out = parse(min_fig1_4.__doc__, extra)
    # Provenance first: the run writes the figure, which would mark the checkout dirty.
    record = provenance("min_fig1_4", args.quick)
    results = min_fig1_4.run(quick=args.quick, out=out, widths=args.widths, seeds=args.seeds)
    save_json(out / "min_fig1_4.json", {**record, **results})
    print(f"wrote {out / 'min_fig1_4.json'} and .png")


if __name__ == "__main__":
    main()

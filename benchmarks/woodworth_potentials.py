"""Woodworth potentials: the figure's code is linflow/figures/woodworth_potentials.py (also run by
`linflow reproduce`); this script writes benchmarks/results/woodworth_potentials.{json,png}."""

from _common import out_dir, parse, write

from linflow.figures import woodworth_potentials


def main():
    args = parse(woodworth_potentials.__doc__)
    results = woodworth_potentials.run(quick=args.quick, out=out_dir(args))
    write(args, "woodworth_potentials", results)


if __name__ == "__main__":
    main()

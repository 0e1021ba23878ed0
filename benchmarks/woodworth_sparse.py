"""Woodworth sparse: the figure's code is linflow/figures/woodworth_sparse.py (also run by
`linflow reproduce`); this script writes benchmarks/results/woodworth_sparse.{json,png}."""

from _common import out_dir, parse, write

from linflow.figures import woodworth_sparse


def main():
    args = parse(woodworth_sparse.__doc__)
    results = woodworth_sparse.run(quick=args.quick, out=out_dir(args))
    write(args, "woodworth_sparse", results)


if __name__ == "__main__":
    main()

"""Woodworth completion: the figure's code is linflow/figures/woodworth_completion.py (also run by
`linflow reproduce`); this script writes benchmarks/results/woodworth_completion.{json,png}."""

from _common import out_dir, parse, write

from linflow.figures import woodworth_completion


def main():
    args = parse(woodworth_completion.__doc__)
    results = woodworth_completion.run(quick=args.quick, out=out_dir(args))
    write(args, "woodworth_completion", results)


if __name__ == "__main__":
    main()

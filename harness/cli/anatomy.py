"""`mlpbench anatomy`: each variant's steady step, part by part, outside a suite (the same
breakdown `mlpbench run --anatomy` adds to a suite: harness/run/anatomy.py).

    mlpbench anatomy --variants tf1_graph,keras_fit_jit --batch-sizes 128,512 \
        --dataset fashion-mnist --hidden 512,256 --out results/anatomy
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from harness.cli.errors import UsageError


def register(commands: Any, int_list: Any, non_negative: Any, path_argument: Any) -> None:
    p = commands.add_parser(
        "anatomy",
        help="break each variant's steady step down: GEMMs, other math, update, the rest",
        description="Each (variant, batch size) in a process of its own: build the task, train "
        "one epoch untimed, then profile STEPS steps (TensorFlow's profiler; cProfile and the "
        "step's GEMMs timed alone for NumPy) and write OUT/anatomy.csv. Exit status: 0 all "
        "broken down, 1 one failed, 2 bad input.",
    )
    p.add_argument("--variants", required=True, help="comma-separated names or module:Class")
    p.add_argument("--batch-sizes", type=int_list(1, example="128,512"), default=[128])
    p.add_argument("--dataset", default="digits")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--hidden", type=int_list(1), default=None, help="default: as `run`'s")
    p.add_argument("--optimizer", choices=("adam", "sgd", "momentum"), default="adam")
    p.add_argument("--steps", type=non_negative, default=100, help="steps; 0: a whole epoch")
    p.add_argument("--seed", type=non_negative, default=0)
    p.add_argument("--out", type=path_argument, required=True, help="folder for anatomy.csv")


def cmd_anatomy(args: argparse.Namespace) -> int:
    import variants
    from harness import datasets
    from harness.cli.options import DEFAULT_HIDDEN
    from harness.run import anatomy, cluster
    from variants.base import SGD, Adam, Momentum, optimizer_to_dict

    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    if not names:
        raise UsageError("--variants: give at least one variant")
    for name in names:
        try:
            path = variants.resolve(name)
        except variants.VariantLoadError as exc:
            raise UsageError(str(exc)) from None
        if cluster.layout(path) != "single":
            raise UsageError(f"{name} is distributed: its step spans several replicas")
    if args.dataset not in datasets.DATASETS:
        known = ", ".join(datasets.DATASETS)
        raise UsageError(f"unknown dataset {args.dataset!r}: use one of {known}")
    try:  # the data must be there before any process starts (a second for Fashion-MNIST)
        datasets.load(args.dataset, args.data_dir)
    except datasets.DatasetError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    if args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a folder")
    hidden = args.hidden or DEFAULT_HIDDEN.get(args.dataset, (512, 256))
    optimizer = {"adam": Adam(), "sgd": SGD(), "momentum": Momentum()}[args.optimizer]
    argv = ["--dataset", args.dataset, "--hidden", ",".join(map(str, hidden))]
    argv += ["--data-dir", args.data_dir] if args.data_dir else []
    argv += ["--optimizer", json.dumps(optimizer_to_dict(optimizer))]
    argv += ["--steps", str(args.steps), "--seed", str(args.seed)]
    return anatomy.run_all(names, list(args.batch_sizes), argv, args.out)


COMMANDS = {"anatomy": cmd_anatomy}

"""Which classifier config is the most accurate within a training-time budget? A grid, then a check.

    python benchmarks/classifier_sweep.py --data data/cifar10 --device cuda --budget 10 --seeds 2 \\
        --confirm 5 --config 'epochs=10' --config 'widths=[96,384,384] epochs=20' ...

Each ``--config`` (space-separated ``key=value`` over ``params.yaml``'s classifier section, as in
``dvc exp run -S``) is trained ``--seeds`` times (seeds 100, 101, ...) after one untimed 1-epoch run
of the same shapes (cuDNN autotuning, allocator). It prints each config's test accuracy (TTA as
in the params) and training time (sum of epoch times, whitening included, evaluation excluded).
Then the most accurate config whose slowest run fitted the budget trains ``--confirm`` more times
on seeds 0, 1, ...: those runs are the numbers to report. The grid chooses on the test set, as the
fast-CIFAR-10 literature does; the fresh seeds take the luck of the draw out of the reported mean,
not the choice.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np

from cnnpipe.data import cifar10
from cnnpipe.device import describe_hardware, pick_device
from cnnpipe.errors import exit_on_user_error
from cnnpipe.params import ClassifierParams, section_with_overrides
from cnnpipe.train.classifier import accuracy, train


def run(p: ClassifierParams, train_split: cifar10.Split, test: cifar10.Split, device) -> tuple[float, float]:
    """(test accuracy, training seconds) of one training run."""
    trained = train(p, train_split, None, device)
    seconds = sum(row["epoch_seconds"] for row in trained.history)
    return accuracy(trained.model, test, device, p), seconds


def runs(p: ClassifierParams, seeds: range, train_split, test, device, label: str) -> tuple[np.ndarray, np.ndarray]:
    accs, secs = [], []
    for seed in seeds:
        acc, sec = run(dataclasses.replace(p, seed=seed), train_split, test, device)
        accs.append(acc)
        secs.append(sec)
        print(f"  {label} seed {seed}: test accuracy {acc:.4f}, training {sec:.2f} s", flush=True)
    return np.array(accs), np.array(secs)


@exit_on_user_error
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("data/cifar10"), help="extracted CIFAR-10 binary")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda")
    parser.add_argument("--budget", type=float, default=10.0, help="training seconds a config may take")
    parser.add_argument("--seeds", type=int, default=2, help="grid runs per config")
    parser.add_argument("--confirm", type=int, default=5, help="fresh-seed runs of the winner (0 = none)")
    parser.add_argument("--config", action="append", required=True, help="'key=value ...' over the classifier params")
    args = parser.parse_args()
    device = pick_device(args.device)  # first: no GPU is one line before any work

    configs = [section_with_overrides(ClassifierParams, "classifier", c.split()) for c in args.config]
    train_split, test = cifar10.load(args.data, "train"), cifar10.load(args.data, "test")
    print(describe_hardware())
    print(f"data {args.data}: {len(train_split)} train / {len(test)} test images; budget {args.budget:g} s\n")

    began = time.perf_counter()
    table = []
    for text, p in zip(args.config, configs, strict=True):
        train(dataclasses.replace(p, epochs=1, seed=1000), train_split, None, device)  # untimed warm-up
        accs, secs = runs(p, range(100, 100 + args.seeds), train_split, test, device, text)
        table.append((text, p, accs, secs))
    print(f"\ngrid ({time.perf_counter() - began:.0f} s wall), {args.seeds} seed(s) per config:")
    width = max(len(text) for text in args.config) + 2
    print(f"{'config':<{width}}{'mean acc':>9}{'mean s':>8}{'max s':>7}")
    for text, _, accs, secs in sorted(table, key=lambda row: -row[2].mean()):
        fits = "" if secs.max() <= args.budget else "  over budget"
        print(f"{text:<{width}}{accs.mean():>9.4f}{secs.mean():>8.2f}{secs.max():>7.2f}{fits}")

    fitting = [row for row in table if row[3].max() <= args.budget]
    if not args.confirm or not fitting:
        print("no config to confirm" if args.confirm else "")
        return
    text, p, _, _ = max(fitting, key=lambda row: row[2].mean())
    print(f"\nconfirming the most accurate config within {args.budget:g} s: {text}\n{p}")
    accs, secs = runs(p, range(args.confirm), train_split, test, device, text)
    print(f"per-seed test accuracy: {', '.join(f'{a:.4f}' for a in accs)}")
    fits = "within" if secs.max() <= args.budget else "OVER"
    print(f"mean {accs.mean():.4f} (std {accs.std():.4f}, min {accs.min():.4f})")
    print(f"training time mean {secs.mean():.2f} s, max {secs.max():.2f} s ({fits} the {args.budget:g} s budget)")


if __name__ == "__main__":
    main()

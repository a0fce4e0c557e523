"""The ``cnnpipe`` command line."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from cnnpipe import __version__
from cnnpipe.errors import exit_on_user_error
from cnnpipe.sample_data import SampleSpec, write_archives

# Sizes of the generated sample: "demo" trains in minutes on 2 CPU cores, "tiny" in seconds.
SAMPLE_SIZES = {
    "demo": SampleSpec(),
    "tiny": SampleSpec(cifar_train_per_batch=64, cifar_test=200, bsds_train=4, bsds_test=2, bsds_size=(120, 96)),
}


def sample_data(args: argparse.Namespace) -> None:
    written = write_archives(Path(args.out_dir), SAMPLE_SIZES[args.size])
    if args.dvc_set_args:
        print(" ".join(
            f"-S {shlex.quote(f'data.{name}.url={path}')} -S data.{name}.md5={md5}"
            for name, (path, md5) in written.items()
        ))  # fmt: skip
        return
    for name, (path, md5) in written.items():
        print(f"{path}  md5 {md5}  (params: data.{name}.url / data.{name}.md5)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnpipe", description=__doc__)
    parser.add_argument("--version", action="version", version=f"cnnpipe {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "sample-data",
        help="write generated sample archives (official CIFAR-10 binary / BSDS300 layouts)",
        description="Write cifar-10-binary.tar.gz and BSDS300-images.tgz with synthetic images "
        "in the official layouts, for offline runs. They are NOT the real datasets.",
    )
    p.add_argument("out_dir")
    p.add_argument("--size", choices=sorted(SAMPLE_SIZES), default="demo")
    p.add_argument("--dvc-set-args", action="store_true", help="print `dvc exp run -S` arguments")
    p.set_defaults(func=sample_data)
    return parser


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()

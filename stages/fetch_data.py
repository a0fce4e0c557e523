"""Stage fetch_<name>: download, verify and extract a dataset archive into data/<name>/.

python -m stages.fetch_data cifar10|bsds300
"""

from __future__ import annotations

import sys
from pathlib import Path

from cnnpipe.errors import ParamError, exit_on_user_error
from cnnpipe.fetch import fetch
from cnnpipe.params import load_params

DATASETS = ("cifar10", "bsds300")


@exit_on_user_error
def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in DATASETS:
        raise ParamError(f"usage: python -m stages.fetch_data {{{','.join(DATASETS)}}}")
    name = argv[0]
    params = load_params()
    md5 = fetch(params.source(name), Path("data") / name)
    print(f"data/{name}: ok (md5 {md5})")


if __name__ == "__main__":
    main(sys.argv[1:])

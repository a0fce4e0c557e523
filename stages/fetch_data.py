"""Stage fetch_<name>: download, verify and extract a dataset archive into data/<name>/.

python -m stages.fetch_data cifar10|bsds300
"""

from __future__ import annotations

import sys

from cnnpipe import paths
from cnnpipe.data.fetch import Source, fetch
from cnnpipe.errors import ParamError, exit_on_user_error
from cnnpipe.params import load_params

DATASETS = ("cifar10", "bsds300")


@exit_on_user_error
def main(argv: list[str]) -> None:
    if len(argv) != 1 or argv[0] not in DATASETS:
        raise ParamError(f"usage: python -m stages.fetch_data {{{','.join(DATASETS)}}}")
    name = argv[0]
    source = getattr(load_params().data, name)
    md5 = fetch(Source(url=source.url, md5=source.md5, param=f"data.{name}"), paths.dataset(name))
    print(f"{paths.dataset(name)}: ok (md5 {md5})")


if __name__ == "__main__":
    main(sys.argv[1:])

"""``cnnpipe compare``: runs of the pipeline side by side, across commits, experiments and servers.

:mod:`~cnnpipe.compare.runs` finds the runs and their metrics and params (DVC's Python API),
:mod:`~cnnpipe.compare.table` builds the table (pandas), :mod:`~cnnpipe.compare.report` renders it.
"""

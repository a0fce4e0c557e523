"""Looking inside the CNNs: where the evidence for a class lies (:mod:`~cnnpipe.explain.attribution`),
what the layers hold (:mod:`~cnnpipe.explain.features`), and pictures of both (:mod:`~cnnpipe.explain.render`)."""

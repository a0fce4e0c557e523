"""Training loops (pipeline only): the CIFAR-10 classifier, the super-resolution nets, data-parallel
set-up, per-epoch logging."""

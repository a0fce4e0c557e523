"""Datasets and images: download and verify archives, read CIFAR-10 and image folders, colour,
augmentation, generated sample archives."""

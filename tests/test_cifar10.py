from pathlib import Path

import numpy as np
import pytest

from cnnpipe.data import cifar10
from cnnpipe.errors import DataError


def _official_record(label: int, r: int, g: int, b: int) -> bytes:
    """One record exactly as the CIFAR-10 binary readme describes: label byte, R, G, B planes."""
    return bytes([label]) + bytes([r]) * 1024 + bytes([g]) * 1024 + bytes([b]) * 1024


def test_read_batch_decodes_the_official_byte_layout(tmp_path: Path) -> None:
    data = bytearray(_official_record(7, 10, 20, 30) + _official_record(2, 1, 2, 3))
    data[1 + 5 * 32 + 6] = 255  # red plane, row 5, column 6 of the first image
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(data))

    split = cifar10.read_batch(path)

    assert split.labels.tolist() == [7, 2]
    assert split.images.shape == (2, 3, 32, 32) and split.images.dtype == np.uint8
    assert split.images[0, 0, 5, 6] == 255
    assert split.images[0, 0, 5, 7] == 10
    assert (split.images[0, 1] == 20).all() and (split.images[0, 2] == 30).all()
    assert (split.images[1, :, 0, 0] == [1, 2, 3]).all()


def _write_dataset(root: Path, per_batch: int) -> None:
    folder = root / cifar10.FOLDER
    folder.mkdir(parents=True)
    for i, name in enumerate((*cifar10.TRAIN_FILES, *cifar10.TEST_FILES)):
        images = np.full((per_batch, 3, 32, 32), i, dtype=np.uint8)
        labels = np.arange(per_batch) % 10
        (folder / name).write_bytes(cifar10.encode_batch(images, labels))
    (folder / cifar10.META_FILE).write_text("\n".join(cifar10.CLASSES) + "\n\n")


def test_load_concatenates_the_five_training_batches_in_order(tmp_path: Path) -> None:
    _write_dataset(tmp_path, per_batch=3)

    train, test = cifar10.load(tmp_path, "train"), cifar10.load(tmp_path, "test")

    assert len(train) == 15 and len(test) == 3
    assert train.images[:, 0, 0, 0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert (test.images == 5).all()
    assert cifar10.read_class_names(cifar10.find_root(tmp_path)) == cifar10.CLASSES


def test_a_file_that_is_not_whole_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_batch.bin"
    path.write_bytes(_official_record(1, 0, 0, 0)[:-5])
    with pytest.raises(DataError, match="not a CIFAR-10 binary batch"):
        cifar10.read_batch(path)


def test_missing_dataset_names_the_stage_to_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="dvc repro fetch_cifar10"):
        cifar10.load(tmp_path, "train")

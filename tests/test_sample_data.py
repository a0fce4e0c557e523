import hashlib
import tarfile

from cnnpipe.data import cifar10
from cnnpipe.data.fetch import Source, fetch
from cnnpipe.data.sample import MARKER, SAMPLE_SIZES, bsds300_archive, cifar10_archive, is_generated


def test_archives_are_byte_for_byte_deterministic() -> None:
    spec = SAMPLE_SIZES["tiny"]
    for build in (cifar10_archive, bsds300_archive):
        assert hashlib.md5(build(spec)).hexdigest() == hashlib.md5(build(spec)).hexdigest()


def test_archives_use_the_official_layouts(tiny_archives) -> None:
    with tarfile.open(tiny_archives["cifar10"][0]) as tar:
        names = set(tar.getnames())
    expected = {f"cifar-10-batches-bin/{n}" for n in (*cifar10.TRAIN_FILES, *cifar10.TEST_FILES, cifar10.META_FILE)}
    assert expected <= names
    with tarfile.open(tiny_archives["bsds300"][0]) as tar:
        names = tar.getnames()
    assert sum(n.startswith("BSDS300/images/train/") and n.endswith(".jpg") for n in names) == 4
    assert sum(n.startswith("BSDS300/images/test/") and n.endswith(".jpg") for n in names) == 2


def test_generated_data_is_marked_and_loads(tmp_path, tiny_archives) -> None:
    path, md5 = tiny_archives["cifar10"]
    fetch(Source(str(path), md5, "data.cifar10"), tmp_path / "c")
    train = cifar10.load(tmp_path / "c", "train")
    assert len(train) == 5 * SAMPLE_SIZES["tiny"].cifar_train_per_batch
    assert set(train.labels.tolist()) == set(range(10))
    assert is_generated(tmp_path / "c")
    assert (tmp_path / "c" / "cifar-10-batches-bin" / MARKER).is_file()

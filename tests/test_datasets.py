"""Dataset loading and validation against small IDX and npz files written here, byte by byte,
and against the real Fashion-MNIST files when the Debian package is installed."""

from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from harness.datasets import (
    DATASETS,
    FASHION_MNIST_DIR,
    IDX_NAMES,
    DatasetError,
    load,
    load_digits,
)

N_TRAIN, N_TEST = 20, 10
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = IDX_NAMES


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file as the MNIST distribution writes it: magic 0x0000 08 <ndim>, big-endian
    uint32 dimensions, then the unsigned bytes."""
    assert array.dtype == np.uint8
    header = struct.pack(f">I{array.ndim}I", 0x0800 | array.ndim, *array.shape)
    return header + array.tobytes()


def sample_arrays(image_shape: tuple[int, int] = (28, 28)) -> dict[str, np.ndarray]:
    """Deterministic images (pixel [0, 0] of every image is 255) and labels 0..9."""
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        x = rng.integers(0, 256, size=(n, *image_shape), dtype=np.uint8)
        x[:, 0, 0] = 255
        x[:, 0, 1] = 0
        arrays[f"x_{split}"] = x
        arrays[f"y_{split}"] = (np.arange(n) % 10).astype(np.uint8)
    return arrays


def write_idx_dir(directory: Path, gz: bool = True, arrays: dict | None = None) -> Path:
    arrays = arrays or sample_arrays()
    directory.mkdir(parents=True, exist_ok=True)
    keys = ("x_train", "y_train", "x_test", "y_test")
    for name, key in zip(IDX_NAMES, keys, strict=True):
        data = idx_bytes(arrays[key])
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)
    return directory


def idx_path(directory: Path, name: str, gz: bool = True) -> Path:
    return directory / (f"{name}.gz" if gz else name)


def rewrite(path: Path, data: bytes) -> None:
    """Replace an IDX file's content, compressing it when its name says so."""
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def raised(*args, **kwargs) -> DatasetError:
    """The DatasetError that load(...) raises; every message is one line."""
    with pytest.raises(DatasetError) as info:
        load(*args, **kwargs)
    assert "\n" not in str(info.value)
    return info.value


def load_error(*args, **kwargs) -> str:
    return str(raised(*args, **kwargs))


# Good files


def check_matches(ds, arrays: dict[str, np.ndarray]) -> None:
    assert ds.x_train.shape == (N_TRAIN, 784) and ds.x_test.shape == (N_TEST, 784)
    assert ds.y_train.shape == (N_TRAIN,) and ds.y_test.shape == (N_TEST,)
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64 and ds.y_test.dtype == np.int64
    assert ds.x_train[0, 0] == 1.0 and ds.x_train[0, 1] == 0.0  # 255 -> exactly 1.0
    for split in ("train", "test"):
        expected = arrays[f"x_{split}"].reshape(-1, 784).astype(np.float32) / 255
        np.testing.assert_array_equal(getattr(ds, f"x_{split}"), expected)
        np.testing.assert_array_equal(getattr(ds, f"y_{split}"), arrays[f"y_{split}"])
        x = getattr(ds, f"x_{split}")
        assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_mnist_idx_dir(tmp_path, gz):
    directory = write_idx_dir(tmp_path / "mnist", gz=gz)
    ds = load("mnist", directory)
    assert ds.name == "mnist"
    check_matches(ds, sample_arrays())


def test_mnist_idx_mixed_gz_and_raw(tmp_path):
    directory = write_idx_dir(tmp_path / "mnist", gz=True)
    gzipped = idx_path(directory, TEST_LABELS)
    (directory / TEST_LABELS).write_bytes(gzip.decompress(gzipped.read_bytes()))
    gzipped.unlink()
    check_matches(load("mnist", str(directory)), sample_arrays())


def test_mnist_npz_dir_and_file(tmp_path):
    arrays = sample_arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)
    check_matches(load("mnist", tmp_path), arrays)
    check_matches(load("mnist", tmp_path / "mnist.npz"), arrays)


def test_fashion_mnist_from_data_dir(tmp_path):
    directory = write_idx_dir(tmp_path / "fashion")
    ds = load("fashion-mnist", directory)
    assert ds.name == "fashion-mnist"
    check_matches(ds, sample_arrays())


# Bad files: each error names the file at fault


@pytest.fixture
def idx_dir(tmp_path) -> Path:
    return write_idx_dir(tmp_path / "mnist")


def test_truncated_images(idx_dir):
    path = idx_path(idx_dir, TRAIN_IMAGES)
    rewrite(path, gzip.decompress(path.read_bytes())[: 16 + 784 * 5 + 100])
    message = load_error("mnist", idx_dir)
    assert str(path) in message
    assert f"truncated: header declares {N_TRAIN} images, file holds 5" in message


def test_truncated_labels(idx_dir):
    path = idx_path(idx_dir, TEST_LABELS)
    rewrite(path, gzip.decompress(path.read_bytes())[:-3])
    message = load_error("mnist", idx_dir)
    assert str(path) in message
    assert f"truncated: header declares {N_TEST} labels, file holds {N_TEST - 3}" in message


def test_truncated_header(idx_dir):
    path = idx_path(idx_dir, TRAIN_IMAGES)
    rewrite(path, gzip.decompress(path.read_bytes())[:10])
    message = load_error("mnist", idx_dir)
    assert str(path) in message and "truncated" in message and "header" in message


def test_trailing_bytes(idx_dir):
    path = idx_path(idx_dir, TRAIN_LABELS)
    rewrite(path, gzip.decompress(path.read_bytes()) + b"\x00\x01")
    message = load_error("mnist", idx_dir)
    assert str(path) in message and "2 bytes after" in message


def test_images_file_in_place_of_labels(idx_dir):
    labels = idx_path(idx_dir, TRAIN_LABELS)
    labels.write_bytes(idx_path(idx_dir, TRAIN_IMAGES).read_bytes())
    message = load_error("mnist", idx_dir)
    assert message == (
        f"mnist: {labels}: wrong magic number 0x00000803 (expected 0x00000801 for labels): "
        "is it an images file?"
    )


def test_labels_file_in_place_of_images(idx_dir):
    images = idx_path(idx_dir, TEST_IMAGES)
    images.write_bytes(idx_path(idx_dir, TEST_LABELS).read_bytes())
    message = load_error("mnist", idx_dir)
    assert str(images) in message and "0x00000801" in message and "labels file" in message


def test_wrong_data_type(idx_dir):
    path = idx_path(idx_dir, TRAIN_IMAGES)
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[2] = 0x0D  # IDX code for float32
    rewrite(path, bytes(data))
    message = load_error("mnist", idx_dir)
    assert str(path) in message and "data type 0x0D" in message


def test_gzip_data_without_gz_name(tmp_path):
    directory = write_idx_dir(tmp_path / "raw", gz=False)
    path = directory / TRAIN_IMAGES
    path.write_bytes(gzip.compress(path.read_bytes()))
    message = load_error("mnist", directory)
    assert str(path) in message and "gzip-compressed" in message


def test_label_out_of_range(tmp_path):
    arrays = sample_arrays()
    arrays["y_train"][7] = 10
    directory = write_idx_dir(tmp_path / "mnist", arrays=arrays)
    message = load_error("mnist", directory)
    path = idx_path(directory, TRAIN_LABELS)
    assert str(path) in message and "label at index 7 is 10, outside 0..9" in message


def test_image_and_label_counts_differ(tmp_path):
    arrays = sample_arrays()
    arrays["y_test"] = arrays["y_test"][:-1]
    directory = write_idx_dir(tmp_path / "mnist", arrays=arrays)
    message = load_error("mnist", directory)
    images, labels = idx_path(directory, TEST_IMAGES), idx_path(directory, TEST_LABELS)
    assert f"{images} holds {N_TEST} images but {labels} holds {N_TEST - 1} labels" in message


def test_wrong_image_size(tmp_path):
    directory = write_idx_dir(tmp_path / "mnist", arrays=sample_arrays(image_shape=(27, 28)))
    message = load_error("mnist", directory)
    assert str(idx_path(directory, TRAIN_IMAGES)) in message and "27x28" in message


# Each way a .gz file can be damaged, and the exception gzip raises for it.
GZIP_DAMAGE = {
    "not-gzip": (lambda c: b"\x00\x00" + c[2:], gzip.BadGzipFile),
    "invalid-deflate-block": (lambda c: c[:10] + b"\xff" + c[11:], zlib.error),
    "crc-mismatch": (lambda c: c[:-8] + bytes(4) + c[-4:], gzip.BadGzipFile),
    "truncated-stream": (lambda c: c[:-50], EOFError),
}


@pytest.mark.parametrize("damage", list(GZIP_DAMAGE))
def test_corrupt_gzip(idx_dir, damage):
    spoil, cause = GZIP_DAMAGE[damage]
    path = idx_path(idx_dir, TEST_IMAGES)
    path.write_bytes(spoil(path.read_bytes()))
    error = raised("mnist", idx_dir)
    assert isinstance(error.__cause__, cause)
    assert str(error).startswith(f"mnist: {path}: not a valid gzip file (")


def test_missing_file(idx_dir):
    idx_path(idx_dir, TEST_LABELS).unlink()
    message = load_error("mnist", idx_dir)
    assert f"{idx_dir / TEST_LABELS}.gz not found" in message
    assert "--data-dir" in message and "--download" in message


def test_fashion_mnist_missing_file_in_data_dir(idx_dir):
    idx_path(idx_dir, TRAIN_IMAGES).unlink()
    message = load_error("fashion-mnist", idx_dir)
    assert message.startswith(f"fashion-mnist: {idx_dir / TRAIN_IMAGES}.gz not found")
    assert "--data-dir DIR with the four IDX files" in message


# Headers that declare what the file cannot hold, and gzip bombs


def gzip_bomb(header: bytes, inflated_mib: int) -> bytes:
    """A .gz file whose IDX header is followed by `inflated_mib` MiB of zeros: gzip members
    of 16 MiB of zeros each (a valid multi-member gzip file), so that it is quick to make."""
    zeros = gzip.compress(bytes(1 << 24), compresslevel=9)
    assert inflated_mib % 16 == 0
    return gzip.compress(header) + zeros * (inflated_mib // 16)


def test_gzip_bomb_is_inflated_no_further_than_the_header_declares(idx_dir):
    """20 images declared, 64 MiB of zeros behind them: refused with one line, and reading
    it allocates a small fraction of what it inflates to."""
    import tracemalloc

    path = idx_path(idx_dir, TRAIN_IMAGES)
    path.write_bytes(gzip_bomb(struct.pack(">4I", 0x803, N_TRAIN, 28, 28), 64))
    assert path.stat().st_size < 200_000
    tracemalloc.start()
    try:
        message = load_error("mnist", idx_dir)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB while reading a 64 MiB bomb"
    assert message.startswith(f"mnist: {path}: more than 1 MiB after the {N_TRAIN} images")


@pytest.mark.parametrize("gz", [True, False], ids=["gzipped", "raw"])
def test_header_declaring_dims_of_0xffffffff(tmp_path, gz):
    """Once reported as "36893488134534202129 bytes after the ..." (the product of the dims
    overflowed int64). Each impossible header gets a line that says what is wrong with it."""
    most = 0xFFFFFFFF
    directory = write_idx_dir(tmp_path / "mnist", gz=gz)
    images, labels = idx_path(directory, TRAIN_IMAGES, gz), idx_path(directory, TRAIN_LABELS, gz)
    original = images.read_bytes()
    rewrite(images, struct.pack(">4I", 0x803, most, most, most) + bytes(100))
    message = load_error("mnist", directory)
    assert message.startswith(f"mnist: {images}: images are {most}x{most}, expected 28x28")
    rewrite(images, struct.pack(">4I", 0x803, most, 28, 28) + bytes(100))
    message = load_error("mnist", directory)
    if gz:
        assert message.startswith(f"mnist: {images}: header declares {most} images (3.06 TiB)")
        assert "of gzip data can inflate to: the header is damaged" in message
    else:
        assert message.startswith(
            f"mnist: {images}: truncated, or a damaged header: header declares {most} images "
            "(3.06 TiB), file holds 0 (100 bytes)"
        )
    images.write_bytes(original)
    rewrite(labels, struct.pack(">2I", 0x801, most) + bytes(100))
    message = load_error("mnist", directory)
    assert f"header declares {most} labels (4 GiB)" in message and str(labels) in message
    assert "bytes after" not in message


THINGS_IN_PLACE_OF_A_FILE = {
    "directory": (lambda p: p.mkdir(), "is a directory"),
    "symlink loop": (lambda p: p.symlink_to(p.name), "is a symlink loop"),
    "broken symlink": (lambda p: p.symlink_to("nowhere"), "is a broken symlink (to nowhere)"),
    "named pipe": (lambda p: os.mkfifo(p), "is a named pipe"),
}


@pytest.mark.parametrize("thing", list(THINGS_IN_PLACE_OF_A_FILE))
def test_something_else_in_place_of_an_idx_file_is_named(idx_dir, thing):
    """Once reported as "not found"; a named pipe must not be opened (it would block)."""
    make, what = THINGS_IN_PLACE_OF_A_FILE[thing]
    path = idx_path(idx_dir, TEST_IMAGES)
    path.unlink()
    make(path)
    message = load_error("mnist", idx_dir)
    assert message.startswith(f"mnist: {path} {what}, not an IDX file; put the file itself there")
    assert "not found" not in message


def test_symlink_loop_in_place_of_the_data_dir_or_npz(tmp_path):
    loop = tmp_path / "data"
    loop.symlink_to(loop.name)
    assert load_error("fashion-mnist", loop).startswith(
        f"fashion-mnist: {loop} is a symlink loop, not a directory"
    )
    npz = tmp_path / "mnist.npz"
    npz.symlink_to(npz.name)
    assert load_error("mnist", npz).startswith(f"mnist: {npz}: is a symlink loop, not an .npz")


def npz_error(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    message = load_error("mnist", path.parent)
    assert str(path) in message
    return message


def test_npz_missing_key(tmp_path):
    arrays = sample_arrays()
    del arrays["y_test"]
    message = npz_error(tmp_path / "mnist.npz", **arrays)
    assert "missing y_test" in message


def test_npz_wrong_shape(tmp_path):
    arrays = sample_arrays()
    arrays["x_train"] = arrays["x_train"].reshape(N_TRAIN, 784)
    message = npz_error(tmp_path / "mnist.npz", **arrays)
    assert "x_train is uint8 (20, 784), expected uint8 (n, 28, 28)" in message


def test_npz_wrong_dtype(tmp_path):
    arrays = sample_arrays()
    arrays["x_test"] = arrays["x_test"].astype(np.float64) / 255
    message = npz_error(tmp_path / "mnist.npz", **arrays)
    assert "x_test is float64" in message


def test_npz_count_mismatch_and_label_range(tmp_path):
    arrays = sample_arrays()
    arrays["y_train"] = arrays["y_train"][:-2]
    assert "x_train holds 20 images but y_train 18 labels" in npz_error(
        tmp_path / "mnist.npz", **arrays
    )
    arrays = sample_arrays()
    arrays["y_test"] = arrays["y_test"].astype(np.int64) - 1
    assert "y_test[0] is -1, outside 0..9" in npz_error(tmp_path / "mnist.npz", **arrays)


def test_npz_not_a_zip(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    message = load_error("mnist", tmp_path)
    assert str(path) in message and "not a readable .npz file" in message


def test_npz_compressed_loads(tmp_path):
    arrays = sample_arrays()
    np.savez_compressed(tmp_path / "mnist.npz", **arrays)
    check_matches(load("mnist", tmp_path), arrays)


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed], ids=["stored", "compressed"])
def test_npz_header_declaring_more_than_it_holds(tmp_path, save):
    """Once "not enough memory to load the data set (Unable to allocate 730. GiB ...)": numpy
    allocates what an .npy header declares before it reads the data."""
    import io
    import zipfile

    path = tmp_path / "mnist.npz"
    save(path, **sample_arrays())
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "|u1", "fortran_order": False, "shape": (10**9, 28, 28)}
    )
    members["x_train.npy"] = header.getvalue() + bytes(100)
    deflate = save is np.savez_compressed
    with zipfile.ZipFile(
        path, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    ) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    message = load_error("mnist", path)
    assert message.startswith(
        f"mnist: {path}: x_train declares shape (1000000000, 28, 28) (730 GiB), but the "
        "archive holds 100 bytes of it"
    )


# Dispatch, and no download unless asked


def test_unknown_dataset_lists_all():
    message = load_error("cifar10")
    assert "'cifar10'" in message and all(name in message for name in DATASETS)


def test_mnist_without_data_dir_explains_options():
    message = load_error("mnist")
    assert "--data-dir DIR" in message and "mnist.npz" in message and "--download" in message


def test_missing_dir_does_not_download(tmp_path):
    """Without download=True a missing directory is an error: nothing is fetched, nothing is
    created, and neither Keras nor TensorFlow is imported (checked in a fresh interpreter)."""
    missing = tmp_path / "nowhere"
    message = load_error("mnist", missing)
    assert f"mnist: {missing} not found" in message and "--download" in message
    assert not missing.exists()
    code = (
        "import sys\n"
        "from harness.datasets import DatasetError, load\n"
        "for args in ((), (sys.argv[1],)):\n"
        "    try:\n"
        "        load('mnist', *args)\n"
        "    except DatasetError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit('loaded without data')\n"
        "bad = [m for m in ('keras', 'tensorflow', 'urllib.request') if m in sys.modules]\n"
        "raise SystemExit(f'imported {bad}' if bad else 0)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    done = subprocess.run(
        [sys.executable, "-c", code, str(missing)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not missing.exists()


def test_download_flag_rejected_where_it_does_not_apply(tmp_path):
    assert "--download applies only to mnist" in load_error("fashion-mnist", download=True)
    assert "drop --data-dir" in load_error("digits", tmp_path)


# digits


def test_digits_split():
    ds = load("digits")
    assert ds.x_train.shape == (1347, 64) and ds.x_test.shape == (450, 64)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    for x in (ds.x_train, ds.x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    # Stratified: every class in the test set, in about the overall proportion.
    counts = np.bincount(ds.y_test, minlength=10)
    assert counts.min() >= 40 and counts.sum() == 450


def test_stored_digits_are_scikit_learns_digits_and_split():
    """harness/data/digits.npz stands in for scikit-learn at run time: it must be exactly what
    `load_digits` and the stratified `train_test_split` give today."""
    from sklearn.datasets import load_digits as sk_digits
    from sklearn.model_selection import train_test_split

    bunch = sk_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    expected = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    ds = load_digits()
    for got, want in zip((ds.x_train, ds.x_test, ds.y_train, ds.y_test), expected, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_digits_deterministic():
    a, b = load_digits(), load_digits()
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


# The real Fashion-MNIST


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.is_dir(),
    reason=f"{FASHION_MNIST_DIR} absent: `apt-get install dataset-fashion-mnist` to test it",
)
def test_real_fashion_mnist():
    ds = load("fashion-mnist")
    assert ds.x_train.shape == (60000, 784) and ds.x_test.shape == (10000, 784)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() == 1.0
    for y in (ds.y_train, ds.y_test):
        assert y.min() == 0 and y.max() == 9
        assert (np.bincount(y, minlength=10) > 0).all()

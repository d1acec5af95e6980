"""Datasets: loading and validation. Every loader returns pixels scaled to [0, 1] as float32
(n, features) and labels as int64 (n,) in [0, 10).

Files are read and checked here, once, so that a bad file stops a run with one line naming
the file and the fix instead of a shape error deep inside a variant. Nothing is fetched
from the network unless `download=True` is passed explicitly."""

from __future__ import annotations

import errno
import gzip
import math
import os
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DATASETS = ("digits", "fashion-mnist", "mnist")

# scikit-learn's digits and their split, stored beside this module (load_digits).
DIGITS_FILE = Path(__file__).parent / "data" / "digits.npz"

# Where Debian's dataset-fashion-mnist package installs the four gzipped IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# The standard IDX names shared by MNIST and Fashion-MNIST, without the optional ".gz".
TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_NAMES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# The file keras.datasets.mnist.load_data caches, and the arrays it holds.
MNIST_NPZ = "mnist.npz"
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")

# IDX magic number: two zero bytes, a data type code (0x08 = unsigned byte), the number of
# dimensions. Each dimension follows as a big-endian uint32, then the data.
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
UBYTE = 0x08
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

# What a path can turn out to be (see _what_is), besides a link loop, a pipe, a device, ...
FILE, DIRECTORY = "a file", "a directory"

# Past the data its header declares, an IDX file's extra bytes are counted up to this many and
# no further: the count of an honest mistake is exact, and a gzip bomb is never inflated.
TRAILING_COUNTED = 1 << 20
# deflate's best ratio, inflated bytes per compressed byte: a .gz file whose header declares
# more data than this allows cannot hold it, whatever it inflates to.
MAX_DEFLATE_RATIO = 1032

IDX_HELP = (
    "pass --data-dir DIR with the four IDX files "
    "({train,t10k}-images-idx3-ubyte, {train,t10k}-labels-idx1-ubyte, .gz optional)"
)
MNIST_HELP = (
    "pass --data-dir DIR holding the four IDX files (.gz or raw) or mnist.npz, "
    "or pass --download to fetch mnist.npz with Keras"
)


class DatasetError(Exception):
    """A dataset that cannot be loaded; the message names the file and the fix."""


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 10  # every dataset here: digits 0-9, or ten kinds of clothing


def load_digits() -> Dataset:
    """scikit-learn's embedded 8x8 digits (1797 images, pixels 0..16), a fixed stratified
    75/25 split so that every run and every machine sees the same test set.

    The images and the split are stored in harness/data/digits.npz, made once by
    `sklearn.datasets.load_digits` and `train_test_split(test_size=0.25, stratify=y,
    random_state=0)` (tests/test_datasets.py checks that they still agree): importing
    scikit-learn costs two seconds, which every `mlpbench run` would pay."""
    with np.load(DIGITS_FILE) as stored:
        x = (stored["pixels"].astype(np.float64) / 16.0).astype(np.float32)
        y = stored["target"].astype(np.int64)
        train, test = stored["train"].astype(np.intp), stored["test"].astype(np.intp)
    return Dataset("digits", x[train], y[train], x[test], y[test])


def load_fashion_mnist(data_dir: str | Path | None = None) -> Dataset:
    """Fashion-MNIST from four IDX files, by default where Debian installs them."""
    if data_dir is None:
        directory = FASHION_MNIST_DIR
        missing = "install it with `apt-get install dataset-fashion-mnist` or " + IDX_HELP
        damaged = "reinstall it with `apt-get install --reinstall dataset-fashion-mnist`"
    else:
        directory = Path(data_dir)
        missing = IDX_HELP
        damaged = "replace it with an intact copy"
    _require_dir("fashion-mnist", directory, missing)
    paths = [_find_idx("fashion-mnist", directory, name, missing) for name in IDX_NAMES]
    return _load_idx_set("fashion-mnist", paths, damaged)


def load_mnist(data_dir: str | Path | None, download: bool = False) -> Dataset:
    """MNIST from the directory the user names: the four IDX files, gzipped or raw, or the
    mnist.npz that keras.datasets.mnist saves (a path to that file works too). With
    `download=True` and no data there yet, mnist.npz is fetched first (see download_mnist)."""
    if data_dir is None and not download:
        raise DatasetError(f"mnist: no data directory given; {MNIST_HELP}")
    directory = Path(data_dir) if data_dir is not None else default_download_dir()
    damaged = "replace it with an intact copy"
    if directory.suffix == ".npz" and _what_is(directory) != DIRECTORY:  # the file itself
        if not _what_is(directory):
            raise DatasetError(f"mnist: {directory} not found; {MNIST_HELP}")
        return _load_npz("mnist", directory, damaged)
    if download and not (_has_idx_set(directory) or (directory / MNIST_NPZ).is_file()):
        download_mnist(directory)
    _require_dir("mnist", directory, MNIST_HELP)
    # IDX first: they are the original distribution; mnist.npz is the Keras repackaging.
    if _has_idx_set(directory) or not _what_is(directory / MNIST_NPZ):
        paths = [_find_idx("mnist", directory, name, MNIST_HELP) for name in IDX_NAMES]
        return _load_idx_set("mnist", paths, damaged)
    return _load_npz("mnist", directory / MNIST_NPZ, damaged)


def default_download_dir() -> Path:
    """Where `download=True` puts mnist.npz when no directory is named: the user's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "mlpbench" / "mnist"


def download_mnist(dest_dir: str | Path) -> Path:
    """Fetch MNIST with keras.datasets.mnist.load_data and save it as dest_dir/mnist.npz
    (keys x_train, y_train, x_test, y_test). Needs the network; runs only when asked."""
    dest = Path(dest_dir)
    try:
        # Imported here so that loading local files never imports TensorFlow or Keras.
        from keras.datasets import mnist
    except ImportError as e:
        raise DatasetError(
            f"mnist: cannot download: Keras is not importable ({e}); install tensorflow "
            "or pass --data-dir DIR holding the IDX files or mnist.npz"
        ) from e
    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data()
    except Exception as e:  # Keras wraps network failures in a plain Exception.
        raise DatasetError(
            f"mnist: download failed ({_one_line(e)}); check the network or pass "
            "--data-dir DIR holding the IDX files or mnist.npz"
        ) from e
    path = dest / MNIST_NPZ
    partial = dest / (MNIST_NPZ + ".part")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        # A file object, so that np.savez does not append ".npz" to the temporary name;
        # the rename makes an interrupted download leave no half-written mnist.npz behind.
        with open(partial, "wb") as f:
            np.savez(f, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        os.replace(partial, path)
    except OSError as e:
        raise DatasetError(
            f"mnist: cannot write {path} ({_one_line(e)}); pass --data-dir DIR that is writable"
        ) from e
    return path


def load(name: str, data_dir: str | Path | None = None, download: bool = False) -> Dataset:
    """The dataset called `name` (one of DATASETS). `data_dir` names a directory of files
    (mnist, fashion-mnist); `download=True` lets mnist be fetched when it is not there."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}")
    if download and name != "mnist":
        raise DatasetError(f"{name}: --download applies only to mnist; drop it")
    if name == "digits":
        if data_dir is not None:
            raise DatasetError(
                "digits: built into scikit-learn, it reads no files; drop --data-dir"
            )
        return load_digits()
    try:
        if name == "fashion-mnist":
            return load_fashion_mnist(data_dir)
        return load_mnist(data_dir, download=download)
    except MemoryError as e:  # the files hold what they declare, but more than fits
        raise DatasetError(
            f"{name}: not enough memory to load the data set ({_one_line(e)}); free memory "
            "or pass --data-dir DIR with a smaller set"
        ) from None


# IDX files


def _read_idx_images(path: Path, dataset: str, fix: str) -> np.ndarray:
    """(n, 28, 28) uint8 images from an IDX file (gzipped if the name ends in .gz)."""
    return _read_idx(path, dataset, fix, IMAGES_MAGIC, "images")


def _read_idx_labels(path: Path, dataset: str, fix: str) -> np.ndarray:
    """(n,) uint8 labels in 0..9 from an IDX file (gzipped if the name ends in .gz)."""
    labels = _read_idx(path, dataset, fix, LABELS_MAGIC, "labels")
    _check_labels(labels, dataset, path, fix)
    return labels


def _read_idx(path: Path, dataset: str, fix: str, magic: int, kind: str) -> np.ndarray:
    """The array an IDX file holds. The header is read first and the data after it only as
    far as the header declares: a .gz file is never inflated further than that (plus a
    bounded count of extra bytes), so a damaged header or a gzip bomb costs no memory."""
    where = f"{dataset}: {path}"
    gz = path.suffix == ".gz"
    try:
        file = path.open("rb")
    except OSError as e:
        raise DatasetError(f"{where}: cannot read ({_one_line(e)}); check its permissions") from e
    with file:
        try:
            size = os.fstat(file.fileno()).st_size
            stream = gzip.GzipFile(fileobj=file, mode="rb") if gz else file
            return _parse_idx(stream, size, path, dataset, fix, magic, kind)
        except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
            if not gz:
                raise DatasetError(
                    f"{where}: cannot read ({_one_line(e)}); check its permissions"
                ) from e
            raise DatasetError(f"{where}: not a valid gzip file ({_one_line(e)}); {fix}") from e


def _parse_idx(
    stream: Any, size: int, path: Path, dataset: str, fix: str, magic: int, kind: str
) -> np.ndarray:
    """The array behind an IDX header, read from `stream` (`size`: the file's size)."""
    where, gz = f"{dataset}: {path}", path.suffix == ".gz"
    data = stream.read(4)
    if len(data) < 4:
        raise DatasetError(f"{where}: truncated: {len(data)} bytes, no IDX header; {fix}")
    (found,) = struct.unpack(">I", data)
    if found != magic:
        raise DatasetError(f"{where}: {_magic_problem(found, magic, kind, path)}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    data += stream.read(header - 4)
    if len(data) < header:
        raise DatasetError(
            f"{where}: truncated: {len(data)} bytes, shorter than the {header}-byte header; {fix}"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header])
    n = dims[0]
    if n == 0:
        raise DatasetError(f"{where}: header declares 0 {kind}; {fix}")
    if kind == "images" and dims[1:] != IMAGE_SHAPE:
        rows, cols = dims[1:]
        raise DatasetError(
            f"{where}: images are {rows}x{cols}, expected 28x28; is it an MNIST-format file?"
        )
    item = math.prod(dims[1:])  # Python ints: a damaged header cannot overflow them
    expected = n * item
    if gz and expected > (size + 1) * MAX_DEFLATE_RATIO:
        raise DatasetError(
            f"{where}: header declares {n} {kind} ({_bytes(expected)}), more than "
            f"{_bytes(size)} of gzip data can inflate to: the header is damaged; {fix}"
        )
    if not gz and expected > size - header:
        raise DatasetError(
            f"{where}: truncated, or a damaged header: header declares {n} {kind} "
            f"({_bytes(expected)}), file holds {(size - header) // item} "
            f"({_bytes(size - header)}); {fix}"
        )
    array = np.empty(expected, dtype=np.uint8)
    held = _fill(stream, memoryview(array))
    if held < expected:
        raise DatasetError(
            f"{where}: truncated: header declares {n} {kind}, file holds {held // item}; {fix}"
        )
    extra = size - header - expected if not gz else len(stream.read(TRAILING_COUNTED + 1))
    if extra > TRAILING_COUNTED:
        raise DatasetError(
            f"{where}: more than {_bytes(TRAILING_COUNTED)} after the {n} {kind} the header "
            f"declares; {fix}"
        )
    if extra:
        raise DatasetError(
            f"{where}: {extra} bytes after the {n} {kind} the header declares; {fix}"
        )
    return array.reshape(dims)


def _fill(stream: Any, buffer: memoryview) -> int:
    """Read into `buffer` until it is full or the stream ends; the number of bytes read."""
    got = 0
    while got < len(buffer):
        k = stream.readinto(buffer[got:])
        if not k:
            break
        got += k
    return got


def _bytes(n: int) -> str:
    """A size for a message: exact below 1 KiB, else in KiB ... TiB with 3 significant digits."""
    if n < 1024:
        return f"{n} bytes"
    for unit in ("KiB", "MiB", "GiB", "TiB", "PiB"):
        n /= 1024
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}"
    raise AssertionError("unreachable")


def _magic_problem(found: int, expected: int, kind: str, path: Path) -> str:
    """Why a magic number is wrong, phrased to point at the likely mix-up."""
    head = f"wrong magic number 0x{found:08X} (expected 0x{expected:08X} for {kind})"
    if found == IMAGES_MAGIC:
        return f"{head}: is it an images file?"
    if found == LABELS_MAGIC:
        return f"{head}: is it a labels file?"
    if found >> 16 == 0x1F8B:
        return f"{head}: it is gzip-compressed; name it {path.name}.gz"
    if found >> 16 != 0:
        return f"{head}: not an IDX file"
    if (found >> 8) & 0xFF != UBYTE:
        return f"{head}: IDX data type 0x{(found >> 8) & 0xFF:02X}, only 0x08 (ubyte) is read"
    return f"{head}: {found & 0xFF} dimensions, expected {expected & 0xFF}"


def _find_idx(dataset: str, directory: Path, name: str, missing: str) -> Path:
    standing = []  # what stands at a name that is not a file
    for candidate in (directory / f"{name}.gz", directory / name):
        what = _what_is(candidate)
        if what == FILE:
            return candidate
        if what:
            standing.append((candidate, what))
    if standing:
        candidate, what = standing[0]
        raise DatasetError(
            f"{dataset}: {candidate} is {what}, not an IDX file; put the file itself there, "
            f"or {missing}"
        )
    raise DatasetError(f"{dataset}: {directory / name}.gz not found (nor without .gz); {missing}")


def _has_idx_set(directory: Path) -> bool:
    return all((directory / f"{n}.gz").is_file() or (directory / n).is_file() for n in IDX_NAMES)


def _load_idx_set(dataset: str, paths: list[Path], fix: str) -> Dataset:
    train_images, train_labels, test_images, test_labels = paths
    x_train = _read_idx_images(train_images, dataset, fix)
    y_train = _read_idx_labels(train_labels, dataset, fix)
    _check_pair(dataset, len(x_train), len(y_train), train_images, train_labels)
    x_test = _read_idx_images(test_images, dataset, fix)
    y_test = _read_idx_labels(test_labels, dataset, fix)
    _check_pair(dataset, len(x_test), len(y_test), test_images, test_labels)
    return Dataset(
        dataset,
        _scale(x_train),
        y_train.astype(np.int64),
        _scale(x_test),
        y_test.astype(np.int64),
    )


# mnist.npz


def _load_npz(dataset: str, path: Path, fix: str) -> Dataset:
    where = f"{dataset}: {path}"
    what = _what_is(path)
    if what != FILE:
        raise DatasetError(f"{where}: is {what or 'missing'}, not an .npz file; {fix}")
    try:
        # allow_pickle=False: a data file must not be able to run code.
        loaded = np.load(path, allow_pickle=False)
        is_archive = isinstance(loaded, np.lib.npyio.NpzFile)  # else a bare .npy array
        held: list[str] = []
        arrays: dict[str, np.ndarray] = {}
        if is_archive:
            with loaded as f:
                held = list(f.files)
                for k in NPZ_KEYS:
                    if k in held:
                        _check_npz_member(f.zip, k, where, fix)
                arrays = {k: f[k] for k in NPZ_KEYS if k in held}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise DatasetError(f"{where}: not a readable .npz file ({_one_line(e)}); {fix}") from e
    if not is_archive:
        raise DatasetError(f"{where}: a single .npy array, not an .npz archive; {fix}")
    absent = [k for k in NPZ_KEYS if k not in arrays]
    if absent:
        raise DatasetError(
            f"{where}: missing {', '.join(absent)} (holds {', '.join(held) or 'nothing'}); "
            f"expected {', '.join(NPZ_KEYS)} as keras.datasets.mnist saves them"
        )
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.dtype != np.uint8 or x.ndim != 3 or x.shape[1:] != IMAGE_SHAPE or len(x) == 0:
            raise DatasetError(
                f"{where}: x_{split} is {x.dtype} {x.shape}, expected uint8 (n, 28, 28); {fix}"
            )
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise DatasetError(
                f"{where}: y_{split} is {y.dtype} {y.shape}, expected integer (n,); {fix}"
            )
        if len(x) != len(y):
            raise DatasetError(
                f"{where}: x_{split} holds {len(x)} images but y_{split} {len(y)} labels; {fix}"
            )
        _check_labels(y, dataset, path, fix, key=f"y_{split}")
    return Dataset(
        dataset,
        _scale(arrays["x_train"]),
        arrays["y_train"].astype(np.int64),
        _scale(arrays["x_test"]),
        arrays["y_test"].astype(np.int64),
    )


def _check_npz_member(archive: zipfile.ZipFile, key: str, where: str, fix: str) -> None:
    """Refuse an array whose .npy header declares more data than the archive holds for it,
    before numpy allocates what the header declares (a damaged header or a crafted file)."""
    info = archive.getinfo(f"{key}.npy")
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0
        if version != (1, 0):
            read = np.lib.format.read_array_header_2_0
        shape, _, dtype = read(member)
        stored = info.file_size - member.tell()
    declared = math.prod(shape) * dtype.itemsize
    if not dtype.hasobject and declared > stored:
        raise DatasetError(
            f"{where}: {key} declares shape {shape} ({_bytes(declared)}), but the archive holds "
            f"{_bytes(stored)} of it; {fix}"
        )


# Shared checks and conversions


def _check_labels(y: np.ndarray, dataset: str, path: Path, fix: str, key: str = "") -> None:
    bad = np.flatnonzero((y < 0) | (y >= NUM_CLASSES))
    if bad.size:
        i = int(bad[0])
        what = f"{key}[{i}]" if key else f"label at index {i}"
        raise DatasetError(
            f"{dataset}: {path}: {what} is {int(y[i])}, outside 0..{NUM_CLASSES - 1} "
            f"({bad.size} of {len(y)} labels out of range); {fix}"
        )


def _check_pair(dataset: str, n_images: int, n_labels: int, images: Path, labels: Path) -> None:
    if n_images != n_labels:
        raise DatasetError(
            f"{dataset}: {images} holds {n_images} images but {labels} holds {n_labels} labels; "
            "both files must come from the same set"
        )


def _scale(images: np.ndarray) -> np.ndarray:
    """(n, 28, 28) uint8 -> (n, 784) float32 in [0, 1]. Division rather than multiplication
    by 1/255, so that 255 maps to exactly 1.0."""
    x = images.reshape(len(images), -1).astype(np.float32)
    x /= np.float32(255)
    return x


def _require_dir(dataset: str, directory: Path, missing: str) -> None:
    what = _what_is(directory)
    if not what:
        raise DatasetError(f"{dataset}: {directory} not found; {missing}")
    if what == FILE:
        raise DatasetError(f"{dataset}: {directory} is not a directory; {missing}")
    if what != DIRECTORY:
        raise DatasetError(f"{dataset}: {directory} is {what}, not a directory; {missing}")


def _what_is(path: Path) -> str:
    """What stands at `path`, in words: FILE (a regular file, or a symlink to one),
    DIRECTORY, "a symlink loop", ...; "" when nothing is there. A name that exists but is not
    a file must not be reported as missing, nor opened (a named pipe would block)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            return f"a broken symlink (to {os.readlink(path)})"
        return ""
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symlink loop"
        return f"unreadable ({_one_line(e)})"
    if stat.S_ISREG(mode):
        return FILE
    if stat.S_ISDIR(mode):
        return DIRECTORY
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device"


def _one_line(e: BaseException) -> str:
    """An exception's message on one line, so that every DatasetError stays one line."""
    return " ".join(str(e).split()) or type(e).__name__

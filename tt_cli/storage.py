"""Every file operation tt makes, on local paths and on URLs (`gs://`, `ram://`, `s3://`, ...).

A local path goes to `os` and `open` exactly as before this module existed (symlinks,
`os.replace`, `os.stat`). A URL (`scheme://...`) goes to one of two backends:

- TensorFlow's `tf.io.gfile` in the commands that run TensorFlow (train, eval, export,
  pretrain, bench, data embed): `gs://` is built in, `ram://` is in-process memory, and
  any scheme a TensorFlow filesystem plugin registers (s3://, hdfs://) works too.
- `fsspec` in the TF-free commands (`tt data convert/inspect/tokenizer`), which call
  `use_fsspec()` first: those processes may never load TensorFlow (the `tfrecord`
  package and TensorFlow cannot share one). Remote protocols are extras
  (`pip install 'tt[gcs]'` brings gcsfs, `'tt[s3]'` s3fs).

The modules both sides share (`ownership`, `jsonfile`, `schema`, `records`, `tokenizer`)
call this module without knowing which side they run on: the backend is a property of
the process, set once by its command, so the ownership rules are written once and hold
for local paths and URLs alike. Text on a URL is UTF-8.

What an object store cannot do is done as closely as it can: a rename is a copy and a
delete (tt renames only its own `.tmp` files), there are no symlinks (`islink` is
False, `realpath` only normalises), and a folder exists while something lies in it.

Example:
>>> from tt_cli import storage
>>> with storage.open("ram://bucket/run/notes.txt", "w") as f:   # gs://, s3://, ... alike
...     _ = f.write("written through tf.io.gfile")
>>> storage.listdir("ram://bucket/run")
['notes.txt']
"""

import builtins
import contextlib
import datetime
import glob as local_glob
import hashlib
import os
import posixpath
import re
import shutil
import stat
import tempfile

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.DOTALL)
_use_fsspec = False


def use_fsspec():
    """Sends URLs to fsspec instead of TensorFlow for the rest of this process (TF-free commands)."""
    global _use_fsspec
    _use_fsspec = True


def is_url(path):
    """True for `scheme://...`; everything else is a local path."""
    return isinstance(path, str) and _URL.match(path) is not None


def lives_in_process(path):
    """True for `ram://` (TensorFlow's) and `memory://` (fsspec's): stores in this process's
    memory, gone when it exits (fine from Python, useless as the output of a command)."""
    return is_url(path) and _URL.match(path).group(1) in ("ram", "memory")


def seen_by_other_processes(path):
    """Whether another process sees what this one writes at `path`: not for filesystems that
    live in one process's memory (fsspec's memory://), where worker processes' writes vanish."""
    return not (is_url(path) and _URL.match(path).group(1) == "memory")


class _Gfile:
    """URLs through TensorFlow's filesystems. Every TensorFlow error becomes what callers
    handle: a missing path FileNotFoundError, a failed write OSError, and a scheme TensorFlow
    has no filesystem for, or a store it cannot reach, one line naming the path (`TtError`)."""

    def __init__(self):
        import tensorflow as tf

        self.gfile, self.errors = tf.io.gfile, tf.errors

    def _call(self, path, call, query=False):
        try:
            return call()
        except self.errors.OpError as e:
            from tt_cli.errors import UnreadableDataError

            message = _first_line(getattr(e, "message", None) or e)
            scheme = _URL.match(path).group(1) if is_url(path) else ""
            if isinstance(e, self.errors.UnimplementedError):
                raise UnreadableDataError(
                    f"{path}: TensorFlow has no filesystem for {scheme}:// (its in-process memory is ram://; "
                    "other schemes need a TensorFlow filesystem plugin installed)."
                ) from None
            if isinstance(e, self.errors.NotFoundError):
                raise FileNotFoundError(message) from None
            if query:  # a store that cannot be reached or read (no network, no credentials)
                raise UnreadableDataError(f"{path}: cannot reach it ({message}).") from None
            raise OSError(message) from None

    def exists(self, path):
        return self._call(path, lambda: self.gfile.exists(path), query=True)

    def isdir(self, path):  # (gfile.isdir says False where exists says what went wrong)
        return self.exists(path) and self._call(path, lambda: self.gfile.isdir(path), query=True)

    def isfile(self, path):
        return self.exists(path) and not self.isdir(path)

    def listdir(self, path):
        return [n.rstrip("/") for n in self._call(path, lambda: self.gfile.listdir(path), query=True)]

    def glob(self, pattern):
        return self._call(pattern, lambda: self.gfile.glob(pattern), query=True)

    def makedirs(self, path):
        self._call(path, lambda: self.gfile.makedirs(path))

    def open(self, path, mode, **text):
        if "r" in mode and not self.exists(path):  # GFile itself fails only at the first read
            raise FileNotFoundError(f"{path}: no such file")
        return self._call(path, lambda: self.gfile.GFile(path, mode))

    def replace(self, src, dst):
        self._call(src, lambda: self.gfile.rename(src, dst, overwrite=True))

    def remove(self, path):
        self._call(path, lambda: self.gfile.remove(path))

    def rmtree(self, path):
        self._call(path, lambda: self.gfile.rmtree(path))

    def stat(self, path):
        info = self._call(path, lambda: self.gfile.stat(path))
        return info.length, info.mtime_nsec or None


# The extras of pyproject.toml that bring a scheme's fsspec package.
_EXTRAS = {"gs": "gcs", "gcs": "gcs", "s3": "s3", "s3a": "s3"}


class _Fsspec:
    """URLs through fsspec (TF-free processes); paths keep the scheme the user wrote."""

    def __init__(self, url):
        import fsspec

        self.scheme = _URL.match(url).group(1)
        try:
            self.fs = fsspec.filesystem(self.scheme)
        except (ImportError, ValueError, TypeError) as e:
            from tt_cli.errors import InvalidValueError

            extra = _EXTRAS.get(self.scheme.lower())
            remedy = f"pip install 'tt[{extra}]'" if extra else f"install the fsspec package for {self.scheme}://"
            raise InvalidValueError(
                f"{url}: tt data cannot reach {self.scheme}:// ({_first_line(e)}); {remedy}."
            ) from None

    def _path(self, url):
        return self.fs._strip_protocol(url)

    def _url(self, path):
        if self.scheme in ("file", "local"):  # file:///abs/path
            return f"{self.scheme}://{path}"
        return f"{self.scheme}://{path.lstrip('/')}"

    def exists(self, path):
        return self.fs.exists(self._path(path))

    def isdir(self, path):
        return self.fs.isdir(self._path(path))

    def isfile(self, path):
        return self.fs.isfile(self._path(path))

    def listdir(self, path):
        return [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(self._path(path), detail=False)]

    def glob(self, pattern):
        return [self._url(p) for p in self.fs.glob(self._path(pattern))]

    def makedirs(self, path):
        self.fs.makedirs(self._path(path), exist_ok=True)

    def open(self, path, mode, **text):
        return self.fs.open(
            self._path(path), mode, **({k: v for k, v in text.items() if v is not None} if "b" not in mode else {})
        )

    def replace(self, src, dst):
        self.fs.mv(self._path(src), self._path(dst))

    def remove(self, path):
        self.fs.rm_file(self._path(path))

    def rmtree(self, path):
        self.fs.rm(self._path(path), recursive=True)

    def stat(self, path):
        info = self.fs.info(self._path(path))
        stamp = next((info[k] for k in ("mtime", "updated", "LastModified", "created") if info.get(k)), None)
        if isinstance(stamp, datetime.datetime):
            stamp = int(stamp.timestamp() * 1e9)
        elif isinstance(stamp, (int, float)):
            stamp = int(stamp * 1e9)
        return info["size"], stamp if stamp is None or isinstance(stamp, int) else str(stamp)


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


_backends = {}


def _backend(url):
    if _use_fsspec:
        scheme = _URL.match(url).group(1)
        if scheme not in _backends:
            _backends[scheme] = _Fsspec(url)
        return _backends[scheme]
    if "gfile" not in _backends:
        _backends["gfile"] = _Gfile()
    return _backends["gfile"]


# Paths.


def abspath(path):
    """os.path.abspath; a URL normalised (`..`, doubled slashes) but keeping its scheme."""
    if not is_url(path):
        return os.path.abspath(path)
    scheme, rest = _URL.match(path).groups()
    rest = posixpath.normpath(rest) if rest else ""
    return f"{scheme}://{'' if rest == '.' else rest}"


def realpath(path):
    """Symlinks resolved on disk; an object store has none, so a URL is only normalised."""
    return abspath(path) if is_url(path) else os.path.realpath(os.path.abspath(path))


def dirname(path):
    """The folder holding `path` (of a URL: never above its bucket, `gs://bucket`)."""
    if not is_url(path):
        return os.path.dirname(os.path.abspath(path))
    path = abspath(path)
    scheme, rest = _URL.match(path).groups()
    return f"{scheme}://{posixpath.dirname(rest)}" if "/" in rest else path


def sep_of(path):
    return "/" if is_url(path) else os.sep


# Queries.


def exists(path):
    return _backend(path).exists(path) if is_url(path) else os.path.exists(path)


def lexists(path):
    """Exists, a dangling symlink included (a URL cannot be one)."""
    return _backend(path).exists(path) if is_url(path) else os.path.lexists(path)


def isdir(path):
    return _backend(path).isdir(path) if is_url(path) else os.path.isdir(path)


def isfile(path):
    return _backend(path).isfile(path) if is_url(path) else os.path.isfile(path)


def islink(path):
    return False if is_url(path) else os.path.islink(path)


def listdir(path):
    return _backend(path).listdir(path) if is_url(path) else os.listdir(path)


def glob(pattern):
    """Matching paths, unsorted like glob.glob; a URL pattern gives URLs. Callers go through
    `expand`, which takes an existing path literally first."""
    return _backend(pattern).glob(pattern) if is_url(pattern) else local_glob.glob(pattern)


GLOB_CHARACTERS = "*?[\\"  # what Python's glob and TensorFlow's file matching read as a pattern


def has_glob_characters(path):
    return any(c in path for c in GLOB_CHARACTERS)


def expand(path):
    """The paths `path` names: itself when it exists, whatever characters it holds (a folder
    called `run[1]` is that folder), else the paths it matches as a glob pattern, sorted.

    >>> expand("/")
    ['/']
    """
    if exists(path):
        return [path]
    return sorted(glob(path)) if has_glob_characters(path) else []


def names_ending(folder, suffix):
    """The names in `folder` ending in `suffix`, sorted: a listing, never a pattern (the folder's
    own name may hold `[` or `*`)."""
    return sorted(n for n in listdir(folder) if n.endswith(suffix))


def getsize(path):
    return _backend(path).stat(path)[0] if is_url(path) else os.path.getsize(path)


def size_and_mtime(path):
    """(size, modification time in ns) of a file; the time is None where the store keeps none
    (TensorFlow's ram://). What tells a changed source file cheaply, without reading it."""
    if is_url(path):
        return _backend(path).stat(path)
    info = os.stat(path)
    return info.st_size, info.st_mtime_ns


def sha256(path, length=None):
    """(size, hex SHA-256) of the file's bytes, or of its first `length` bytes."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while length is None or size < length:
            chunk = f.read(_CHUNK if length is None else min(_CHUNK, length - size))
            if not chunk:
                break
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


_CHUNK = 1 << 20


# Changes.


def open(path, mode="r", encoding=None, errors=None, newline=None):
    if is_url(path):
        return _backend(path).open(path, mode, encoding=encoding, errors=errors, newline=newline)
    return builtins.open(path, mode, encoding=encoding, errors=errors, newline=newline)


class NotARegularFile(OSError):
    """A path that is a folder, FIFO, socket or device where a file is read (`kind` says which)."""

    def __init__(self, path, kind):
        super().__init__(f"{path} is {kind}")
        self.kind = kind


def file_kind(mode):
    """What an `os.stat` mode is, in words: "a directory", "a FIFO", "a device", ..."""
    for test, kind in (
        (stat.S_ISREG, "a regular file"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def check_regular(path):
    """Raises `NotARegularFile` unless `path` (local; a URL has no FIFOs) is a regular file,
    looked at without opening it (`FileNotFoundError` when it is missing)."""
    if not is_url(path):
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, file_kind(mode))


def open_regular(path):
    """Opens a user's file for binary reading only if it is a regular file: a FIFO would block
    the reader forever and a device never ends. Looked at first, opened non-blocking (a FIFO
    swapped in meanwhile is not waited on) and looked at again; raises `NotARegularFile`."""
    if is_url(path):
        return open(path, "rb")
    check_regular(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotARegularFile(path, file_kind(mode))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def makedirs(path):
    """Makes `path` and its parents; an existing folder is fine."""
    if is_url(path):
        _backend(path).makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def replace(src, dst):
    """os.replace: atomic on disk; on an object store a copy then a delete of `src`."""
    if is_url(src):
        _backend(src).replace(src, dst)
    else:
        os.replace(src, dst)


def remove(path):
    if is_url(path):
        _backend(path).remove(path)
    else:
        os.remove(path)


def rmtree(path):
    if is_url(path):
        _backend(path).rmtree(path)
    else:
        shutil.rmtree(path)


def can_write_in(folder):
    """Whether this process can write in `folder`, made first when missing (False when it
    cannot be made). On an object store, a folder that can be made is taken as writable."""
    try:
        makedirs(folder)
    except OSError:
        return False
    return is_url(folder) or os.access(folder, os.W_OK)


def copyfile(src, dst):
    if not is_url(src) and not is_url(dst):
        shutil.copyfile(src, dst)
        return
    with open(src, "rb") as a, open(dst, "wb") as b:
        shutil.copyfileobj(a, b)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def upload_tree(local_dir, url):
    """Copies the files under `local_dir` to the same names under `url`."""
    for root, _, files in os.walk(local_dir):
        relative = os.path.relpath(root, local_dir)
        target = url if relative == "." else os.path.join(url, *relative.split(os.sep))
        makedirs(target)
        for name in files:
            copyfile(os.path.join(root, name), os.path.join(target, name))


@contextlib.contextmanager
def staged_folder(out):
    """A local folder to write `out` in, for writers that only know local disk (KerasHub's
    `save_to_preset`): `out` itself when local; for a URL a temporary folder that is
    uploaded to `out` when the block succeeds (and dropped either way)."""
    if not is_url(out):
        yield out
        return
    with tempfile.TemporaryDirectory(prefix="tt-staged-") as local:
        yield local
        upload_tree(local, out)


def walk(top):
    """os.walk: (folder, sub-folder names, file names), top-down; the caller may prune the sub-folders."""
    if not is_url(top):
        yield from os.walk(top)
        return
    backend = _backend(top)
    folders = [top]
    while folders:
        folder = folders.pop(0)
        names = sorted(backend.listdir(folder))
        subdirs = [n for n in names if backend.isdir(os.path.join(folder, n))]
        files = [n for n in names if n not in subdirs]
        yield folder, subdirs, files
        folders[:0] = [os.path.join(folder, n) for n in subdirs]

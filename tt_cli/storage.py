"""Every file operation tt makes, on local paths and on URLs (`gs://`, `ram://`, `s3://`, ...).

A local path goes to `os` and `open` exactly as before this module existed (symlinks,
`os.replace`, `os.stat`). A URL (`scheme://...`) goes to one of two backends:

- TensorFlow's `tf.io.gfile` in the commands that run TensorFlow (train, eval, export,
  pretrain, bench, data embed): `gs://` is built in, `ram://` is in-process memory, and
  any scheme a TensorFlow filesystem plugin registers (s3://, hdfs://) works too.
- `fsspec` in the TF-free commands (`tt data convert/inspect/tokenizer`), which call
  `use_fsspec()` first: those processes may never load TensorFlow (the `tfrecord`
  package and TensorFlow cannot share one). Remote protocols are extras
  (`pip install 'tt[gcs]'` brings gcsfs).

The modules both sides share (`ownership`, `jsonfile`, `schema`, `records`, `tokenizer`)
call this module without knowing which side they run on: the backend is a property of
the process, set once by its command, so the ownership rules are written once and hold
for local paths and URLs alike. Text on a URL is UTF-8.

What an object store cannot do is done as closely as it can: a rename is a copy and a
delete (tt renames only its own `.tmp` files), there are no symlinks (`islink` is
False, `realpath` only normalises), and a folder exists while something lies in it.

Example:
>>> from tt_cli import storage
>>> with storage.open("gs://bucket/run/notes.txt", "w") as f:     # doctest: +SKIP
...     f.write("written through tf.io.gfile")
>>> storage.listdir("gs://bucket/run")                              # doctest: +SKIP
['notes.txt']
"""

import builtins
import contextlib
import datetime
import glob as local_glob
import os
import posixpath
import re
import shutil
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


def seen_by_other_processes(path):
    """Whether another process sees what this one writes at `path`: not for filesystems that
    live in one process's memory (fsspec's memory://), where worker processes' writes vanish."""
    return not (is_url(path) and _URL.match(path).group(1) == "memory")


class _Gfile:
    """URLs through TensorFlow's filesystems."""

    def __init__(self):
        import tensorflow as tf

        self.gfile, self.errors = tf.io.gfile, tf.errors

    def exists(self, path):
        return self.gfile.exists(path)

    def isdir(self, path):
        return self.gfile.isdir(path)

    def isfile(self, path):
        return self.gfile.exists(path) and not self.gfile.isdir(path)

    def listdir(self, path):
        return [n.rstrip("/") for n in self.gfile.listdir(path)]

    def glob(self, pattern):
        return self.gfile.glob(pattern)

    def makedirs(self, path):
        self.gfile.makedirs(path)

    def open(self, path, mode, **text):
        if "r" in mode and not self.gfile.exists(path):  # GFile itself fails only at the first read
            raise FileNotFoundError(f"{path}: no such file")
        return _translate(self.errors.OpError, lambda: self.gfile.GFile(path, mode))

    def replace(self, src, dst):
        _translate(self.errors.OpError, lambda: self.gfile.rename(src, dst, overwrite=True))

    def remove(self, path):
        _translate(self.errors.OpError, lambda: self.gfile.remove(path))

    def rmtree(self, path):
        _translate(self.errors.OpError, lambda: self.gfile.rmtree(path))

    def stat(self, path):
        info = _translate(self.errors.OpError, lambda: self.gfile.stat(path))
        return info.length, info.mtime_nsec or None


class _Fsspec:
    """URLs through fsspec (TF-free processes); paths keep the scheme the user wrote."""

    def __init__(self, url):
        import fsspec

        self.scheme = _URL.match(url).group(1)
        try:
            self.fs = fsspec.filesystem(self.scheme)
        except (ImportError, ValueError) as e:
            from tt_cli.errors import InvalidValueError

            raise InvalidValueError(
                f"{url}: tt data cannot reach {self.scheme}:// ({_first_line(e)}); "
                f"install its fsspec package, e.g. pip install 'tt[gcs]' for gs://."
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


def _translate(op_error, call):
    """TensorFlow's OpError as the OSError every caller already handles (NotFound -> FileNotFoundError)."""
    try:
        return call()
    except op_error as e:
        kind = FileNotFoundError if type(e).__name__ == "NotFoundError" else OSError
        raise kind(getattr(e, "message", str(e))) from None


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
    """Matching paths, unsorted like glob.glob; a URL pattern gives URLs."""
    return _backend(pattern).glob(pattern) if is_url(pattern) else local_glob.glob(pattern)


def getsize(path):
    return _backend(path).stat(path)[0] if is_url(path) else os.path.getsize(path)


def stamp(path):
    """{size, mtime_ns}: what tells a file tt wrote from one replaced since (mtime_ns None
    where the store keeps no time, as TensorFlow's ram://)."""
    if is_url(path):
        size, mtime = _backend(path).stat(path)
        return {"size": size, "mtime_ns": mtime}
    info = os.stat(path)
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns}


# Changes.


def open(path, mode="r", encoding=None, errors=None, newline=None):
    if is_url(path):
        return _backend(path).open(path, mode, encoding=encoding, errors=errors, newline=newline)
    return builtins.open(path, mode, encoding=encoding, errors=errors, newline=newline)


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

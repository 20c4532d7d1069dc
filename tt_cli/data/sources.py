"""Readers that list the rows of a user's source, one function per format.

A reader turns a source into `Row`s (key, where the image is, captions, label)
plus the rows it had to reject already (unparseable lines, empty or non-UTF-8
captions, duplicate keys). Images are not opened here: the conversion workers
decode them. Formats:

- CSV / TSV: a header row; image path and caption columns (names settable,
  auto-detected from common names). Several rows naming the same image give it
  several captions, unless a key column makes each row its own example. A row is
  one line with as many cells as the header (`_csv_records`).
- JSON Lines: `image`, `caption` or `captions`, optional `label` (int or
  string), optional `key` (else the image path).
- Image folder tree `ROOT/<class>/<image>`: a labelled set; the class names are
  the sorted sub-folder names and each image's caption is its class name.
- WebDataset tars: `key.jpg|jpeg|png|webp` with `key.txt` or `key.json`
  (`caption`/`captions`/`text`), optional `key.cls` (an integer label). A
  truncated or damaged tar keeps the samples before the damage (`_tar_groups`).

Labels are all or nothing per source (`_finish_labels`): a source is labelled when
more than half of its rows carry one.

Relative image paths resolve against the folder of the source file. A source
path that exists is taken literally, even with `[`, `?` or `*` in its name;
only one that does not exist is a glob (of WebDataset tars).

Each row is read with bounded memory: a line or WebDataset text member over
`validate.MAX_ROW_BYTES` is skipped unread (`row_too_large`), captions are cut
to `validate.MAX_CAPTION_CHARS` as soon as the row is read, and any row whose
key, path, caption or label is unusable is rejected alone with its reason.

Example:
>>> import json, os, tempfile
>>> source = os.path.join(tempfile.mkdtemp(), "captions.jsonl")
>>> with open(source, "w") as f:   # images are not opened here: they need not exist yet
...     print(json.dumps({"image": "cat.jpg", "caption": "a photo of a cat"}), file=f)
...     print(json.dumps({"image": "dog.jpg", "caption": ""}), file=f)
>>> listing = list_source(source)
>>> listing.rows[0].key, listing.rows[0].captions, len(listing.rejects)
('cat.jpg', ['a photo of a cat'], 1)
"""

import collections
import csv
import dataclasses
import glob
import json
import os
import re
import tarfile

from tt_cli import storage
from tt_cli.data import validate
from tt_cli.errors import InvalidValueError, UnreadableDataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")
WDS_IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
IMAGE_COLUMNS = ("image", "filepath", "image_path", "path", "file", "filename", "img")
CAPTION_COLUMNS = ("caption", "title", "text", "captions", "sentence")
FORMATS = ("auto", "csv", "tsv", "jsonl", "folder", "wds")


@dataclasses.dataclass(slots=True)  # millions of rows: keep each small
class Row:
    """One example to convert. `image` is a file path or (tar path, offset, size)."""

    position: int  # order in the source, also of rejected rows
    key: str
    origin: str  # "file:line" or a path, for messages
    image: object
    captions: list
    label: int = None
    caption_truncated: bool = False  # a caption was cut to validate.MAX_CAPTION_CHARS


@dataclasses.dataclass
class Listing:
    format: str
    source: str
    rows: list
    rejects: list  # dicts for rejected.jsonl, each with "position"
    class_names: list = None
    labelled: bool = False
    ignored_files: int = 0  # non-image files in a folder tree or tar
    labels_ignored: int = 0  # labels of the few labelled rows of a source that is not labelled (`_finish_labels`)


def reject_record(position, key, origin, rejection, image=None):
    """A `rejected.jsonl` record; bytes that are not UTF-8 appear as `\\xNN`, so it can be written."""
    text = validate.printable
    record = {"key": text(key), "origin": text(origin), "reason": rejection.reason}
    if rejection.detail:
        record["detail"] = text(rejection.detail)
    if image is not None:
        record["image"] = text(image if isinstance(image, str) else f"{image[0]}@{image[1]}")
    record["position"] = position
    return record


class _Collector:
    """Accumulates rows, rejecting duplicate keys and bad captions in one place."""

    def __init__(self):
        self.rows, self.rejects, self.keys, self.position = [], [], set(), 0

    def reject(self, key, origin, rejection, image=None):
        self.rejects.append(reject_record(self.position, key, origin, rejection, image))
        self.position += 1

    def add(self, key, origin, image, raw_captions, label=None, path_text=None):
        """Validates path, key, captions and label; returns the Row or None when rejected.

        `path_text` is the image path as the row itself gives it (not the folder it is
        resolved against, which is the user's choice, not the row's).
        """
        problem = (validate.check_path(path_text) if path_text is not None else None) or validate.check_key(key)
        problem = problem or validate.check_label(label)
        if problem is not None:
            self.reject(key, origin, problem, image)
            return None
        checked = [caption(raw) for raw in raw_captions]
        rejections = [c for c in checked if isinstance(c, validate.Rejection)]
        if rejections:  # the worst problem of any caption names the row's
            self.reject(key, origin, min(rejections, key=lambda r: CAPTION_PROBLEMS.index(r.reason)), image)
            return None
        captions = [text for text, _ in checked]
        truncated = any(cut for _, cut in checked)
        if not captions:
            self.reject(key, origin, validate.Rejection(validate.EMPTY_CAPTION, "no caption"), image)
            return None
        if key in self.keys:
            self.reject(key, origin, validate.Rejection(validate.DUPLICATE_KEY, "key seen earlier"), image)
            return None
        self.keys.add(key)
        row = Row(self.position, key, origin, image, captions, label, truncated)
        self.rows.append(row)
        self.position += 1
        return row


# What can be wrong with one caption, the worst first: not text at all, not UTF-8, empty.
CAPTION_PROBLEMS = (validate.BAD_ROW, validate.CAPTION_NOT_UTF8, validate.EMPTY_CAPTION)


def caption(raw):
    """(caption, whether it was truncated), or a `Rejection` (empty, not UTF-8, not text)."""
    checked = validate.check_caption(raw)
    if isinstance(checked, validate.Rejection):
        return checked
    return validate.truncate_caption(checked)


def _bounded_lines(f, limit, newlines):
    """Yields (line number, line), or (line number, None) for a line over `limit`, which is
    skipped in 1 MiB chunks without being held: one runaway line costs no more than `limit`."""
    number = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not line.endswith(newlines):
            while True:
                chunk = f.readline(1 << 20)
                if not chunk or chunk.endswith(newlines):
                    break
            yield number, None
        else:
            yield number, line


class _LineTooLong(Exception):
    pass


def _csv_records(f, delimiter, quoting):
    """Yields (first line, last line, cells or `Rejection`) for the records of a CSV/TSV file.

    A row is one line. A quoted cell may hold the separator and doubled quotes, but a cell
    that runs onto the next line is not taken: to a parser, an unterminated quote and a
    caption with a line break look alike until some later quote happens to close the cell,
    and by then the rows in between have been swallowed into it. So a quote that is never
    closed rejects its own line only (the next lines are read as rows again), and a quoted
    cell that does close on a later line rejects the lines it spans as one row. A quote
    inside an unquoted cell is rejected too: it is how the rest of a caption with a line
    break reads (`0,0",k0`) once the quote that opened it went to an earlier record. Every
    line is bounded by MAX_ROW_BYTES, and so is what one record may read ahead.
    """
    lines = _bounded_lines(f, validate.MAX_ROW_BYTES, ("\n", "\r"))
    replay = collections.deque()  # lines read ahead for a record that did not close, read again

    def next_line():
        return replay.popleft() if replay else next(lines, None)

    def parse(texts):
        return next(csv.reader(texts, delimiter=delimiter, quoting=quoting, strict=True))

    while (line := next_line()) is not None:
        number, text = line
        if text is None:
            yield number, number, _too_long()
            continue
        try:
            cells = parse([text])
        except StopIteration:  # a blank line
            continue
        except csv.Error as e:
            if "field larger than field limit" in str(e):
                yield number, number, validate.Rejection(validate.FIELD_TOO_LARGE, f"line {number}: {e}")
                continue
            if quoting == csv.QUOTE_NONE or str(e) != "unexpected end of data":
                yield number, number, validate.Rejection(validate.BAD_ROW, f"line {number}: {e}")
                continue
            cells = _quoted_over_lines(line, next_line, parse, replay)
            yield number, cells[0], cells[1]
            continue
        if quoting != csv.QUOTE_NONE and any('"' in cell for cell in cells) and not _quoted_as_written(text, delimiter):
            yield (
                number,
                number,
                validate.Rejection(validate.BAD_ROW, f"line {number}: a quote inside an unquoted cell"),
            )
            continue
        if cells:
            yield number, number, cells


def _quoted_as_written(text, delimiter):
    """Whether every quote of the line `text` is in a quoted cell (opening, closing, doubled)."""
    d = re.escape(delimiter)
    cell = f'(?:"(?:[^"]++|"")*+"|[^"{d}\r\n]*+)'  # possessive: linear on a 16 MiB line
    return re.fullmatch(f"{cell}(?:{d}{cell})*+[\r\n]*", text) is not None


def _quoted_over_lines(line, next_line, parse, replay):
    """(last line, `Rejection`) for a record whose quoted cell is still open at the end of `line`."""
    number, text = line
    taken, size = [], len(text)

    def ahead():
        nonlocal size
        yield text
        while (following := next_line()) is not None:
            taken.append(following)
            size += len(following[1] or "")
            if following[1] is None or size > validate.MAX_ROW_BYTES:
                raise _LineTooLong()
            yield following[1]

    try:
        parse(ahead())
    except (csv.Error, _LineTooLong, StopIteration):
        replay.extendleft(reversed(taken))  # never closed: the lines after it are rows of their own
        detail = f"line {number}: a quoted cell is not closed on its line (an unterminated quote?)"
        return number, validate.Rejection(validate.BAD_ROW, detail)
    last = taken[-1][0]
    detail = f"lines {number}-{last}: a quoted cell spans {last - number + 1} lines; a row must be one line"
    return last, validate.Rejection(validate.BAD_ROW, detail)


def _too_long():
    return validate.Rejection(validate.ROW_TOO_LARGE, f"line over {validate.MAX_ROW_BYTES:,} characters")


def _resolve(path, base_dir):
    if storage.is_url(path):
        return path
    if storage.is_url(base_dir):  # a source on a store: its relative paths are on the same store
        return storage.abspath(base_dir.rstrip("/") + "/" + path)
    path = os.path.expanduser(path)
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base_dir, path))


def _label_map(raw_labels):
    """Maps raw labels (ints or strings) to ids; returns (ids, class_names or None).

    Integers are class ids when every label is one; otherwise every label is a class name
    (an integer among names is the name "3"), so no label is ever lost or stops a source.
    """
    present = [v for v in raw_labels if v is not None]
    if all(isinstance(v, int) for v in present):
        return raw_labels, None
    names = sorted({str(v) for v in present})
    index = {n: i for i, n in enumerate(names)}
    return [None if v is None else index[str(v)] for v in raw_labels], names


def _parse_label(value):
    """CSV cells and `.cls` members are text: one that is an integer as written becomes an int
    ("007" and "+3" stay names)."""
    if value is None or value == "":
        return None
    try:
        number = int(value)
    except ValueError:
        return value
    return number if str(number) == value else value


def _finish_labels(collector, raw_labels, listing):
    """Makes a source labelled or not, as a whole.

    A source is labelled when more than half of its rows carry a label: a row without one
    is then rejected (`missing_label`), and the rest get class ids. Otherwise no row gets a
    label and the few labels present are counted (`listing.labels_ignored`), so that a stray
    label never turns a caption set into a classification set that rejects every other row.
    """
    labelled = sum(label is not None for label in raw_labels)
    if not labelled:
        return
    if labelled * 2 <= len(raw_labels):
        listing.labels_ignored = labelled
        for row in collector.rows:
            row.label = None
        return
    ids, names = _label_map(raw_labels)
    listing.labelled, listing.class_names = True, names
    kept = []
    for row, label in zip(collector.rows, ids):
        if label is None:
            collector.rejects.append(
                reject_record(row.position, row.key, row.origin, validate.Rejection(validate.MISSING_LABEL), row.image)
            )
        else:
            row.label = label
            kept.append(row)
    collector.rows = kept


def list_csv(path, delimiter, image_column=None, caption_column=None, key_column=None, label_column=None):
    base = storage.dirname(path)
    name = os.path.basename(path)
    # utf-8-sig drops a byte-order mark before the header. surrogateescape keeps invalid
    # UTF-8 bytes, so one bad cell rejects one row. TSV is not quoted CSV: a cell that
    # starts with `"` is text, not the start of a quoted cell.
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    with storage.open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
        records = _csv_records(f, delimiter, quoting)
        first, _, header = next(records, (None, None, None))
        if header is None:
            raise UnreadableDataError(
                f"{path}: the file is empty; a {'CSV' if delimiter == ',' else 'TSV'} "
                "source needs a header line and one line per row."
            )
        if isinstance(header, validate.Rejection):
            raise InvalidValueError(f"{path}: the header line (line {first}) cannot be read ({header.detail}).")
        header = [validate.printable(cell) for cell in header]
        image_col, caption_col = _csv_columns(path, header, image_column, caption_column, key_column, label_column)
        collector, raw_labels, by_image = _Collector(), [], {}
        for number, _, cells in records:
            origin = f"{name}:{number}"  # a record's first line
            if isinstance(cells, validate.Rejection):
                collector.reject("", origin, cells)
                continue
            if len(cells) != len(header):
                why = "an unquoted separator in a cell?" if len(cells) > len(header) else "cells missing"
                count = validate.Rejection(
                    validate.BAD_ROW, f"line {number}: {len(cells)} cells, the header has {len(header)} ({why})"
                )
                collector.reject("", origin, count)
                continue
            record = dict(zip(header, cells))
            image_cell = record[image_col].strip()
            key = record[key_column] if key_column else image_cell
            if not image_cell:
                collector.reject(key, origin, validate.Rejection(validate.BAD_ROW, "no image path"))
                continue
            image = _resolve(image_cell, base)
            label = _parse_label(record[label_column]) if label_column else None
            if not key_column and key in by_image:
                # Another caption of an image already listed: merged into its row.
                row, row_label = by_image[key]
                checked = caption(record[caption_col])
                if isinstance(checked, validate.Rejection):
                    collector.reject(key, origin, checked, image)
                elif label != row_label:
                    why = f"label {validate.printable(str(label))!r}, but an earlier line of this image has "
                    conflict = validate.Rejection(validate.BAD_LABEL, why + repr(validate.printable(str(row_label))))
                    collector.reject(key, origin, conflict, image)
                else:
                    row.captions.append(checked[0])
                    row.caption_truncated = row.caption_truncated or checked[1]
                    collector.position += 1  # a caption row, merged into its image's row
                continue
            row = collector.add(key, origin, image, [record[caption_col]], label, path_text=image_cell)
            if row is not None:
                by_image[key] = (row, label)
                raw_labels.append(label)
    if not collector.rows and not collector.rejects:
        raise UnreadableDataError(f"{path}: a header line but no rows.")
    listing = Listing("csv" if delimiter == "," else "tsv", storage.abspath(path), [], [])
    _finish_labels(collector, raw_labels, listing)
    listing.rows, listing.rejects = collector.rows, collector.rejects
    return listing


def _csv_columns(path, header, image_column, caption_column, key_column, label_column):
    """(image column, caption column), named or found among the common names."""

    def pick(name, candidates, what, argument):
        if name:
            if name not in header:
                raise InvalidValueError(f"{path}: no column {name!r} (columns: {', '.join(header)}).")
            return name
        for candidate in candidates:
            if candidate in header:
                return candidate
        raise InvalidValueError(
            f"{path}: which column holds the {what}? Columns: {', '.join(header)}", (argument, "NAME", "to name it")
        )

    image_col = pick(image_column, IMAGE_COLUMNS, "image paths", "image_column")
    caption_col = pick(caption_column, CAPTION_COLUMNS, "captions", "caption_column")
    for name in (key_column, label_column):
        if name and name not in header:
            raise InvalidValueError(f"{path}: no column {name!r} (columns: {', '.join(header)}).")
    return image_col, caption_col


def list_jsonl(path):
    base = storage.dirname(path)
    collector, raw_labels = _Collector(), []
    with storage.open(path, "rb") as f:
        for line, raw in _bounded_lines(f, validate.MAX_ROW_BYTES, b"\n"):
            origin = f"{os.path.basename(path)}:{line}"
            if raw is None:
                too_long = validate.Rejection(validate.ROW_TOO_LARGE, f"line over {validate.MAX_ROW_BYTES:,} bytes")
                collector.reject("", origin, too_long)
                continue
            if not raw.strip():
                continue
            try:
                # Invalid UTF-8 survives as surrogates and rejects only its caption's row.
                record = json.loads(raw.decode("utf-8", errors="surrogateescape"))
            except (ValueError, RecursionError) as e:  # RecursionError: arrays nested thousands deep
                collector.reject("", origin, validate.Rejection(validate.BAD_ROW, f"not JSON: {str(e)[:200]}"))
                continue
            if not isinstance(record, dict) or not isinstance(record.get("image"), str):
                collector.reject("", origin, validate.Rejection(validate.BAD_ROW, 'no "image" string'))
                continue
            key = str(record.get("key", record.get("id", record["image"])))
            image = _resolve(record["image"], base)
            if "captions" in record:
                captions = record["captions"] if isinstance(record["captions"], list) else [record["captions"]]
            elif "caption" in record:
                captions = [record["caption"]]
            else:
                missing = validate.Rejection(validate.BAD_ROW, 'no "caption" or "captions"')
                collector.reject(key, origin, missing, image)
                continue
            label = record.get("label")
            if isinstance(label, bool) or (label is not None and not isinstance(label, (int, str))):
                bad_label = validate.Rejection(validate.BAD_ROW, "label must be an int or a string")
                collector.reject(key, origin, bad_label, image)
                continue
            if collector.add(key, origin, image, captions, label, path_text=record["image"]) is not None:
                raw_labels.append(label)
    listing = Listing("jsonl", storage.abspath(path), [], [])
    _finish_labels(collector, raw_labels, listing)
    listing.rows, listing.rejects = collector.rows, collector.rejects
    return listing


def list_folder(root):
    root = storage.abspath(root)
    folders = sorted(d for d in storage.listdir(root) if not d.startswith(".") and storage.isdir(os.path.join(root, d)))
    # A folder name that is not UTF-8 cannot be a class name: its images are rejected
    # (path_not_utf8), one by one, and the other classes keep their indices dense.
    classes = [d for d in folders if validate.check_key(d) is None]
    if not folders:
        raise InvalidValueError(f"{root}: an image folder needs one sub-folder per class (ROOT/<class>/<image>).")
    collector, ignored = _Collector(), 0
    ignored += sum(1 for f in storage.listdir(root) if storage.isfile(os.path.join(root, f)))
    label_of = {name: i for i, name in enumerate(classes)}
    for name in folders:
        label = label_of.get(name)
        class_dir = os.path.join(root, name)
        for dirpath, dirnames, filenames in storage.walk(class_dir):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                if not filename.lower().endswith(IMAGE_EXTENSIONS):
                    ignored += 1
                    continue
                path = os.path.join(dirpath, filename)
                key = (
                    path[len(root) :].lstrip("/")
                    if storage.is_url(root)
                    else (os.path.relpath(path, root).replace(os.sep, "/"))
                )
                collector.add(key, key, path, [name], label, path_text=key)
    listing = Listing("folder", root, collector.rows, collector.rejects, classes, True, ignored)
    return listing


def _is_glob(source):
    """A path that does not exist but has glob characters: a pattern. One that exists is literal."""
    return not storage.exists(source) and any(c in source for c in "*?[")


def _tars_in(folder):
    return storage.glob(os.path.join(folder if storage.is_url(folder) else glob.escape(folder), "*.tar"))


def _tar_paths(source):
    if storage.isdir(source):
        paths = sorted(_tars_in(source))
    elif _is_glob(source):
        paths = sorted(storage.glob(source))
    else:
        paths = [source]
    if not paths:
        raise InvalidValueError(f"{source}: no .tar shards found.")
    for path in paths:
        if not storage.isfile(path):  # a FIFO or device would block or never end
            raise InvalidValueError(f"{validate.printable(path)}: not a regular file.")
    return paths


def _wds_captions(data):
    """Captions from a `.txt` (the whole text) or `.json` member."""
    if data is None:
        return None
    kind, raw = data
    if kind == "txt":
        return [raw]
    try:
        record = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except (ValueError, RecursionError):
        return None
    if isinstance(record, str):
        return [record]
    if isinstance(record, dict):
        for field in ("captions", "caption", "text", "txt"):
            if field in record:
                value = record[field]
                return value if isinstance(value, list) else [value]
    return None


def list_wds(source):
    collector, ignored, raw_labels = _Collector(), 0, []
    paths = _tar_paths(source)
    for tar_path in paths:
        tar_path = storage.abspath(tar_path)
        name = os.path.basename(tar_path)
        with storage.open(tar_path, "rb") as raw:
            try:
                groups, skipped, damage = _tar_groups(tar_path, raw)
            except InvalidValueError as e:
                if len(paths) == 1:  # the one file named is not a tar: say so
                    raise
                collector.reject("", name, validate.Rejection(validate.BAD_TAR, str(e)))  # one of many
                continue
            ignored += skipped

            def read(member):
                raw.seek(member.offset_data)
                return raw.read(member.size)

            for i, (key, members) in enumerate(groups):
                origin = f"{name}:{key}"
                if damage is not None and i == len(groups) - 1:
                    # The sample where the tar stops may be cut or incomplete: said here, with why.
                    collector.reject(key, origin, damage)
                    continue
                image_ext = next((e for e in WDS_IMAGE_EXTENSIONS if e in members), None)
                if any(m.size > validate.MAX_ROW_BYTES for e, m in members.items() if e in ("txt", "json", "cls")):
                    too_long = validate.Rejection(
                        validate.ROW_TOO_LARGE, f"text member over {validate.MAX_ROW_BYTES:,} bytes"
                    )
                    collector.reject(key, origin, too_long)
                    continue
                text = (
                    ("txt", read(members["txt"]))
                    if "txt" in members
                    else (("json", read(members["json"])) if "json" in members else None)
                )
                ignored += len(set(members) - {image_ext, "txt", "json", "cls"})
                if image_ext is None:
                    no_image = validate.Rejection(validate.MISSING_FILE, "no image in this key's group")
                    collector.reject(key, origin, no_image)
                    continue
                member = members[image_ext]
                image = (tar_path, member.offset_data, member.size)
                captions = _wds_captions(text)
                if captions is None:
                    no_text = validate.Rejection(validate.BAD_ROW, "no .txt or readable .json caption")
                    collector.reject(key, origin, no_text, image)
                    continue
                label = None
                if "cls" in members:
                    label = _parse_label(read(members["cls"]).decode("utf-8", "surrogateescape").strip())
                if collector.add(key, origin, image, captions, label) is not None:
                    raw_labels.append(label)
            if damage is not None and not groups:
                collector.reject("", name, damage)
    listing = Listing("wds", storage.abspath(source), [], [], ignored_files=ignored)
    _finish_labels(collector, raw_labels, listing)
    listing.rows, listing.rejects = collector.rows, collector.rejects
    return listing


def _tar_groups(tar_path, raw):
    """([(key, {extension: member})] in tar order, files ignored, `Rejection` or None) of one tar.

    A sample is the members of one key; a member whose extension its key's sample already
    has starts a second sample of that key, which the collector rejects (`duplicate_key`)
    rather than letting the later member silently replace the earlier. A tar that ends
    before its end-of-archive blocks (truncated), or at a header that cannot be read, keeps
    the samples before that point; the `Rejection` says where and why it stopped.
    """
    size = storage.getsize(tar_path)
    groups, latest, ignored, last, error = [], {}, 0, None, None
    try:
        tar = tarfile.open(fileobj=raw, mode="r:")
    except tarfile.ReadError as e:
        raise InvalidValueError(f"{tar_path}: not an uncompressed tar file ({e}).")
    try:
        for member in tar:
            last = member
            if not member.isfile():
                continue
            directory, base = os.path.split(member.name)
            if "." not in base or base.startswith("."):
                ignored += 1
                continue
            stem, ext = base.split(".", 1)
            key, ext = os.path.join(directory, stem), ext.lower()
            if key not in latest or ext in latest[key]:
                latest[key] = {}
                groups.append((key, latest[key]))
            latest[key][ext] = member
    except (tarfile.TarError, EOFError) as e:
        error = e
    return groups, ignored, _tar_damage(raw, size, last, error)


def _tar_damage(raw, size, last, error):
    """None when the tar ends with its end-of-archive block after `last` (its last member),
    else a `Rejection`: `truncated_tar` when the file ends early, `bad_tar` for a bad header."""
    needed = 0 if last is None else last.offset_data + last.size
    after = f", after {last.name}," if last is not None else ""
    if needed > size:
        detail = f"the tar is truncated: it ends inside {last.name} at byte {size:,} of {needed:,}"
        return validate.Rejection(validate.TRUNCATED_TAR, detail)
    end = -(-needed // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    raw.seek(end)
    block = raw.read(tarfile.BLOCKSIZE)
    if len(block) < tarfile.BLOCKSIZE:
        detail = (
            f"the tar is truncated: it ends at byte {size:,}{after} without its end-of-archive block; "
            "this sample may be incomplete and any later samples are missing"
        )
        return validate.Rejection(validate.TRUNCATED_TAR, detail)
    if error is not None or block.count(0) != tarfile.BLOCKSIZE:
        why = f" ({error})" if error is not None else ""
        detail = (
            f"the header at byte {end:,}{after} cannot be read{why}; "
            "this sample may be incomplete and the samples after it are lost"
        )
        return validate.Rejection(validate.BAD_TAR, detail)
    return None


def detect_format(source):
    if storage.isdir(source):
        if _tars_in(source):
            return "wds"
        return "folder"
    lower = source.lower()
    if lower.endswith(".tar") or _is_glob(source):
        return "wds"
    if lower.endswith(".tsv"):
        return "tsv"
    if lower.endswith(".csv"):
        return "csv"
    if lower.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    raise InvalidValueError(
        f"{source}: cannot tell its format from the name", ("fmt", "FORMAT", f"(one of {', '.join(FORMATS[1:])})")
    )


def list_source(source, fmt="auto", image_column=None, caption_column=None, key_column=None, label_column=None):
    """Lists a source's rows; see the module docstring for the formats."""
    if not storage.exists(source) and not _is_glob(source):
        raise UnreadableDataError(f"{validate.printable(source)}: no such file or folder.")
    fmt = detect_format(source) if fmt == "auto" else fmt
    if fmt in ("csv", "tsv"):
        if not storage.isfile(source):
            raise InvalidValueError(f"{source}: a {fmt.upper()} source must be a file.")
        listing = list_csv(
            source, "," if fmt == "csv" else "\t", image_column, caption_column, key_column, label_column
        )
    elif fmt == "jsonl":
        if not storage.isfile(source):
            raise InvalidValueError(f"{source}: a JSON Lines source must be a file.")
        listing = list_jsonl(source)
    elif fmt == "folder":
        if not storage.isdir(source):
            raise InvalidValueError(f"{source}: an image folder source must be a folder.")
        listing = list_folder(source)
    else:
        listing = list_wds(source)
    if not listing.rows and not listing.rejects:
        raise UnreadableDataError(f"{validate.printable(source)}: holds no rows to convert.")
    return listing

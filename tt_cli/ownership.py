"""What tt may delete or replace: only what it can prove it wrote.

Every command that writes an output folder or file (`tt train --out`, `tt pretrain
--out`, `tt data convert/embed/tokenizer`, `tt export savedmodel/keras/preset`, `--json`,
reports) goes through this module, so the rule is written once:

1. An output path equal to, inside or above an input folder of the same command, or
   equal to an input file, is refused before anything is read (`refuse_overlap`;
   symlinks resolved). A folder that merely holds an input file (the folder of a CSV)
   may receive outputs: nothing of the user's is removed there.
2. tt writes a manifest, `.tt-manifest.json`, in each folder it writes into. It lists,
   per command, the names tt claimed (free when claimed) and, once written, their stamp:
   a file's size and SHA-256 (hashed while writing where tt streams the bytes itself:
   convert's shards), a file tt appends to (`metrics.jsonl`, TensorBoard events) by the
   hash of the bytes it had written when it last recorded them, a checkpoint's data file
   by its size and its `.index` (which holds the CRC32C of every tensor in the data; the
   data file is tt's while that `.index` is). A folder entry records whether tt created
   it; the files inside are entries of their own, `folder/name` (the only separator an
   entry may hold), or, for a folder another process writes (a training worker's
   checkpoints), listed in that folder's own manifest.
3. Something is removed or replaced only when every check holds: its entry is a plain name
   inside the folder (no `..`, not absolute, nested only below a folder entry), it is
   listed for the same command, its stamp still matches, it is not an input of the
   running command, it is no symlink, and a folder only if tt created it and everything in
   it is tt's. All targets are checked before the first is removed: a failed check is one
   line (`ConflictError`) and nothing is removed. A manifest tt cannot read, or one whose
   entries break rule 3's first check, is refused outright, whatever the command.
4. A temporary file is one exact name: `NAME.tmp` for the entry NAME (and, for a
   checkpoint tt had started to write, the files TensorFlow derives from its exact prefix).
   Nothing is ever matched by a prefix.

Outputs of earlier versions of tt have no manifest, or one without content hashes. The
commands that must keep resuming them recognise them by a structural check and adopt them
(hash and record their entries): `tt train` a run directory (`run.json` with the keys it
writes, `model.json` and `checkpoints/`), `tt data convert` a folder whose `report.json`
has a fingerprint and names this folder as its output (or whose `.convert/plan.json` has
this plan's fingerprint). Entries of those earlier outputs no check recognises keep no stamp,
and tt refuses to remove them: delete them yourself.

Paths may be URLs (`gs://…`): every file operation here goes through `tt_cli.storage`, so
the same rules hold on an object store (where a rename is a copy and a delete of tt's own
`.tmp` file, and there are no symlinks to resolve). Proving a file before removing it reads
it once to hash it (at disk speed; from a URL, a download).

Example:
>>> import tempfile
>>> out = os.path.join(tempfile.mkdtemp(), "result")
>>> folder = OutputFolder(out, "tt example")
>>> folder.claim(["numbers.txt"])
>>> _ = open(os.path.join(out, "numbers.txt"), "w").write("42")
>>> folder.record(["numbers.txt"])
>>> _ = open(os.path.join(out, "notes.txt"), "w").write("the user's own")
>>> try:
...     folder.claim(["notes.txt"])
... except ConflictError as e:
...     print(str(e).split("/")[-1])
result holds notes.txt, which tt did not write; choose another path.
>>> folder.remove_owned()
['numbers.txt']
>>> sorted(os.listdir(out))
['.tt-manifest.json', 'notes.txt']
"""

import bisect
import hashlib
import json
import os
import re
import time

from tt_cli import storage
from tt_cli.errors import ConflictError, InvalidValueError
from tt_cli.jsonfile import write_json

MANIFEST = ".tt-manifest.json"
MANIFEST_VERSION = 2
TMP = ".tmp"  # the temporary name of the entry NAME is exactly NAME + TMP
# What TensorFlow writes for the checkpoint prefix P: P.index, P.data-…, and while writing
# P_temp/ (P.part-… on s3://). Matched against one exact prefix tt recorded as pending.
CHECKPOINT_FILES = r"(\.index|\.data-\d{5}-of-\d{5}|_temp|\.part-\d{5}-of-\d{5}\.(index|data-\d{5}-of-\d{5}))"
KEEP_HINT = "nothing was removed; move it away or choose another path"


class ContentStamp:
    """The stamp of a file tt streams out, hashed as the bytes go by (no second read).

    >>> stamp = ContentStamp()
    >>> stamp.update(b"abc")
    >>> stamp.stamp()["size"]
    3
    """

    def __init__(self):
        self._digest, self.size = hashlib.sha256(), 0

    def update(self, data):
        self._digest.update(data)
        self.size += len(data)

    def stamp(self):
        return {"size": self.size, "sha256": self._digest.hexdigest()}


def file_stamp(path, grows=False):
    """{size, sha256} of the file now; `grows`: a file tt keeps appending to."""
    size, digest = storage.sha256(path)
    return {"size": size, "sha256": digest, **({"grows": True} if grows else {})}


def _real(path):
    return storage.realpath(path)


def _is_within(path, folder):
    """True if `path` is `folder` or lies below it (both already resolved)."""
    sep = storage.sep_of(folder)
    return path == folder or path.startswith(folder.rstrip(sep) + sep)


def refuse_overlap(out, inputs, flag="OUT", is_output_name=None):
    """Refuses an output that is an input, lies inside an input folder or holds an input.

    `inputs`: paths read by the same command. An existing folder counts as a whole
    (equal, inside and above are refused); a file counts as itself (equal refused:
    its folder may still receive outputs, but not under a name for which
    `is_output_name(name)` says the command writes it there). Missing paths and None
    are skipped.
    """
    real_out = _real(out)
    for path in inputs:
        if not path or not storage.exists(path):
            continue
        real_in = _real(path)
        if real_out == real_in:
            raise ConflictError(f"{flag} {out} is the input {path}; choose another output path.")
        if not storage.isdir(real_in):
            sep = storage.sep_of(real_in)
            top = real_in[len(real_out) :].lstrip(sep).split(sep)[0]
            if is_output_name and _is_within(real_in, real_out) and is_output_name(top):
                raise InvalidValueError(
                    f"{flag} {out} would get a {top} of its own, but the input {path} is there; "
                    "choose another output path."
                )
            continue
        if _is_within(real_out, real_in):
            raise ConflictError(f"{flag} {out} lies inside the input {path}; choose an output path outside it.")
        if _is_within(real_in, real_out):
            raise ConflictError(f"{flag} {out} holds the input {path}; choose an output path that does not contain it.")


def glob_folders(pattern):
    """The folders holding the files `pattern` names: the folder of the path itself when it
    exists (taken literally, `[` and all), else of every file it matches as a glob."""
    return sorted({storage.dirname(p) for p in storage.expand(pattern)})


def _bad_name(name, entries):
    """Why `name` cannot be an entry tt wrote (None when it can)."""
    if not isinstance(name, str) or not name:
        return "not a name"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or "\\" in name or "\0" in name or "://" in name:
        return "an absolute path"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "not a plain name inside the folder"
    if parts[-1] in (MANIFEST, MANIFEST + TMP):
        return "the manifest itself"
    if len(parts) > 1 and not (isinstance(entries.get(parts[0]), dict) and entries[parts[0]].get("folder")):
        return f"nested below {parts[0]}, which tt did not record as a folder of its own"
    return None


def _remove(path):
    if storage.isdir(path) and not storage.islink(path):
        storage.rmtree(path)
    elif storage.lexists(path):
        storage.remove(path)


class OutputFolder:
    """One folder a command writes into, and the manifest that says what tt wrote there.

    Args:
      path: the folder (need not exist yet).
      command: the command writing, e.g. "tt train"; only entries listed for it are its own.
      inputs: paths the running command reads: never removed or replaced, whatever the
        manifest says.

    Raises `ConflictError` when the folder's manifest is damaged or lists an entry tt
    never writes (`..`, an absolute path, a name nested below no folder of tt's).
    """

    def __init__(self, path, command, inputs=()):
        self.path = path
        self.command = command
        self._inputs, self._real_inputs = inputs, None
        self._every, self._written_at, self._unwritten = None, 0.0, False
        self._existed = storage.isdir(path)
        self._manifest = self._read()

    # -------------------------------------------------------------- the manifest

    @property
    def manifest_path(self):
        return os.path.join(self.path, MANIFEST)

    def _refuse_manifest(self, why):
        raise ConflictError(
            f"{self.manifest_path} {why}; tt trusts none of its entries and removes nothing: "
            "fix or delete the manifest (then nothing here is tt's), or choose another path."
        )

    def _read(self):
        path = self.manifest_path
        if not storage.lexists(path):
            return None
        if storage.islink(path) or not storage.isfile(path):
            self._refuse_manifest("is not a file tt wrote")
        try:
            with storage.open(path, encoding="utf-8") as f:
                manifest = json.load(f)
        except (OSError, ValueError) as e:
            self._refuse_manifest(f"cannot be read ({type(e).__name__})")
        if not isinstance(manifest, dict) or not isinstance(manifest.get("entries"), dict):
            self._refuse_manifest("is not a manifest of tt's (no entries)")
        entries = manifest["entries"]
        for name, entry in entries.items():
            if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
                self._refuse_manifest(f"lists {name!r} without the command that wrote it")
            why = _bad_name(name, entries)
            if why:
                self._refuse_manifest(f"lists {name!r}, {why}")
            bound = entry.get("bound_to")
            if bound is not None and not (
                isinstance(bound, str)
                and bound.endswith(".index")
                and re.fullmatch(re.escape(bound[: -len(".index")]) + r"\.data-\d{5}-of-\d{5}", name)
            ):
                self._refuse_manifest(f"binds {name!r} to {bound!r}, which is not its checkpoint's .index")
        return manifest

    @property
    def has_manifest(self):
        return self._manifest is not None

    def _entries(self):
        return self._manifest["entries"] if self._manifest else {}

    def _mine(self):
        return {k: e for k, e in self._entries().items() if e.get("command") == self.command}

    def listed(self):
        """{name: entry} of what this command listed here (claims, stamps, pending checkpoints)."""
        return dict(self._mine())

    def hashed(self):
        """Whether this command's entries carry content hashes (else an earlier tt wrote them)."""
        return any("sha256" in e for e in self._mine().values())

    def _path_of(self, name):
        return os.path.join(self.path, *name.split("/"))

    # -------------------------------------------------------------- cheap queries

    def existing(self):
        """Names in the folder now (the manifest and its temporary file left out)."""
        if not storage.isdir(self.path):
            return []
        return sorted(n for n in storage.listdir(self.path) if n not in (MANIFEST, MANIFEST + TMP))

    def owned(self):
        """Names listed for this command whose size still fits their stamp (unstamped claims
        included): what a command may take as its own state when resuming. Removing or
        replacing proves more (`remove_owned`, `check_replaceable`)."""
        names = set()
        for name, entry in self._mine().items():
            path = self._path_of(name)
            if isinstance(entry.get("size"), int) and "bound_to" not in entry and storage.isfile(path):
                size = storage.getsize(path)
                if size < entry["size"] or (size != entry["size"] and not entry.get("grows")):
                    continue  # replaced by someone else since tt wrote it
            names.add(name)
        return names

    def foreign(self, names=None):
        """Which of `names` (default: everything here) exist and are not this command's."""
        owned = self.owned()
        candidates = self.existing() if names is None else names
        return [n for n in candidates if n not in owned and storage.lexists(self._path_of(n))]

    def check_free(self, names, hint="choose another path"):
        """One line naming the first of `names` that exists here and tt did not write."""
        foreign = self.foreign(names)
        if foreign:
            raise ConflictError(f"{self.path} holds {foreign[0]}, which tt did not write; {hint}.")

    # -------------------------------------------------------------- recording

    def claim(self, names, hint="choose another path"):
        """Lists `names` as this command's before writing them; refuses if one is someone
        else's. A name already listed keeps its record (and stamp)."""
        self.check_free(names, hint)
        mine = self._mine()
        self._update(
            {
                n: {"command": self.command, "created": not storage.lexists(self._path_of(n))}
                for n in names
                if n not in mine
            }
        )

    def record(self, names, stamps=None, grows=False, created=None):
        """Stamps `names` as written by this command, after writing them.

        `stamps`: {name: stamp} known already (hashed while writing); others are hashed now.
        A folder is recorded with every file below it (`folder/name`); a sub-folder with a
        manifest of its own is left to it. `grows`: files tt appends to. `created`: whether tt
        made a folder among `names` (default: what its claim found).
        """
        stamps = stamps or {}
        updates = {}
        for name in names:
            path = self._path_of(name)
            previous = self._entries().get(name, {})
            if name in stamps:
                updates[name] = {"command": self.command, **stamps[name]}
            elif storage.isdir(path) and not storage.islink(path):
                made = previous.get("created", False) if created is None else created
                updates[name] = {"command": self.command, "folder": True, "created": bool(made)}
                for rel in self._files_below(name):
                    updates[rel] = {"command": self.command, **file_stamp(self._path_of(rel), grows)}
            elif storage.isfile(path):
                updates[name] = {"command": self.command, **file_stamp(path, grows)}
        if grows:  # an empty prefix would vouch for anything appended: such a file stays a claim
            updates = {n: e for n, e in updates.items() if e.get("size") != 0 or "sha256" not in e}
        self._update(updates)

    def _walk(self, folder):
        """storage.walk below the entry `folder`, with each root as a name (`folder/sub`)."""
        top = self._path_of(folder)
        for root, dirs, names in storage.walk(top):
            rest = root[len(top) :].strip("/\\").replace(os.sep, "/")
            yield (f"{folder}/{rest}" if rest else folder), dirs, names

    def _files_below(self, folder):
        """Every file under the entry `folder`, as names; sub-folders with a manifest of their own left out."""
        files = []
        for root, dirs, names in self._walk(folder):
            dirs[:] = [d for d in dirs if not storage.lexists(os.path.join(self._path_of(root), d, MANIFEST))]
            files += [f"{root}/{n}" for n in names]
        return files

    def adopt(self, names, grows=()):
        """Records an earlier tt version's output (recognised structurally by the caller) as
        this command's: hashed now, folders as made by tt."""
        present = [n for n in names if storage.lexists(self._path_of(n))]
        if present:  # nothing recognised: write nothing into someone else's folder
            self.record([n for n in present if n not in grows], created=True)
            self.record([n for n in present if n in grows], grows=True, created=True)

    def mark_pending(self, prefix):
        """Lists the checkpoint prefix `prefix` (a name) as being written now: what TensorFlow
        leaves there if interrupted is tt's temporary output."""
        self._update({prefix: {"command": self.command, "pending": True}})

    def forget(self, names):
        """Drops `names` from the manifest (nothing on disk changes)."""
        self._reload()
        if self._manifest is not None:
            for name in names:
                self._manifest["entries"].pop(name, None)
            self._write()

    def _reload(self):
        """Reads the manifest again before changing it: other objects of this process (the run's
        checkpoints, its record of run.json) write it too. (Not while changes wait for `flush`.)"""
        if not self._unwritten:
            self._manifest = self._read() or self._manifest

    def deferred(self, seconds):
        """From now on, writes the manifest at most every `seconds` (`flush` writes the rest): for
        a command recording many outputs one by one (convert's shards)."""
        self._every, self._written_at = seconds, time.monotonic()

    def flush(self):
        """Writes changes `deferred` has held back."""
        if self._unwritten:
            self._unwritten = False
            self._write()

    def _update(self, entries):
        self._reload()
        if self._manifest is None:
            self._manifest = {
                "manifest": MANIFEST_VERSION,
                "created_by": self.command,
                "created_folder": not self._existed,
                "entries": {},
            }
        self._manifest["manifest"] = MANIFEST_VERSION
        for name in entries:
            top = name.split("/")[0]
            if top != name and not self._manifest["entries"].get(top, {}).get("folder"):
                claimed = self._manifest["entries"].get(top, {})
                self._manifest["entries"][top] = {
                    "command": self.command,
                    "folder": True,
                    "created": bool(claimed.get("created", False)),
                }
        self._manifest["entries"].update(entries)
        if self._every and time.monotonic() - self._written_at < self._every:
            self._unwritten = True
            return
        self._unwritten = False
        self._written_at = time.monotonic()
        self._write()

    def _write(self):
        try:
            storage.makedirs(self.path)
        except OSError as e:
            raise InvalidValueError(f"{self.path}: cannot write ({e.strerror or e}).")
        write_json(self.manifest_path, self._manifest)

    # -------------------------------------------------------------- proving and removing

    def _matches(self, name, entry):
        """Whether the file `name` is still what tt recorded in `entry`."""
        path, size = self._path_of(name), entry.get("size")
        if not isinstance(size, int):
            return False
        if "bound_to" in entry:  # a checkpoint's data: its size, and its .index (with every tensor's CRC) intact
            bound = self._mine().get(entry["bound_to"])
            return storage.getsize(path) == size and bound is not None and self._matches(entry["bound_to"], bound)
        if not isinstance(entry.get("sha256"), str):
            return False
        if entry.get("grows"):  # a log tt appends to: still begins with the bytes tt recorded
            return size > 0 and storage.sha256(path, size) == (size, entry["sha256"])
        return storage.getsize(path) == size and storage.sha256(path)[1] == entry["sha256"]

    def _refuse(self, name, why, hint):
        raise ConflictError(f"{self._path_of(name)}: {why}; {hint}.")

    def _check_not_input(self, name, hint):
        if self._real_inputs is None:  # resolved once, when something is about to be removed
            self._real_inputs_set = {_real(p) for p in self._inputs if p and storage.lexists(p)}
            self._real_inputs = sorted(self._real_inputs_set)
        real = _real(self._path_of(name))
        below = real.rstrip(storage.sep_of(real)) + storage.sep_of(real)
        first = bisect.bisect_left(self._real_inputs, below)  # sorted: what lies below `real` starts here
        is_input = real in self._real_inputs_set or (
            first < len(self._real_inputs) and self._real_inputs[first].startswith(below)
        )
        if is_input:
            self._refuse(
                name, "listed in the manifest as tt's, but it is an input of this command, which tt never removes", hint
            )

    def is_pending_leftover(self, name):
        """Whether `name` is what TensorFlow writes for a checkpoint prefix tt marked pending."""
        folder, _, base = name.rpartition("/")
        for key, entry in self._mine().items():
            key_folder, _, key_base = key.rpartition("/")
            if (
                entry.get("pending")
                and key_folder == folder
                and re.fullmatch(re.escape(key_base) + CHECKPOINT_FILES, base)
            ):
                return True
        return False

    def _removal(self, name, hint):
        """What removing the entry `name` removes, as (names, folders), after proving each is
        tt's; one line (`ConflictError`) for the first that is not."""
        path = self._path_of(name)
        entry = self._mine().get(name)
        if entry is None and not self.is_pending_leftover(name):
            self._refuse(name, "not listed as written by " + self.command, hint)
        self._check_not_input(name, hint)
        if not storage.lexists(path):
            return [], []
        if storage.islink(path):
            self._refuse(name, "a symlink, which tt never writes", hint)
        if entry is None or entry.get("pending"):  # a checkpoint TensorFlow was writing
            return ([], [name]) if storage.isdir(path) else ([name], [])
        if not storage.isdir(path):
            if "bound_to" in entry:  # a checkpoint's data file: tt's while its .index is (whole or damaged)
                bound = self._mine().get(entry["bound_to"])
                if bound is None or not self._matches(entry["bound_to"], bound):
                    self._refuse(name, f"its {entry['bound_to']} changed since tt wrote it", hint)
                return [name], []
            if "sha256" not in entry:
                self._refuse(
                    name,
                    "tt recorded no content hash of it (an earlier tt, or an interrupted run) to prove it wrote it",
                    hint,
                )
            if not self._matches(name, entry):
                self._refuse(
                    name, "changed since tt wrote it (its content no longer matches the manifest's stamp)", hint
                )
            return [name], []
        if not entry.get("folder") or not entry.get("created"):
            self._refuse(name, "a folder tt did not create", hint)
        files, folders = [], [name]
        for rel_root, dirs, names in self._walk(name):
            for d in list(dirs):
                sub = f"{rel_root}/{d}"
                if storage.islink(self._path_of(sub)):
                    self._refuse(sub, "a symlink, which tt never writes", hint)
                if self.is_pending_leftover(sub):  # TensorFlow's P_temp/ of a checkpoint it was writing
                    dirs.remove(d)
                    folders.append(sub)
                elif storage.lexists(os.path.join(self._path_of(sub), MANIFEST)):  # another process's, listed there
                    dirs.remove(d)
                    OutputFolder(self._path_of(sub), self.command, self._inputs).removal_of_everything(hint)
                    folders.append(sub)
                else:
                    folders.append(sub)
            for n in names:
                rel = f"{rel_root}/{n}"
                if rel in self._mine() or self.is_pending_leftover(rel):
                    more, _ = self._removal(rel, hint)
                    files += more
                elif rel.endswith(TMP) and rel[: -len(TMP)] in self._mine():
                    self._check_not_input(rel, hint)
                    files.append(rel)
                else:
                    self._refuse(name, f"holds {rel[len(name) + 1 :]}, which tt did not write", hint)
        return files, folders

    def removal_of_everything(self, hint=KEEP_HINT):
        """Proves that everything in this folder is this command's (used for a sub-folder with
        its own manifest); raises `ConflictError` on the first thing that is not."""
        if not (self._manifest or {}).get("created_folder"):
            raise ConflictError(f"{self.path}: a folder tt did not create; {hint}.")
        for name in self.existing():
            if name in self._mine():
                self._removal(name, hint)
            elif not (name.endswith(TMP) and name[: -len(TMP)] in self._mine()) and not self.is_pending_leftover(name):
                self._refuse(name, "not listed as written by " + self.command, hint)

    def check_replaceable(self, names, hint=KEEP_HINT):
        """Refuses (one line) unless each of `names` that exists is provably this command's."""
        self._reload()
        for name in names:
            if storage.lexists(self._path_of(name)):
                self._removal(name, hint)

    def remove_owned(self, names=None, hint=KEEP_HINT):
        """Removes this command's entries (default: all of them) with their exact `.tmp`
        files, after proving every one is tt's; returns the names removed. Nothing else in
        the folder is touched, and nothing at all when one proof fails."""
        self._reload()
        mine = self._mine()
        if names is None:
            targets = sorted(n for n in mine if "/" not in n)
        else:
            targets = sorted(n for n in names if n in mine or self.is_pending_leftover(n))
        files, folders = [], []
        for name in targets:
            more_files, more_folders = self._removal(name, hint)
            files += more_files
            folders += more_folders
            if storage.lexists(self._path_of(name + TMP)):
                self._check_not_input(name + TMP, hint)
                files.append(name + TMP)
        removed = []
        for name in files:
            if storage.lexists(self._path_of(name)):
                storage.remove(self._path_of(name))
                removed.append(name)
        for name in sorted(set(folders), key=lambda n: -n.count("/")):  # deepest first
            path = self._path_of(name)
            if storage.lexists(path):
                _remove(path)  # empty of anything but tt's (proved above)
                removed.append(name)
        if self._manifest is not None:
            gone = set(targets)
            for key in list(self._manifest["entries"]):
                if key in gone or any(key.startswith(t + "/") for t in gone):
                    del self._manifest["entries"][key]
            self._write()
        asked = set(targets) | {t + TMP for t in targets}
        return [n for n in removed if n in asked]  # what was asked for (a folder by its name, not its files)

    def first_damage(self, names=None):
        """What no longer matches this command's record of `names` (default: all), a file
        missing or changed, or None."""
        # Files bound to another (a checkpoint's data to its .index) after it: the damage named is the first cause.
        for name, entry in sorted(self._mine().items(), key=lambda item: ("bound_to" in item[1], item[0])):
            if names is not None and name not in names:
                continue
            if "size" not in entry:  # a folder, a claim, a checkpoint being written
                continue
            if not storage.isfile(self._path_of(name)):
                return f"{name} is missing"
            if not self._matches(name, entry):
                return f"{name} changed since tt wrote it"
        return None


def prepare_whole_folder(out, command, overwrite, what, inputs=()):
    """For outputs whose file names a library chooses (SavedModel, KerasHub preset): OUT
    must be missing, empty, or hold only what `command` wrote there before, which
    `overwrite` replaces (proved before anything is read). Returns the folder for
    `begin_whole_folder`."""
    if storage.lexists(out) and not storage.isdir(out):
        raise InvalidValueError(f"{out} exists and is not a folder; choose another path.")
    folder = OutputFolder(out, command, inputs)
    present = folder.existing()
    foreign = folder.foreign(present)
    hint = "overwriting replaces only tt's own earlier output, so choose another path"
    if foreign:
        raise ConflictError(f"{out} holds {foreign[0]}, which tt did not write; {hint}.")
    if present and not overwrite:
        raise ConflictError(f"{out} already holds {what}", ("overwrite", True, "to replace it, or choose another path"))
    folder.check_replaceable(present, hint)
    return folder


def begin_whole_folder(folder):
    """Just before writing: removes the command's earlier output, makes the folder, starts its manifest."""
    folder.remove_owned()
    folder.claim([])


def record_all(folder):
    """After a whole-folder output is written: every entry in it is this command's, hashed."""
    folder.record(folder.existing(), created=True)


def prepare_file(out, command, overwrite, flag=None, inputs=()):
    """For a single-file output: refuses to replace a file tt did not write (listed with a
    matching hash in its folder's manifest), or its own without `overwrite` (None: replacing
    tt's own file needs no flag). Returns the folder."""
    named = f"{flag} {out}" if flag else out
    if storage.isdir(out):
        raise InvalidValueError(f"{named} is a folder; give a file path.")
    folder = OutputFolder(storage.dirname(out), command, inputs)
    name = os.path.basename(out)
    if storage.lexists(out):
        try:
            folder.check_replaceable([name])
        except ConflictError:
            raise ConflictError(f"{named} exists and tt did not write it; choose another path.") from None
        if overwrite is False:
            raise ConflictError(f"{named} already exists", ("overwrite", True, "to replace it, or choose another path"))
    return folder

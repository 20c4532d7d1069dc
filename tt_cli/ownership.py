"""What tt may delete or replace: only what it can prove it wrote.

Every command that writes an output folder or file (`tt train --out`, `tt pretrain
--out`, `tt data convert/embed/tokenizer`, `tt export savedmodel/keras/preset`) goes
through this module, so the rule is written once:

1. An output path equal to, inside or above an input folder of the same command, or
   equal to an input file, is refused before anything is read (`refuse_overlap`;
   symlinks resolved). A folder that merely holds an input file (the folder of a CSV)
   may receive outputs: nothing of the user's is removed there.
2. tt writes a manifest, `.tt-manifest.json`, in each folder it writes into. Only tt
   writes it. It names which tt command wrote which entry of the folder (a file, or a
   whole sub-folder such as `checkpoints/`) and whether tt created the folder itself.
   Single-file outputs (`tt export keras`, `tt data tokenizer`) are listed in the
   manifest of their folder with their size and modification time, so a file that
   was replaced since is no longer taken for tt's.
3. `--overwrite` / `--restart` remove or replace only entries the manifest lists for
   the same command, and their `<name>.tmp…` siblings (tt's unfinished writes). An
   entry a command needs that exists and is not listed stops the command with one
   line, before anything is removed. Output folders are rewritten in place, never
   removed; `created_folder` records whether tt made the folder, for the user's eyes.

Outputs of earlier versions of tt have no manifest. The commands that must keep
resuming them recognise them by a structural check and adopt them (write the manifest
listing their entries, `created_folder` false):
`tt train` a run directory (`run.json` with the keys it writes, `model.json` and
`checkpoints/`), `tt data convert` a folder whose `report.json` has a fingerprint and
names this folder as its output (or whose `.convert/plan.json` has this plan's
fingerprint). Every other earlier output is refused: delete it yourself.

Paths may be URLs (`gs://…`): every file operation here goes through `tt_cli.storage`,
so the same rules hold on an object store (where a rename is a copy and a delete of tt's
own `.tmp` file, and there are no symlinks to resolve).

Names listed ahead of writing (`claim`) were checked to be free or tt's at that moment;
the manifest is rewritten atomically. With several `tt train` workers only the chief
checks and records.

Example:
>>> import tempfile
>>> out = os.path.join(tempfile.mkdtemp(), "result")
>>> folder = OutputFolder(out, "tt example")
>>> folder.claim(["numbers.txt"])
>>> _ = open(os.path.join(out, "numbers.txt"), "w").write("42")
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

import json
import os

from tt_cli import storage
from tt_cli.errors import ConflictError, InvalidValueError

MANIFEST = ".tt-manifest.json"
MANIFEST_VERSION = 1


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
    """The folders holding the files a glob matches (the inputs of a shard glob)."""
    return sorted({storage.dirname(p) for p in storage.glob(pattern)})


def _stamp(path):
    return storage.stamp(path)


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
    """

    def __init__(self, path, command):
        self.path = path
        self.command = command
        self._existed = storage.isdir(path)
        self._manifest = self._read()

    def _read(self):
        path = os.path.join(self.path, MANIFEST)
        if not storage.isfile(path):
            return None
        try:
            with storage.open(path) as f:
                manifest = json.load(f)
        except (OSError, ValueError):
            return None  # unreadable: nothing is provably tt's
        if not isinstance(manifest, dict) or not isinstance(manifest.get("entries"), dict):
            return None
        return manifest

    @property
    def has_manifest(self):
        return self._manifest is not None

    def _entries(self):
        return self._manifest["entries"] if self._manifest else {}

    def existing(self):
        """Names in the folder now (the manifest itself left out)."""
        if not storage.isdir(self.path):
            return []
        return sorted(n for n in storage.listdir(self.path) if n != MANIFEST)

    def owned(self):
        """Names this command wrote here: listed for it, and (for stamped files) unchanged since."""
        names = set()
        for name, entry in self._entries().items():
            if not isinstance(entry, dict) or entry.get("command") != self.command:
                continue
            path = os.path.join(self.path, name)
            stamped = "size" in entry and storage.isfile(path)
            if stamped and _stamp(path) != {"size": entry["size"], "mtime_ns": entry.get("mtime_ns")}:
                continue  # replaced by someone else since tt wrote it
            names.add(name)
        return names

    def foreign(self, names=None):
        """Which of `names` (default: everything here) exist and are not this command's."""
        owned = self.owned()
        candidates = self.existing() if names is None else names
        return [n for n in candidates if n not in owned and storage.lexists(os.path.join(self.path, n))]

    def check_free(self, names, hint="choose another path"):
        """One line naming the first of `names` that exists here and tt did not write."""
        foreign = self.foreign(names)
        if foreign:
            raise ConflictError(f"{self.path} holds {foreign[0]}, which tt did not write; {hint}.")

    def claim(self, names, hint="choose another path"):
        """Lists `names` as this command's before writing them; refuses if one is someone else's."""
        self.check_free(names, hint)
        self._update({n: {"command": self.command} for n in names})

    def record(self, names, stamp=False):
        """Lists `names` as written by this command, after writing them (files stamped if asked)."""
        self._update(
            {n: dict({"command": self.command}, **(_stamp(os.path.join(self.path, n)) if stamp else {})) for n in names}
        )

    def adopt(self, names):
        """Lists an earlier tt version's output (recognised structurally by the caller) as this command's."""
        present = [n for n in names if storage.lexists(os.path.join(self.path, n))]
        if present:  # nothing recognised: write nothing into someone else's folder
            self.record(present)

    def remove_owned(self, names=None):
        """Removes this command's entries (default: all of them) and their `.tmp…` siblings;
        returns the names removed. Nothing else in the folder is touched."""
        owned = self.owned()
        targets = sorted(owned if names is None else owned & set(names))
        existing = self.existing()
        removed = []
        for name in targets:
            for sibling in [name] + [n for n in existing if n.startswith(name + ".tmp")]:
                path = os.path.join(self.path, sibling)
                if storage.lexists(path):
                    _remove(path)
                    removed.append(sibling)
        if self._manifest is not None:
            for name in targets:
                self._manifest["entries"].pop(name, None)
            self._write()
        return removed

    def _update(self, entries):
        if self._manifest is None:
            self._manifest = {
                "manifest": MANIFEST_VERSION,
                "created_by": self.command,
                "created_folder": not self._existed,
                "entries": {},
            }
        self._manifest["entries"].update(entries)
        self._write()

    def _write(self):
        path = os.path.join(self.path, MANIFEST)
        try:
            storage.makedirs(self.path)
            with storage.open(path + ".tmp", "w") as f:
                f.write(json.dumps(self._manifest, indent=2, sort_keys=True))
            storage.replace(path + ".tmp", path)
        except OSError as e:
            raise InvalidValueError(f"{self.path}: cannot write ({e.strerror or e}).")


def prepare_whole_folder(out, command, overwrite, what):
    """For outputs whose file names a library chooses (SavedModel, KerasHub preset): OUT
    must be missing, empty, or hold only what `command` wrote there before, which
    --overwrite removes. Checks only; returns the folder for `begin_whole_folder`."""
    if storage.lexists(out) and not storage.isdir(out):
        raise InvalidValueError(f"{out} exists and is not a folder; choose another path.")
    folder = OutputFolder(out, command)
    present = folder.existing()
    foreign = folder.foreign(present)
    if foreign:
        raise ConflictError(
            f"{out} holds {foreign[0]}, which tt did not write; overwriting replaces only tt's "
            "own earlier output, so choose another path."
        )
    if present and not overwrite:
        raise ConflictError(f"{out} already holds {what}", ("overwrite", True, "to replace it, or choose another path"))
    return folder


def begin_whole_folder(folder):
    """Just before writing: removes the command's earlier output, makes the folder, starts its manifest."""
    folder.remove_owned()
    folder.claim([])


def record_all(folder):
    """After a whole-folder output is written: every entry in it is this command's."""
    folder.record(folder.existing())


def prepare_file(out, command, overwrite, flag=None):
    """For a single-file output: refuses to replace a file tt did not write (listed with an
    unchanged size and time in its folder's manifest), or its own without `overwrite`
    (None: replacing tt's own file needs no flag). Returns the folder."""
    named = f"{flag} {out}" if flag else out
    if storage.isdir(out):
        raise InvalidValueError(f"{named} is a folder; give a file path.")
    folder = OutputFolder(storage.dirname(out), command)
    name = os.path.basename(out)
    if storage.lexists(out):
        if folder.foreign([name]):
            raise ConflictError(f"{named} exists and tt did not write it; choose another path.")
        if overwrite is False:
            raise ConflictError(f"{named} already exists", ("overwrite", True, "to replace it, or choose another path"))
    return folder

"""The checkpoints of a run: which exist is tt's own record in the run's manifest, never
TensorFlow's `checkpoint` file, and no path is ever read as a pattern.

    RUN/checkpoints/ckpt-<step>.index, ckpt-<step>.data-00000-of-00001   (tf.train.Checkpoint.write)
    RUN/checkpoints/.worker-<k>/...   the same for training worker k, listed in a manifest of its own

A save marks `ckpt-<step>` pending in the manifest (`tt_cli.ownership`), writes it, then
stamps its `.index` by SHA-256 and each data file by its size: the `.index` holds the
CRC32C of every tensor in the data files, which TensorFlow checks when it restores, so
hashing gigabytes at every save would prove nothing more. Checkpoints beyond the newest
`keep` are removed when they are provably tt's (else kept, with a note, and no longer
listed). At the same time the chief stamps what tt appends to (`metrics.jsonl`, TensorBoard
events) by the bytes written so far.

A resume restores the newest recorded checkpoint that is intact and says which; a newer one
it had to skip is named with the reason. When none is intact the run is refused with one
line: a run with checkpoints never starts over by itself. TensorFlow's own discovery
(`tf.train.latest_checkpoint`) is not used: it follows paths written in a file anyone can
edit, and matches them as glob patterns (a run folder named `run[1]` looked empty).

TensorFlow's checkpoint reader also takes the path it is given as a pattern: a checkpoint
below a local folder whose path holds `*`, `?`, `[` or `\\` is read through a symlink in a
temporary folder; below such a URL it is refused with one line.

Example:
>>> import tempfile
>>> import tensorflow as tf
>>> run, step = tempfile.mkdtemp(), tf.Variable(0)
>>> saver = RunCheckpoints(tf.train.Checkpoint(step=step), run, keep=2)
>>> for n in (1, 2, 3):
...     _ = step.assign(n)
...     saver.save(checkpoint_number=n)
>>> saver.steps(), sorted(os.listdir(os.path.join(run, "checkpoints")))
([3, 2], ['ckpt-2.data-00000-of-00001', 'ckpt-2.index', 'ckpt-3.data-00000-of-00001', 'ckpt-3.index'])
>>> _ = step.assign(0)
>>> saver.restore_newest(), int(step.numpy())
(3, 3)
"""

import contextlib
import os
import re
import tempfile

from tt_cli import ownership, storage
from tt_cli.errors import ConflictError, InvalidValueError, UnreadableDataError

COMMAND = "tt train"
CHECKPOINTS = "checkpoints"
METRICS = "metrics.jsonl"
LOGS = "logs"
_INDEX = re.compile(r"ckpt-(\d+)\.index")


def _first_line(error):
    text = getattr(error, "message", None) or str(error)
    return text.strip().splitlines()[0] if text.strip() else type(error).__name__


@contextlib.contextmanager
def readable(prefix):
    """A path for the checkpoint `prefix` that TensorFlow's reader cannot take as a pattern."""
    if not storage.has_glob_characters(prefix):
        yield prefix
        return
    if storage.is_url(prefix):
        raise InvalidValueError(
            f"{prefix}: TensorFlow reads a checkpoint's path as a pattern, so it cannot read one below a "
            "URL holding *, ?, [ or \\; copy the run to a path without them."
        )
    folder = tempfile.mkdtemp(prefix="tt-checkpoint-")
    link = os.path.join(folder, CHECKPOINTS)
    try:
        if storage.has_glob_characters(link):
            raise InvalidValueError(
                f"{folder}: the temporary folder holds *, ?, [ or \\ too; set TMPDIR to a path without them."
            )
        os.symlink(os.path.realpath(os.path.dirname(prefix)), link)
        yield os.path.join(link, os.path.basename(prefix))
    finally:
        if os.path.islink(link):
            os.remove(link)
        os.rmdir(folder)


def restore(checkpoint, prefix, partial=False):
    """Restores the checkpoint files at `prefix` into `checkpoint` (a `tf.train.Checkpoint`);
    one clear line naming them when they are truncated, corrupt or another model's.
    `partial`: the checkpoint may hold more than `checkpoint` asks for (an optimizer)."""
    import tensorflow as tf

    with readable(prefix) as path:
        try:
            status = checkpoint.read(path)
            return status.expect_partial() if partial else status.assert_existing_objects_matched()
        except (tf.errors.OpError, ValueError, AssertionError, IndexError) as e:  # IndexError: a truncated file
            raise UnreadableDataError(
                f"{prefix}: cannot restore the checkpoint ({_first_line(e)}); "
                "its files are damaged or belong to another model."
            ) from None


class RunCheckpoints:
    """The checkpoints of one run, saved, listed, rotated and restored through a manifest.

    Args:
      checkpoint: the `tf.train.Checkpoint` saved and restored (None to only list).
      run_dir: the run directory.
      keep: how many of the newest checkpoints a save keeps (None: all).
      worker: None for the chief (RUN/checkpoints, listed in the run's manifest); k for
        another training worker (RUN/checkpoints/.worker-k, listed in a manifest of its own).
      log: where notes go (a checkpoint skipped or kept).
      readonly: only read the chief's checkpoints (another worker resuming from them).
      command: the command whose entries they are in the manifest (`tt pretrain` keeps its
        checkpoints the same way).
      start_over: the command's argument that starts a run over (named when none is intact).
    """

    def __init__(
        self,
        checkpoint,
        run_dir,
        keep=None,
        worker=None,
        log=None,
        readonly=False,
        command=COMMAND,
        start_over="restart",
    ):
        self.checkpoint, self.run_dir, self.keep, self.readonly = checkpoint, run_dir, keep, readonly
        self.start_over = start_over
        self.chief = worker is None
        self.log = log or (lambda message: None)
        self._new_logs_recorded = False
        if self.chief:
            self.folder, self.subdir = ownership.OutputFolder(run_dir, command), CHECKPOINTS
        else:
            self.folder, self.subdir = (
                ownership.OutputFolder(os.path.join(run_dir, CHECKPOINTS, f".worker-{worker}"), command),
                "",
            )

    def _key(self, name):
        return f"{self.subdir}/{name}" if self.subdir else name

    def _directory(self):
        return os.path.join(self.folder.path, self.subdir) if self.subdir else self.folder.path

    def prefix(self, step):
        return os.path.join(self._directory(), f"ckpt-{step}")

    def _on_disk(self):
        """Names in the checkpoint folder (a listing, never a pattern)."""
        return storage.listdir(self._directory()) if storage.isdir(self._directory()) else []

    def steps(self):
        """The steps of the recorded checkpoints, newest first. A run of a tt that kept no
        hashes in its manifest (or none) lists the `ckpt-<step>.index` files it holds."""
        if not self.folder.hashed():
            return sorted((int(m.group(1)) for m in map(_INDEX.fullmatch, self._on_disk()) if m), reverse=True)
        steps = []
        for key, entry in self.folder.listed().items():
            folder, _, name = key.rpartition("/")
            match = _INDEX.fullmatch(name)
            if folder == self.subdir and match and "sha256" in entry and not entry.get("damaged"):
                steps.append(int(match.group(1)))
        return sorted(steps, reverse=True)

    @property
    def latest_checkpoint(self):
        """The newest recorded checkpoint's prefix, or None (the name `tf.train.CheckpointManager` uses)."""
        steps = self.steps()
        return self.prefix(steps[0]) if steps else None

    def _keys_of(self, step):
        """Manifest names of checkpoint `step`'s files."""
        pattern = re.compile(rf"ckpt-{step}(\.index|\.data-\d{{5}}-of-\d{{5}})")
        return [
            k
            for k in self.folder.listed()
            if k.rpartition("/")[0] == self.subdir and pattern.fullmatch(k.rpartition("/")[2])
        ]

    def unrecorded(self):
        """`ckpt-<step>.index` files in the folder that tt did not record (nor was writing;
        recorded ones set aside as damaged count as recorded)."""
        if not self.folder.hashed():
            return []
        listed = self.folder.listed()
        return [
            n
            for n in self._on_disk()
            if _INDEX.fullmatch(n) and self._key(n) not in listed and not self.folder.is_pending_leftover(self._key(n))
        ]

    # -------------------------------------------------------------- saving

    def save(self, checkpoint_number):
        """Writes checkpoint `checkpoint_number` (the step), records it, keeps the newest `keep`."""
        step = checkpoint_number
        name = f"ckpt-{step}"
        self._discard_unfinished()
        hint = f"move it away so that the run can save its checkpoint at step {step}"
        listed = self.folder.listed()
        for n in self._on_disk():  # what TensorFlow is about to write over must be provably tt's
            if re.fullmatch(re.escape(name) + ownership.CHECKPOINT_FILES, n):
                if self._key(n) not in listed:
                    raise ConflictError(f"{os.path.join(self._directory(), n)} exists and tt did not write it; {hint}.")
                self.folder.check_replaceable([self._key(n)], hint)
        self.folder.mark_pending(self._key(name))
        self.checkpoint.write(self.prefix(step))
        index = self._key(f"{name}.index")
        stamps = {index: ownership.file_stamp(os.path.join(self._directory(), f"{name}.index"))}
        for n in self._on_disk():
            if re.fullmatch(re.escape(name) + r"\.data-\d{5}-of-\d{5}", n):
                stamps[self._key(n)] = {"size": storage.getsize(os.path.join(self._directory(), n)), "bound_to": index}
        self.folder.record(list(stamps), stamps=stamps)
        self.folder.forget([self._key(name)])
        self.record_logs()
        self._rotate()

    def _discard_unfinished(self):
        """Removes what TensorFlow left of checkpoints whose writing was interrupted (tt's
        exact names for them, recorded as pending), and forgets them."""
        pending = [k for k, e in self.folder.listed().items() if e.get("pending")]
        if not pending:
            return
        leftovers = [self._key(n) for n in self._on_disk() if self.folder.is_pending_leftover(self._key(n))]
        self.folder.remove_owned(leftovers)
        self.folder.forget(pending)

    def _rotate(self):
        if not self.keep:
            return
        for step in self.steps()[self.keep :]:
            keys = self._keys_of(step)
            try:
                self.folder.remove_owned(keys)
            except ConflictError as e:
                self.folder.forget(keys)  # no longer provably tt's: kept, and no longer one of its checkpoints
                self.log(f"kept {self.prefix(step)} and no longer count it among the run's checkpoints: {e}")

    def record_logs(self):
        """Stamps what the chief appends to (metrics.jsonl, TensorBoard events) by the bytes so
        far: at each save, and when a session's logs first appear (`record_new_logs`); what is
        appended after the last stamp stays tt's (a stamp vouches for the bytes it covers)."""
        if self.chief:
            self.folder.record([METRICS, LOGS], grows=True)

    def record_new_logs(self):
        """`record_logs` once a session, after its first metrics line (hashing the logs at every
        line would read them again and again)."""
        if not self._new_logs_recorded:
            self._new_logs_recorded = True
            self.record_logs()

    # -------------------------------------------------------------- restoring

    def damage(self, step):
        """Why checkpoint `step` is not intact by its record (a file missing or changed), or None."""
        if not self.folder.hashed():
            index = self.prefix(step) + ".index"
            return None if storage.isfile(index) else f"{os.path.basename(index)} is missing"
        why = self.folder.first_damage(self._keys_of(step))
        return why and why.rpartition("/")[2]

    def _restore_step(self, step, partial):
        """None when checkpoint `step` is intact and restored, else why not."""
        why = self.damage(step)
        if why is None:
            try:
                restore(self.checkpoint, self.prefix(step), partial)
            except UnreadableDataError as e:
                why = e.reason.split(": ", 1)[-1].rstrip(".")
        return why

    def restore_latest(self):
        """Restores the newest recorded checkpoint (evaluation, export: the run as it stands);
        returns its step, None when there is none; one line naming it when it is damaged."""
        steps = self.steps()
        if not steps:
            return None
        why = self._restore_step(steps[0], partial=True)
        if why:
            raise UnreadableDataError(f"{self.prefix(steps[0])}: {why}; the run's newest checkpoint is damaged.")
        return steps[0]

    def restore_newest(self):
        """Restores the newest intact checkpoint (resuming); returns its step, None when the run
        has none. Each newer damaged one is named in the log with its reason and marked damaged
        in the manifest (replaced when the run saves that step again: its `.index` still proves
        it tt's), or, when its `.index` changed too, no longer listed. When none is intact:
        `UnreadableDataError` naming each, with the remedy of starting over, which tt never
        takes by itself."""
        skipped = []
        for step in self.steps():
            why = self._restore_step(step, partial=False)
            if why is None:
                for damaged, reason in skipped:
                    self.log(
                        f"skipped the damaged checkpoint {self.prefix(damaged)} ({reason}); "
                        f"resuming from {self.prefix(step)}"
                    )
                    self._set_aside(damaged)
                return step
            skipped.append((step, why))
        if not skipped:
            return None
        reasons = "; ".join(f"ckpt-{step}: {why}" for step, why in skipped)
        raise UnreadableDataError(
            f"{self.run_dir}: none of its checkpoints is intact ({reasons}); tt never starts a run over by itself",
            (self.start_over, True, "to start it over once the damaged files are restored or moved away"),
        )

    def _set_aside(self, step):
        if self.readonly or not self.folder.hashed():
            return
        index = self._key(f"ckpt-{step}.index")
        entry = self.folder.listed().get(index)
        if entry and self.folder.first_damage([index]) is None:
            self.folder.record([index], stamps={index: {**entry, "damaged": True}})
        else:  # its .index changed: nothing proves these files tt's any more
            self.folder.forget(self._keys_of(step))

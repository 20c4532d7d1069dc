"""Property tests of the source readers: whatever the rows, each is converted intact or
rejected with a reason, and no row stops the listing (issue 22).

Hypothesis writes CSV, TSV, JSON Lines and WebDataset sources of generated rows (any
unicode, lone surrogates, bytes that are not UTF-8, quotes, separators, line breaks,
extra and missing cells, unterminated quotes, duplicate keys, labels on some rows, good,
broken, empty and missing images, tars cut anywhere). The readers (`sources.list_*`) and
the image checks every conversion worker makes (`validate.read_image_file` /
`read_tar_member`, then `check_image_bytes`) run in this process: they import neither
TensorFlow nor the `tfrecord` package. One end-to-end `tt data convert` subprocess checks
that the command does what these functions say.

Deterministic (`derandomize=True`) and small, so the whole file takes seconds.
"""

import csv
import io
import json
import os
import re
import tarfile
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from support.data_corpus import run_tt

from tt_cli.data import sources, validate

PROPERTY = settings(max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text of every kind: any code point (lone surrogates too), and the characters that break
# naive readers, dense.
AWKWARD = ['"', "'", ",", "\t", "\n", "\r", " ", "\\", "\x00", "\ufeff", "\u2028", "\ud800", "\udcff", "é"]
TEXT = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=30),
    st.text(st.sampled_from(AWKWARD + list("ab c")), max_size=12),
)
KEYS = st.sampled_from(["k0", "k1", "k2", "k3", "k\ud800", "k,4", 'k"5', "é6"])
IMAGES = st.sampled_from(["good.png", "good.jpg", "broken.png", "empty.png", "missing.png"])
LABELS = st.one_of(st.none(), st.integers(-1, 3), st.sampled_from(["cat", "dog", "007"]))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """The image files rows point at, and what checking each must give."""
    root = tmp_path_factory.mktemp("property_images")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(root / "good.png")
    Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).save(root / "good.jpg")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not the rest of a PNG")
    (root / "empty.png").write_bytes(b"")
    return str(root)


IMAGE_OUTCOME = {"broken.png": "unreadable_image", "empty.png": "empty_file", "missing.png": "missing_file"}


def check_image(row, folder):
    """Checks a listed row's image as a conversion worker does; asserts what its file holds."""
    name = os.path.basename(row.image if isinstance(row.image, str) else row.key)
    data = validate.read_image_file(row.image) if isinstance(row.image, str) else validate.read_tar_member(*row.image)
    checked = data if isinstance(data, validate.Rejection) else validate.check_image_bytes(data)
    if isinstance(row.image, str) and name in IMAGE_OUTCOME:
        assert isinstance(checked, validate.Rejection) and checked.reason == IMAGE_OUTCOME[name], checked
    elif isinstance(row.image, str):  # a good RGB PNG or JPEG: kept byte for byte
        assert checked.data == open(os.path.join(folder, name), "rb").read()
    return checked


def has_surrogate(text):
    return any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def span_of(reject):
    """(first line, last line) a CSV/TSV rejection covers, from its origin and detail."""
    first = int(reject["origin"].rsplit(":", 1)[1])
    lines = re.match(r"lines (\d+)-(\d+)", reject.get("detail", ""))
    return (first, int(lines.group(2))) if lines else (first, first)


def physical_lines(text):
    """How many lines `text` has to the readers (line ends: \\n, \\r or \\r\\n)."""
    return len(io.StringIO(text, newline="").readlines())


# ------------------------------------------------------------------ CSV and TSV

ROW_KINDS = st.sampled_from(["valid"] * 6 + ["extra_cells", "missing_cells", "unterminated"])


@st.composite
def table_rows(draw, quoted):
    rows = draw(st.lists(st.tuples(ROW_KINDS, KEYS, TEXT, IMAGES), min_size=1, max_size=12))
    if not quoted:  # TSV cannot hold a line break in a cell, and has no quoting to open
        rows = [(k if k != "unterminated" else "valid", key, re.sub("[\r\n]", " ", c), i) for k, key, c, i in rows]
    return rows


QUOTE_OR_BREAK = re.compile('["\r\n]')


def write_table(path, rows, folder, quoted):
    """Writes the rows as CSV (csv.writer, quoting as it must) or TSV (cells as they are);
    returns the first physical line of each row, and the rows as the file holds them (a tab
    in a TSV cell makes other cells of it)."""
    delimiter = "," if quoted else "\t"
    text, firsts, held = f"image{delimiter}caption{delimiter}key\r\n", [], []
    for kind, key, caption, image in rows:
        cells = [os.path.join(folder, image), caption, key]
        if kind == "extra_cells":
            cells.append("extra")
        elif kind == "missing_cells":
            cells = cells[:2]
        if kind == "unterminated":  # a quote opened and never closed on its line
            line = f'{cells[0]},"{re.sub(QUOTE_OR_BREAK, " ", caption)},{key}\r\n'
        elif quoted:
            buffer = io.StringIO()
            csv.writer(buffer).writerow(cells)
            line = buffer.getvalue()
        else:
            line = "\t".join(cells) + "\r\n"
            cells = line[:-2].split("\t")
            kind, caption, key = ("valid", cells[1], cells[2]) if len(cells) == 3 else ("cells", caption, key)
        held.append((kind, key, caption, image))
        firsts.append(physical_lines(text) + 1)
        text += line
    with open(path, "w", encoding="utf-8", errors="surrogatepass", newline="") as f:
        f.write(text)
    return firsts, held


def check_table(rows, firsts, listing, folder, quoted):
    by_line = {int(row.origin.rsplit(":", 1)[1]): row for row in listing.rows}
    spans = [(span_of(r), r) for r in listing.rejects]
    opened = [firsts[i] for i, row in enumerate(rows) if row[0] == "unterminated"]
    accepted_keys = set()
    breaks = re.compile("[\r\n]")  # what no cell of a row can hold
    for (kind, key, caption, image), first in zip(rows, firsts):
        covering = [r for (a, b), r in spans if a <= first <= b]
        assert (first in by_line) != bool(covering), (kind, key, caption, covering)  # exactly one outcome
        if first in by_line:  # converted: intact, never merged with another line or cut
            row = by_line[first]
            assert kind == "valid" and not breaks.search(caption + key), (kind, caption)
            assert (row.key, row.captions, os.path.basename(row.image)) == (key, [caption.strip()], image)
            accepted_keys.add(key)
            check_image(row, folder)
            continue
        reject = covering[0]
        assert reject["reason"] in vars(validate).values()  # a documented reason
        if span_of(reject)[0] != first:  # swallowed by a quote opened on an earlier line, or by the
            start = span_of(reject)[0]  # rest of a row such a quote broke (its second line, `",k0`)
            assert quoted and (start in opened or start not in firsts), (start, opened)
            continue
        if kind != "valid" or breaks.search(caption + key):
            assert reject["reason"] == "bad_row", reject
        elif has_surrogate(key):
            assert reject["reason"] == "key_not_utf8"
        elif has_surrogate(caption):
            assert reject["reason"] == "caption_not_utf8"
        elif not caption.strip():
            assert reject["reason"] == "empty_caption"
        else:
            assert reject["reason"] == "duplicate_key" and key in accepted_keys, (reject, key)


@pytest.mark.parametrize("quoted", [True, False], ids=["csv", "tsv"])
@PROPERTY
@given(data=st.data())
def test_csv_and_tsv_rows_are_intact_or_rejected(images, quoted, data):
    rows = data.draw(table_rows(quoted))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.csv" if quoted else "rows.tsv")
        firsts, held = write_table(path, rows, images, quoted)
        listing = sources.list_source(path, key_column="key")
        check_table(held, firsts, listing, images, quoted)


def test_the_rest_of_a_broken_caption_is_no_row(images):
    """An open quote closes on the next caption's line break: the caption's second line,
    `0,0",k0`, is no row of its own (it would take the key k0 from the real row after it)."""
    rows = [
        ("unterminated", "k0", "", "good.png"),
        ("valid", "k0", "\n0,0", "good.png"),
        ("valid", "k0", "0", "good.png"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.csv")
        firsts, held = write_table(path, rows, images, quoted=True)
        listing = sources.list_source(path, key_column="key")
        check_table(held, firsts, listing, images, quoted=True)
    assert [row.captions for row in listing.rows] == [["0"]]
    assert listing.rejects[-1]["detail"] == "line 4: a quote inside an unquoted cell"


# ------------------------------------------------------------------ JSON Lines

JSON_LINES = st.one_of(
    st.fixed_dictionaries({"key": KEYS, "caption": st.one_of(TEXT, st.integers()), "image": IMAGES, "label": LABELS}),
    st.fixed_dictionaries({"key": KEYS, "captions": st.lists(TEXT, min_size=1, max_size=3), "image": IMAGES}),
    st.sampled_from(["not json", "[" * 3000, '{"caption": "no image"}', "{}"]),
)


def write_jsonl(path, lines, folder, ascii_only):
    with open(path, "wb") as f:
        for line in lines:
            if isinstance(line, dict):
                line = json.dumps(dict(line, image=os.path.join(folder, line["image"])), ensure_ascii=ascii_only)
            f.write(line.encode("utf-8", "surrogatepass") + b"\n")


@pytest.mark.slow
@PROPERTY
@given(lines=st.lists(JSON_LINES, min_size=1, max_size=12), ascii_only=st.booleans())
def test_jsonl_rows_are_intact_or_rejected(images, lines, ascii_only):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.jsonl")
        write_jsonl(path, lines, images, ascii_only)
        listing = sources.list_source(path)
    listed = {int(r.origin.rsplit(":", 1)[1]): r for r in listing.rows}
    rejected = {int(r["origin"].rsplit(":", 1)[1]): r for r in listing.rejects}
    accepted, accepted_keys = [], set()  # rows that passed every check but the label rule
    for number, line in enumerate(lines, start=1):
        assert (number in listed) != (number in rejected), line  # exactly one outcome
        reason = rejected[number]["reason"] if number in rejected else None
        if isinstance(line, dict) and ascii_only:  # as the file holds it: "\\ud800\\udc00" is one character
            line = json.loads(json.dumps(line))
        if not isinstance(line, dict):
            assert reason == "bad_row"
            continue
        captions = line.get("captions", [line.get("caption")])
        label = line.get("label")
        if has_surrogate(line["key"]):
            assert reason == "key_not_utf8"
        elif isinstance(label, int) and label < 0:
            assert reason == "bad_label"
        elif any(not isinstance(c, str) for c in captions):
            assert reason == "bad_row"
        elif any(has_surrogate(c) for c in captions):
            assert reason == "caption_not_utf8"
        elif any(not c.strip() for c in captions):
            assert reason == "empty_caption"
        elif line["key"] in accepted_keys:
            assert reason == "duplicate_key"
        else:  # converted intact, or rejected by the label rule below
            accepted.append((number, line))
            accepted_keys.add(line["key"])
            if reason is None:
                row = listed[number]
                assert (row.key, row.captions) == (line["key"], [c.strip() for c in captions])
                check_image(row, images)
            else:
                assert reason == "missing_label" and label is None
    # Labels, all or nothing: labelled when more than half of the accepted rows carry one.
    labels = [line.get("label") for _, line in accepted]
    given_labels = sum(label is not None for label in labels)
    assert listing.labelled == (given_labels * 2 > len(labels))
    for number, line in accepted:
        if number not in listed:
            continue
        row = listed[number]
        if not listing.labelled:
            assert row.label is None and listing.labels_ignored == given_labels
        elif listing.class_names:  # names (an integer among names is its decimal text)
            assert listing.class_names[row.label] == str(line["label"])
        else:
            assert row.label == line["label"]


# ------------------------------------------------------------------ WebDataset tars

SAMPLES = st.lists(
    st.tuples(
        st.sampled_from(["s0", "s1", "s2", "s3"]),
        st.one_of(st.none(), TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")), st.binary(max_size=8)),
        st.booleans(),  # a good image (else bytes that are not one)
    ),
    min_size=1,
    max_size=8,
)


def write_tar(path, samples, png):
    """Each sample: key.png, then key.txt unless its caption is None; returns the members' offsets."""
    with tarfile.open(path, "w") as tar:
        for key, caption, good in samples:
            for name, data in ((f"{key}.png", png if good else b"not a png"), (f"{key}.txt", caption)):
                if data is not None:
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    with tarfile.open(path) as tar:
        return [(m.offset, m.offset_data + m.size) for m in tar.getmembers()]


@PROPERTY
@given(samples=SAMPLES, cut=st.one_of(st.none(), st.floats(0.0, 1.0)))
def test_webdataset_samples_are_intact_or_rejected(images, samples, cut):
    png = open(os.path.join(images, "good.png"), "rb").read()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "part.tar")
        members = write_tar(path, samples, png)
        whole = open(path, "rb").read()
        end = -(-members[-1][1] // 512) * 512 + 512  # through the first end-of-archive block
        size = len(whole) if cut is None else int(cut * len(whole))
        open(path, "wb").write(whole[:size])
        try:
            listing = sources.list_source(path)
        except Exception as e:  # only a file that is not a tar at all (cut inside its first header)
            assert size < 512 and "not an uncompressed tar file" in str(e)
            return
        checked = {row.key: check_image(row, images) for row in listing.rows}
    damage = [r for r in listing.rejects if r["reason"] in ("truncated_tar", "bad_tar")]
    assert len(damage) == (1 if size < end else 0)
    # Member by member: which sample each belongs to, and where its header starts.
    starts, index = [], 0
    for _, caption, _ in samples:
        starts.append(members[index][0])
        index += 1 if caption is None else 2
    rejected_keys = {r["key"] for r in listing.rejects}
    for i, (key, _, _) in enumerate(samples):
        following = starts[i + 1] if i + 1 < len(samples) else -(-members[-1][1] // 512) * 512
        if following + 512 > size:  # the reader cannot see past this sample: it is cut or lost, and said
            assert damage
            continue
        assert key in checked or key in rejected_keys, (key, listing.rejects)
    for row in listing.rows:  # listed: the earliest complete sample of its key, intact
        first = next(s for s in samples if s[0] == row.key and s[1] is not None and _caption_ok(s[1]))
        assert row.captions == [first[1].decode().strip()]
        assert (checked[row.key].data == png) if first[2] else checked[row.key].reason == "unreadable_image"


def _caption_ok(data):
    try:
        return bool(data.decode("utf-8").strip())
    except UnicodeDecodeError:
        return False


# ------------------------------------------------------------------ end to end


@settings(max_examples=3, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=table_rows(quoted=True))
def test_convert_does_what_the_readers_say(images, rows):
    """`tt data convert` (a subprocess) writes the rows the readers list and the image checks
    pass, and rejects the others with the same reasons, in source order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rows.csv")
        write_table(path, rows, images, quoted=True)
        listing = sources.list_source(path, key_column="key")
        kept = [r for r in listing.rows if not isinstance(check_image(r, images), validate.Rejection)]
        out = os.path.join(tmp, "out")
        result = run_tt("data", "convert", path, out, "--key-column", "key", "--workers", 1, check=False, timeout=120)
        if not kept:
            assert result.returncode == 2 and "no row could be converted" in result.stderr
            return
        assert result.returncode == 0, result.stderr
        report = json.loads(open(os.path.join(out, "report.json")).read())
        assert report["written"] == len(kept) and report["read"] == len(listing.rows) + len(listing.rejects)
        said = [json.loads(line) for line in open(os.path.join(out, "rejected.jsonl"))]
        assert sorted(r["origin"] for r in said) == sorted(
            [r["origin"] for r in listing.rejects] + [r.origin for r in listing.rows if r not in kept]
        )

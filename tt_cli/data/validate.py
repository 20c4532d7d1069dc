"""Checks one image and one caption the way `tt data convert` needs.

Every image is decoded once with Pillow. A readable RGB JPEG or 8-bit PNG that
fits `max_size` and is upright is kept byte for byte; anything else (an EXIF
orientation other than upright, CMYK, grayscale, palette, alpha, 16-bit,
WebP/GIF/BMP/TIFF, or too large) is turned upright, converted to 8-bit RGB and
re-encoded. Problems come back as a `Rejection` with a short machine reason.

A row is data, so every read is bounded: only regular files are opened (a FIFO
or a device never), at most `MAX_IMAGE_BYTES` per image, and an image's size is
checked from its header against `schema.MAX_IMAGE_PIXELS` before it is decoded.

Example:
>>> from PIL import Image; import io
>>> buf = io.BytesIO(); Image.new("CMYK", (8, 8)).save(buf, "JPEG")
>>> image = check_image_bytes(buf.getvalue(), max_size=None)
>>> image.conversions, image.size
(['cmyk'], (8, 8))
>>> check_caption(b"\\xff").reason
'caption_not_utf8'
"""

import dataclasses
import io
import os
import re

import numpy as np
from PIL import Image, ImageFile, ImageOps

from tt_cli import storage
from tt_cli.data.schema import MAX_IMAGE_PIXELS

# Reasons a row is rejected; the values are what `rejected.jsonl` says.
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
TRUNCATED_IMAGE = "truncated_image"
UNREADABLE_IMAGE = "unreadable_image"
EMPTY_CAPTION = "empty_caption"
CAPTION_NOT_UTF8 = "caption_not_utf8"
DUPLICATE_KEY = "duplicate_key"
BAD_ROW = "bad_row"  # a source line that cannot be parsed, or lacks a field
MISSING_LABEL = "missing_label"
KEY_NOT_UTF8 = "key_not_utf8"
PATH_NOT_UTF8 = "path_not_utf8"  # image path (or folder name) with bytes that are not UTF-8
BAD_PATH = "bad_path"  # a NUL byte in the image path
BAD_LABEL = "bad_label"  # negative, or outside int64
FIELD_TOO_LARGE = "field_too_large"  # a CSV/TSV cell over the csv module's field limit
ROW_TOO_LARGE = "row_too_large"  # a source line or WebDataset text member over MAX_ROW_BYTES
NOT_A_FILE = "not_a_file"  # a directory, FIFO, socket or device where an image should be
TOO_LARGE = "too_large"  # over MAX_IMAGE_BYTES on disk, or over MAX_IMAGE_PIXELS
TRUNCATED_TAR = "truncated_tar"  # a WebDataset tar that ends early: a sample cut short, or later samples missing
BAD_TAR = "bad_tar"  # a WebDataset tar with a damaged header: the samples after it cannot be found

# What `convert` did to a row it kept, besides the image conversions below.
CAPTION_TRUNCATED = "caption_truncated"
ORIENTED = "orientation"  # turned upright as its EXIF orientation says (phone photos), then re-encoded

# Limits that keep one row from exhausting a conversion (and, later, training).
MAX_IMAGE_BYTES = 64 << 20  # an image file or tar member
MAX_ROW_BYTES = 16 << 20  # a JSONL/CSV line or a WebDataset .txt/.json member, read only up to this
MAX_CAPTION_CHARS = 1000  # longer captions are cut at the last word boundary before this

# Formats kept as given (TensorFlow decodes them); others are re-encoded.
_KEPT_FORMATS = {"JPEG", "PNG"}
JPEG_QUALITY = 95
# Pillow's own bomb check is replaced by ours (header size against MAX_IMAGE_PIXELS before
# decoding): it would refuse a large JPEG before `draft()` could shrink it while decoding.
Image.MAX_IMAGE_PIXELS = None
# A truncated file must fail, not decode as a half-grey image.
ImageFile.LOAD_TRUNCATED_IMAGES = False


@dataclasses.dataclass
class Rejection:
    reason: str
    detail: str = ""


@dataclasses.dataclass
class CheckedImage:
    data: bytes  # encoded JPEG or PNG, 8-bit RGB
    size: tuple  # (width, height) of `data`
    # what was done: "orientation", "cmyk", "alpha", "16bit", "grayscale", "palette", "format", "resized"
    conversions: list


_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match):
    code = ord(match.group())
    # U+DC80..U+DCFF stand for the bytes 0x80..0xFF that `surrogateescape` could not decode.
    return f"\\x{code - 0xDC00:02x}" if 0xDC80 <= code <= 0xDCFF else f"\\u{code:04x}"


def printable(text):
    """`text` with any lone surrogates shown escaped, so that a message or a `rejected.jsonl`
    record about a row that is not UTF-8 is itself valid UTF-8: undecodable bytes (from
    `surrogateescape`) as `\\xNN`, other lone surrogates (JSON's `"\\ud800"`) as `\\uNNNN`."""
    if not isinstance(text, str):
        return text
    return _SURROGATE.sub(_escape_surrogate, text)


def _is_utf8(text):
    try:
        text.encode("utf-8")  # lone surrogates: bytes that were not UTF-8
    except UnicodeEncodeError:
        return False
    return True


def check_key(key):
    """None when the key is usable, else a `Rejection`: it must be valid UTF-8."""
    if not _is_utf8(key):
        return Rejection(KEY_NOT_UTF8, printable(key)[:120])
    return None


def check_path(path):
    """None when an image path can be looked up, else a `Rejection` (NUL byte, not UTF-8)."""
    if "\0" in path:
        return Rejection(BAD_PATH, "NUL byte in the path")
    if not _is_utf8(path):
        return Rejection(PATH_NOT_UTF8, printable(path)[:200])
    return None


def check_label(label):
    """None when a label is usable, else a `Rejection`: an integer must fit a non-negative
    int64 (the shards' `label`), a class name must be UTF-8 (it goes into dataset.json)."""
    if isinstance(label, int) and not 0 <= label < 2**63:
        return Rejection(BAD_LABEL, f"label {str(label)[:40]} is not in [0, 2**63)")
    if isinstance(label, str) and not _is_utf8(label):
        return Rejection(BAD_LABEL, f"label {printable(label)[:40]!r} is not UTF-8")
    return None


def truncate_caption(text):
    """(caption cut to MAX_CAPTION_CHARS at the last word boundary, whether it was cut).

    The tokenizer keeps only the first few dozen pieces anyway; the bound keeps a
    runaway caption from costing memory in every later step. Without a space in the
    second half of the allowed length the cut falls mid-word.
    """
    if len(text) <= MAX_CAPTION_CHARS:
        return text, False
    head = text[: MAX_CAPTION_CHARS + 1]
    space = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    cut = head[:space] if space > MAX_CAPTION_CHARS // 2 else head[:MAX_CAPTION_CHARS]
    return cut.rstrip(), True


def check_caption(raw):
    """Returns the caption as a str, or a `Rejection` (empty or not UTF-8)."""
    if isinstance(raw, str):
        if not _is_utf8(raw):  # lone surrogates: bytes read with surrogateescape, or JSON's "\ud800"
            return Rejection(CAPTION_NOT_UTF8, printable(raw)[:80])
        text = raw
    elif isinstance(raw, (bytes, bytearray)):
        try:
            text = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as e:
            return Rejection(CAPTION_NOT_UTF8, str(e))
    else:
        return Rejection(BAD_ROW, f"caption is {type(raw).__name__}, not text")
    text = text.strip()
    if not text:
        return Rejection(EMPTY_CAPTION)
    return text


def _to_rgb(image, conversions):
    """Converts any Pillow mode to 8-bit RGB, noting what it did."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # Pillow's own convert() clips 16-bit values at 255; scale instead.
        conversions.append("16bit")
        values = np.asarray(image, dtype=np.float64)
        scaled = np.clip(np.round(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(scaled, "L").convert("RGB")
    if mode == "F":
        conversions.append("16bit")
        values = np.asarray(image, dtype=np.float64)
        scale = 255.0 if values.max(initial=0) <= 1.0 else 1.0
        return Image.fromarray(np.clip(values * scale, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode == "P":
        conversions.append("palette")
        has_alpha = "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
        if mode == "RGB":
            return image
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Composite over white: transparent regions become background, not black.
        conversions.append("alpha")
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if mode == "CMYK":
        conversions.append("cmyk")
        return image.convert("RGB")
    if mode in ("L", "1"):
        conversions.append("grayscale")
        return image.convert("RGB")
    conversions.append(mode.lower())  # YCbCr, LAB, HSV: rare, Pillow converts them
    return image.convert("RGB")


def image_header(data):
    """(format, width, height) from an encoded image's header without decoding it, or None."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.format, image.size[0], image.size[1]
    # Pillow raises many kinds (OSError, SyntaxError, struct.error...) on hostile headers.
    except Exception:  # noqa: BLE001  the caller reports the image as unreadable
        return None


def too_many_pixels(width, height):
    return width * height > MAX_IMAGE_PIXELS


def _fit_pixel_limit(image, max_size):
    """Checks the header size before decoding; returns whether `draft()` shrank the decode.

    Over MAX_IMAGE_PIXELS an image is rejected, unless `max_size` is set and the image is
    a JPEG: its decoder can scale by 1/2, 1/4 or 1/8 while decoding (`draft`), so memory
    stays bounded. Other formats decode whole before they can be shrunk: rejected.
    """
    width, height = image.size
    if not too_many_pixels(width, height):
        return False
    too_large = Rejection(TOO_LARGE, f"{width}x{height} pixels is over the limit of {MAX_IMAGE_PIXELS:,}")
    if max_size is None or image.format != "JPEG":
        return too_large
    scale = max_size / max(width, height)
    image.draft(image.mode, (max(1, round(width * scale)), max(1, round(height * scale))))
    if too_many_pixels(*image.size):
        return too_large
    return True


_TURNED = range(2, 9)  # EXIF orientations other than upright (1): mirrored and/or rotated


def _orientation(image):
    """The EXIF orientation tag (1-8), or None; a damaged EXIF block counts as none."""
    try:
        return image.getexif().get(0x0112)
    except Exception:  # noqa: BLE001  Pillow raises many kinds on hostile EXIF data
        return None


# Pillow raises many kinds on hostile files (OSError, SyntaxError, struct.error, EOFError,
# IndexError...); each means the same to a row: its image cannot be read.
_DECODE_ERRORS = Exception


def _decode_rejection(error):
    """The `Rejection` for an error Pillow raised while opening or decoding an image."""
    message = str(error) or type(error).__name__
    if isinstance(error, OSError):
        if "truncated" in message.lower() or "broken data stream" in message:
            return Rejection(TRUNCATED_IMAGE, message)
        if message.startswith("cannot identify image file"):
            message = "not an image format Pillow can read"
    return Rejection(UNREADABLE_IMAGE, message)


# What `tf.io.decode_image` (training, evaluation, `tt data embed`) reads, in Pillow's names (MPO is a JPEG).
TRAINING_FORMATS = ("JPEG", "MPO", "PNG", "GIF", "BMP", "WEBP")


def check_stored_image(data):
    """None when training decodes a stored image (`pipeline.decode_image`), else a `Rejection`.

    `tt data inspect --verify` calls it on every record: the format must be one training
    decodes, an image over MAX_IMAGE_PIXELS is `too_large` (training skips it, never decoding
    it), and the whole image must decode (a truncated or damaged one stops training).
    """
    header = image_header(data)
    if header is None:
        return Rejection(UNREADABLE_IMAGE, "not an image format Pillow can read")
    kind, width, height = header
    if kind not in TRAINING_FORMATS:
        return Rejection(UNREADABLE_IMAGE, f"{kind} is not a format training decodes ({', '.join(TRAINING_FORMATS)})")
    if too_many_pixels(width, height):
        return Rejection(TOO_LARGE, f"{width}x{height} pixels is over the limit of {MAX_IMAGE_PIXELS:,}")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
    except _DECODE_ERRORS as e:
        return _decode_rejection(e)
    return None


def check_image_bytes(data, max_size=None):
    """Decodes `data` once; returns a `CheckedImage` or a `Rejection`.

    Args:
      data: the encoded file.
      max_size: if set, images whose longer side exceeds it are resized to it
        and re-encoded as JPEG. Over MAX_IMAGE_PIXELS only a JPEG can be (see
        `_fit_pixel_limit`); without it such an image is `too_large`.
    """
    if not data:
        return Rejection(EMPTY_FILE, "0 bytes")
    try:
        return _decode_and_check(data, max_size)
    except _DECODE_ERRORS as e:  # anywhere in Pillow's decoding: one row is rejected, never the conversion
        return _decode_rejection(e)


def _decode_and_check(data, max_size):
    image = Image.open(io.BytesIO(data))
    source_format = image.format
    drafted = _fit_pixel_limit(image, max_size)
    if isinstance(drafted, Rejection):
        return drafted
    image.load()
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # animated GIF/WebP: the first frame
    conversions = []
    if _orientation(image) in _TURNED:
        # Decoders (TensorFlow's too) ignore EXIF: a phone photo would train on its side.
        image = ImageOps.exif_transpose(image)
        conversions.append(ORIENTED)
    rgb = _to_rgb(image, conversions)
    resized = drafted or (max_size is not None and max(rgb.size) > max_size)
    if resized:
        conversions.append("resized")
    if max_size is not None and max(rgb.size) > max_size:
        scale = max_size / max(rgb.size)
        new_size = (max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale)))
        rgb = rgb.resize(new_size, Image.Resampling.BICUBIC, reducing_gap=3.0)
    if source_format not in _KEPT_FORMATS:
        conversions.append("format")
    if not conversions:
        return CheckedImage(data=data, size=rgb.size, conversions=[])
    out = io.BytesIO()
    if resized or source_format == "JPEG":
        # Lossy sources stay lossy; resized images are re-encoded compactly.
        rgb.save(out, "JPEG", quality=JPEG_QUALITY)
    else:
        rgb.save(out, "PNG")
    return CheckedImage(data=out.getvalue(), size=rgb.size, conversions=conversions)


def read_image_file(path):
    """Reads an image file; returns its bytes or a `Rejection`.

    Only a regular file of at most MAX_IMAGE_BYTES is read (`storage.open_regular`): a FIFO
    would block forever and `/dev/zero` would never end.
    """
    shown = printable(path)
    if storage.is_url(path):
        return _read_stored_image(path, shown)
    try:
        with storage.open_regular(path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_IMAGE_BYTES:
                return Rejection(TOO_LARGE, f"{shown}: {size:,} bytes is over the limit of {MAX_IMAGE_BYTES:,}")
            data = f.read(MAX_IMAGE_BYTES + 1)
    except storage.NotARegularFile as e:
        return Rejection(NOT_A_FILE, f"{shown} is {e.kind}")
    except FileNotFoundError:
        return Rejection(MISSING_FILE, shown)
    except ValueError:  # "embedded null byte"
        return Rejection(BAD_PATH, "NUL byte in the path")
    except OSError as e:
        return Rejection(UNREADABLE_IMAGE, f"{shown}: {e.strerror or e}")
    if len(data) > MAX_IMAGE_BYTES:  # grew since it was checked
        return Rejection(TOO_LARGE, f"{shown}: over the limit of {MAX_IMAGE_BYTES:,} bytes")
    return data


def _read_stored_image(url, shown):
    """An image on an object store: no FIFOs or devices there, only the size limit applies."""
    try:
        size = storage.getsize(url)
        if size > MAX_IMAGE_BYTES:
            return Rejection(TOO_LARGE, f"{shown}: {size:,} bytes is over the limit of {MAX_IMAGE_BYTES:,}")
        with storage.open(url, "rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except FileNotFoundError:
        return Rejection(MISSING_FILE, shown)
    except OSError as e:
        return Rejection(UNREADABLE_IMAGE, f"{shown}: {e.strerror or e}")
    if len(data) > MAX_IMAGE_BYTES:
        return Rejection(TOO_LARGE, f"{shown}: over the limit of {MAX_IMAGE_BYTES:,} bytes")
    return data


def read_tar_member(tar_path, offset, size):
    """Reads one member's bytes from an uncompressed tar by its data offset (at most MAX_IMAGE_BYTES)."""
    if size > MAX_IMAGE_BYTES:
        return Rejection(TOO_LARGE, f"{size:,} bytes is over the limit of {MAX_IMAGE_BYTES:,}")
    try:
        with storage.open(tar_path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as e:
        return Rejection(UNREADABLE_IMAGE, f"{tar_path}: {e.strerror or e}")
    if len(data) != size:
        return Rejection(TRUNCATED_IMAGE, f"{tar_path}: member cut short")
    return data

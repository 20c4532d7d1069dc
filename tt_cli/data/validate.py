"""Checks one image and one caption the way `tt data convert` needs.

Every image is decoded once with Pillow. A readable RGB JPEG or 8-bit PNG that
fits `max_size` is kept byte for byte; anything else (CMYK, grayscale, palette,
alpha, 16-bit, WebP/GIF/BMP/TIFF, or too large) is converted to 8-bit RGB and
re-encoded. Problems come back as a `Rejection` with a short machine reason.

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

import numpy as np
from PIL import Image, ImageFile

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

# Formats kept as given (TensorFlow decodes them); others are re-encoded.
_KEPT_FORMATS = {"JPEG", "PNG"}
JPEG_QUALITY = 95
# Guard against decompression bombs but allow large legitimate photographs.
Image.MAX_IMAGE_PIXELS = 30_000 * 30_000
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
    conversions: list  # what was done: "cmyk", "alpha", "16bit", "grayscale", "palette", "format", "resized"


def check_caption(raw):
    """Returns the caption as a str, or a `Rejection` (empty or not UTF-8)."""
    if isinstance(raw, str):
        try:
            raw.encode("utf-8")  # lone surrogates: text read with surrogateescape
        except UnicodeEncodeError:
            return Rejection(CAPTION_NOT_UTF8, repr(raw.encode("utf-8", "surrogateescape"))[:80])
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


def check_image_bytes(data, max_size=None):
    """Decodes `data` once; returns a `CheckedImage` or a `Rejection`.

    Args:
      data: the encoded file.
      max_size: if set, images whose longer side exceeds it are resized to it
        and re-encoded as JPEG.
    """
    if not data:
        return Rejection(EMPTY_FILE, "0 bytes")
    try:
        image = Image.open(io.BytesIO(data))
        source_format = image.format
        image.load()
    except OSError as e:
        message = str(e)
        if "truncated" in message.lower() or "broken data stream" in message:
            return Rejection(TRUNCATED_IMAGE, message)
        if message.startswith("cannot identify image file"):
            message = "not an image format Pillow can read"
        return Rejection(UNREADABLE_IMAGE, message)
    except (ValueError, SyntaxError, Image.DecompressionBombError) as e:
        return Rejection(UNREADABLE_IMAGE, str(e))
    if getattr(image, "n_frames", 1) > 1:
        image.seek(0)  # animated GIF/WebP: the first frame
    conversions = []
    rgb = _to_rgb(image, conversions)
    resized = max_size is not None and max(rgb.size) > max_size
    if resized:
        conversions.append("resized")
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
    """Reads an image file; returns its bytes or a `Rejection` (missing, unreadable)."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return Rejection(MISSING_FILE, path)
    except IsADirectoryError:
        return Rejection(MISSING_FILE, f"{path} is a directory")
    except OSError as e:
        return Rejection(UNREADABLE_IMAGE, f"{path}: {e.strerror or e}")


def read_tar_member(tar_path, offset, size):
    """Reads one member's bytes from an uncompressed tar by its data offset."""
    try:
        with open(tar_path, "rb") as f:
            f.seek(offset)
            data = f.read(size)
    except OSError as e:
        return Rejection(UNREADABLE_IMAGE, f"{tar_path}: {e.strerror or e}")
    if len(data) != size:
        return Rejection(TRUNCATED_IMAGE, f"{tar_path}: member cut short")
    return data

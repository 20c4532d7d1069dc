"""TFRecord framing, written and read without TensorFlow and without the `tfrecord` package.

A TFRecord is: length (uint64), masked CRC32C of the length, the data, masked
CRC32C of the data. This module needs only `crc32c`, so both sides use it: every
shard tt writes is framed by `frame` (`shard_writer.ShardWriter`), the TF-free `tt data`
commands read shards with `iter_records`, and the TensorFlow side calls
`find_corrupt_record` to name the shard behind a `tf.data` error (TensorFlow reports
only a byte offset, not the file).

Example:
>>> framed = frame(b"an example")
>>> len(framed) == HEADER_BYTES + len(b"an example") + FOOTER_BYTES, framed[12:22]
(True, b'an example')
"""

import os
import struct

import crc32c

from tt_cli import storage

HEADER_BYTES = 12  # length + its CRC
FOOTER_BYTES = 4  # the data's CRC
_MASK = 0xA282EAD8


class CorruptRecord(Exception):
    def __init__(self, path, offset, why):
        super().__init__(f"{path}: corrupt record at byte offset {offset}: {why}")
        self.path, self.offset, self.why = path, offset, why


def masked_crc(data):
    """The masked CRC32C TFRecord stores after the length and after the data."""
    crc = crc32c.crc32c(data)
    return struct.pack("<I", ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + _MASK) & 0xFFFFFFFF)


def frame(record):
    """The bytes of one TFRecord holding `record` (bytes), as TensorFlow writes it."""
    length = struct.pack("<Q", len(record))
    return length + masked_crc(length) + record + masked_crc(record)


def _read_length(f, path, offset, size):
    """The data length of the record at `offset` (where `f` stands), or None at the end of the file.

    The length's CRC is always checked (8 bytes: free), and the length must fit in
    what is left of the file, so that a garbage header can never make the reader
    allocate terabytes.
    """
    header = f.read(HEADER_BYTES)
    if not header:
        return None
    if len(header) < HEADER_BYTES:
        raise CorruptRecord(path, offset, "file ends inside a record header")
    if masked_crc(header[:8]) != header[8:]:
        raise CorruptRecord(path, offset, "length CRC mismatch")
    (length,) = struct.unpack("<Q", header[:8])
    if length > size - offset - HEADER_BYTES - FOOTER_BYTES:
        raise CorruptRecord(path, offset, f"a record of {length:,} bytes cannot fit in the {size:,}-byte file")
    return length


def _read_data(f, path, offset, length, verify):
    data = f.read(length)
    data_crc = f.read(FOOTER_BYTES)
    if len(data) != length or len(data_crc) != FOOTER_BYTES:
        raise CorruptRecord(path, offset, f"file ends inside a record of {length} bytes")
    if verify and masked_crc(data) != data_crc:
        raise CorruptRecord(path, offset, "data CRC mismatch")
    return data


def iter_records(path, verify=False):
    """Yields (byte offset, record bytes) for every record of one file.

    Raises `CorruptRecord` at a bad length; `verify=True` also checks each data CRC
    (which costs a pass of CRC32C over every byte).
    """
    try:
        f = storage.open_regular(path)  # a FIFO swapped in for a checked shard is not waited on
    except storage.NotARegularFile as e:
        raise CorruptRecord(path, 0, str(e)) from None
    with f:
        size = storage.getsize(path)
        offset = 0
        while (length := _read_length(f, path, offset, size)) is not None:
            yield offset, _read_data(f, path, offset, length, verify)
            offset += HEADER_BYTES + length + FOOTER_BYTES


def _check_file_up_to(path, offset):
    """Walks the record headers of `path` (seeking over the data) up to byte `offset`;
    raises `CorruptRecord` for a bad header on the way, or for a bad record that starts
    at `offset` or whose data starts there (TensorFlow reports either)."""
    size = storage.getsize(path)
    with storage.open(path, "rb") as f:
        start = 0
        while start <= offset and (length := _read_length(f, path, start, size)) is not None:
            if offset in (start, start + HEADER_BYTES):
                _read_data(f, path, start, length, verify=True)
                return
            f.seek(length + FOOTER_BYTES, os.SEEK_CUR)
            start += HEADER_BYTES + length + FOOTER_BYTES


def find_corrupt_record(files, offset):
    """The `CorruptRecord` of the first of `files` that is corrupt at (or before) byte
    `offset`, or None. Reads only record headers and at most one record per file, so
    it is cheap enough to run when a `tf.data` read has failed."""
    for path in files:
        try:
            _check_file_up_to(path, offset)
        except CorruptRecord as e:
            return e
    return None

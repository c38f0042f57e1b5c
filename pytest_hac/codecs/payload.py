"""The bitstream formats of the learned codecs: one self-contained byte string per image, as a file would be.

Both formats start with the same byte, :data:`FORMAT_VERSION`, and count towards bits per pixel.

CompressAI codecs (:func:`pack_payload`)::

    struct "<BHH": format version, image height, image width      (5 bytes)
    varint count, then the latent shape numbers as varints           (e.g. 3 bytes)
    varint count, then each entropy-coded string's length as varint
    the strings, concatenated.

Only the *numbers* of the latent shape are stored; their nesting (ELIC has one shape
per channel group) is a property of the architecture, like a file format's syntax:
:func:`flatten_shape` and :func:`fill_shape` convert between the two.

HiFiC (:func:`pack_hific_payload`)::

    struct "<BHHI": format version, latent height, latent width, length of the hyper-latent string
    the hyper-latent string, then the latent string.

Varints are LEB128, as in protobuf: numbers under 128 take one byte.
"""
from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import HacError

__all__ = [
    "FORMAT_VERSION", "fill_shape", "flatten_shape", "pack_hific_payload", "pack_payload", "read_varint",
    "shape_template", "unpack_hific_payload", "unpack_payload", "write_varint",
]

#: The first byte of every payload; a reader refuses any other.
FORMAT_VERSION = 1

_COMPRESSAI_HEADER = struct.Struct("<BHH")
_HIFIC_HEADER = struct.Struct("<BHHI")


def _read_header(header: struct.Struct, payload: bytes, what: str) -> tuple[Any, ...]:
    """The fixed-size header of a ``what`` payload without its version byte, checked for length and version."""
    if len(payload) < header.size:
        raise HacError(f"{what} payload of {len(payload)} bytes is shorter than its header")
    version, *fields = header.unpack_from(payload)
    if version != FORMAT_VERSION:
        raise HacError(f"{what} payload has format version {version}; this build reads version {FORMAT_VERSION}")
    return tuple(fields)


# --------------------------------------------------------------------------- varints


def write_varint(n: int) -> bytes:
    """``n`` (>= 0) as LEB128."""
    if n < 0:
        raise HacError(f"cannot store negative number {n} in a codec payload")
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The LEB128 number at ``buf[pos:]`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise HacError("truncated codec payload (a header number runs past the end)")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _read_varint_list(buf: bytes, pos: int) -> tuple[list[int], int]:
    """A count, then that many numbers, as :func:`pack_payload` writes them."""
    count, pos = read_varint(buf, pos)
    numbers = []
    for _ in range(count):
        n, pos = read_varint(buf, pos)
        numbers.append(n)
    return numbers, pos


# --------------------------------------------------------------------------- CompressAI codecs


def pack_payload(height: int, width: int, shape_numbers: Sequence[int], strings: Sequence[bytes]) -> bytes:
    """One image's bitstream: a small header (image size, latent shape, string lengths) and the strings."""
    if not (0 < height < 65536 and 0 < width < 65536):
        raise HacError(f"image size {height}x{width} does not fit the payload header (max 65535)")
    parts = [_COMPRESSAI_HEADER.pack(FORMAT_VERSION, height, width), write_varint(len(shape_numbers))]
    parts += [write_varint(int(n)) for n in shape_numbers]
    parts.append(write_varint(len(strings)))
    parts += [write_varint(len(s)) for s in strings]
    parts += list(strings)
    return b"".join(parts)


def unpack_payload(payload: bytes) -> tuple[int, int, list[int], list[bytes]]:
    """Inverse of :func:`pack_payload`: (height, width, shape numbers, strings)."""
    height, width = _read_header(_COMPRESSAI_HEADER, payload, "codec")
    numbers, pos = _read_varint_list(payload, _COMPRESSAI_HEADER.size)
    lengths, pos = _read_varint_list(payload, pos)
    if pos + sum(lengths) != len(payload):
        raise HacError(f"corrupt codec payload: header announces {sum(lengths)} bytes of strings, "
                       f"{len(payload) - pos} follow")
    strings = []
    for n in lengths:
        strings.append(payload[pos:pos + n])
        pos += n
    return height, width, numbers, strings


def flatten_shape(shape: Any) -> list[int]:
    """The numbers of a (nested) latent shape, in a fixed order."""
    if isinstance(shape, int):
        return [shape]
    if isinstance(shape, dict):
        return [n for key in sorted(shape) for n in flatten_shape(shape[key])]
    return [n for item in shape for n in flatten_shape(item)]


def shape_template(shape: Any) -> Any:
    """The nesting of a latent shape with its numbers left out (None)."""
    if isinstance(shape, int):
        return None
    if isinstance(shape, dict):
        return {key: shape_template(value) for key, value in shape.items()}
    return type(shape), [shape_template(item) for item in shape]


def fill_shape(template: Any, numbers: Iterable[int]) -> Any:
    """Inverse of :func:`flatten_shape`, given the :func:`shape_template` of the architecture's shapes."""
    it = iter(numbers)

    def fill(node: Any) -> Any:
        if node is None:
            return next(it)
        if isinstance(node, dict):
            return {key: fill(node[key]) for key in sorted(node)}
        kind, items = node
        return kind([fill(item) for item in items])

    return fill(template)


# --------------------------------------------------------------------------- HiFiC


def pack_hific_payload(latent_hw: tuple[int, int], z_string: bytes, y_string: bytes) -> bytes:
    """One image's HiFiC bitstream: header, hyper-latent string, latent string."""
    return _HIFIC_HEADER.pack(FORMAT_VERSION, latent_hw[0], latent_hw[1], len(z_string)) + z_string + y_string


def unpack_hific_payload(payload: bytes) -> tuple[tuple[int, int], bytes, bytes]:
    """Inverse of :func:`pack_hific_payload`: (latent height and width, hyper-latent string, latent string)."""
    h, w, nz = _read_header(_HIFIC_HEADER, payload, "HiFiC")
    body = payload[_HIFIC_HEADER.size:]
    return (h, w), body[:nz], body[nz:]

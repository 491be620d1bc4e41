"""From stored image to RGB: the one mode conversion, and the decode of one row with an error that names
the file.

``to_rgb`` is what every real image goes through before it is resized (``Preprocess``,
``images.resize_short_side``, ``eval``'s image folders). PIL's own ``convert("RGB")`` clips 16-bit and
float samples to 0..255 instead of scaling them, so a 16-bit PNG would come out mostly white; here:

* ``1``, ``L``, ``P``, ``PA``, ``LA``, ``RGB``, ``RGBA``, ``RGBX``, ``CMYK``, ``YCbCr``: PIL's conversion
  (alpha is dropped and the colour under it kept, as PIL and the official code's loader do; a palette
  image with transparency goes through RGBA, which gives the same colours without PIL's warning);
* ``I;16*`` and ``I`` (16-bit greyscale, as PIL opens 16-bit PNG and TIFF files): samples in
  0..65535, scaled to 8 bits with rounding (``v * 255 / 65535``), so a 16-bit copy of an 8-bit image
  (``v * 257``) gives back exactly the 8-bit image; an ``I`` image with values outside 0..65535 is refused;
* ``F`` (32-bit float): values in [0, 1] are fractions (x 255), values in [0, 255] with one above 1 are
  8-bit levels; anything else (negative, above 255, NaN) is refused. A float image whose levels are
  all at most 1 (nearly black) would be read as fractions: save such images as integers;
* any other mode (``LAB``, ``HSV``, ...) is refused with a message.

16-bit RGB PNGs are opened by PIL as 8-bit ``RGB`` (their high bytes), which is again the 8-bit image.

``decode_row`` decodes one row of a split exactly as HF ``datasets`` does (the same pixels as before it
existed) and turns any failure, at that image's first full decode, into an ``ImageDecodeError`` that
names the dataset, the split, the row and its file (an image folder's file, or the parquet file that
holds the row). ``check_image`` is the preflight's check of one stored image (``benchmark.preflight``).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# modes PIL converts to RGB faithfully
_PIL_CONVERTS = frozenset({"1", "L", "P", "PA", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
SUPPORTED_MODES = _PIL_CONVERTS | _SIXTEEN_BIT | {"F"}
_FIX = "save the images as 8-bit RGB or greyscale (PNG or JPEG)"


class ImageDecodeError(ValueError):
    """An image that cannot be decoded or converted to RGB; the message names the file and the fix."""

    def __init__(self, message: str = "") -> None:
        # re-raised from a DataLoader worker, torch passes its own "Caught ImageDecodeError in DataLoader
        # worker process 0. Original Traceback ..." text: put our line (the traceback's last) first
        if message.startswith("Caught ") and f"{type(self).__name__}: " in message:
            ours = [line for line in message.splitlines() if f"{type(self).__name__}: " in line][-1]
            message = ours.split(f"{type(self).__name__}: ", 1)[1] + " (in a DataLoader worker)"
        super().__init__(message)


def _sixteen_bit_levels(image: Any) -> np.ndarray:
    values = np.asarray(image).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > 65535):
        raise ImageDecodeError(f"a 32-bit integer image (PIL mode {image.mode}) with values in [{values.min()}, "
                               f"{values.max()}], outside the 16-bit range 0..65535; {_FIX}")
    return ((values * 255 + 32767) // 65535).astype(np.uint8)


def _float_levels(image: Any) -> np.ndarray:
    values = np.asarray(image, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ImageDecodeError(f"a float image (PIL mode F) holding {int((~np.isfinite(values)).sum())} NaN or "
                               f"infinite values; {_FIX}")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low < 0 or high > 255:
        raise ImageDecodeError(f"a float image (PIL mode F) with values in [{low:.4g}, {high:.4g}], neither "
                               f"fractions in [0, 1] nor 8-bit levels in [0, 255]; {_FIX}")
    scale = 255.0 if high <= 1.0 else 1.0
    return np.rint(values * scale).astype(np.uint8)


def to_rgb(image: Any) -> Any:
    """A PIL image as 8-bit RGB, whatever its mode (see the module docstring); ImageDecodeError for a
    mode or a range that has no faithful 8-bit reading."""
    from PIL import Image

    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if mode in _PIL_CONVERTS:
        return image.convert("RGB")
    if mode in _SIXTEEN_BIT:
        return Image.fromarray(_sixteen_bit_levels(image), "L").convert("RGB")
    if mode == "F":
        return Image.fromarray(_float_levels(image), "L").convert("RGB")
    raise ImageDecodeError(f"images of PIL mode {mode!r} have no faithful RGB reading here (supported: "
                           f"{', '.join(sorted(SUPPORTED_MODES))}); {_FIX}")


def open_image(path: Path) -> Any:
    """The image file ``path`` fully decoded, as RGB; ImageDecodeError naming the file otherwise."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return to_rgb(image)
    except Exception as err:  # noqa: BLE001 - PIL raises OSError, SyntaxError, ValueError, bomb errors...
        raise ImageDecodeError(f"cannot decode the image {path}: {_reason(err)}; replace or remove the file") from None


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}" if not isinstance(err, ImageDecodeError) else text


# -- one row of a split ------------------------------------------------------------------------------
def decode_row(data: Any, row: int, images: Any = None) -> Any:
    """Row ``row`` of ``data`` (a ``LabeledImages``) decoded as HF ``datasets`` decodes it, as RGB.

    ``images``: ``data.dataset`` narrowed to the image column (``select_columns``; callers that decode
    many rows make it once), indexed by the same rows. Any failure is an ImageDecodeError naming the
    dataset, split, row and file."""
    images = data.dataset if images is None else images
    try:
        return to_rgb(images[int(row)][data.image_column])
    except Exception as err:  # noqa: BLE001 - whatever PIL or datasets raise for this image
        raise decode_error(data, int(row), err) from None


def decode_error(data: Any, row: int, err: Exception) -> ImageDecodeError:
    """The error for row ``row`` of ``data`` that failed with ``err``: dataset, split, row, file, reason."""
    return ImageDecodeError(f"dataset {data.name!r} split {data.split!r}: cannot decode the image of row {row} "
                            f"({where(data, row)}): {_reason(err)}; replace or remove it")


def stored_value(dataset: Any, column: str, row: int) -> dict[str, Any]:
    """The stored (undecoded) value of one image: ``{"bytes": ..., "path": ...}``."""
    table = dataset.select_columns([column]).with_format("arrow")[int(row):int(row) + 1]
    value = table.column(column).to_pylist()[0]
    return value if isinstance(value, dict) else {"bytes": None, "path": value}


def where(data: Any, row: int) -> str:
    """Where row ``row`` of ``data`` lives: its file (image folders), or its parquet file and the file
    name stored with it; "row N" when neither can be told."""
    try:
        value = stored_value(data.dataset, data.image_column, row)
    except Exception:  # noqa: BLE001 - the message then says less, never fails itself
        value = {}
    path, stored = value.get("path"), value.get("bytes")
    if path and stored is None:
        return str(path)
    found = _parquet_row(data, row)
    name = f", stored as {path!r}" if path else ""
    return f"{found}{name}" if found else f"row {row}{name}"


def _parquet_row(data: Any, row: int) -> str | None:
    """"row R of <file>" for a split read from parquet files (the registered entry knows them)."""
    try:
        import pyarrow.parquet as pq

        from ..registry import DATASETS

        spec = DATASETS.get(data.name).resolved()
        files = spec.source.split_files(spec.split_name(data.split))
        start = 0
        for file in files:
            rows = pq.read_metadata(file).num_rows
            if row < start + rows:
                return f"row {row - start} of {file}"
            start += rows
    except Exception:  # noqa: BLE001 - not parquet, or the files moved: the caller says less
        return None
    return None


# -- the preflight's check of a stored image -----------------------------------------------------------
def check_image(value: dict[str, Any], full: bool) -> None:
    """Raise (PIL's error, or ImageDecodeError) unless the stored image opens; ``full``: decode every pixel
    and convert to RGB (what the run does), else check the header and the file's structure (``verify``),
    and that the mode can be converted. A file ``verify`` finds fault with (a PNG without its end chunk)
    is decoded in full before it counts as broken."""
    from PIL import Image

    data, path = value.get("bytes"), value.get("path")
    if data is None and not path:
        raise ImageDecodeError("the row holds neither image bytes nor a path")

    def source() -> Any:
        return io.BytesIO(data) if data is not None else path

    if not full:
        with Image.open(source()) as image:
            if image.mode not in SUPPORTED_MODES:
                to_rgb(image)  # the mode's message
            try:
                image.verify()
                return
            except Exception:  # noqa: BLE001 - the full decode below says whether it matters
                pass
    with Image.open(source()) as image:
        image.load()
        to_rgb(image)


def stored_values(dataset: Any, column: str, rows: Sequence[int] | None = None,
                  batch: int = 512) -> Iterable[dict[str, Any]]:
    """The stored image value of every row (or of ``rows``), in that order (read through Arrow, nothing
    decoded)."""
    ds = dataset.select_columns([column]).with_format("arrow")
    order = list(range(len(ds))) if rows is None else [int(r) for r in rows]
    for start in range(0, len(order), batch):
        chunk = order[start:start + batch]
        table = ds[chunk[0]:chunk[-1] + 1] if rows is None else ds[chunk]
        for value in table.column(column).to_pylist():
            yield value if isinstance(value, dict) else {"bytes": None, "path": value}

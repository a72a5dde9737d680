"""Rendered images of DICOM frames (PS3.18 8.3.5.1.3, 9.5): JPEG or PNG for people to look at.

A frame is decoded, passed through its Modality LUT (rescale), then its VOI LUT: the window
asked for (``window=center,width,function``) or the stored one (Window Center/Width or a VOI
LUT Sequence), else the frame's own range. MONOCHROME1 is inverted; colour frames are sent as
RGB. ``viewport=w,h`` scales the image to fit inside w x h keeping its aspect ratio.

Example::

    options = RenderOptions.from_query(window="40,400,LINEAR", viewport="256,256")
    jpeg = render_frame(dataset, 1, options)
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from pydicom import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.processing import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID

from radpacs.errors import InvalidInput, NotAcceptable

__all__ = [
    "JPEG",
    "PNG",
    "RENDERED_MEDIA_TYPES",
    "RenderOptions",
    "VoiFunction",
    "Window",
    "render_frame",
    "stored_window",
]

JPEG = "image/jpeg"
PNG = "image/png"
RENDERED_MEDIA_TYPES = (JPEG, PNG)
_MAX_SIDE = 8192


class VoiFunction(StrEnum):
    """The VOI LUT functions of PS3.3 C.11.2.1.2 (the third value of ``window``)."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class Window:
    """A window (PS3.3 C.11.2.1.2): centre, width > 0 and the VOI LUT function."""

    center: float
    width: float
    function: VoiFunction = VoiFunction.LINEAR

    def __post_init__(self) -> None:
        if not math.isfinite(self.center) or not math.isfinite(self.width):
            raise ValueError("window centre and width must be finite numbers")
        if self.width <= 0 or (self.width < 1 and self.function is VoiFunction.LINEAR):
            raise ValueError(f"window width {self.width} is too small")

    @classmethod
    def parse(cls, text: str) -> Window:
        """``center,width[,function]`` as in the ``window`` query parameter (PS3.18 8.3.5.1.3)."""
        pieces = [piece.strip() for piece in text.split(",")]
        if len(pieces) not in (2, 3):
            raise InvalidInput(f"window={text!r}: expected center,width[,function]")
        try:
            function = VoiFunction(pieces[2].upper()) if len(pieces) == 3 else VoiFunction.LINEAR
            return cls(float(pieces[0]), float(pieces[1]), function)
        except ValueError as exc:
            raise InvalidInput(f"window={text!r}: {exc}") from exc


@dataclass(frozen=True)
class RenderOptions:
    """How to render: media type, optional window, optional viewport, JPEG quality 1-100."""

    media_type: str = JPEG
    window: Window | None = None
    viewport: tuple[int, int] | None = None
    quality: int = 90

    def __post_init__(self) -> None:
        if self.media_type not in RENDERED_MEDIA_TYPES:
            raise ValueError(f"cannot render as {self.media_type}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality {self.quality} is not between 1 and 100")

    @classmethod
    def from_query(
        cls,
        media_type: str = JPEG,
        *,
        window: str | None = None,
        viewport: str | None = None,
        quality: str | None = None,
        default_viewport: tuple[int, int] | None = None,
    ) -> RenderOptions:
        """Options from the query parameters of a rendered resource; InvalidInput if malformed."""
        size = _parse_viewport(viewport) if viewport else default_viewport
        if quality is not None and not re.fullmatch(r"\s*\d{1,3}\s*", quality):
            raise InvalidInput(f"quality={quality!r}: expected a number from 1 to 100")
        try:
            return cls(
                media_type=media_type,
                window=Window.parse(window) if window else None,
                viewport=size,
                quality=int(quality) if quality is not None else 90,
            )
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc


def _parse_viewport(text: str) -> tuple[int, int]:
    """``vw,vh`` (the viewport size); the optional source rectangle is not supported."""
    match = re.fullmatch(r"\s*(\d+)\s*,\s*(\d+)\s*", text)
    if not match:
        raise InvalidInput(f"viewport={text!r}: expected width,height in pixels")
    width, height = int(match.group(1)), int(match.group(2))
    if not (1 <= width <= _MAX_SIDE and 1 <= height <= _MAX_SIDE):
        raise InvalidInput(f"viewport={text!r}: each side must be 1 to {_MAX_SIDE} pixels")
    return width, height


def _decode(dataset: Dataset, number: int) -> NDArray[np.generic]:
    syntax = UID(dataset.file_meta.TransferSyntaxUID)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise NotAcceptable(f"no decoder for {syntax.name}") from exc
    if not decoder.is_available:
        raise NotAcceptable(f"no decoder is available here for {syntax.name}")
    try:
        array, _ = decoder.as_array(dataset, index=number - 1)
    except Exception as exc:
        raise NotAcceptable(f"frame {number} cannot be decoded: {exc}") from exc
    return array


def _window(values: NDArray[np.float64], window: Window) -> NDArray[np.float64]:
    """PS3.3 C.11.2.1.2.1-3: values mapped to 0..1 through the window."""
    center, width = window.center, window.width
    if window.function is VoiFunction.SIGMOID:
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if window.function is VoiFunction.LINEAR_EXACT:
        low, span = center - width / 2, width
    else:
        low, span = center - 0.5 - (width - 1) / 2, width - 1
    return np.clip((values - low) / span, 0.0, 1.0)


def _stretch(values: NDArray[np.float64]) -> NDArray[np.float64]:
    low, high = float(np.min(values)), float(np.max(values))
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def _first_number(value: Any) -> float:
    if isinstance(value, str | bytes | int | float):
        return float(value)
    return float(next(iter(value)))


def stored_window(dataset: Dataset) -> Window | None:
    """The first Window Center/Width of the instance with its VOI LUT Function, if valid."""
    if "WindowCenter" not in dataset or "WindowWidth" not in dataset:
        return None
    try:
        function = VoiFunction(str(dataset.get("VOILUTFunction", "LINEAR")).strip() or "LINEAR")
        return Window(
            _first_number(dataset.WindowCenter), _first_number(dataset.WindowWidth), function
        )
    except (ValueError, TypeError, IndexError):
        return None


def _grey(dataset: Dataset, array: NDArray[np.generic], window: Window | None) -> NDArray[np.uint8]:
    values = apply_modality_lut(array, dataset).astype(np.float64)
    window = window or stored_window(dataset)
    if window is not None:
        scaled = _window(values, window)
    elif "VOILUTSequence" in dataset:
        try:
            item = dataset.VOILUTSequence[0]
            bits = int(item.LUTDescriptor[2])
            voi = apply_voi_lut(apply_modality_lut(array, dataset), dataset, prefer_lut=True)
            voi = voi.astype(np.float64)
            scaled = np.clip(voi / float(2**bits - 1), 0.0, 1.0)
        except Exception:  # a malformed stored LUT: fall back to the frame's range
            scaled = _stretch(values)
    else:
        scaled = _stretch(values)
    if str(dataset.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        scaled = 1.0 - scaled
    return np.round(scaled * 255.0).astype(np.uint8)


def _colour(array: NDArray[np.generic]) -> NDArray[np.uint8]:
    if array.dtype == np.uint8:
        return array.astype(np.uint8, copy=False)
    bits = 8 * array.dtype.itemsize
    return np.round(array.astype(np.float64) / float(2**bits - 1) * 255.0).astype(np.uint8)


def _fit(image: Image.Image, viewport: tuple[int, int]) -> Image.Image:
    width, height = viewport
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS) if size != image.size else image


def render_frame(dataset: Dataset, number: int, options: RenderOptions) -> bytes:
    """Frame ``number`` (1-based) of ``dataset`` as JPEG or PNG bytes.

    Raises InvalidInput when the instance has no such frame, NotAcceptable when its pixel data
    cannot be decoded here.
    """
    if "PixelData" not in dataset:
        raise NotAcceptable(
            f"instance {dataset.get('SOPInstanceUID', '?')} has no pixel data to render"
        )
    count = int(dataset.get("NumberOfFrames") or 1)
    if not 1 <= number <= count:
        raise InvalidInput(f"frame {number} is out of range: the instance has {count} frame(s)")
    array = _decode(dataset, number)
    samples = int(dataset.get("SamplesPerPixel", 1))
    if samples == 1:
        image = Image.fromarray(_grey(dataset, array, options.window), mode="L")
    else:
        image = Image.fromarray(_colour(array[..., :3]), mode="RGB")
    if options.viewport:
        image = _fit(image, options.viewport)
    out = io.BytesIO()
    if options.media_type == PNG:
        image.save(out, format="PNG", compress_level=3)
    else:
        image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue()

"""Images: downscaled to what the model sees at a detail level and re-encoded as a data URL."""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from text.attachments.skipped import SkipKind, Skipped

if TYPE_CHECKING:
    from PIL import Image

Detail = Literal["low", "high", "auto"]

# Our own pixel cap, checked on the header before anything is decoded. A 50 MP phone
# photo (8160 x 6120) still passes; decoding it is ~150 MB of RGB for a moment (JPEGs
# are decoded at a reduced scale, so far less). Pillow's own bomb check is the backstop.
MAX_IMAGE_PIXELS = 50_000_000
# OpenAI accepts PNG, JPEG, WEBP and non-animated GIF; only these decoders see user bytes.
_IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")

LOW_DETAIL_BOX = 512  # "low": the model gets a 512 x 512 version (OpenAI vision guide)
HIGH_DETAIL_BOX = 2048  # "high": fit in 2048 x 2048 ...
HIGH_DETAIL_SHORT_SIDE = 768  # ... then the short side is at most 768 (tile models)

JPEG_QUALITY = 85
# At most this many colours (screenshots, diagrams, line art) -> lossless PNG. Greyscale
# always has at most 256 levels, so it needs a lower bar to tell drawings from photos.
PNG_MAX_COLOURS = 256
PNG_MAX_GREYS = 32


@dataclass(frozen=True, slots=True)
class PreparedImage:
    """An image ready for a chat-completions `image_url` part.

    `data_url` is "data:image/png;base64,..." or "data:image/jpeg;base64,...";
    `width`/`height` are the pixels sent (what `image_tokens` needs); `original_width`
    and `original_height` are the upload's.
    """

    filename: str
    data_url: str
    width: int
    height: int
    original_width: int
    original_height: int
    mime: str


def fitted_size(width: int, height: int, detail: Detail) -> tuple[int, int]:
    """The size the model works from at `detail`; never larger than the original.

    "low": fit within 512 x 512. "high"/"auto": fit within 2048 x 2048, then scale so
    the short side is at most 768 (OpenAI vision guide, tile-based sizing; a 768 x 2048
    result is also exactly 1,536 32-px patches, the patch-based models' budget).
    Dimensions are rounded down, but never below 1. Raises ValueError for a bad detail.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, not {width}x{height}")
    if detail == "low":
        scale = min(1.0, LOW_DETAIL_BOX / max(width, height))
    elif detail in ("high", "auto"):
        long_side, short_side = max(width, height), min(width, height)
        scale = min(1.0, HIGH_DETAIL_BOX / long_side, HIGH_DETAIL_SHORT_SIDE / short_side)
    else:
        raise ValueError(f"detail must be 'low', 'high' or 'auto', not {detail!r}")
    return max(1, math.floor(width * scale + 1e-9)), max(1, math.floor(height * scale + 1e-9))


def prepare_image(
    filename: str, data: bytes, detail: Detail = "auto", max_pixels: int = MAX_IMAGE_PIXELS
) -> PreparedImage | Skipped:
    """Downscale an uploaded image to what the model uses at `detail` and re-encode it.

    Only PNG, JPEG, WebP and GIF are decoded; an animated GIF/WebP/PNG gives its first
    frame; EXIF rotation is applied. Output is PNG when the image has transparency or
    few colours (256; 32 greys), else JPEG (quality 85). An image whose header claims more than
    `max_pixels` pixels is Skipped (TOO_LARGE) before any decoding; junk, truncated or
    mislabelled bytes are Skipped (UNREADABLE). Never raises on any bytes (ValueError
    only for a bad `detail`). CPU-bound: run it in a thread.
    """
    if detail not in ("low", "high", "auto"):
        raise ValueError(f"detail must be 'low', 'high' or 'auto', not {detail!r}")
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=_IMAGE_FORMATS) as image:
            width, height = image.size
            if width < 1 or height < 1:
                return Skipped(filename, SkipKind.UNREADABLE, "empty image")
            if width * height > max_pixels:
                return _too_many_pixels(filename, width, height, max_pixels)
            image.seek(0)  # the first frame of an animation
            target = fitted_size(width, height, detail)
            # JPEG can decode at 1/2, 1/4 or 1/8 scale: far faster and smaller in memory.
            image.draft(None, target)
            image.load()
            frame = _normalise_mode(image)
            if frame.size != target:
                # A gap of 2 first shrinks by a whole factor where it can: half the time
                # of a plain Lanczos pass, with a result a model cannot tell apart.
                frame = frame.resize(target, Image.Resampling.LANCZOS, reducing_gap=2.0)
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation in _ORIENTATION_FIX:  # resizing dropped the EXIF: turn it now
                frame = frame.transpose(Image.Transpose[_ORIENTATION_FIX[orientation]])
            return _encode(filename, frame, width, height)
    except Image.DecompressionBombError:
        return Skipped(filename, SkipKind.TOO_LARGE, f"more than {max_pixels / 1e6:g} megapixels")
    except Exception:  # Pillow on untrusted bytes: OSError, SyntaxError, ValueError, ...
        return Skipped(filename, SkipKind.UNREADABLE, "not a readable PNG, JPEG, WebP or GIF")


_EXIF_ORIENTATION = 0x0112
# EXIF orientation value -> the transpose that shows the picture upright (EXIF 2.3, 4.6.4).
# Names of Pillow's Image.Transpose members (Pillow is imported lazily).
_ORIENTATION_FIX = {
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_270",
    7: "TRANSVERSE",
    8: "ROTATE_90",
}


def _too_many_pixels(filename: str, width: int, height: int, max_pixels: int) -> Skipped:
    return Skipped(
        filename,
        SkipKind.TOO_LARGE,
        f"{width}x{height} pixels; the limit is {max_pixels / 1e6:g} megapixels",
    )


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    )


def _normalise_mode(image: Image.Image) -> Image.Image:
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        # Fully opaque alpha is just noise: drop it so photos can go out as JPEG.
        if rgba.getchannel("A").getextrema()[0] == 255:
            return rgba.convert("RGB")
        return rgba
    if image.mode in ("RGB", "L"):
        return image
    if image.mode.startswith(("I;16", "I")):
        # 16-bit greys: a plain convert clips everything above 255 to white.
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image.convert("RGB")  # P, CMYK, 1, YCbCr, F ...


def _encode(filename: str, image: Image.Image, width: int, height: int) -> PreparedImage:
    out = io.BytesIO()
    few = PNG_MAX_GREYS if image.mode == "L" else PNG_MAX_COLOURS
    if image.mode == "RGBA" or image.getcolors(few) is not None:
        image.save(out, format="PNG", compress_level=6)
        mime = "image/png"
    else:
        image.save(out, format="JPEG", quality=JPEG_QUALITY, optimize=False)
        mime = "image/jpeg"
    encoded = base64.b64encode(out.getvalue()).decode("ascii")
    return PreparedImage(
        filename, f"data:{mime};base64,{encoded}", image.width, image.height, width, height, mime
    )

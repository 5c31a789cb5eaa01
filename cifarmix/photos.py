"""Your own photos as mix components: an upload's bytes -> the 32 x 32 pixels the model sees.

:func:`load_photo` reads a photo from bytes (or a file-like object such as Streamlit's ``UploadedFile``) in
memory, never writing it anywhere: it applies the EXIF orientation, takes the first frame of an animated
image, converts any colour mode to RGB (CMYK through its ICC profile when it has one, 16-bit and 32-bit grey
scaled down rather than clipped, transparency laid on white), centre-crops to a square and resizes to
32 x 32. A bad upload (empty, too large, not an image, damaged or cut short, a decompression bomb) raises
:class:`PhotoError` with one sentence for the user.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np

MAX_BYTES = 20 * 2**20  # an upload larger than this is refused before it is decoded
MAX_PIXELS = 50_000_000  # 50 megapixels: above any phone photo's default size, far below a decompression bomb
DISPLAY_SIZE = 512  # the longest side of the returned original (for showing beside the 32 x 32 version)
SIZE = 32
# Decoded in-process by Pillow, no helper programs or temporary files (JPEG covers camera MPO files too).
FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF", "BMP", "TIFF")
FORMAT_NAMES = "JPEG, PNG, GIF, WebP, AVIF, BMP or TIFF"
SIGNATURES = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"II*\x00", b"MM\x00*")  # + RIFF....WEBP
BACKGROUND = (255, 255, 255)  # what transparent parts of a photo are laid on


class PhotoError(ValueError):
    """An upload that cannot be used as a photo; the message is one sentence for the user."""


@dataclass(frozen=True)
class Photo:
    """A photo ready to mix.

    Attributes:
        pixels: (32, 32, 3) uint8, the centre square resized: what the model sees.
        original: (H, W, 3) uint8, the whole (upright, RGB) photo with its longest side at most DISPLAY_SIZE.
        crop_box: (left, top, right, bottom) of the centre square within ``original``.
        source_size: (width, height) of the upload, after EXIF rotation.
        format: the file format Pillow found (``JPEG``, ``PNG``, ...).
        notes: what was done beyond cropping and resizing, e.g. ``"turned upright (EXIF orientation 6)"``.
    """

    pixels: np.ndarray
    original: np.ndarray
    crop_box: tuple[int, int, int, int]
    source_size: tuple[int, int]
    format: str
    notes: tuple[str, ...] = ()


def read_upload(upload) -> bytes:
    """The bytes of ``upload`` (bytes, bytearray, memoryview or a binary file-like object), at most
    ``MAX_BYTES + 1`` of them read from a file-like one."""
    if isinstance(upload, (bytes, bytearray, memoryview)):
        return bytes(upload)
    if hasattr(upload, "read"):
        if hasattr(upload, "seek"):
            upload.seek(0)
        payload = upload.read(MAX_BYTES + 1)
        if not isinstance(payload, (bytes, bytearray)):
            raise PhotoError("The upload could not be read as a file of bytes.")
        return bytes(payload)
    raise PhotoError(f"Expected the bytes of a photo; got {type(upload).__name__}.")


def _megabytes(count: int) -> str:
    return f"{count / 2**20:.1f} MB"


def load_photo(upload, size: int = SIZE, display_size: int = DISPLAY_SIZE) -> Photo:
    """Read a photo and make the ``size`` x ``size`` RGB pixels the model sees (see the module docstring).

    Raises:
        PhotoError: for an empty, too large, unreadable, damaged or oversized (in pixels) upload.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    payload = read_upload(upload)
    if not payload:
        raise PhotoError("The file is empty (0 bytes); choose a photo.")
    if len(payload) > MAX_BYTES:
        raise PhotoError(f"The file is larger than {_megabytes(MAX_BYTES)}; choose a smaller photo "
                         f"(or shrink it first).")
    if payload[4:12] in (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypheim", b"ftypheis"):
        raise PhotoError("HEIC photos cannot be read here; save or share the photo as JPEG or PNG "
                         "(on an iPhone: Settings > Camera > Formats > Most Compatible).")
    notes: list[str] = []
    Image.init()  # registers every format plugin, so the allow-list below can name them
    try:
        image = Image.open(io.BytesIO(payload), formats=FORMATS)
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise PhotoError(f"The image claims {width:,} x {height:,} pixels, more than the "
                             f"{MAX_PIXELS // 1_000_000} megapixels accepted (possibly a decompression bomb).")
        orientation = image.getexif().get(0x0112, 1)
        source_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        if getattr(image, "is_animated", False):  # (n_frames would read every frame)
            image.seek(0)
            notes.append("took the first frame of an animated image")
        if image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L", "CMYK", "YCbCr"):
            image.draft(image.mode, (display_size, display_size))  # decode big JPEGs at a reduced scale
        image.load()
        upright = ImageOps.exif_transpose(image)
        if orientation in (2, 3, 4, 5, 6, 7, 8):
            notes.append(f"turned upright (EXIF orientation {orientation})")
        rgb = to_rgb(upright, notes)
    except PhotoError:
        raise
    except UnidentifiedImageError:
        if payload.startswith(SIGNATURES) or (payload[:4] == b"RIFF" and payload[8:12] == b"WEBP"):
            raise PhotoError("The image is damaged or cut short: it starts like an image but cannot be "
                             "read.") from None
        raise PhotoError(f"This file is not an image that can be read here ({FORMAT_NAMES}).") from None
    except Image.DecompressionBombError:
        raise PhotoError(f"The image claims more than {MAX_PIXELS // 1_000_000} megapixels "
                         f"(possibly a decompression bomb).") from None
    except (OSError, SyntaxError, EOFError, ValueError, IndexError, TypeError, KeyError, MemoryError) as error:
        # Pillow reports a cut-short or corrupt file as OSError ("image file is truncated"), SyntaxError (broken
        # PNG chunks), EOFError and others, depending on the format.
        reason = str(error).split("\n")[0][:120]
        raise PhotoError(f"The image is damaged or cut short and cannot be read ({reason}).") from None

    rgb.thumbnail((display_size, display_size), Image.Resampling.LANCZOS)
    side = min(rgb.size)
    left, top = (rgb.width - side) // 2, (rgb.height - side) // 2
    crop_box = (left, top, left + side, top + side)
    small = rgb.crop(crop_box).resize((size, size), Image.Resampling.LANCZOS)
    return Photo(pixels=np.asarray(small, dtype=np.uint8).copy(), original=np.asarray(rgb, dtype=np.uint8).copy(),
                 crop_box=crop_box, source_size=source_size, format=str(image.format), notes=tuple(notes))


def to_rgb(image, notes: list[str] | None = None):
    """``image`` (a loaded Pillow image of any mode) as an 8-bit RGB Pillow image; appends what it did to
    ``notes``.

    * 16-bit and 32-bit integer grey (``I;16*``, ``I``) and float grey (``F``) are scaled to 0-255 (Pillow's own
      conversion clips them, turning most 16-bit photos white);
    * CMYK goes through the photo's ICC profile if it has one, else Pillow's plain conversion;
    * transparency (RGBA, LA, PA, a palette with a transparent colour) is laid on white.
    """
    from PIL import Image

    notes = notes if notes is not None else []
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode.startswith("I;16") or (mode == "I" and values.max() > 255):
            values = values / 257.0  # 0-65535 -> 0-255
            notes.append("scaled 16-bit values to 8 bits")
        elif mode == "F" and values.max() <= 1.0:
            values = values * 255.0
        grey = np.clip(values.round(), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "CMYK":
        notes.append("converted from CMYK")
        profile = image.info.get("icc_profile")
        if profile:
            with contextlib.suppress(Exception):  # a broken or unusual profile: the plain conversion below
                from PIL import ImageCms

                source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
                return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"), outputMode="RGB")
        return image.convert("RGB")
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or (mode == "P" and "transparency" in image.info)
    if has_alpha:
        notes.append("laid its transparent parts on white")
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return image.convert("RGB")  # L, 1, P, YCbCr, RGBX ...
    except ValueError:
        raise PhotoError(f"Photos in the {mode} colour mode cannot be converted to RGB here; save it as an "
                         f"ordinary JPEG or PNG.") from None


def framed(photo: Photo, colour: tuple[int, int, int] = (255, 200, 0), width: int | None = None) -> np.ndarray:
    """``photo.original`` with the centre square the model sees outlined (uint8 RGB, a copy), so a class sees
    which part of the photo went into the mix."""
    original = np.array(photo.original, dtype=np.uint8, copy=True)
    left, top, right, bottom = photo.crop_box
    width = width or max(2, min(original.shape[:2]) // 80)
    colour = np.asarray(colour, dtype=np.uint8)
    original[top:top + width, left:right] = colour
    original[max(top, bottom - width):bottom, left:right] = colour
    original[top:bottom, left:left + width] = colour
    original[top:bottom, max(left, right - width):right] = colour
    return original

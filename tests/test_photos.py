"""Your own photos: every kind of upload either becomes the 32 x 32 RGB pixels the model sees or is refused with
one sentence (never a traceback), nothing is written to disk, and ``mix --a-file --b-file`` names both halves."""

from __future__ import annotations

import builtins
import io
import json
import os
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from cifarmix import photos
from cifarmix.cli import main

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def halves(size=(40, 20), left=RED, right=BLUE) -> Image.Image:
    """A landscape picture, left half ``left``, right half ``right``."""
    image = Image.new("RGB", size, right)
    image.paste(left, (0, 0, size[0] // 2, size[1]))
    return image


def close(pixel, colour, tolerance=40) -> bool:
    return bool(np.all(np.abs(np.asarray(pixel, dtype=int) - colour) <= tolerance))


# ---------------------------------------------------------------------------------------------------------
# Good photos
# ---------------------------------------------------------------------------------------------------------


def test_a_landscape_photo_is_centre_cropped_and_resized():
    image = Image.new("RGB", (300, 100), RED)
    image.paste(GREEN, (100, 0, 200, 100))  # the centre square is green, the sides red
    photo = photos.load_photo(encoded(image, "PNG"))
    assert photo.pixels.shape == (32, 32, 3) and photo.pixels.dtype == np.uint8
    assert close(photo.pixels[16, 1], GREEN) and close(photo.pixels[16, 30], GREEN), "only the centre square"
    assert photo.original.shape == (100, 300, 3) and photo.crop_box == (100, 0, 200, 100)
    assert photo.source_size == (300, 100) and photo.format == "PNG" and photo.notes == ()


def test_a_large_photo_comes_back_at_display_size():
    photo = photos.load_photo(encoded(halves((2000, 1000)), "JPEG", quality=90))
    assert photo.original.shape == (256, 512, 3) and photo.source_size == (2000, 1000)
    assert photo.crop_box == (128, 0, 384, 256)
    assert close(photo.pixels[16, 4], RED) and close(photo.pixels[16, 28], BLUE)


def test_a_file_like_upload_is_read_like_bytes():
    payload = encoded(halves(), "PNG")
    upload = io.BytesIO(payload)
    upload.read()  # a Streamlit UploadedFile may have been read before
    np.testing.assert_array_equal(photos.load_photo(upload).pixels, photos.load_photo(payload).pixels)


def test_exif_rotation_is_applied():
    """Orientation 6: the camera was turned, the viewer rotates 90 degrees clockwise. The stored landscape
    (red left, blue right) is a portrait with red on top, and the centre square is half red above half blue."""
    exif = Image.Exif()
    exif[0x0112] = 6
    photo = photos.load_photo(encoded(halves((40, 20)), "JPEG", quality=95, exif=exif))
    assert photo.source_size == (20, 40) and photo.original.shape == (40, 20, 3)
    assert close(photo.pixels[3, 16], RED) and close(photo.pixels[28, 16], BLUE)
    assert any("EXIF orientation 6" in note for note in photo.notes)
    plain = photos.load_photo(encoded(halves((40, 20)), "JPEG", quality=95))
    assert close(plain.pixels[16, 3], RED) and close(plain.pixels[16, 28], BLUE), "without the tag: as stored"


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_cmyk_becomes_rgb(fmt):
    cmyk = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # full magenta + yellow: red
    photo = photos.load_photo(encoded(cmyk, fmt))
    assert photo.pixels.shape == (32, 32, 3)
    assert close(photo.pixels[16, 16], (255, 0, 0), tolerance=50)
    assert "converted from CMYK" in photo.notes


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grey_is_scaled_not_clipped(fmt):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))  # black -> white, left to right
    image = Image.fromarray(ramp)
    assert image.mode.startswith("I;16")
    photo = photos.load_photo(encoded(image, fmt))
    row = photo.pixels[16, :, 0].astype(int)
    assert row[0] < 15 and row[-1] > 240 and 100 < row[16] < 160, row  # Pillow's own convert would clip to 255
    assert np.all(np.diff(row) >= -1) and np.all(photo.pixels[..., 0] == photo.pixels[..., 2])


def test_a_16_bit_colour_png_is_read():
    rgb48 = np.zeros((8, 8, 3), dtype=">u2")
    rgb48[..., 0] = 65535  # red at 16 bits per channel, written by hand (Pillow cannot write it)
    raw = b"".join(b"\x00" + row.tobytes() for row in rgb48)

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    payload = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 16, 2, 0, 0, 0))
               + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    assert close(photos.load_photo(payload).pixels[16, 16], (255, 0, 0), tolerance=2)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_an_animated_image_gives_its_first_frame(fmt):
    frames = [Image.new("RGB", (48, 48), colour) for colour in (RED, GREEN, BLUE)]
    payload = encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    with Image.open(io.BytesIO(payload)) as check:
        assert getattr(check, "n_frames", 1) == 3, "the test file really is animated"
    photo = photos.load_photo(payload)
    assert close(photo.pixels[16, 16], RED)
    assert "took the first frame of an animated image" in photo.notes


@pytest.mark.parametrize("mode, colour", [("RGBA", (255, 0, 0, 0)), ("LA", (0, 0)), ("P", None)])
def test_transparency_is_laid_on_white(mode, colour):
    if mode == "P":
        image = Image.new("P", (32, 32), 0)
        image.putpalette([0, 0, 0] * 256)
        payload = encoded(image, "PNG", transparency=0)
    else:
        image = Image.new(mode, (32, 32), colour)
        payload = encoded(image, "PNG")
    photo = photos.load_photo(payload)
    assert close(photo.pixels[16, 16], (255, 255, 255), tolerance=1)


@pytest.mark.parametrize("mode", ["L", "1", "P", "I", "F"])
def test_other_modes_become_rgb(mode):
    grey = Image.fromarray(np.full((32, 32), 200, dtype=np.uint8)).convert(mode, dither=Image.Dither.NONE)
    fmt = "TIFF" if mode in ("I", "F") else "PNG"
    photo = photos.load_photo(encoded(grey, fmt))
    assert photo.pixels.shape == (32, 32, 3) and photo.pixels.dtype == np.uint8
    expected = 255 if mode == "1" else 200
    assert close(photo.pixels[16, 16], (expected,) * 3, tolerance=2)


# ---------------------------------------------------------------------------------------------------------
# Bad uploads: one sentence each
# ---------------------------------------------------------------------------------------------------------


def refused(payload) -> str:
    with pytest.raises(photos.PhotoError) as error:
        photos.load_photo(payload)
    message = str(error.value)
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message, "one sentence"
    return message


def test_zero_bytes_are_refused():
    assert "empty" in refused(b"")
    assert "empty" in refused(io.BytesIO())


def test_not_an_image_is_refused():
    assert "not an image" in refused(b"just some text, not a photo at all")
    assert "not an image" in refused(b"%PDF-1.4\n" + b"0" * 100)


def test_a_truncated_image_is_refused():
    jpeg = encoded(Image.effect_noise((256, 256), 60).convert("RGB"), "JPEG", quality=90)
    assert "damaged or cut short" in refused(jpeg[: len(jpeg) // 2])
    png = encoded(Image.effect_noise((256, 256), 60).convert("RGB"), "PNG")
    assert "damaged or cut short" in refused(png[: len(png) // 2])
    assert "damaged or cut short" in refused(png[:40]), "a PNG header without its image data"


def test_a_decompression_bomb_is_refused_before_it_is_decoded():
    """A tiny PNG whose header claims 100,000 x 100,000 pixels (10 gigapixels)."""
    payload = bytearray(encoded(Image.new("L", (1, 1)), "PNG"))
    ihdr = payload.index(b"IHDR")
    payload[ihdr + 4:ihdr + 12] = struct.pack(">II", 100_000, 100_000)
    payload[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(payload[ihdr:ihdr + 17])))
    assert len(payload) < 100
    message = refused(bytes(payload))
    assert "megapixels" in message and "decompression bomb" in message
    medium = bytearray(payload)  # 60 megapixels: over our limit, under Pillow's own bomb threshold
    medium[ihdr + 4:ihdr + 12] = struct.pack(">II", 10_000, 6_000)
    medium[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(medium[ihdr:ihdr + 17])))
    assert "10,000 x 6,000" in refused(bytes(medium))


def test_an_upload_over_the_size_limit_is_refused_unread():
    photo = encoded(halves(), "PNG")
    too_big = photo + b"\0" * (photos.MAX_BYTES + 1 - len(photo))
    assert "larger than 20.0 MB" in refused(too_big)
    assert "larger than 20.0 MB" in refused(io.BytesIO(too_big + b"\0" * 2**20))
    assert photos.load_photo(photo + b"\0" * 1000).pixels.shape == (32, 32, 3), "padding under the limit is fine"


def test_heic_gets_its_own_sentence():
    assert "HEIC" in refused(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64)


def test_something_that_is_not_bytes_is_refused():
    assert "bytes" in refused(12345)


def test_nothing_is_written_to_disk(monkeypatch):
    """Decoding every kind of upload opens no file (builtins.open and os.open fail if anything tries)."""
    payloads = [encoded(halves(), "JPEG"), encoded(halves(), "PNG"), encoded(Image.new("CMYK", (8, 8)), "TIFF"),
                encoded(Image.new("RGB", (8, 8)), "GIF", save_all=True, append_images=[Image.new("RGB", (8, 8))])]
    for payload in payloads:
        photos.load_photo(payload)  # warm up: Pillow imports its plugins on first use

    def no_files(*args, **kwargs):
        raise AssertionError(f"a file was opened: {args[:1]}")

    monkeypatch.setattr(builtins, "open", no_files)
    monkeypatch.setattr(os, "open", no_files)
    for payload in payloads:
        assert photos.load_photo(payload).pixels.shape == (32, 32, 3)


# ---------------------------------------------------------------------------------------------------------
# The command line: mix --a-file --b-file
# ---------------------------------------------------------------------------------------------------------


def test_cli_mixes_two_photos_and_names_both_halves(untrained_model_file, tmp_path, capsys):
    a, b, out = tmp_path / "a.jpg", tmp_path / "b.png", tmp_path / "mix.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    a.write_bytes(encoded(halves((400, 200)), "JPEG", exif=exif))
    b.write_bytes(encoded(Image.new("RGB", (100, 100), GREEN), "PNG"))
    code = main(["mix", "--a-file", str(a), "--b-file", str(b), "--alpha", "0.7", "--model",
                 str(untrained_model_file), "--out", str(out), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["alpha"] == 0.7 and result["out"] == str(out)
    assert result["a"]["size"] == [200, 400] and any("EXIF" in note for note in result["a"]["notes"])
    for head, classes in (("first", {"airplane", "automobile", "bird", "cat", "deer"}),
                          ("second", {"dog", "frog", "horse", "ship", "truck"})):
        assert set(result[head]["probabilities"]) == classes and result[head]["answer"] in classes
        assert sum(result[head]["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    with Image.open(out) as written:
        mixed = np.asarray(written)
    assert written.size == (256, 256)
    expected = 0.7 * np.array(RED) + 0.3 * np.array(GREEN)  # the top of the upright photo is red
    assert close(mixed[10, 128], expected, tolerance=25)

    code = main(["mix", "--a-file", str(a), "--b-file", str(b), "--model", str(untrained_model_file),
                 "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "first head (classes 0-4)" in printed and "second head (classes 5-9)" in printed


@pytest.mark.parametrize("payload, message", [
    (b"", "empty"), (b"hello", "not an image"), (None, "cannot read"),
])
def test_cli_refuses_a_bad_photo_in_one_line(untrained_model_file, tmp_path, capsys, payload, message):
    bad, good = tmp_path / "bad.jpg", tmp_path / "good.png"
    good.write_bytes(encoded(halves(), "PNG"))
    if payload is not None:
        bad.write_bytes(payload)
    code = main(["mix", "--a-file", str(good), "--b-file", str(bad), "--model", str(untrained_model_file),
                 "--out", str(tmp_path / "m.png")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "bad.jpg" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "m.png").exists()


def test_cli_photo_options_go_together(untrained_model_file, tmp_path, capsys):
    photo = tmp_path / "a.png"
    photo.write_bytes(encoded(halves(), "PNG"))
    assert main(["mix", "--a-file", str(photo), "--out", str(tmp_path / "m.png")]) == 2
    assert "both --a-file and --b-file" in capsys.readouterr().err
    assert main(["mix", "--first", "3", "--json"]) == 2
    assert "go with your own photos" in capsys.readouterr().err


def test_framed_outlines_the_centre_square_on_a_copy():
    photo = photos.load_photo(encoded(Image.new("RGB", (300, 100), GREEN), "PNG"))
    picture = photos.framed(photo, colour=(255, 0, 0), width=2)
    assert picture.shape == photo.original.shape
    assert tuple(picture[0, 150]) == (255, 0, 0) and tuple(picture[50, 100]) == (255, 0, 0)  # top, left edge
    assert tuple(picture[50, 199]) == (255, 0, 0) and tuple(picture[99, 150]) == (255, 0, 0)  # right, bottom
    assert close(picture[50, 150], GREEN) and close(picture[50, 20], GREEN), "inside and outside untouched"
    assert close(photo.original[0, 150], GREEN), "the photo itself is not drawn on"

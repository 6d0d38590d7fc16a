"""Image preparation: downscaling, re-encoding, EXIF, and what is refused unread."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from tests.text.sample_files import decoded, encode, gradient, png_header
from text.attachments.images import PreparedImage, fitted_size, prepare_image
from text.attachments.skipped import SkipKind, Skipped, describe_skipped


def test_a_png_with_alpha_stays_png_and_keeps_its_transparency():
    image = gradient(600, 400).convert("RGBA")
    image.putalpha(Image.linear_gradient("L").resize((600, 400)))
    prepared = prepare_image("logo.png", encode(image, "PNG"), "low")
    assert isinstance(prepared, PreparedImage)
    assert (prepared.mime, prepared.width, prepared.height) == ("image/png", 512, 341)
    assert (prepared.original_width, prepared.original_height) == (600, 400)
    out = decoded(prepared)
    assert out.format == "PNG" and out.mode == "RGBA" and out.size == (512, 341)
    assert out.getchannel("A").getextrema()[0] < 10  # still transparent at the top


def test_a_jpeg_photo_is_downscaled_to_the_detail_level():
    data = encode(gradient(4000, 3000), "JPEG", quality=90)
    low = prepare_image("photo.jpg", data, "low")
    high = prepare_image("photo.jpg", data, "high")
    auto = prepare_image("photo.jpg", data, "auto")
    assert (low.width, low.height, low.mime) == (512, 384, "image/jpeg")
    assert (high.width, high.height, high.mime) == (1024, 768, "image/jpeg")
    assert (auto.width, auto.height) == (1024, 768)
    assert decoded(high).size == (1024, 768)
    # Still the same picture: the top-left corner is dark in red, the bottom-right bright.
    assert decoded(high).getpixel((5, 5))[0] < 40
    assert decoded(high).getpixel((5, 760))[0] > 200


def test_a_small_image_is_not_enlarged():
    prepared = prepare_image("icon.jpg", encode(gradient(300, 200), "JPEG"), "high")
    assert (prepared.width, prepared.height) == (300, 200)


def test_an_opaque_alpha_channel_does_not_force_png():
    data = encode(gradient(800, 600).convert("RGBA"), "PNG")
    assert prepare_image("photo.png", data, "low").mime == "image/jpeg"


def test_few_colours_go_out_as_lossless_png():
    image = Image.new("RGB", (900, 300), "white")
    image.paste((200, 30, 30), (100, 100, 400, 200))  # a red box on white: a diagram
    prepared = prepare_image("diagram.jpg", encode(image, "PNG"), "low")
    assert prepared.mime == "image/png"
    assert sorted(decoded(prepared).convert("RGB").getcolors())[-1][1] == (255, 255, 255)


def test_an_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue", "green")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    prepared = prepare_image("anim.gif", out.getvalue(), "high")
    assert isinstance(prepared, PreparedImage)
    assert decoded(prepared).convert("RGB").getpixel((32, 32)) == (255, 0, 0)
    assert prepared.mime == "image/png"  # one colour: lossless, and not animated


def test_a_webp_is_read():
    prepared = prepare_image("pic.webp", encode(gradient(1200, 900), "WEBP"), "low")
    assert (prepared.width, prepared.height, prepared.mime) == (512, 384, "image/jpeg")


def test_exif_rotation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = encode(gradient(800, 400), "JPEG", exif=exif)
    prepared = prepare_image("phone.jpg", data, "low")
    assert (prepared.width, prepared.height) == (256, 512)


def test_sixteen_bit_greys_keep_their_shades():
    ramp = Image.linear_gradient("L").resize((300, 200)).convert("I")
    data = encode(ramp.point(lambda value: value * 256).convert("I;16"), "PNG")
    out = decoded(prepare_image("scan.png", data, "low")).convert("L")
    assert out.getpixel((0, 0)) == 0
    assert 120 <= out.getpixel((0, 100)) <= 136  # mid-grey, not clipped to white


def test_a_bomb_header_over_pillows_limit_is_refused_unread():
    # 100,000 x 100,000 = 10 gigapixels: Pillow itself refuses it while opening.
    skipped = prepare_image("bomb.png", png_header(100_000, 100_000))
    assert isinstance(skipped, Skipped) and skipped.kind is SkipKind.TOO_LARGE
    assert describe_skipped(skipped) == ("Skipped `bomb.png`: too large (more than 50 megapixels).")


def test_a_header_over_our_pixel_cap_is_refused_before_decoding():
    # 60 MP: under Pillow's limit, over ours. The file has no pixel data, so anything
    # that tried to decode it would call it unreadable instead.
    skipped = prepare_image("huge.png", png_header(10_000, 6_000))
    assert skipped == Skipped(
        "huge.png", SkipKind.TOO_LARGE, "10000x6000 pixels; the limit is 50 megapixels"
    )


def test_a_header_in_pillows_warning_band_is_refused():
    # 100 MP is where Pillow warns rather than refuses; our header check refuses it.
    with pytest.warns(Image.DecompressionBombWarning):
        skipped = prepare_image("big.png", png_header(10_000, 10_000))
    assert skipped.kind is SkipKind.TOO_LARGE


def test_the_pixel_cap_can_be_lowered():
    data = encode(gradient(400, 300), "PNG")
    assert prepare_image("a.png", data, max_pixels=100_000).kind is SkipKind.TOO_LARGE
    assert isinstance(prepare_image("a.png", data, max_pixels=120_000), PreparedImage)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"definitely not an image",
        encode(gradient(64, 64), "JPEG")[:200],  # truncated
        encode(gradient(64, 64), "TIFF"),  # a real image, but a format we do not decode
        encode(gradient(64, 64), "BMP"),
    ],
)
def test_junk_and_other_formats_are_unreadable(data):
    skipped = prepare_image("x.png", data)
    assert skipped == Skipped("x.png", SkipKind.UNREADABLE, "not a readable PNG, JPEG, WebP or GIF")


SMALL_PNG = encode(gradient(20, 20), "PNG")
SIGNATURES = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBPVP8 "]


@given(
    st.one_of(
        st.binary(max_size=2000),
        st.tuples(st.sampled_from(SIGNATURES), st.binary(max_size=2000)).map(b"".join),
        st.tuples(st.integers(0, 400), st.binary(min_size=1, max_size=6)).map(
            lambda t: SMALL_PNG[: t[0]] + t[1] + SMALL_PNG[t[0] + len(t[1]) :]
        ),
    ),
    st.sampled_from(["low", "high", "auto"]),
)
@settings(max_examples=300, deadline=None)
def test_prepare_image_never_raises_on_bytes(data, detail):
    result = prepare_image("x", data, detail)
    assert isinstance(result, PreparedImage | Skipped)


def test_a_bad_detail_is_a_programming_error():
    with pytest.raises(ValueError, match="detail"):
        prepare_image("a.png", SMALL_PNG, "original")


@given(st.integers(1, 20_000), st.integers(1, 20_000))
def test_fitted_sizes_follow_the_rule(width, height):
    low = fitted_size(width, height, "low")
    assert max(low) <= 512 and low[0] <= width and low[1] <= height
    high = fitted_size(width, height, "high")
    assert max(high) <= 2048 and min(high) <= 768
    assert high[0] <= width and high[1] <= height
    if max(width, height) <= 2048 and min(width, height) <= 768:
        assert high == (width, height)  # nothing to shrink

"""Inputs that would never end or never fit: devices, endless pipes and oversized files are
refused with one line, after reading at most one byte more than the limit."""

import io
import os
import subprocess
import sys
import threading

import pytest

from gipp_codec.decoder import MAX_GIMG_INPUT_BYTES, read_input_file
from gipp_codec.errors import GimgError, InputImageError
from gipp_codec.imageio import MAX_IMAGE_INPUT_BYTES, load_image, read_input_bytes


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_devices_are_refused_before_reading():
    with pytest.raises(GimgError, match="is a device or a socket"):
        read_input_file("/dev/zero")
    with pytest.raises(InputImageError, match="is a device or a socket"):
        load_image("/dev/zero")
    r = subprocess.run([sys.executable, "-m", "gipp_codec", "info", "/dev/zero"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "device" in r.stderr, r.stderr


def test_a_regular_file_over_the_limit_is_refused_unread(tmp_path):
    big = tmp_path / "big.gimg"
    with open(big, "wb") as fh:
        fh.truncate(MAX_GIMG_INPUT_BYTES + 1)  # sparse: no disk space, and never read
    with pytest.raises(GimgError, match=f"{MAX_GIMG_INPUT_BYTES + 1} bytes, more than {MAX_GIMG_INPUT_BYTES}"):
        read_input_file(big)
    image = tmp_path / "big.png"
    with open(image, "wb") as fh:
        fh.truncate(MAX_IMAGE_INPUT_BYTES + 1)
    with pytest.raises(InputImageError, match="the most gimg reads of an image file"):
        load_image(image)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_pipe_is_read_up_to_one_byte_over_the_limit(tmp_path):
    fifo = tmp_path / "pipe"
    for size, refused in ((1000, False), (5000, True)):
        os.mkfifo(fifo)

        def write(size=size):
            with open(fifo, "wb") as fh:
                try:
                    fh.write(b"x" * size)
                except BrokenPipeError:  # the reader stopped at the limit
                    pass

        writer = threading.Thread(target=write)
        writer.start()
        if refused:
            with pytest.raises(GimgError, match="more than 1000 bytes"):
                read_input_bytes(fifo, "a test file", max_bytes=1000)
        else:
            assert read_input_bytes(fifo, "a test file", max_bytes=1000) == b"x" * 1000
        writer.join(timeout=30)
        os.unlink(fifo)


def test_standard_input_is_read_up_to_the_limit(monkeypatch):
    class Stream:
        def __init__(self, data):
            self.buffer = io.BytesIO(data)

        def isatty(self):
            return False

    monkeypatch.setattr(sys, "stdin", Stream(b"y\n" * 600))
    with pytest.raises(GimgError, match="standard input: more than 1000 bytes"):
        read_input_bytes("-", "a test file", max_bytes=1000)
    monkeypatch.setattr(sys, "stdin", Stream(b"y\n" * 500))
    assert read_input_bytes("-", "a test file", max_bytes=1000) == b"y\n" * 500

"""The conformance suite: every vector against our decoder (in process), a few through the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gipp_codec import errors
from gipp_codec.format import parse_gimg

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conformance"
sys.path.insert(0, str(CONF))

import run as runner  # noqa: E402

MANIFEST = json.loads((CONF / "manifest.json").read_text())


def test_manifest_is_sane():
    total = sum(p.stat().st_size for p in CONF.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 5_000_000
    assert len(MANIFEST["valid"]) >= 10 and len(MANIFEST["invalid"]) >= 30
    for e in MANIFEST["valid"]:
        assert (CONF / e["input"]).exists() and (CONF / e["expected"]).exists()
        assert e["max_abs"] >= 1 and e["rms"] > 0 and len(e["attributes_sha256"]) == 64
    names = {e["name"] for e in MANIFEST["valid"]}
    assert {"tiny_1x1", "odd_7x3", "odd_513x257_n3000", "kodak_768x512_n5000", "float32_mode",
            "unknown_ancillary_chunk"} <= names


@pytest.mark.parametrize("entry", MANIFEST["invalid"], ids=lambda e: e["name"])
def test_invalid_vector_raises_documented_error(entry):
    cls = getattr(errors, entry["error"])
    assert issubclass(cls, errors.FormatError)
    with pytest.raises(cls):
        parse_gimg((CONF / entry["input"]).read_bytes())


def test_runner_in_process_with_attributes():
    assert runner.main(["--in-process", "--check-attributes"]) == 0


@pytest.mark.parametrize("only", ["tiny_1x1", "bad_crc_header"])
def test_runner_with_cli_decoder(only):
    r = subprocess.run([sys.executable, str(CONF / "run.py"), "--only", only], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1/1 conformance vectors passed" in r.stdout


def _fake_decoder(tmp_path, body: str) -> str:
    """A decoder command running ``body`` (Python; sys.argv[1] the input, [2] the output)."""
    fake = tmp_path / "fake_decoder.py"
    fake.write_text("import os, sys\nimport numpy as np\nfrom PIL import Image\n" + body)
    return f"{sys.executable} {fake} {{input}} {{output}}"


def _entry(name):
    return next(e for e in MANIFEST["valid"] + MANIFEST["invalid"] if e["name"] == name)


def _run(capsys, *args):
    rc = runner.main(list(args))
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_runner_fails_a_decoder_that_writes_black(tmp_path, capsys):
    """A 'decoder' that writes a black image of the right size for anything fails a vector
    whose expected image is not black, and an invalid vector."""
    e = _entry("odd_7x3")
    from PIL import Image
    with Image.open(CONF / e["expected"]) as im:
        assert np.asarray(im).max() > e["max_abs"]  # black is outside the tolerance
    cmd = _fake_decoder(tmp_path, f"Image.new('RGB', ({e['width']}, {e['height']})).save(sys.argv[2], format='PNG')\n")
    rc, text = _run(capsys, "--decoder", cmd, "--only", "odd_7x3")
    assert rc == 1 and "FAIL valid   odd_7x3: max abs" in text
    rc, text = _run(capsys, "--decoder", cmd, "--only", "bad_signature")
    assert rc == 1 and "accepted an invalid file" in text


@pytest.mark.parametrize("body, message", [
    ("open(sys.argv[2], 'wb').write(b'not a png')\n", "output is not a readable PNG"),
    ("Image.new('RGB', (2, 1)).save(sys.argv[2], format='PNG')\n", "output is 2x1, expected 1x1"),
    ("Image.new('RGB', (1, 1)).save(sys.argv[2], format='BMP')\n", "output is not a PNG (BMP)"),
    ("Image.fromarray(np.zeros((1, 1), np.uint16)).save(sys.argv[2])\n", "output is a PNG of 16-bit samples (colour type 0)"),
    ("Image.new('RGBA', (1, 1)).save(sys.argv[2])\n", "output has transparent pixels"),
    ("import signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", "killed by signal 11 (SIGSEGV)"),
    ("sys.exit('cannot decode this')\n", "exit status 1: cannot decode this"),
    ("pass\n", "no output file"),
    ("Image.new('RGB', (1, 1)).save(sys.argv[2])\nopen(sys.argv[1], 'ab').write(b'x')\n",
     "the input file was modified"),
])
def test_runner_reports_a_broken_decoder_in_one_line(tmp_path, capsys, body, message):
    """Whatever a decoder does wrong on a valid vector is one FAIL line, never a traceback."""
    if "SIGSEGV" in body and not hasattr(os, "kill"):
        pytest.skip("no signals")
    before = (CONF / _entry("tiny_1x1")["input"]).read_bytes()
    rc, text = _run(capsys, "--decoder", _fake_decoder(tmp_path, body), "--only", "tiny_1x1")
    assert rc == 1, text
    assert f"FAIL valid   tiny_1x1: {message}" in text and "Traceback" not in text
    assert (CONF / _entry("tiny_1x1")["input"]).read_bytes() == before  # the suite's own copy is untouched


def test_runner_invalid_vectors_need_a_clean_refusal(tmp_path, capsys):
    """On an invalid vector a crash is not a refusal, nor is an output left behind; removing
    the input fails the vector without touching the suite's file."""
    segv = _fake_decoder(tmp_path, "import signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    rc, text = _run(capsys, "--decoder", segv, "--only", "bad_signature")
    assert rc == 1 and "killed by signal 11" in text
    leave = _fake_decoder(tmp_path, "open(sys.argv[2], 'wb').write(b'x')\nsys.exit(2)\n")
    rc, text = _run(capsys, "--decoder", leave, "--only", "bad_signature")
    assert rc == 1 and "left an output file behind" in text
    remove = _fake_decoder(tmp_path, "os.remove(sys.argv[1])\nsys.exit(2)\n")
    rc, text = _run(capsys, "--decoder", remove, "--only", "bad_signature")
    assert rc == 1 and "the input file was removed" in text
    assert (CONF / _entry("bad_signature")["input"]).exists()


@pytest.mark.parametrize("body, message", [
    ("os.mkfifo(sys.argv[2])\n", "the output is not a regular file"),
    ("os.symlink(os.path.abspath(sys.argv[1]), sys.argv[2])\n", "the output is a symbolic link"),
    # Python ignores SIGXFSZ, so the write past the limit fails (EFBIG) instead of killing it
    ("f = open(sys.argv[2], 'wb')\nwhile True:\n    f.write(b'x' * (1 << 20))\n",
     "exit status 1: OSError: [Errno 27] File too large"),
    ("import signal\nsignal.signal(signal.SIGXFSZ, signal.SIG_DFL)\nwhile True:\n"
     "    sys.stderr.buffer.write(b'x' * (1 << 20))\n",
     "killed by signal 25 (SIGXFSZ): it wrote a file past the size limit"),
    ("Image.new('RGB', (1, 1)).save(sys.argv[2], transparency=(0, 0, 0))\n", "output has transparent pixels"),
    ("Image.new('P', (1, 1)).save(sys.argv[2], transparency=0)\n", "output has transparent pixels"),
    ("Image.new('RGB', (1, 1)).save(sys.argv[2])\nos.remove(sys.argv[1])\nos.mkfifo(sys.argv[1])\n",
     "the input file is now not a regular file"),
    ("Image.new('RGB', (1, 1)).save(sys.argv[2])\nos.remove(sys.argv[1])\nos.symlink('/dev/zero', sys.argv[1])\n",
     "the input file is now a symbolic link"),
])
def test_runner_survives_hostile_decoders(tmp_path, capsys, body, message):
    """Links, FIFOs, a flood of output or of standard error, hidden transparency: one FAIL
    line each, quickly, with the run's memory and disk bounded."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("POSIX only")
    rc, text = _run(capsys, "--decoder", _fake_decoder(tmp_path, body), "--only", "tiny_1x1", "--timeout", "60")
    assert rc == 1 and f"FAIL valid   tiny_1x1: {message}" in text, text[:2000]
    assert max(len(line) for line in text.splitlines()) < 400  # a runaway stderr is not quoted whole


def _png(width, height, depth, colour_type, rows: bytes, plte: bytes = b"", crc_ok=True, iend=True) -> bytes:
    """A PNG built by hand (any bit depth, a short palette, a bad IDAT CRC, no IEND)."""
    import struct
    import zlib

    def chunk(kind, body, good=True):
        crc = zlib.crc32(kind + body) ^ (0 if good else 1)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour_type, 0, 0, 0))
    out += chunk(b"PLTE", plte) if plte else b""
    out += chunk(b"IDAT", zlib.compress(rows), crc_ok)
    return out + (chunk(b"IEND", b"") if iend else b"")


@pytest.mark.parametrize("png, message", [
    (_png(1, 1, 16, 2, b"\0" + bytes(6)), "a PNG of 16-bit samples (colour type 2)"),
    (_png(1, 1, 4, 0, b"\0\x00"), "a PNG of 4-bit samples (colour type 0)"),
    (_png(1, 1, 8, 2, b"\0" + bytes(3), crc_ok=False), "a bad CRC in its IDAT chunk"),
    (_png(1, 1, 8, 2, b"\0" + bytes(3), iend=False), "without an IEND chunk"),
    (_png(1, 1, 8, 2, b"\0" + bytes(3)) + b"JUNK", "4 bytes after its IEND chunk"),
    (_png(1, 1, 2, 3, b"\0\xc0", plte=bytes(6)), "using index 3 of a 2-entry palette"),
])
def test_runner_checks_the_png_itself(tmp_path, capsys, png, message):
    """What Pillow would read without complaint but the suite must not take: samples that
    are not 8-bit (a 16-bit sample's low byte would be dropped unseen), a damaged or
    truncated PNG, palette indices past the palette."""
    (tmp_path / "made.png").write_bytes(png)
    body = f"import shutil\nshutil.copyfile({str(tmp_path / 'made.png')!r}, sys.argv[2])\n"
    rc, text = _run(capsys, "--decoder", _fake_decoder(tmp_path, body), "--only", "tiny_1x1")
    assert rc == 1 and message in text, text


def test_runner_a_hard_link_is_not_an_output(tmp_path, capsys):
    """A decoder that links the expected image as its output does not pass."""
    expected = str(CONF / _entry("tiny_1x1")["expected"])
    cmd = _fake_decoder(tmp_path, f"import shutil\nshutil.copyfile({expected!r}, sys.argv[2] + '.x')\n"
                                  "os.link(sys.argv[2] + '.x', sys.argv[2])\n")
    rc, text = _run(capsys, "--decoder", cmd, "--only", "tiny_1x1")
    assert rc == 1 and "the output is a hard link to another file" in text


def test_runner_in_process_stops_on_sigterm(monkeypatch, capsys):
    """SIGTERM during an in-process decode stops the run (143), not just that vector."""
    import signal

    from gipp_codec import decoder

    monkeypatch.setattr(decoder, "decode_file", lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM))
    rc, text = _run(capsys, "--in-process", "--only", "*1x1*")
    assert rc == 143 and "stopped by SIGTERM" in text and "conformance vectors passed" not in text


def test_runner_refuses_bad_report_and_vector_paths(tmp_path, capsys):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    rc, text = _run(capsys, "--in-process", "--only", "tiny_1x1", "--json", str(fifo))
    assert rc == 2 and "exists and is not a regular file" in text
    rc, text = _run(capsys, "--in-process", "--only", "tiny_1x1", "--json", "/dev/full")
    assert rc == 2 and "exists and is not a regular file" in text
    entry = dict(_entry("bad_signature"), input=str(fifo))
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"valid": [], "invalid": [entry]}))
    rc, text = _run(capsys, "--in-process", "--manifest", str(manifest))
    assert rc == 2 and "is not a regular file" in text
    entry = dict(_entry("tiny_1x1"), input=str(CONF / _entry("tiny_1x1")["input"]),
                 expected=str(CONF / _entry("tiny_1x1")["expected"]))
    del entry["attributes_sha256"]
    manifest.write_text(json.dumps({"valid": [entry], "invalid": []}))
    rc, text = _run(capsys, "--in-process", "--check-attributes", "--manifest", str(manifest))
    assert rc == 2 and "needs 'attributes_sha256'" in text


def test_runner_an_input_named_like_the_output(tmp_path, capsys):
    """A vector whose file is called output.png is still handed over apart from the output."""
    src = tmp_path / "output.png"
    src.write_bytes((CONF / _entry("bad_signature")["input"]).read_bytes())
    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps({"valid": [], "invalid": [dict(_entry("bad_signature"), input=str(src))]}))
    rc, text = _run(capsys, "--manifest", str(manifest))
    assert rc == 0, text


def test_runner_a_dangling_link_left_behind_is_an_output(tmp_path, capsys):
    cmd = _fake_decoder(tmp_path, "os.symlink('/nonexistent/x', sys.argv[2])\nsys.exit(2)\n")
    rc, text = _run(capsys, "--decoder", cmd, "--only", "bad_signature")
    assert rc == 1 and "left an output file behind" in text


def test_runner_stopped_by_sigterm_kills_the_decoder_and_cleans_up(tmp_path):
    """SIGTERM (a CI job's timeout) ends the run with 143, the decoder's process group killed
    and the temporary folder gone."""
    if not hasattr(os, "killpg"):
        pytest.skip("POSIX only")
    import signal
    import time

    marker = tmp_path / "decoder.pid"
    cmd = _fake_decoder(tmp_path, f"open({str(marker)!r}, 'w').write(str(os.getpid()))\nimport time\ntime.sleep(120)\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, str(CONF / "run.py"), "--decoder", cmd, "--only", "tiny_1x1"],
                            env=dict(os.environ, TMPDIR=str(scratch)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(300):
        if marker.exists() and marker.read_text():
            break
        time.sleep(0.05)
    decoder = int(marker.read_text())
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err, err
    time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(decoder, 0)
    assert not any(p.name.startswith("gimg-conformance-") for p in scratch.iterdir())


def test_runner_kills_a_decoder_that_hangs_and_its_children(tmp_path, capsys):
    """A decoder past --timeout fails the vector, and a child it left running (which holds
    its standard error open) neither hangs the run nor survives it."""
    marker = tmp_path / "child.pid"
    body = ("import subprocess, time\n"
            f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
            f"open({str(marker)!r}, 'w').write(str(p.pid))\n"
            "time.sleep(120)\n")
    rc, text = _run(capsys, "--decoder", _fake_decoder(tmp_path, body), "--only", "tiny_1x1", "--timeout", "3")
    assert rc == 1 and "FAIL valid   tiny_1x1: timed out" in text
    child = int(marker.read_text())
    import time
    for _ in range(50):  # the kill is asynchronous; a zombie reparented to init is reaped soon
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the decoder's child {child} survived the run")


@pytest.mark.parametrize("args, message", [
    (["--decoder", "mydec {input}"], "--decoder must name {output}"),
    (["--decoder", "mydec '{input} {output}"], "--decoder: cannot split the command"),
    (["--decoder", "no-such-program-gimg {input} {output}"], "cannot run the decoder"),
    (["--only", "no_such_vector"], "no vector's name matches"),
    (["--manifest", "/no/such/manifest.json"], "cannot read the manifest"),
    (["--timeout", "0"], "--timeout must be a positive"),
    (["--json", "/no/such/folder/report.json"], "--json /no/such/folder/report.json: no such folder"),
])
def test_runner_usage_errors_exit_2(capsys, args, message):
    rc, text = _run(capsys, *args)
    assert rc == 2 and f"run.py: error: {message}" in text and "Traceback" not in text


def test_runner_malformed_manifest_exit_2(tmp_path, capsys):
    bad = tmp_path / "manifest.json"
    for content in ("{not json", "[]", '{"valid": [{"name": "x"}], "invalid": []}'):
        bad.write_text(content)
        rc, text = _run(capsys, "--manifest", str(bad))
        assert rc == 2 and "run.py: error: the manifest" in text


@pytest.mark.parametrize("change, message", [
    ({"width": "abc"}, "needs 'width', an integer"),
    ({"max_abs": "4"}, "needs 'max_abs', a number"),
    ({"input": 5}, "needs 'input', a path"),
    ({"width": 2}, "the manifest says 2x1"),
])
def test_runner_bad_manifest_entries_exit_2(tmp_path, capsys, change, message):
    """A manifest entry of the wrong type, or whose expected image is not its stated size,
    is a manifest error (exit 2), not a decoder failure or a traceback."""
    entry = dict(_entry("tiny_1x1"), **change)
    for key in ("input", "expected"):
        if isinstance(entry[key], str):
            entry[key] = str(CONF / entry[key])
    bad = tmp_path / "manifest.json"
    bad.write_text(json.dumps({"valid": [entry], "invalid": []}))
    rc, text = _run(capsys, "--in-process", "--manifest", str(bad))
    assert rc == 2 and message in text and "Traceback" not in text, text


def test_runner_json_to_a_folder_is_refused_before_the_run(tmp_path, capsys):
    rc, text = _run(capsys, "--in-process", "--json", str(tmp_path))
    assert rc == 2 and "a folder, not a file" in text and "conformance vectors passed" not in text


def test_runner_json_report(tmp_path, capsys):
    report = tmp_path / "report.json"
    rc, _ = _run(capsys, "--in-process", "--only", "tiny_1x1", "--json", str(report))
    assert rc == 0
    got = json.loads(report.read_text())
    assert got["passed"] == 1 and got["failed"] == 0
    (vec,) = got["vectors"]
    assert vec["name"] == "tiny_1x1" and vec["passed"] and vec["max_abs"] <= _entry("tiny_1x1")["max_abs"]


def test_reference_decoder_agrees_on_small_vectors():
    import reference_decoder as ref

    for e in MANIFEST["valid"]:
        if e["width"] * e["height"] > 20000:
            continue
        data = (CONF / e["input"]).read_bytes()
        parsed = ref.parse(data)
        ours = parse_gimg(data)
        if e["attribute_mode"] == "quantized" and e["gaussians"]:
            np.testing.assert_array_equal(np.array(parsed["q"], np.int64).reshape(-1, 8),
                                          np.asarray(ours.gaussians.q, np.int64))

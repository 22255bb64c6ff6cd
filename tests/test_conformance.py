"""The conformance suite: every vector against our decoder (in process), a few through the CLI."""

import json
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


def test_runner_detects_a_bad_decoder(tmp_path):
    """A 'decoder' that writes a black PNG for anything must fail the suite."""
    fake = tmp_path / "fake.py"
    fake.write_text(
        "import sys\nfrom PIL import Image\n"
        "Image.new('RGB', (1, 1)).save(sys.argv[2], format='PNG')\n"
    )
    rc = runner.main(["--decoder", f"{sys.executable} {fake} {{input}} {{output}}", "--only", "tiny_1x1"])
    assert rc == 0 or rc == 1  # tiny_1x1 may be nearly black; the next line is the real check
    assert runner.main(["--decoder", f"{sys.executable} {fake} {{input}} {{output}}", "--only", "bad_signature"]) == 1


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

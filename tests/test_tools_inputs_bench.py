"""Bad input to the measuring tools bench_decode, decode_ab, encode_ab and fuzz_decoder: one
error line and a non-zero exit, before any expensive work (worktrees, timings, cases), never
a traceback, a damaged input or a partial output; and tool_record writes atomically."""

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from gipp_codec.errors import GimgError
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
VALID = ROOT / "conformance" / "valid"
sys.path.insert(0, str(TOOLS))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """Small inputs in a folder of their own: a 64 x 48 image and its .gimg file, an image of
    another size, an empty, a truncated and a text file."""
    d = tmp_path_factory.mktemp("inputs")
    shutil.copy(VALID / "coding2_small_64x48_n300.png", d / "small.png")
    shutil.copy(VALID / "coding2_small_64x48_n300.gimg", d / "small.gimg")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(d / "other.png")
    (d / "empty.gimg").write_bytes(b"")
    (d / "trunc.gimg").write_bytes((d / "small.gimg").read_bytes()[:100])
    (d / "notes.txt").write_text("notes, not an image\n")
    (d / "folder").mkdir()
    return {p.name: p for p in d.iterdir()} | {"dir": d}


def _run(tool: str, *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOLS / tool), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _refused(r: subprocess.CompletedProcess, *names: str) -> str:
    """Assert ``r`` failed with one stderr line (no traceback) naming each of ``names``; that line."""
    assert r.returncode != 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    for name in names:
        assert name in lines[0], lines[0]
    return lines[0]


def _worktrees() -> str:
    return subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


# --- tool_record ---------------------------------------------------------------------------------------------------

def test_write_record_keeps_its_format_and_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    from tool_record import write_record

    monkeypatch.setattr(sys, "argv", ["tools/x.py", "--json", "out.json"])
    out = tmp_path / "out.json"
    results = [{"a": 1, "b": [1.5, "x"]}]
    write_record(str(out), results)
    expected = io.StringIO()  # the format of the former plain json.dump
    json.dump({"command": "tools/x.py --json out.json", "results": results}, expected, indent=1)
    assert out.read_text() == expected.getvalue()
    before = out.read_bytes()
    with pytest.raises(TypeError):  # a result json cannot write, found half-way through
        write_record(str(out), [{"fine": list(range(100)), "bad": object()}])
    assert out.read_bytes() == before  # the old record whole, not truncated
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left
    image = tmp_path / "img.png"  # an input named as the output by mistake, found at the end of a run
    image.write_bytes(b"\x89PNG\r\n\x1a\n not json")
    with pytest.raises(GimgError, match="holds something else than a tool's JSON"):
        write_record(str(image), results)
    assert image.read_bytes() == b"\x89PNG\r\n\x1a\n not json"


# --- bench_decode --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, names", [
    (["small.png", "small.gimg", "--repeats", "0"], ["--repeats 0"]),
    (["small.png", "small.gimg", "--cli-repeats", "0"], ["--cli-repeats 0"]),
    (["small.png", "small.gimg", "--cli-repeats", "-2"], ["--cli-repeats -2"]),
    (["missing.png", "small.gimg"], ["missing.png", "no such file"]),
    (["small.png", "missing.gimg"], ["missing.gimg", "no such file"]),
    (["small.png", "trunc.gimg"], ["trunc.gimg", "not a valid .gimg file"]),
    (["small.png", "empty.gimg"], ["empty.gimg", "not a valid .gimg file"]),
    (["small.png", "folder"], ["folder", "directory"]),
    (["small.png", "small.gimg", "small.gimg", "small.png"], ["pair 2", "swapped", "small.png", "small.gimg"]),
    (["other.png", "small.gimg"], ["other.png", "32x24", "64x48"]),
    (["small.png", "small.gimg", "--json", "folder"], ["--json folder", "folder"]),
    (["small.png", "small.gimg", "--json", "nowhere/out.json"], ["nowhere", "does not exist"]),
    (["small.png", "small.gimg", "--peers", "jpg"], ["--peers: jpg", "not a codec"]),
    (["small.png", "small.gimg", "--peers", "webp"], ["--peers: webp", "WebP is always timed"]),
    (["small.png", "small.gimg", "--peers", "avif,avif"], ["--peers names a codec twice"]),
])
def test_bench_decode_refuses_bad_input_in_one_line_before_any_timing(files, args, names):
    before = _snapshot(files["dir"])
    r = _run("bench_decode.py", *args, cwd=files["dir"])
    _refused(r, *names)
    assert "pair 1/" not in r.stderr and r.stdout == ""  # no pair was measured
    assert _snapshot(files["dir"]) == before


def test_bench_decode_will_not_write_its_json_over_an_input(files):
    before = _snapshot(files["dir"])
    for target in ("small.png", "small.gimg"):
        r = _run("bench_decode.py", "small.png", "small.gimg", "--repeats", "1", "--cli-repeats", "1",
                 "--json", target, cwd=files["dir"])
        _refused(r, target, "overwritten")
        assert r.stdout == ""
    assert _snapshot(files["dir"]) == before


def test_bench_decode_reports_progress_per_pair_and_writes_its_json(files, tmp_path):
    out = tmp_path / "rows.json"
    r = _run("bench_decode.py", "small.png", "small.gimg", "small.png", "small.gimg", "--repeats", "1",
             "--cli-repeats", "1", "--json", out, cwd=files["dir"])
    assert r.returncode == 0, r.stderr
    assert "bench_decode: pair 1/2: small.png small.gimg" in r.stderr
    assert "bench_decode: pair 2/2: small.png small.gimg" in r.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == 2 and rows[0]["width"] == 64 and rows[0]["height"] == 48
    assert [p.name for p in tmp_path.iterdir()] == ["rows.json"]
    if Path("/proc/stat").exists():  # the hypervisor's share of the CPU time, per pair
        assert all(0.0 <= row["cpu_steal_share"] <= 1.0 for row in rows)
        assert "CPU time stolen by the hypervisor during each pair's runs:" in r.stdout
    else:
        assert all(row["cpu_steal_share"] is None for row in rows)


def test_machine_load_reads_the_steal_time_of_proc_stat():
    from machine_load import parse_cpu_times, steal_share

    stat = "cpu  100 5 20 800 10 1 2 12 7 0\ncpu0 50 2 10 400 5 0 1 6 3 0\nintr 1 2 3\n"
    assert parse_cpu_times(stat) == (950, 12)  # user..steal; guest (7) is inside user
    assert parse_cpu_times("cpu0 1 2 3 4 5 6 7 8\n") is None  # no all-CPU line
    assert parse_cpu_times("cpu  1 2 3\n") is None  # too few fields (an old kernel)
    assert parse_cpu_times("cpu  1 2 x 4 5 6 7 8\n") is None
    assert steal_share((950, 12), (1950, 62)) == 0.05
    assert steal_share((950, 12), (950, 12)) is None  # no time passed
    assert steal_share(None, (950, 12)) is None


def test_bench_decode_times_the_peers_it_is_given_at_the_gimg_files_rate(files, tmp_path):
    """``--peers avif,jxl``: each codec's file nearest the .gimg file's bpp, decoded in the same
    rounds; its rate, PSNR, time and gimg's ratio to it in the JSON and a second table."""
    pytest.importorskip("imagecodecs")
    out = tmp_path / "rows.json"
    r = _run("bench_decode.py", "small.png", "small.gimg", "--repeats", "2", "--cli-repeats", "1",
             "--peers", "avif,jxl", "--json", out, cwd=files["dir"])
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())[0]
    assert list(row["peers"]) == ["avif", "jxl"]
    for q in row["peers"].values():
        assert abs(q["bpp"] - row["gimg_bpp"]) < 0.25 * row["gimg_bpp"]
        assert 15 < q["psnr"] < 60 and q["decode_ms"] > 0
        assert q["ratio_file_to_pixels"] == pytest.approx(row["gimg_file_to_pixels_ms"] / q["decode_ms"])
    assert "| small.png | JPEG XL (libjxl, effort 7) |" in r.stdout and "| small.png | AVIF (speed 4) |" in r.stdout


def test_bench_decode_without_jpeg_xl_says_how_to_get_it(files, tmp_path):
    """Where imagecodecs cannot be imported, ``--peers jxl`` is one line naming it, before any timing."""
    (tmp_path / "imagecodecs.py").write_text("raise ImportError('stand-in: not installed')\n")
    r = subprocess.run([sys.executable, str(TOOLS / "bench_decode.py"), "small.png", "small.gimg", "--peers", "jxl"],
                       cwd=files["dir"], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(tmp_path)})
    _refused(r, "--peers", "imagecodecs", "pip install")
    assert r.stdout == ""


def test_bench_decode_without_cuda_does_not_suggest_an_option_it_lacks(files):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    line = _refused(_run("bench_decode.py", "small.png", "small.gimg", "--cuda", cwd=files["dir"]), "--cuda")
    assert "--device" not in line


# --- decode_ab -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, names", [
    (["small.gimg", "--a", "nosuchrev"], ["--a nosuchrev", "not a revision"]),
    (["small.gimg", "--a", "HEAD", "--b", "nosuchrev"], ["--b nosuchrev", "not a revision"]),
    (["small.gimg", "missing.gimg", "--a", "HEAD"], ["missing.gimg", "no such file"]),
    (["small.gimg", "trunc.gimg", "--a", "HEAD"], ["trunc.gimg", "not a valid .gimg file"]),
    (["small.gimg", "notes.txt", "--a", "HEAD"], ["notes.txt", "not a valid .gimg file"]),
    (["small.gimg", "--a", "HEAD", "--rounds", "0"], ["--rounds 0"]),
    (["small.gimg", "--a", "HEAD", "--calls", "0"], ["--calls 0"]),
    (["small.gimg", "--a", "HEAD", "--json", "folder"], ["--json folder"]),
    (["small.gimg", "--a", "HEAD", "--json", "nowhere/out.json"], ["nowhere", "does not exist"]),
    (["small.gimg", "--a", "HEAD", "--json", "small.gimg"], ["small.gimg", "overwritten"]),
])
def test_decode_ab_refuses_bad_input_in_one_line_before_any_worktree(files, args, names):
    trees, before = _worktrees(), _snapshot(files["dir"])
    _refused(_run("decode_ab.py", *args, cwd=files["dir"]), *names)
    assert _worktrees() == trees
    assert _snapshot(files["dir"]) == before


# --- encode_ab -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, names", [
    (["small.png", "--a", "HEAD", "--rounds", "0"], ["--rounds 0"]),
    (["small.png", "--a", "HEAD", "--iterations", "-5"], ["--iterations -5"]),
    (["small.png", "--a", "HEAD", "--bpp", "-1"], ["--bpp -1"]),
    (["small.png", "--a", "HEAD", "--bpp", "65"], ["--bpp 65"]),
    (["small.png", "--a", "HEAD", "--bpp", "nan"], ["--bpp nan"]),
    (["notes.txt", "--a", "HEAD"], ["notes.txt", "not a readable image"]),
    (["small.gimg", "--a", "HEAD"], ["small.gimg"]),
    (["folder", "--a", "HEAD"], ["folder", "directory"]),
    (["small.png", "--a", "HEAD", "--a-args", "--x 'open"], ["--a-args"]),
    (["small.png", "--a", "HEAD", "--json", "folder"], ["--json folder"]),
    (["small.png", "--a", "HEAD", "--json", "small.png"], ["small.png", "overwritten"]),
])
def test_encode_ab_refuses_bad_input_in_one_line_before_any_worktree(files, args, names):
    trees, before = _worktrees(), _snapshot(files["dir"])
    t0 = time.monotonic()
    r = _run("encode_ab.py", *args, cwd=files["dir"])
    assert time.monotonic() - t0 < 30  # the full path spends ~90 s on worktrees and warm-up encodes first
    _refused(r, *names)
    assert r.stdout == ""
    assert _worktrees() == trees
    assert _snapshot(files["dir"]) == before


def test_a_failed_encode_in_encode_ab_is_its_gimg_error_line_only(files, tmp_path, capsys):
    import encode_ab

    tree = tmp_path / "tree"  # stands for a worktree; gipp_codec is imported from the installed package
    tree.mkdir()
    with pytest.raises(SystemExit) as exit_:
        encode_ab.encode_once(tree, files["small.png"], tmp_path / "out.gimg", -1.0, 10)
    assert exit_.value.code not in (0, None)
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("gimg: error: ") and "MODULE" not in err and str(tree) not in err
    assert not (tmp_path / "out.gimg").exists()


# --- fuzz_decoder --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args, names", [
    (["small.gimg", "empty.gimg", "--cases", "5"], ["empty.gimg", "not a valid .gimg file"]),
    (["small.gimg", "notes.txt", "--cases", "5"], ["notes.txt", "not a valid .gimg file"]),
    (["small.gimg", "trunc.gimg", "--cases", "5"], ["trunc.gimg", "not a valid .gimg file"]),
    (["small.gimg", "missing.gimg", "--cases", "5"], ["missing.gimg", "no such file"]),
    (["small.gimg", "folder", "--cases", "5"], ["folder", "directory"]),
    (["missing.gimg", "--cases", "5"], ["missing.gimg", "no such file"]),
    (["--images", "small.png", "notes.txt", "--cases", "5"], ["notes.txt"]),
    (["small.gimg", "--cases", "5", "--json", "folder"], ["--json folder"]),
    (["small.gimg", "--cases", "5", "--json", "small.gimg"], ["small.gimg", "overwritten"]),
    (["small.gimg", "--cases", "5", "--save-dir", "notes.txt"], ["--save-dir notes.txt", "not a folder"]),
    (["small.gimg", "--cases", "5", "--cli-cases", "-3"], ["--cli-cases -3"]),
    (["small.gimg", "--cases", "5", "--stall-seconds", "0.01"], ["--stall-seconds 0.01"]),
    (["small.gimg", "--cases", "5", "--seed", "-1"], ["--seed -1"]),
])
def test_fuzz_decoder_refuses_bad_input_in_one_line_before_any_case(files, args, names):
    before = _snapshot(files["dir"])
    r = _run("fuzz_decoder.py", *args, cwd=files["dir"])
    _refused(r, *names)
    assert r.stdout == ""  # no case ran
    assert _snapshot(files["dir"]) == before
    assert sorted(p.name for p in files["dir"].iterdir()) == sorted(k for k in files if k != "dir")


def test_fuzz_decoder_shows_progress_during_the_run(files, tmp_path, capsys):
    import fuzz_decoder

    out = tmp_path / "fuzz.json"
    assert fuzz_decoder.main([str(files["small.gimg"]), "--cases", "501", "--json", str(out)]) == 0
    err = capsys.readouterr().err
    assert "fuzz_decoder: 500/501 cases" in err
    assert json.loads(out.read_text())["results"][0]["cases"] == 501


# --- decode_parts --------------------------------------------------------------------------------------------------

def test_decode_parts_times_each_part_of_a_decode_and_writes_its_json(files, tmp_path):
    out = tmp_path / "parts.json"
    r = _run("decode_parts.py", "small.gimg", "--repeats", "2", "--json", out, cwd=files["dir"])
    assert r.returncode == 0, r.stderr
    assert "decode_parts: file 1/1: small.gimg" in r.stderr
    row = json.loads(out.read_text())[0]
    assert row["gaussians"] == 300 and (row["width"], row["height"]) == (64, 48)
    for part in ("decode", "parse", "entropy", "ans", "dequantize", "render"):
        assert row[f"{part}_ms"] > 0, part
    assert row["ans_ms"] < row["entropy_ms"] < row["parse_ms"]
    assert "| small.gimg | 300 |" in r.stdout


@pytest.mark.parametrize("args, names", [
    (["small.gimg", "--repeats", "0"], ["--repeats 0"]),
    (["missing.gimg"], ["missing.gimg", "no such file"]),
    (["trunc.gimg"], ["trunc.gimg", "not a valid .gimg file"]),
    (["small.gimg", "--json", "small.gimg"], ["small.gimg", "overwritten"]),
])
def test_decode_parts_refuses_bad_input_in_one_line_before_any_timing(files, args, names):
    before = _snapshot(files["dir"])
    r = _run("decode_parts.py", *args, cwd=files["dir"])
    _refused(r, *names)
    assert r.stdout == "" and "file 1/" not in r.stderr
    assert _snapshot(files["dir"]) == before


# --- thread_wake ---------------------------------------------------------------------------------------------------

def test_thread_wake_times_one_region_per_gap_and_writes_its_json(files, tmp_path):
    out = tmp_path / "wake.json"
    r = _run("thread_wake.py", "--gaps", "0,0.2", "--repeats", "3", "--json", out, cwd=files["dir"])
    assert r.returncode == 0, r.stderr
    record = json.loads(out.read_text())
    assert [row["gap_ms"] for row in record["rows"]] == [0.0, 0.2]
    assert record["repeats"] == 3 and record["threads"] >= 1
    for row in record["rows"]:
        assert 0 < row["median_us"] <= row["p90_us"]
    assert "| 0.2 |" in r.stdout and "OMP_WAIT_POLICY=" in r.stdout


@pytest.mark.parametrize("args, names", [
    (["--gaps", "1,x"], ["--gaps", "milliseconds"]),
    (["--gaps", "-1"], ["--gaps", "between 0 and 10000"]),
    (["--gaps", "nan"], ["--gaps", "between 0 and 10000"]),
    (["--repeats", "0"], ["--repeats 0"]),
    (["--json", "small.gimg"], ["small.gimg", "JSON"]),
])
def test_thread_wake_refuses_bad_options_in_one_line(files, args, names):
    before = _snapshot(files["dir"])
    r = _run("thread_wake.py", *args, cwd=files["dir"])
    _refused(r, *names)
    assert r.stdout == ""
    assert _snapshot(files["dir"]) == before

"""The research tools check their output paths before any work: an output that is one of the
tool's inputs, a folder, a file in a folder that does not exist, or two outputs that are the
same file is refused in one line (``PROG: error: ...``) with exit status 2, quickly, leaving
the inputs as they were and writing nothing; and the JSON they write keeps its text."""

import importlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gipp_codec.errors import GimgError

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"
VALID = ROOT / "conformance" / "valid"
sys.path.insert(0, str(TOOLS))

QUICK_S = 20.0  # a refusal comes before any work: far below this


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A folder of small inputs: a 32 x 24 random image, a 64 x 48 .gimg file with its image
    (small.png, the reference image the --images tools find for small_64x48.gimg), a run JSON
    with histories (bench_represent --history's format), the .gimg under a .png name, a
    folder named like an output, and a folder holding one image."""
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(d / "tiny.png")
    shutil.copy(VALID / "coding2_small_64x48_n300.gimg", d / "small_64x48.gimg")
    shutil.copy(VALID / "coding2_small_64x48_n300.png", d / "small.png")
    shutil.copy(VALID / "coding2_small_64x48_n300.gimg", d / "drawn.png")
    run = {"meta": {}, "results": [{"image": "tiny.png", "n": 10, "iterations": 20, "psnr": 20.0,
                                    "history": [[10, 18.0, 10], [20, 20.0, 10]]}]}
    (d / "run.json").write_text(json.dumps(run))
    (d / "out_folder.png").mkdir()
    (d / "kodak").mkdir()  # a folder of images alone (encode_scaling --images)
    shutil.copy(d / "tiny.png", d / "kodak" / "kodim01.png")
    return {"dir": d, "tiny": d / "tiny.png", "gimg": d / "small_64x48.gimg", "png": d / "small.png",
            "run": d / "run.json", "drawn": d / "drawn.png", "folder": d / "out_folder.png",
            "kodak": d / "kodak", "kodim": d / "kodak" / "kodim01.png"}


def _snapshot(folder: Path) -> dict:
    """Every file's bytes and every folder under ``folder``, by relative path."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else "folder") for p in folder.rglob("*")}


# (tool, its arguments with OUT where the output goes, the output's option, the input OUT may
# not be (None: the tool reads no file)). The work options are small, so that a tool whose
# check were gone would fail these tests soon (an OSError or GimgError at its write, or an
# exit other than 2), not run for minutes.
CASES = [
    ("adam_gradient_scale", ["{tiny}", "--gaussians", "10", "--iterations", "4", "--every", "2", "--json", "OUT"],
     "--json", "tiny"),
    ("adaptive_models_whatif", ["{gimg}", "--json", "OUT"], "--json", "gimg"),
    ("base_layer_bits", ["{tiny}", "--json", "OUT"], "--json", "tiny"),
    ("bench_render", ["--sizes", "10", "--repeats", "1", "--warmup", "0", "--height", "16", "--width", "16",
                      "--json", "OUT"], "--json", None),
    ("bench_represent", ["{tiny}", "--gaussians", "10", "--iterations", "5", "--out-json", "OUT"], "--out-json",
     "tiny"),
    ("bench_represent", ["{tiny}", "--gaussians", "10", "--iterations", "5", "--out-json", "{dir}/b.json",
                         "--out-md", "OUT"], "--out-md", "tiny"),
    ("bench_train_step", ["{gimg}", "{png}", "--repeats", "1", "--json", "OUT"], "--json", "png"),
    ("bitdepth_sweep", ["{tiny}", "--bpp", "1", "--depths", "12/10/6", "--iterations", "5", "--downscale", "1",
                        "--json", "OUT"], "--json", "tiny"),
    ("code_search_gain", ["{gimg}", "{png}", "--sweeps", "1", "--json", "OUT"], "--json", "gimg"),
    ("cold_start", ["{gimg}", "--repeats", "1", "--json", "OUT"], "--json", "gimg"),
    ("colour_precision_by_size", ["{gimg}", "--images", "{dir}", "--groups", "1", "--json", "OUT"], "--json",
     "png"),  # the reference image it reads is an input too
    ("convergence_curve", ["a={run}", "--plot", "OUT"], "--plot", "drawn"),  # the run under a .png name
    ("convergence_sweep", ["--dataset", "{dir}", "--images", "tiny", "--downscale", "1", "--density", "10",
                           "--budgets", "5", "--variants", "default", "--out", "OUT"], "--out", "tiny"),
    ("decode_memory", ["--sizes", "8x8", "--counts", "1", "--json", "OUT"], "--json", None),
    ("encode_profile", ["{tiny}", "--iterations", "5", "--json", "OUT"], "--json", "tiny"),
    ("encode_scaling", ["--images", "{kodak}", "--tiles", "1", "--iterations", "5", "--json", "OUT"], "--json",
     "kodim"),
    ("first_encode", ["{tiny}", "--gaussians", "10", "--iterations", "5", "--repeats", "1", "--json", "OUT"],
     "--json", "tiny"),
    ("gpu_kernel_profile", ["{tiny}", "--iterations", "10", "--window", "2", "--device", "cpu", "--json", "OUT"],
     "--json", "tiny"),
    ("grey_spread", ["{gimg}", "--json", "OUT"], "--json", "gimg"),
    ("header_precision", ["{gimg}", "--images", "{dir}", "--json", "OUT"], "--json", "png"),
    ("kernel_ab", ["{gimg}", "--a", "HEAD", "--repeats", "1", "--json", "OUT"], "--json", "gimg"),
    ("part_speed", ["{gimg}", "{png}", "--repeats", "1", "--json", "OUT"], "--json", "gimg"),
    ("plot_gaussians", ["{drawn}", "OUT", "--every", "50"], "OUT.png", "drawn"),
    ("position_precision_by_scale", ["{gimg}", "--images", "{dir}", "--json", "OUT"], "--json", "gimg"),
    ("precision_cost", ["{gimg}", "--images", "{dir}", "--drop", "1", "--json", "OUT"], "--json", "png"),
    ("qat_prune_trace", ["{tiny}", "--iterations", "5", "--json", "OUT"], "--json", "tiny"),
    ("qat_start_study", ["{tiny}", "--iterations", "5", "--json", "OUT"], "--json", "tiny"),
    ("rate_trace", ["{tiny}", "--iterations", "5", "--every", "1", "--json", "OUT"], "--json", "tiny"),
    ("render_row_cost", ["--gaussians", "10", "--repeats", "1", "--json", "OUT"], "--json", None),
    ("covariance_parametrization", ["{tiny}", "--json", "OUT"], "--json", "tiny"),
    ("crop_decode", ["{png}", "{gimg}", "--json", "OUT"], "--json", "gimg"),
    ("pack_cost", ["{tiny}", "--json", "OUT"], "--json", "tiny"),
    ("postfilter_headroom", ["{gimg}", "{png}", "--json", "OUT"], "--json", "png"),
    ("scaled_decode", ["{tiny}", "--json", "OUT"], "--json", "tiny"),
    ("search_schedule", ["{gimg}", "--json", "OUT"], "--json", "gimg"),
    ("triton_resources", ["--json", "OUT"], "--json", None),
]
KINDS = ("an input", "a folder", "in a missing folder")
PARAMS = [pytest.param(tool, args, option, input_key, kind, id=f"{tool}{option}-{kind.replace(' ', '_')}")
          for tool, args, option, input_key in CASES for kind in KINDS
          if not (kind == "an input" and input_key is None)]  # a tool that reads no file has no input to refuse


def _argv(args: list, out: Path, files: dict) -> list[str]:
    names = {k: str(v) for k, v in files.items()}
    return [str(out) if a == "OUT" else a.format(**names) for a in args]


def _output(kind: str, input_key, files: dict) -> Path:
    if kind == "an input":
        return files[input_key]
    if kind == "a folder":
        return files["folder"]
    return files["dir"] / "missing" / "out.png"  # .png: what a --plot and plot_gaussians' OUT.png need


def _refused(tool: str, argv: list[str], capsys, files: dict) -> str:
    """Run ``tool``'s main(argv) in this process; assert it stops with exit status 2 within
    QUICK_S, with one ``TOOL: error:`` line on stderr, nothing on stdout and no file written
    or changed in the inputs' folder; that line."""
    module = importlib.import_module(tool)  # imported (torch, numba, ...) outside the timing
    before = _snapshot(files["dir"])
    capsys.readouterr()
    start = time.perf_counter()
    try:
        status = module.main(argv)  # plot_gaussians returns its exit status
    except SystemExit as stop:
        status = stop.code
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert status == 2, (status, out, err)
    assert elapsed < QUICK_S, elapsed
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{tool}: error: "), err
    assert _snapshot(files["dir"]) == before
    return lines[0]


@pytest.mark.parametrize("tool, args, option, input_key, kind", PARAMS)
def test_a_bad_output_is_refused_before_any_work(tool, args, option, input_key, kind, files, capsys):
    out = _output(kind, input_key, files)
    if tool in ("convergence_curve", "plot_gaussians") and kind == "an input":
        out = files["drawn"]  # a name ending in .png: the clobbering check, not the .png one, refuses it
        if tool == "convergence_curve":
            args = [a.replace("{run}", "{drawn}") for a in args]  # the run under a .png name
    line = _refused(tool, _argv(args, out, files), capsys, files)
    if kind == "an input":
        assert f"the output {out} is the input" in line, line
    else:
        assert f"{option} {out}: " in line, line
        assert ("is a folder" if kind == "a folder" else "does not exist") in line, line


def test_two_outputs_that_are_the_same_file_are_refused(files, capsys):
    same = files["dir"] / "bench.json"
    line = _refused("bench_represent", _argv(["{tiny}", "--gaussians", "10", "--iterations", "5", "--out-json", "OUT",
                                              "--out-md", str(files["dir"] / "." / "bench.json")], same, files),
                    capsys, files)
    assert "two outputs are the same file" in line, line


@pytest.mark.parametrize("tool, args", [
    ("plot_gaussians", ["{gimg}", "OUT"]),
    ("convergence_curve", ["a={run}", "--plot", "OUT"]),
])
def test_a_figure_matplotlib_cannot_write_is_refused(tool, args, files, capsys):
    out = files["dir"] / "figure.docx"  # matplotlib writes .png, .pdf, .svg ... but not this
    line = _refused(tool, _argv(args, out, files), capsys, files)
    assert str(out) in line and ".png" in line and ".pdf" in line, line


def test_encode_scaling_keeps_its_mosaics_off_its_inputs(files, tmp_path, capsys):
    folder = tmp_path / "kodak"
    folder.mkdir()
    Image.open(files["tiny"]).save(folder / "mosaic1.png")  # an input named as the mosaic --keep would write
    Image.open(files["tiny"]).save(folder / "other.png")
    before = _snapshot(folder)
    line = _refused("encode_scaling", ["--images", str(folder), "--tiles", "1", "--iterations", "5", "--keep",
                                       str(folder)], capsys, files)
    assert f"the output {folder / 'mosaic1.png'} is the input" in line, line
    assert _snapshot(folder) == before
    line = _refused("encode_scaling", ["--images", str(folder), "--tiles", "1", "--iterations", "5", "--keep",
                                       str(files["tiny"])], capsys, files)
    assert f"--keep {files['tiny']}: exists and is not a folder" in line, line
    assert _snapshot(folder) == before


def test_gpu_op_count_checks_its_json_before_counting(files):
    before = _snapshot(files["dir"])
    start = time.perf_counter()
    run = subprocess.run([sys.executable, str(TOOLS / "gpu_op_count.py"), "--iterations", "2", "--gaussians", "10",
                          "--json", str(files["folder"])], capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    assert run.returncode == 2, run.stdout + run.stderr
    assert elapsed < 60, elapsed  # a fresh interpreter importing torch, then the refusal
    assert run.stdout == "" and run.stderr.strip().splitlines() == [
        f"gpu_op_count: error: --json {files['folder']}: is a folder; give a file name"], run.stderr
    assert _snapshot(files["dir"]) == before


# --- the JSON itself: the same text as before, written whole, never over a file that is not JSON ---------------------

def test_the_json_keeps_its_text(files, tmp_path, capsys):
    import adaptive_models_whatif
    import grey_spread

    out = tmp_path / "grey.json"
    assert grey_spread.main([str(files["gimg"]), "--json", str(out)]) == 0
    rows = {str(files["gimg"]): grey_spread.spread(files["gimg"].read_bytes())}
    assert out.read_text() == json.dumps(rows, indent=1) + "\n"
    out.write_text('{"an older": "run"}')  # a tool's JSON from before is replaced
    assert grey_spread.main([str(files["gimg"]), "--json", str(out)]) == 0
    assert out.read_text() == json.dumps(rows, indent=1) + "\n"

    out = tmp_path / "whatif.json"
    assert adaptive_models_whatif.main([str(files["gimg"]), "--json", str(out)]) == 0
    row = adaptive_models_whatif.file_whatif(files["gimg"].read_bytes(), 1, 4, 8192)
    expected = {"init": 1, "inc": 4, "limit": 8192, "rows": [{"file": str(files["gimg"]), **row}]}
    assert out.read_text() == json.dumps(expected, indent=1) + "\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.json", "whatif.json"]  # no temporary left behind


@pytest.mark.parametrize("tool, args", [(tool, args) for tool, args, option, _ in CASES if option == "--json"][::3])
def test_a_file_that_is_not_json_is_refused_before_any_work(tool, args, files, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("notes, not a tool's JSON\n")
    line = _refused(tool, _argv(args, notes, files), capsys, files)
    assert f"--json {notes}: holds something else than a tool's JSON; not overwritten" in line, line
    assert notes.read_text() == "notes, not a tool's JSON\n"


def test_a_file_that_is_not_json_is_not_replaced_at_the_end_either(tmp_path):
    from tool_record import write_record

    notes = tmp_path / "notes.txt"
    notes.write_text("notes, not a tool's JSON\n")
    with pytest.raises(GimgError, match="not overwritten"):
        write_record(str(notes), [{"a": 1}])
    assert notes.read_text() == "notes, not a tool's JSON\n"

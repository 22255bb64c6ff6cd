"""Bad input to the RD-comparison tools (tools/rd_compare.py, tools/rd_merge.py, the run reading
of tools/rd_lib.py): one line naming what is wrong and a non-zero exit, never a traceback,
an output written over an input, or an output written at all."""

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import bench_rd  # noqa: E402
import rd_compare  # noqa: E402
import rd_merge  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Real bench_rd.py runs of two 32x24 noise images and a flat one (fast: no gimg):
    A (jpeg, webp on img0, img1), B (jpeg, jp2 on img0, img1), flat (jpeg, jp2 on flat, img0,
    img1: the flat image coded exactly, an infinite PSNR). Returns {name: path}."""
    d = tmp_path_factory.mktemp("rd_inputs")
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(d / f"img{i}.png")
    Image.fromarray(np.full((24, 32, 3), 100, np.uint8)).save(d / "flat.png")
    out = {}
    for name, images, codecs in (("A", ["img0", "img1"], "jpeg,webp"), ("B", ["img0", "img1"], "jpeg,jp2"),
                                 ("flat", ["flat", "img0", "img1"], "jpeg,jp2")):
        out[name] = d / f"run{name}.json"
        assert bench_rd.main([str(d / f"{im}.png") for im in images]
                             + ["--codecs", codecs, "--targets", "1,2", "--json", str(out[name]), "-q"]) == 0
    psnrs = {(r["image"], r["codec"]): r["psnr"] for r in json.loads(out["flat"].read_text())["records"]}
    assert psnrs[("flat", "jp2")] == "inf" and psnrs[("img0", "jp2")] != "inf"  # the case under test
    return out


def _write(tmp_path, name, obj) -> Path:
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


def _refused(main, argv, capsys) -> str:
    """The one line with which ``main(argv)`` stops: its SystemExit's message, or (a usage
    error, exit status 2) the line it printed on stderr; nothing on stdout first."""
    with pytest.raises(SystemExit) as exc:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert out == ""  # no table or report before the refusal
    if isinstance(exc.value.code, str):
        message = exc.value.code
    else:
        assert exc.value.code == 2
        message = _one_line(err)
    assert "\n" not in message and "Traceback" not in err
    return message


def _tool(name, *args):
    """Run tools/NAME.py as a user would; (exit status, stdout, stderr)."""
    proc = subprocess.run([sys.executable, f"tools/{name}.py", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def _one_line(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


GOOD = {"image": "img0", "codec": "gimg", "point": "1", "target_bpp": 1.0, "bytes": 100, "bpp": 1.0,
        "psnr": 30.0, "ms_ssim": None, "encode_s": 1.0, "decode_s": 0.1}

# JSONs of the wrong shape, each with the words its message must hold.
BAD_FOR_BOTH = [
    ({"records": [1, 2]}, "record 1 of 2 is the number 1, not an object"),
    ({"records": {"a": 1}}, '"records" is an object, not a list'),
    ({"records": [GOOD], "images": [{"width": 3}]}, 'image 1 of 1 has no "name"'),
    ({"records": [GOOD], "images": 5}, '"images" is the number 5, not a list'),
    ({"records": [GOOD], "images": [{"name": 3}]}, '"name" is the number 3'),
    ({"records": [{k: v for k, v in GOOD.items() if k != "bpp"}]}, 'no "bpp"'),
    ({"records": [dict(GOOD, bpp=None)]}, '"bpp" is null'),  # has a point: the old fallback crashed
    ({"records": [{k: v for k, v in GOOD.items() if k != "image"}]}, 'no "image"'),
    ({"records": [dict(GOOD, psnr="high")]}, '"psnr" is the string \'high\''),
    ({"records": [dict(GOOD, codec=["gimg"])]}, '"codec" is a list'),
    ({"records": [dict(GOOD, ms_ssim="0.9")]}, '"ms_ssim" is the string'),
    ({"records": [GOOD], "meta": []}, '"meta" is a list'),
    ({"images": []}, 'no "records"'),
    ([GOOD], "the file holds a list"),
    ("{not json", "Expecting property name"),
]


@pytest.mark.parametrize("content,why", BAD_FOR_BOTH + [
    ({"records": [{"codec": "gimg", "image": "img0", "psnr": 30}]}, 'no "bpp"'),
])
@pytest.mark.parametrize("where", ["run", "anchor-run"])
def test_rd_compare_names_a_json_of_the_wrong_shape_in_one_line(tmp_path, capsys, runs, content, why, where):
    """A bad file as the run or as --anchor-run (whose "images" rd_lib.image_sizes read
    again, unchecked): "FILE: not a bench_rd.py JSON (WHY)", before any table."""
    bad = _write(tmp_path, "bad.json", content)
    argv = [bad, "--test", "jpeg"] if where == "run" else [runs["B"], "--test", "jpeg", "--anchor-run", bad]
    message = _refused(rd_compare.main, argv, capsys)
    assert message.startswith(f"{bad}: not a bench_rd.py JSON (") and why in message


@pytest.mark.parametrize("content,why", BAD_FOR_BOTH + [
    ({"records": [{k: v for k, v in GOOD.items() if k != "point"}]}, 'no "point"'),
    ({"records": [{k: v for k, v in GOOD.items() if k != "bytes"}]}, 'no "bytes"'),
    ({"records": [{k: v for k, v in GOOD.items() if k != "encode_s"}]}, 'no "encode_s"'),
    ({"records": [dict(GOOD, bytes=1.5)]}, '"bytes" is the number 1.5'),
    ({"records": [dict(GOOD, point=1)]}, '"point" is the number 1'),
])
@pytest.mark.parametrize("where", ["run", "codec-from", "points-from", "witness"])
def test_rd_merge_names_a_json_of_the_wrong_shape_in_one_line(tmp_path, capsys, runs, content, why, where):
    """A bad file in any input place of rd_merge: "FILE: not a bench_rd.py JSON (WHY)"."""
    bad = _write(tmp_path, "bad.json", content)
    argv = {"run": [runs["B"], bad, "--test", "jpeg"],
            "codec-from": [runs["B"], "--codec-from", f"webp={bad}", "--test", "jpeg"],
            "points-from": [runs["B"], "--points-from", f"jp2={runs['B']},{bad}", "--test", "jpeg"],
            "witness": [runs["B"], "--rename", "jp2=j2k", "--witness", bad, "--test", "jpeg"]}[where]
    message = _refused(rd_merge.main, argv, capsys)
    assert message.startswith(f"{bad}: not a bench_rd.py JSON (") and why in message


def test_unreadable_runs_are_one_line(tmp_path, capsys, runs):
    """A missing file, a folder, bytes that are not text, JSON nested past Python's limit."""
    undecodable = tmp_path / "binary.json"
    undecodable.write_bytes(b"\xff\xfe\x00")
    deep = _write(tmp_path, "deep.json", "[" * 100_000)
    for path in (tmp_path / "missing.json", tmp_path, undecodable, deep):
        for main in (rd_compare.main, rd_merge.main):
            message = _refused(main, [runs["B"], path, "--test", "jpeg"], capsys)
            assert message.startswith(f"{path}: not a bench_rd.py JSON (")


def test_the_tools_run_from_the_shell_print_one_line_and_no_traceback(tmp_path, runs):
    """As the audit ran them: tracebacks (AttributeError, KeyError) before."""
    ints = _write(tmp_path, "rec_ints.json", {"records": [1, 2]})
    no_bpp = _write(tmp_path, "no_bpp.json", {"records": [{"codec": "gimg", "image": "a", "psnr": 30}]})
    rc, out, err = _tool("rd_compare", ints)
    assert rc != 0 and out == "" and _one_line(err).startswith(f"{ints}: not a bench_rd.py JSON (")
    rc, out, err = _tool("rd_compare", no_bpp)
    assert rc != 0 and out == "" and 'no "bpp"' in _one_line(err)
    rc, out, err = _tool("rd_merge", runs["B"], ints)
    assert rc != 0 and out == "" and _one_line(err).startswith(f"{ints}: not a bench_rd.py JSON (")


def test_rd_compare_leaves_out_an_exact_copy_and_says_so(tmp_path, capsys, runs):
    """The flat image's infinite PSNR is in no figure (once "mean +inf dB ... standard error
    nan dB" and a numpy RuntimeWarning): the output is that of the run without the flat image,
    after one line naming it."""
    run = json.loads(runs["flat"].read_text())
    without = dict(run, records=[r for r in run["records"] if r["image"] != "flat"],
                   images=[im for im in run["images"] if im["name"] != "flat"])
    without_path = _write(tmp_path, "without_flat.json", without)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (inf - inf) fails the test
        assert rd_compare.main([str(runs["flat"]), "--test", "jp2", "--anchor", "jpeg"]) == 0
        out = capsys.readouterr().out
        assert rd_compare.main([str(without_path), "--test", "jp2", "--anchor", "jpeg"]) == 0
        expected = capsys.readouterr().out
    first, rest = out.split("\n", 1)
    assert first.startswith("Left out, infinite PSNR (an exact copy): flat (")
    assert rest == expected
    assert "inf" not in rest and "nan dB" not in rest and "| img1 |" in rest
    # as the anchor's run too
    assert rd_compare.main([str(runs["B"]), "--test", "jp2", "--anchor", "jp2", "--anchor-run",
                            str(runs["flat"])]) == 0
    out = capsys.readouterr().out
    assert "Left out, no jp2 records: flat" not in out and "inf" not in out.split("\n", 1)[1]


def test_rd_compare_with_only_exact_copies_refuses_in_one_line(tmp_path, capsys, runs):
    run = json.loads(runs["flat"].read_text())
    flat = _write(tmp_path, "flat_only.json", dict(run, records=[r for r in run["records"] if r["image"] == "flat"]))
    with pytest.raises(SystemExit, match="no image has both jp2 and jpeg records with a finite PSNR"):
        rd_compare.main([str(flat), "--test", "jp2", "--anchor", "jpeg"])
    assert capsys.readouterr().out.startswith("Left out, infinite PSNR (an exact copy): flat (")


def test_rd_merge_leaves_out_an_exact_copy_and_keeps_its_record(tmp_path, capsys, runs):
    """rd_merge's means (rd_lib.mean_curves) leave the flat image out and say so; the merged
    JSON keeps its records as bench_rd.py wrote them ("inf")."""
    merged = tmp_path / "merged.json"
    assert rd_merge.main([str(runs["flat"]), str(runs["flat"]), "--test", "jp2", "--json", str(merged)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Left out of every mean and BD-rate") and "flat (jp2 at 1: infinite PSNR" in out
    assert "inf" not in out.split("\n", 1)[1] and "nan" not in out
    assert {r["psnr"] for r in json.loads(merged.read_text())["records"] if r["image"] == "flat"} >= {"inf"}
    run = json.loads(runs["flat"].read_text())
    flat = _write(tmp_path, "flat_only.json", dict(run, records=[r for r in run["records"] if r["image"] == "flat"]))
    message = _refused(rd_merge.main, [flat, flat, "--test", "jp2"], capsys)
    assert message.startswith("jp2: every image is left out of the means: flat (")


def _bytes(paths):
    return {p: Path(p).read_bytes() for p in paths}


@pytest.mark.parametrize("case", ["json-is-run", "json-is-second-run", "json-is-donor", "json-is-witness",
                                  "plot-is-json"])
def test_rd_merge_refuses_an_output_that_is_an_input_or_another_output(tmp_path, capsys, runs, case):
    """--json runA.json once replaced run A; --json X.png --plot X.png wrote one over the other."""
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(runs["A"].read_bytes())
    b.write_bytes(runs["B"].read_bytes())
    png = tmp_path / "out.png"
    argv = {"json-is-run": [a, b, "--test", "jpeg", "--json", a],
            "json-is-second-run": [a, b, "--test", "jpeg", "--json", tmp_path / "." / "b.json"],
            "json-is-donor": [b, "--codec-from", f"webp={a}", "--test", "jpeg", "--json", a],
            "json-is-witness": [b, "--rename", "jp2=j2k", "--witness", a, "--test", "jpeg", "--json", a],
            "plot-is-json": [a, b, "--test", "jpeg", "--json", png, "--plot", png]}[case]
    before = _bytes([a, b])
    message = _refused(rd_merge.main, argv, capsys)
    assert message.startswith("rd_merge: error: ") and ("is the input" in message or "same file" in message)
    assert _bytes([a, b]) == before and not png.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_rd_merge_refuses_its_input_as_output_from_the_shell(tmp_path, runs):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_bytes(runs["A"].read_bytes())
    b.write_bytes(runs["B"].read_bytes())
    before = _bytes([a, b])
    rc, out, err = _tool("rd_merge", a, b, "--test", "jpeg", "--json", a)
    assert rc != 0 and out == "" and "is the input" in _one_line(err)
    assert _bytes([a, b]) == before


@pytest.mark.parametrize("plot", ["folder", "curves", "curves.png.txt"])
def test_rd_merge_plot_needs_a_figure_suffix(tmp_path, capsys, runs, plot):
    """--plot FOLDER once wrote FOLDER.png and exited 0; --plot curves wrote curves.png. Now
    one line before any work: neither the plot, nor the --json given with it, is written."""
    (tmp_path / "folder").mkdir()
    merged = tmp_path / "merged.json"
    message = _refused(rd_merge.main, [runs["A"], runs["B"], "--test", "jpeg", "--json", merged,
                                       "--plot", tmp_path / plot], capsys)
    assert message.startswith(f"rd_merge: error: --plot {tmp_path / plot}: name the figure with a suffix "
                              f"matplotlib writes (") and ".png" in message and ".svg" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]
    assert list((tmp_path / "folder").iterdir()) == []


def test_rd_merge_plot_as_svg_is_an_svg(tmp_path, capsys, runs):
    drawn = tmp_path / "curves.svg"
    assert rd_merge.main([str(runs["A"]), str(runs["B"]), "--test", "jpeg", "--plot", str(drawn)]) == 0
    capsys.readouterr()
    assert b"<svg" in drawn.read_bytes()[:2000]


def test_rd_merge_plot_ending_in_png_is_a_png(tmp_path, capsys, runs):
    drawn = tmp_path / "curves.PNG"
    assert rd_merge.main([str(runs["A"]), str(runs["B"]), "--test", "jpeg", "--plot", str(drawn)]) == 0
    capsys.readouterr()
    with Image.open(drawn) as im:
        assert im.format == "PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.PNG"]


@pytest.mark.parametrize("option", ["--json", "--plot"])
@pytest.mark.parametrize("case", ["folder", "under-a-file", "ends-in-separator", "empty"])
def test_rd_merge_output_that_cannot_be_written_fails_before_any_work(tmp_path, capsys, runs, option, case):
    """A folder, or a path under a file, once failed with a traceback after the report (and
    after --json, when --plot was the bad one)."""
    (tmp_path / "out.png").mkdir()  # a folder with a file's name
    blocker = tmp_path / "blocker.png"
    blocker.write_text("a file")
    bad = {"folder": str(tmp_path / "out.png"), "under-a-file": str(blocker / "sub.png"),
           "ends-in-separator": str(tmp_path / "sub.png") + "/", "empty": ""}[case]
    other = {"--json": ["--plot", str(tmp_path / "good.png")], "--plot": ["--json", str(tmp_path / "good.json")]}
    argv = [runs["A"], runs["B"], "--test", "jpeg", option, bad] + other[option]
    message = _refused(rd_merge.main, argv, capsys)
    assert message.startswith(f"rd_merge: error: {option}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker.png", "out.png"]  # nothing written
    assert blocker.read_text() == "a file" and list((tmp_path / "out.png").iterdir()) == []


def test_rd_merge_output_folder_from_the_shell(tmp_path, runs):
    (tmp_path / "folder").mkdir()
    rc, out, err = _tool("rd_merge", runs["A"], runs["B"], "--test", "jpeg", "--json", tmp_path / "folder")
    assert rc != 0 and out == "" and "is a folder" in _one_line(err)
    assert list((tmp_path / "folder").iterdir()) == []


def test_rd_merge_makes_a_missing_output_folder(tmp_path, capsys, runs):
    """Good input is unchanged: an output in a folder that does not exist yet is written
    there (bench_rd.write_atomic makes the folder), the inputs untouched."""
    before = _bytes([runs["A"], runs["B"]])
    merged, drawn = tmp_path / "new" / "sub" / "merged.json", tmp_path / "new" / "curves.png"
    assert rd_merge.main([str(runs["A"]), str(runs["B"]), "--test", "jpeg", "--json", str(merged),
                          "--plot", str(drawn)]) == 0
    assert "| jpeg (the run) |" in capsys.readouterr().out
    assert {r["codec"] for r in json.loads(merged.read_text())["records"]} == {"jpeg", "webp", "jp2"}
    assert drawn.stat().st_size > 1000 and _bytes([runs["A"], runs["B"]]) == before

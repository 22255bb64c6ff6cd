#!/usr/bin/env python3
"""Rate-distortion benchmark: gimg against JPEG, WebP, AVIF and JPEG 2000 (and JPEG XL), in one run.

Usage::

    python tools/bench_rd.py IMAGES... [options]
    python tools/bench_rd.py --folder /work/shared/datasets/kodak --limit 3 [options]

Options (see ``--help``): ``--codecs jpeg,webp,avif,jp2[,jp2-nomct][,jxl][,jxl-e9][,gimg]``
(``jxl``, ``jxl-e9``: JPEG XL at effort 7 or 9 through imagecodecs, the ``bench`` extra),
``--targets 0.15,0.25,0.5,0.75,1.0`` (bpp, classical codecs), ``--gimg-gaussians
1000,2000,4000,8000`` or ``--gimg-bpp 0.25,0.5``, ``--gimg-iterations K``,
``--json PATH`` (all per-image records; rewritten after every image and codec, so
a background run can be watched), ``--markdown PATH``, ``--plot PATH.png`` (or .pdf, .svg: any figure suffix matplotlib writes).

Classical codecs: for each target bpp the quality parameter is bisected and the
setting whose file is closest to the target is kept. gimg is called through its
Python API (``gipp_codec.encode`` / ``decode``) once per rate point; with
``--gimg-bpp`` the rate targeting is gimg's own.

Reported per point: bpp (whole file, ``bytes*8/(W*H)``), PSNR (RGB, decoded uint8),
MS-SSIM (None under 161 px), encode seconds (one timed encode at the chosen setting,
or ``--encode-repeats`` median) and decode seconds (median of ``--decode-repeats``
warm decodes). BD-rate / BD-PSNR of every codec against every other are computed on
the mean curves (mean bpp and mean PSNR per rate point across images); see
``rd_lib.bd_rate`` for the interpolation (piecewise cubic Hermite by default).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rd_lib  # noqa: E402
from tool_guard import clobbering, figure_problem  # noqa: E402
from tool_record import holds_json_or_nothing  # noqa: E402

from gipp_codec.errors import ConfigError  # noqa: E402
from gipp_codec.format.model import BitDepths  # noqa: E402

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".webp"}
DEFAULT_TARGETS = "0.15,0.25,0.5,0.75,1.0"
DEFAULT_CODECS = "jpeg,webp,avif,jp2"


# --------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------


class UsageError(SystemExit):
    """A bad option or input, found before any work: one line on stderr and exit status 2
    (``main`` catches it; a SystemExit, so that a caller of the helpers that raise it still
    stops with its message)."""


def _float_list(text: str, option: str = "a list") -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"{option} must be comma-separated numbers, got {text!r}") from None


def _int_list(text: str, option: str = "a list") -> list[int]:
    try:
        values = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        values = [0.5]  # not numbers: the same message as fractions
    if not all(math.isfinite(v) and v == int(v) for v in values):
        raise UsageError(f"{option} must be comma-separated whole numbers, got {text!r}")
    return [int(v) for v in values]


def collect_images(paths: list[str], folder: str | None, limit: int | None) -> list[Path]:
    """The input images: ``paths``, then ``folder``'s images by name, the first ``limit``."""
    files = [Path(p) for p in paths]
    if folder:
        if not Path(folder).is_dir():
            raise UsageError(f"--folder {folder}: not a folder")
        files += sorted(p for p in Path(folder).iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if limit is not None:
        if limit < 1:
            raise UsageError(f"--limit must be 1 or more, got {limit}")
        files = files[:limit]
    return files


def check_arguments(args, codecs: list[str], files: list[Path]) -> list[float]:
    """Every option and input checked before any coding (a UsageError says what is wrong);
    returns the classical codecs' target bpps."""
    from gipp_codec.errors import GimgError
    from gipp_codec.imageio import check_output_path

    if not codecs:
        raise UsageError("--codecs names no codec")
    if any(c.startswith("jxl") for c in codecs) and rd_lib.jxl_problem():
        raise UsageError(rd_lib.jxl_problem())
    targets = _float_list(args.targets, "--targets")
    if any(c in rd_lib.CLASSICAL_CODECS for c in codecs):
        if not targets or any(not 0 < t <= 64 for t in targets):
            raise UsageError(f"--targets must be bpps in (0, 64], got {args.targets!r}")
    for option, value in (("--encode-repeats", args.encode_repeats), ("--decode-repeats", args.decode_repeats)):
        if value < 1:
            raise UsageError(f"{option} must be 1 or more, got {value}")
    if "gimg" in codecs:
        points = gimg_points(args)
        if not points:
            raise UsageError("--gimg-bpp / --gimg-gaussians give no rate point")
        for point in points:
            if point["target_bpp"] is not None and not 0 < point["target_bpp"] <= 64:
                raise UsageError(f"--gimg-bpp values must be in (0, 64], got {point['target_bpp']:g}")
            if point["gaussians"] is not None and point["gaussians"] < 1:
                raise UsageError(f"--gimg-gaussians values must be 1 or more, got {point['gaussians']}")
        if args.gimg_iterations < 1:
            raise UsageError(f"--gimg-iterations must be 1 or more, got {args.gimg_iterations}")
        try:
            from gipp_codec.devices import resolve_device

            resolve_device(args.gimg_device)
        except GimgError as exc:
            raise UsageError(f"--gimg-device: {exc}") from None
        if args.gimg_keep and Path(args.gimg_keep).exists() and not Path(args.gimg_keep).is_dir():
            raise UsageError(f"--gimg-keep {args.gimg_keep}: exists and is not a folder")
    names = [f.stem for f in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UsageError(f"two input images have the same name ({', '.join(twice)}); records are keyed by name")
    for f in files:  # every image readable before the first is coded
        try:
            load_rgb(f, args.downscale)
        except GimgError as exc:
            raise UsageError(str(exc)) from None
    outputs = (("--json", args.json), ("--markdown", args.markdown), ("--plot", args.plot))
    for option, path in outputs:
        if path is not None and not path.strip():
            raise UsageError(f"{option} needs a file name")
    if args.plot:
        try:
            problem = figure_problem(args.plot, "--plot")
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install -e '.[bench]' (or drop --plot)") from None
        if problem:
            raise UsageError(problem)
    problem = clobbering([path for _, path in outputs], files)
    if problem:
        raise UsageError(problem)
    if args.json and not holds_json_or_nothing(Path(args.json)):
        raise UsageError(f"--json {args.json}: holds something else than a tool's JSON; not overwritten")
    for option, path in outputs:  # folders made only once everything else is known good
        if path:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                check_output_path(path)
            except (OSError, GimgError) as exc:
                raise UsageError(f"{option} {path}: {exc}") from None
    return targets


def load_rgb(path: Path, downscale: int = 1) -> np.ndarray:
    """The image at ``path`` as uint8 RGB [H, W, 3], shrunk ``downscale`` times in each
    direction by averaging ``downscale`` x ``downscale`` blocks (Pillow's ``reduce``; the
    last partial row and column of blocks are averaged over what they hold)."""
    from gipp_codec.imageio import load_image

    image, _meta = load_image(path)
    if downscale > 1:
        from PIL import Image

        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).reduce(downscale))
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------------------
# gimg
# --------------------------------------------------------------------------------------


def gimg_points(args) -> list[dict]:
    """The gimg rate points: Gaussian counts or gimg's own target bpps."""
    if args.gimg_bpp:
        return [{"point": f"bpp={b:g}", "kwargs": {"bpp": b}, "target_bpp": b, "gaussians": None}
                for b in _float_list(args.gimg_bpp, "--gimg-bpp")]
    return [{"point": f"N={n}", "kwargs": {"gaussians": n}, "target_bpp": None, "gaussians": n}
            for n in _int_list(args.gimg_gaussians, "--gimg-gaussians")]


def gimg_variants(args) -> dict:
    """Codec name -> bit depths (or None for gimg's default) of each gimg variant to run:
    {"gimg": None} without ``--gimg-bits``, else one "gimg-P-V-C" per triple."""
    if not args.gimg_bits:
        return {"gimg": None}
    out = {}
    for item in args.gimg_bits.split(","):
        try:
            p, v, c = (int(t) for t in item.strip().split("/"))
        except ValueError:
            raise UsageError(f"--gimg-bits: expected POSITION/COVARIANCE/COLOUR triples such as "
                             f"12/10/6,12/8/6, got {item!r}") from None
        try:
            BitDepths(p, v, c).check(ConfigError)
        except ConfigError as exc:
            raise UsageError(f"--gimg-bits {item.strip()}: {exc}") from None
        out[f"gimg-{p}-{v}-{c}"] = (p, v, c)
    return out


def _overrides(obj, settings: list[str], option: str) -> dict:
    """The dataclass fields of ``obj`` changed by "field=value" strings, each value read as
    its field's declared type (an optional field's: the type it holds; booleans as
    true/false), "none" as None unless the field holds text; ``option`` names the flag in
    errors."""
    import dataclasses
    import typing

    fields = [f.name for f in dataclasses.fields(obj) if f.name != "qat"]
    hints = typing.get_type_hints(type(obj))
    changes = {}
    for item in settings:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise UsageError(f"{option}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}, got {item!r}")
        kind = hints[key]  # the field's type; of an optional one (int | None), the type it holds
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
        if text.lower() == "none" and kind is not str:
            changes[key] = None  # an optional setting switched off; validation refuses it elsewhere
        elif kind is bool:
            if text.lower() not in ("true", "false", "1", "0"):
                raise UsageError(f"{option}: {key} takes true or false, got {text!r}")
            changes[key] = text.lower() in ("true", "1")
        else:
            try:
                changes[key] = kind(text)
            except ValueError:
                raise UsageError(f"{option}: {key} takes a {kind.__name__}, got {text!r}") from None
    return changes


def fit_config(fit_settings: list[str], qat_settings: list[str]):
    """The default FitConfig with FitConfig fields overridden by the "field=value" strings of
    ``fit_settings`` (``--gimg-fit``) and QATConfig fields by those of ``qat_settings``
    (``--gimg-qat``); a bad field or value exits with a message."""
    from gipp_codec.errors import ConfigError
    from gipp_codec.fit.config import FitConfig

    cfg = FitConfig()
    try:
        return cfg.replace(**_overrides(cfg, fit_settings, "--gimg-fit")).with_qat(
            **_overrides(cfg.qat, qat_settings, "--gimg-qat"))
    except ConfigError as exc:
        raise UsageError(f"--gimg-fit/--gimg-qat: {exc}") from None


def run_gimg(image: np.ndarray, point: dict, args, name: str = "image", bits=None, variant: str = "gimg") -> dict:
    """Encode and decode one gimg rate point (at bit depths ``bits``, default gimg's own);
    with ``--gimg-keep`` the file is kept there."""
    import gipp_codec

    kwargs = dict(point["kwargs"], iterations=args.gimg_iterations, seed=args.seed,
                  device=args.gimg_device)
    if bits is not None:
        kwargs["bits"] = bits
    if args.gimg_qat or args.gimg_fit:
        kwargs["config"] = fit_config(args.gimg_fit, args.gimg_qat)
    h, w = image.shape[:2]
    (data, report), enc_s = rd_lib.time_call(lambda: gipp_codec.encode_with_report(image, **kwargs),
                                             repeats=args.encode_repeats)
    decoded, dec_s = rd_lib.time_call(lambda: gipp_codec.decode(data), repeats=args.decode_repeats, warmup=1)
    rec = {"param": point["kwargs"], "bytes": len(data), "bpp": rd_lib.bpp_of(len(data), w, h)}
    rec.update(rd_lib.quality(image, np.asarray(decoded)))
    rec.update({"encode_s": enc_s, "decode_s": dec_s, "iterations": args.gimg_iterations,
                "device": report.device, "gaussians_final": report.gaussians, "passes": report.passes,
                "bits_per_gaussian": report.bits_per_gaussian})
    if args.gimg_keep:
        suffix = "" if variant == "gimg" else "_" + variant.removeprefix("gimg-")
        keep = Path(args.gimg_keep) / f"{name}_{point['point'].replace('=', '')}{suffix}.gimg"
        keep.parent.mkdir(parents=True, exist_ok=True)
        keep.write_bytes(data)
        rec["file"] = str(keep)
    return rec


def warm_up_gimg(args) -> float:
    """Encode and decode a small synthetic image (64x96, 50 iterations) on ``--gimg-device``
    with the run's settings, untimed by the records; return its seconds."""
    import gipp_codec

    y, x = np.mgrid[0:64, 0:96]
    image = np.clip(np.stack([128 + 100 * np.sin(x / 9.0), 128 + 100 * np.cos(y / 7.0),
                              (x * y) % 256], axis=2), 0, 255).astype(np.uint8)  # [64, 96, 3]
    kwargs = dict(bpp=1.0, iterations=50, seed=args.seed, device=args.gimg_device)
    if args.gimg_qat or args.gimg_fit:
        kwargs["config"] = fit_config(args.gimg_fit, args.gimg_qat)
    t0 = time.perf_counter()
    data = gipp_codec.encode(image, **kwargs)
    gipp_codec.decode(data)
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else (None if math.isnan(obj) else str(obj))
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


def write_atomic(path: str, text: str) -> None:
    """Write ``text`` to ``path`` (its folder created) through a temporary file and a rename."""
    from gipp_codec.imageio import atomic_write_bytes

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, text.encode())


def summarize(records: list[dict], codecs: list[str], bd_method: str, anchor: str) -> dict:
    curves = rd_lib.mean_curves(records)
    curves = {c: curves[c] for c in codecs if c in curves}
    timing = {}
    for c, curve in curves.items():
        timing[c] = {"encode_s": rd_lib._mean(p["encode_s"] for p in curve),
                     "decode_s": rd_lib._mean(p["decode_s"] for p in curve)}
    ref = timing.get(anchor)
    for c, t in timing.items():
        for k in ("encode_s", "decode_s"):
            base = ref[k] if ref else None
            t[k.replace("_s", "_x_" + anchor)] = (t[k] / base) if base and t[k] is not None else None
    return {"mean_curves": curves, "bd": rd_lib.bd_table(curves, bd_method),
            "bd_method": bd_method, "timing": timing, "timing_anchor": anchor,
            "left_out": rd_lib.left_out_images(records),
            "errors": sum(1 for r in records if r.get("error"))}


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def _sign_pct(v):
    return "n/a" if v is None else f"{v:+.1f}%"


def markdown(result: dict) -> str:
    s = result["summary"]
    curves, labels = s["mean_curves"], result["meta"]["codec_labels"]
    names = [im["name"] for im in result["images"]]
    out = [f"## Rate-distortion: {len(names)} image(s) ({', '.join(names)})", ""]
    if not result.get("complete", False):
        out += ["*(partial: run still in progress)*", ""]
    left_out = s.get("left_out") or {}
    if left_out:
        out += ["Left out of every mean and BD-rate below (each codec's curve averages the same images): "
                + "; ".join(f"{name} ({why})" for name, why in left_out.items()), ""]

    # Classical matrix at the target bpps, like DESIGN.md §5.
    targets = result["meta"]["targets"]
    with_targets = [c for c, cur in curves.items() if any(p["target_bpp"] is not None for p in cur)]
    if with_targets and targets:
        out.append("Mean PSNR (dB, RGB) / mean achieved bpp at each target bpp")
        out.append("")
        out.append("| codec | " + " | ".join(f"{t:g}" for t in targets) + " |")
        out.append("|---|" + "---|" * len(targets))
        for c in with_targets:
            by_t = {p["target_bpp"]: p for p in curves[c]}
            cells = []
            for t in targets:
                p = by_t.get(t)
                cells.append("–" if p is None else f"{_f(p['psnr'], '.2f')} ({_f(p['bpp'], '.3f')})")
            out.append(f"| {labels.get(c, c)} | " + " | ".join(cells) + " |")
        out.append("")

    out.append("Mean per rate point")
    out.append("")
    out.append("| codec | point | n | bpp | PSNR (dB) | MS-SSIM | encode s | decode s |")
    out.append("|---|---|---|---|---|---|---|---|")
    for c, curve in curves.items():
        for p in curve:
            out.append(
                f"| {c} | {p['point']} | {p['n']} | {_f(p['bpp'], '.4f')} | {_f(p['psnr'], '.2f')} | "
                f"{_f(p['ms_ssim'], '.4f')} | {_f(p['encode_s'], '.4f')} | {_f(p['decode_s'], '.4f')} |"
            )
    out.append("")

    codecs = list(curves)
    if len(codecs) > 1:
        idx = {(r["test"], r["anchor"]): r for r in s["bd"]}
        method = {"pchip": "piecewise cubic Hermite", "poly": "cubic polynomial"}[s["bd_method"]]
        out.append(f"BD-rate (row against column anchor; negative = fewer bits) / BD-PSNR, "
                   f"on mean curves, {method} interpolation")
        out.append("")
        out.append("| test \\ anchor | " + " | ".join(codecs) + " |")
        out.append("|---|" + "---|" * len(codecs))
        notes = []
        for t in codecs:
            cells = []
            for a in codecs:
                if a == t:
                    cells.append("0")
                    continue
                r = idx[(t, a)]
                if r["bd_rate_pct"] is None and r["bd_psnr_db"] is None:
                    cells.append("n/a")
                else:
                    cells.append(f"{_sign_pct(r['bd_rate_pct'])} / {_f(r['bd_psnr_db'], '+.2f')} dB")
                for kind in ("rate", "psnr"):
                    if r[f"bd_{kind}_reason"]:
                        notes.append(f"- BD-{kind.upper() if kind == 'psnr' else kind} "
                                     f"{t} vs {a}: {r[f'bd_{kind}_reason']}")
            out.append(f"| {t} | " + " | ".join(cells) + " |")
        out.append("")
        if notes:
            out += ["Not computed:", ""] + sorted(set(notes)) + [""]

    anchor = s["timing_anchor"]
    out.append(f"Timing (mean over rate points; × = ratio to {anchor})")
    out.append("")
    out.append(f"| codec | encode s | decode s | encode × {anchor} | decode × {anchor} |")
    out.append("|---|---|---|---|---|")
    for c, t in s["timing"].items():
        out.append(f"| {c} | {_f(t['encode_s'], '.4f')} | {_f(t['decode_s'], '.4f')} | "
                   f"{_f(t.get('encode_x_' + anchor), '.2f')} | {_f(t.get('decode_x_' + anchor), '.2f')} |")
    out.append("")
    return "\n".join(out)


def plot(result: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves, labels = result["summary"]["mean_curves"], result["meta"]["codec_labels"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    for c, curve in curves.items():
        bpp = [p["bpp"] for p in curve]
        ax1.plot(bpp, [p["psnr"] for p in curve], "o-", label=labels.get(c, c))
        ms = [(p["bpp"], p["ms_ssim"]) for p in curve if p["ms_ssim"] is not None]
        if ms:
            ax2.plot(*zip(*ms), "o-", label=labels.get(c, c))
    n = len(result["images"])
    ax1.set(xlabel="bpp", ylabel="PSNR (dB, RGB)", title=f"PSNR vs rate (mean of {n} image(s))")
    ax2.set(xlabel="bpp", ylabel="MS-SSIM", title="MS-SSIM vs rate")
    for ax in (ax1, ax2):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # no legend for a panel with no curve (no MS-SSIM measured)
            ax.legend(fontsize=8)
    if not ax2.get_legend_handles_labels()[0]:
        ax2.text(0.5, 0.5, "no MS-SSIM: it needs images of at least 161 pixels a side",
                 ha="center", va="center", transform=ax2.transAxes, fontsize=9)
    n_common = {p["n"] for curve in curves.values() for p in curve}
    if result["images"] and n_common and n_common != {n}:
        ax1.set_title(f"PSNR vs rate (mean of {sorted(n_common)[0]} of {n} image(s))")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, format=Path(path).suffix.lower().lstrip(".") or "png")
    plt.close(fig)


def environment() -> dict:
    import PIL
    from PIL import features

    libs = {}
    for name in ("jpg", "webp", "avif", "jpg_2000"):
        try:
            libs[name] = features.version(name)
        except Exception:  # pragma: no cover - depends on the Pillow build
            libs[name] = None
    try:
        import imagecodecs

        libs["imagecodecs"] = imagecodecs.__version__
        libs["jpegxl"] = imagecodecs.jpegxl_version() if imagecodecs.JPEGXL.available else None
    except Exception:  # not installed (only the jxl codec needs it)
        libs["imagecodecs"] = None
    return {"python": platform.python_version(), "pillow": PIL.__version__, "libs": libs,
            "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "date": _dt.datetime.now().isoformat(timespec="seconds")}


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="input images")
    p.add_argument("--folder", help="take every image in this folder (sorted by name)")
    p.add_argument("--limit", type=int, help="use only the first K images")
    p.add_argument("--downscale", type=int, default=1, metavar="F",
                   help="shrink each image F times in each direction (F x F block means) before coding; "
                        "to measure at other image sizes")
    p.add_argument("--codecs", default=DEFAULT_CODECS,
                   help=f"comma list from {','.join(rd_lib.CLASSICAL_CODECS)},gimg (default {DEFAULT_CODECS})")
    p.add_argument("--targets", default=DEFAULT_TARGETS, help="target bpps for classical codecs")
    p.add_argument("--gimg-gaussians", default="1000,2000,4000,8000",
                   help="gimg rate points as Gaussian counts")
    p.add_argument("--gimg-bpp", default=None,
                   help="gimg rate points as target bpps (overrides --gimg-gaussians)")
    p.add_argument("--gimg-iterations", type=int, default=2000)
    p.add_argument("--gimg-keep", default=None, help="keep every encoded .gimg file in this folder")
    p.add_argument("--gimg-device", default="auto")
    p.add_argument("--gimg-qat", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a QATConfig field for gimg (repeatable), e.g. psd_safe=false")
    p.add_argument("--gimg-fit", action="append", default=[], metavar="FIELD=VALUE",
                   help="override a FitConfig field for gimg (repeatable), e.g. coarse_frac=0.1")
    p.add_argument("--gimg-bits", default=None, metavar="P/V/C[,P/V/C...]",
                   help="run gimg at each of these bit-depth triples (position/covariance/colour), "
                        "as codecs named gimg-P-V-C; default: gimg's own depths, as codec gimg")
    p.add_argument("--gimg-warmup", action=argparse.BooleanOptionalAction, default=True,
                   help="one untimed small gimg encode on the same device first, so one-time costs "
                        "(kernel loading or compiling, a CUDA context) stay out of the first image's "
                        "encode time (default: on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--encode-repeats", type=int, default=1, help="timed encodes per point (median)")
    p.add_argument("--decode-repeats", type=int, default=5, help="timed warm decodes per point (median)")
    p.add_argument("--bd-method", choices=("pchip", "poly"), default="pchip")
    p.add_argument("--anchor", default=None,
                   help="codec that timing ratios are relative to (default: jpeg when it runs, else the first codec)")
    p.add_argument("--json", help="write all records here (rewritten as the run progresses)")
    p.add_argument("--markdown", help="write the markdown tables here too")
    p.add_argument("--plot", help="write a PSNR/MS-SSIM vs bpp plot (PNG, or any other figure suffix matplotlib writes: .pdf, .svg, ...)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv=None) -> int:
    """Entry point; returns the exit status (2: a usage error, before any work; 1: some
    point failed, its record says why)."""
    args = build_parser().parse_args(argv)
    codecs = [c.strip() for c in args.codecs.split(",") if c.strip()]
    unknown = [c for c in codecs if c != "gimg" and c not in rd_lib.CLASSICAL_CODECS]
    if unknown:
        print(f"unknown codec(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if args.downscale < 1:
        print(f"--downscale must be an integer >= 1, got {args.downscale}", file=sys.stderr)
        return 2
    try:
        files = collect_images(args.images, args.folder, args.limit)
        if not files:
            print("no input images (give IMAGES... or --folder DIR)", file=sys.stderr)
            return 2
        targets = check_arguments(args, codecs, files)
        variants = gimg_variants(args) if "gimg" in codecs else {}
        if "gimg" in codecs:
            fit_config(args.gimg_fit, args.gimg_qat)  # a bad FIELD=VALUE stops the run before any work
    except UsageError as exc:
        print(f"bench_rd: {exc}", file=sys.stderr)
        return 2
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib: pip install -e '.[bench]' (or drop --plot)", file=sys.stderr)
            return 2
    if "gimg" in codecs:
        at = codecs.index("gimg")
        codecs[at:at + 1] = list(variants)
    if args.anchor is None:
        args.anchor = "jpeg" if "jpeg" in codecs else codecs[0]
    elif args.anchor not in codecs:
        print(f"bench_rd: --anchor {args.anchor} is not among the codecs run ({', '.join(codecs)})", file=sys.stderr)
        return 2

    def log(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    labels = {c: rd_lib.CLASSICAL_CODECS[c].label for c in codecs if c in rd_lib.CLASSICAL_CODECS}
    for name, bits in variants.items():
        labels[name] = f"gimg ({args.gimg_iterations} it" + (f", {'/'.join(map(str, bits))} bits)" if bits else ")")
    result = {
        "meta": {
            "argv": sys.argv[1:] if argv is None else list(argv),
            "codecs": codecs,
            "codec_labels": labels,
            "codec_settings": {c: rd_lib.CLASSICAL_CODECS[c].settings
                               for c in codecs if c in rd_lib.CLASSICAL_CODECS},
            "targets": targets,
            "gimg": ({"points": [p["point"] for p in gimg_points(args)],
                      "iterations": args.gimg_iterations, "device": args.gimg_device,
                      "seed": args.seed, "qat": list(args.gimg_qat), "fit": list(args.gimg_fit),
                      "bits": args.gimg_bits}
                     if variants else None),
            "encode_repeats": args.encode_repeats,
            "decode_repeats": args.decode_repeats,
            "downscale": args.downscale,
            "environment": environment(),
        },
        "images": [],
        "records": [],
        "complete": False,
    }

    def flush(complete=False):
        result["complete"] = complete
        result["summary"] = summarize(result["records"], codecs, args.bd_method, args.anchor)
        if args.json:
            write_atomic(args.json, json.dumps(_json_safe(result), indent=1))

    if variants and args.gimg_warmup:
        result["meta"]["gimg_warmup_s"] = warm_up_gimg(args)
        log(f"gimg warm-up encode: {result['meta']['gimg_warmup_s']:.1f} s")
    t_start = time.perf_counter()
    for i, path in enumerate(files):
        image = load_rgb(path, args.downscale)
        h, w = image.shape[:2]
        result["images"].append({"name": path.stem, "path": str(path), "width": w, "height": h})
        log(f"[{i + 1}/{len(files)}] {path.name} {w}x{h}")
        for codec_name in codecs:
            t0 = time.perf_counter()
            if codec_name in variants:
                for point in gimg_points(args):
                    base = {"image": path.stem, "codec": codec_name, "point": point["point"],
                            "target_bpp": point["target_bpp"], "gaussians": point["gaussians"]}
                    try:
                        rec = run_gimg(image, point, args, path.stem, variants[codec_name], codec_name)
                    except Exception as exc:  # keep the run going; the record says why
                        rec = {"error": f"{type(exc).__name__}: {exc}"}
                        log(f"  {codec_name} {point['point']}: {rec['error']}")
                    else:
                        log(f"  {codec_name} {point['point']}: {_f(rec.get('bpp'), '.3f')} bpp, "
                            f"{_f(rec.get('psnr'), '.2f')} dB, encoded in {_f(rec.get('encode_s'), '.1f')} s")
                    result["records"].append({**base, **rec})
                    flush()
            else:
                codec = rd_lib.CLASSICAL_CODECS[codec_name]
                cache: dict = {}
                for t in targets:
                    found = rd_lib.search_bpp(codec, image, t, cache=cache)
                    rec = rd_lib.measure(codec, image, found.param,
                                         encode_repeats=args.encode_repeats,
                                         decode_repeats=args.decode_repeats)
                    result["records"].append({
                        "image": path.stem, "codec": codec_name, "point": f"{t:g}",
                        "target_bpp": t, "gaussians": None, **rec,
                        "search_encodes": found.trials,
                    })
            recs = [r for r in result["records"]
                    if r["image"] == path.stem and r["codec"] == codec_name and not r.get("error")]
            log(f"  {codec_name:9s} " + "  ".join(f"{r['bpp']:.3f}:{r['psnr']:.2f}" for r in recs)
                + f"  ({time.perf_counter() - t0:.1f} s)")
            flush()
    result["meta"]["wall_s"] = time.perf_counter() - t_start
    flush(complete=True)

    text = markdown(result)
    print(text)
    if args.markdown:
        write_atomic(args.markdown, text + "\n")
    if args.plot:
        plot(result, args.plot)
    errors = result["summary"]["errors"]
    if errors:
        print(f"bench_rd: {errors} point(s) failed (their records hold the error); the means leave "
              f"their images out", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    from tool_guard import guarded

    sys.exit(guarded("bench_rd", main))

#!/usr/bin/env python3
"""Add a codec, or a codec's missing rate points, from other ``tools/bench_rd.py`` runs.

    python tools/rd_merge.py RUN.json [RUN2.json ...] [--codec-from avif=OTHER.json]
        [--points-from gimg=OTHER.json[,OTHER2.json]] [--donor-point POINT]
        [--rename OLD=NEW --witness W.json] [--test gimg]
        [--json OUT.json] [--plot OUT.png]

For a peer whose encoder is deterministic (AVIF's took 19 of a full-set run's 76 minutes)
its records from an earlier run of the same images can stand in. That holds only if the
runs agree, so before merging this checks that every codec the two runs share, other than
``--test``, has the same bytes and PSNR on every image and rate point, and that the two
runs cover the same images; it refuses otherwise. Prints each codec's mean curve and the
BD-rate / BD-PSNR of ``--test`` against every other codec, and its BD-rate on MS-SSIM in dB,
-10 log10(1 - MS-SSIM) (``rd_lib.bd_table``), and says
which codec came from which run. The merged records can be written with ``--json``, their
mean curves drawn with ``--plot``.

Several RUN files pool into one run (a record measured twice must agree byte for byte), also
with none of the options below: so a run of today's encoder pooled with an earlier run shows
that it writes that run's files, or refuses.
``--points-from CODEC=OTHER.json`` adds the rate points of CODEC that the run lacks, for
example a full-set point measured by an earlier run of the same encoder. It refuses unless
the donor and the run share at least one (image, point) of CODEC with equal bytes and PSNR
(so a one-image run of the run's encoder at the donor's rate is the witness that the
encoders agree), and unless every added point covers all of the run's images. The donor may
be several files, ``CODEC=A.json,B.json``, pooled as the runs are; ``--donor-point POINT``
(repeatable, a record's ``point`` such as ``bpp=1`` for gimg or ``1`` for a peer) keeps only the donors' records at
those points, so that a donor file whose other points changed since (a new default at one
rate) can still give the points that did not.

``--rename OLD=NEW --witness W.json`` counts codec OLD's records as NEW's: for records
of a setting that became the default (``--gimg-bits 11/7/5`` runs are ``gimg-11-7-5``;
once the default writes the same files they are ``gimg``'s). It refuses unless the
witness runs (pooled; not merged into the result) hold, at every rate point renamed, an
image whose OLD and NEW records agree (bytes and PSNR), and unless no renamed record
lands on an (image, point) that NEW already has. Renames come first, then
``--points-from``, then ``--codec-from``.
"""

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rd_lib  # noqa: E402
from bench_rd import plot, write_atomic  # noqa: E402
from tool_guard import figure_problem, guarded, refuse_clobbering  # noqa: E402
from tool_record import holds_json_or_nothing  # noqa: E402

# What rd_merge reads of every record (an error's too: the means group by point), and of
# every record that holds no error (bytes and PSNR tell two files apart; the means average
# bpp, PSNR and the timings).
REQUIRED = ("codec", "image", "point")
MEASURED = ("bpp", "psnr", "bytes", "encode_s", "decode_s")


def load_run(path: str) -> dict:
    """A bench_rd.py JSON; a one-line SystemExit "PATH: not a bench_rd.py JSON (WHY)" when it
    is not one (``rd_lib.load_run``: records that are objects with a codec, an image and a
    point, and unless they hold an error a bpp, PSNR, byte count and timings, each of the
    right type). A run that did not finish is read with a warning on stderr."""
    return rd_lib.load_run(path, "rd_merge", REQUIRED, MEASURED)


def refuse(message: str) -> None:
    """A bad option found before any work: ``rd_merge: error: MESSAGE`` on stderr, exit
    status 2 (as ``tool_guard.refuse_clobbering``)."""
    print(f"rd_merge: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_output(option: str, path: str) -> None:
    """``refuse`` (one line, exit status 2), before any work, when ``path`` cannot take an output: empty,
    ending in a separator, a folder (or other non-file), read-only, in a folder that cannot
    be written, or under a missing folder that cannot be made (a file in its way). A missing
    folder that can be made is made when the output is written (``bench_rd.write_atomic``)."""
    from gipp_codec.errors import GimgError
    from gipp_codec.imageio import check_output_path

    if not path.strip() or path.endswith(("/", os.sep)):
        refuse(f"{option} {path!r}: give a file name")
    folder = Path(os.path.abspath(path)).parent
    if os.path.isdir(folder):
        try:
            check_output_path(path)
        except GimgError as exc:
            refuse(f"{option}: {exc}")
        if option == "--json" and not holds_json_or_nothing(Path(path)):
            refuse(f"{option} {path}: holds something else than a tool's JSON; not overwritten")
        return
    above = folder
    while not os.path.lexists(above) and above != above.parent:
        above = above.parent
    if not os.path.isdir(above):
        refuse(f"{option} {path}: {above} is not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        refuse(f"{option} {path}: the folder {folder} does not exist and {above} is not writable")


def _by_key(records: list, codec: str) -> dict:
    """(image, point) -> record of one codec, records with an error skipped."""
    return {(r["image"], r["point"]): r for r in records if r.get("codec") == codec and not r.get("error")}


def _same(a: dict, b: dict) -> bool:
    """Whether two records of one (codec, image, point) hold the same file: bytes and PSNR."""
    return (a["bytes"], a["psnr"]) == (b["bytes"], b["psnr"])


def pool(runs: list[tuple[dict, str]]) -> list:
    """The records of several runs as one list; SystemExit where a record measured twice
    (same codec, image and point) differs in bytes or PSNR. ``runs``: (run, path)."""
    records, seen = [], {}
    for run, path in runs:
        for r in run["records"]:
            if r.get("error"):
                records.append(r)
                continue
            key = (r["codec"], r["image"], r["point"])
            if key in seen:
                if not _same(seen[key], r):
                    raise SystemExit(f"{path}: {key[0]} at {key[1]} {key[2]} differs from an earlier "
                                     f"run ({r['bytes']} / {seen[key]['bytes']} bytes)")
                continue
            seen[key] = r
            records.append(r)
    return records


def rename(records: list, old: str, new: str, witness: list) -> list:
    """``records`` with codec ``old``'s records counted as ``new``'s (each keeps
    ``renamed_from``). SystemExit unless ``witness`` (records) has, at each rate point of
    ``old`` here, an image where ``old`` and ``new`` agree, and unless a renamed record
    would land where ``new`` already has one."""
    olds = _by_key(records, old)
    if not olds:
        raise SystemExit(f"--rename {old}={new}: no {old} records in the run")
    w_old, w_new = _by_key(witness, old), _by_key(witness, new)
    for point in sorted({p for _, p in olds}):
        agree = [k for k in w_old if k[1] == point and k in w_new and _same(w_old[k], w_new[k])]
        if not agree:
            raise SystemExit(f"--rename {old}={new}: no witness image at {point} where {old} and {new} "
                             "wrote the same file, so nothing shows the two are one encoder")
    clash = sorted(set(olds) & set(_by_key(records, new)))
    if clash:
        raise SystemExit(f"--rename {old}={new}: {new} already has {clash[0][0]} at {clash[0][1]}")
    return [dict(r, codec=new, renamed_from=old) if r.get("codec") == old else r for r in records]


def add_points(records: list, codec: str, donor: dict, path: str) -> list:
    """``records`` plus the donor's ``codec`` records at the rate points the run lacks.

    SystemExit unless the two share an (image, point) of ``codec``, agree (bytes and PSNR)
    on every one they share, and each added point then covers every image of the run."""
    mine, theirs = _by_key(records, codec), _by_key(donor["records"], codec)
    if not mine:
        raise SystemExit(f"{codec}: not in the run; use --codec-from to add a whole codec")
    shared = sorted(set(mine) & set(theirs))
    if not shared:
        raise SystemExit(f"{path}: no {codec} record at an (image, point) the run has, so nothing "
                         "shows it is the same encoder")
    for key in shared:
        if not _same(mine[key], theirs[key]):
            raise SystemExit(f"{path}: {codec} differs from the run at {key[0]} {key[1]} "
                             f"({mine[key]['bytes']} / {theirs[key]['bytes']} bytes): not the same encoder")
    added = [r for key, r in theirs.items() if key not in mine]
    if not added:
        raise SystemExit(f"{path}: adds no {codec} record the run lacks")
    images = {r["image"] for r in records}
    merged = {**mine, **{(r["image"], r["point"]): r for r in added}}
    for point in sorted({r["point"] for r in added}):
        covered = {im for im, p in merged if p == point}
        if covered != images:
            raise SystemExit(f"{path}: {codec} at {point} would cover {len(covered)} of the run's "
                             f"{len(images)} images")
    return records + added


def merge(run: dict, donors: list[tuple[str, dict, str]], test: str) -> list:
    """The run's records plus each donor codec's; SystemExit where the runs disagree.

    ``donors``: (codec, donor run, donor path). A donor run must cover the same images as
    ``run``, the codec must be absent from ``run``, and every other codec both runs hold
    (``test`` aside) must have equal bytes and PSNR at every (image, point)."""
    records = list(run["records"])
    images = {r["image"] for r in records}
    codecs = {r["codec"] for r in records}
    for codec, donor, path in donors:
        if codec in codecs:
            raise SystemExit(f"{codec}: already measured in the run; nothing to merge")
        d_images = {r["image"] for r in donor["records"]}
        if d_images != images:
            raise SystemExit(f"{path}: covers other images than the run ({len(d_images ^ images)} differ)")
        shared = sorted(({r["codec"] for r in donor["records"]} & codecs) - {test})
        if not shared:
            raise SystemExit(f"{path}: shares no codec with the run, so nothing shows the two runs agree")
        for other in shared:
            mine, theirs = _by_key(records, other), _by_key(donor["records"], other)
            for key in sorted(set(mine) & set(theirs)):
                if not _same(mine[key], theirs[key]):
                    raise SystemExit(f"{path}: {other} differs from the run at {key[0]} {key[1]} "
                                     f"({mine[key]['bytes']} / {theirs[key]['bytes']} bytes): "
                                     "not the same encoder or images")
            if not set(mine) & set(theirs):
                raise SystemExit(f"{path}: {other} has no rate point in common with the run")
        added = [r for r in donor["records"] if r.get("codec") == codec]
        if not added:
            raise SystemExit(f"{path}: has no {codec} records")
        records += added
        codecs.add(codec)
    return records


def report(records: list, test: str, sources: dict, method: str) -> str:
    """Markdown: mean curves per codec (with their source) and ``test``'s BD rows, and the
    images the means leave out (``rd_lib.left_out_images``: not every codec has them)."""
    curves = rd_lib.mean_curves(records)
    left_out = rd_lib.left_out_images(records)
    if test not in curves:
        if any(r["codec"] == test for r in records) and left_out:
            raise SystemExit(f"{test}: every image is left out of the means: "
                             + "; ".join(f"{name} ({why})" for name, why in left_out.items()))
        raise SystemExit(f"{test}: no records of it in the run")
    out = []
    if left_out:
        out += ["Left out of every mean and BD-rate (each codec's curve averages the same images): "
                + "; ".join(f"{name} ({why})" for name, why in left_out.items()), ""]
    out += ["| codec (source) | mean bpp : PSNR per point |", "|---|---|"]
    for codec, curve in curves.items():
        pts = "  ".join(f"{p['bpp']:.3f} : {p['psnr']:.2f}" for p in curve)
        out.append(f"| {codec} ({sources.get(codec, 'the run')}) | {pts} |")
    out += ["", f"| {test} against | BD-rate | BD-PSNR | BD-rate on MS-SSIM (dB) |", "|---|---|---|---|"]
    for row in rd_lib.bd_table(curves, method):
        if row["test"] == test:
            rate = "n/a" if row["bd_rate_pct"] is None else f"{row['bd_rate_pct']:+.1f} %"
            dpsnr = "n/a" if row["bd_psnr_db"] is None else f"{row['bd_psnr_db']:+.2f} dB"
            ms = "n/a" if row["bd_rate_ms_ssim_pct"] is None else f"{row['bd_rate_ms_ssim_pct']:+.1f} %"
            out.append(f"| {row['anchor']} | {rate} | {dpsnr} | {ms} |")
    return "\n".join(out)


def _codec_and_path(flag: str, item: str) -> tuple[str, str]:
    """CODEC=RUN.json split in two; SystemExit naming ``flag`` when malformed."""
    codec, sep, path = item.partition("=")
    if not sep or not codec or not path:
        raise SystemExit(f"{flag}: expected CODEC=RUN.json, got {item!r}")
    return codec, path


def main(argv=None) -> int:
    """Merge, check, print; exit 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="+", help="one or more bench_rd.py JSONs, pooled")
    p.add_argument("--codec-from", action="append", default=[], metavar="CODEC=RUN.json")
    p.add_argument("--points-from", action="append", default=[], metavar="CODEC=RUN.json[,RUN2.json]")
    p.add_argument("--donor-point", action="append", default=[], metavar="POINT",
                   help="take only these rate points (a record's 'point', e.g. bpp=1) from --points-from donors")
    p.add_argument("--rename", action="append", default=[], metavar="OLD=NEW")
    p.add_argument("--witness", action="append", default=[], metavar="RUN.json",
                   help="runs where OLD and NEW of each --rename wrote the same files")
    p.add_argument("--test", default="gimg")
    p.add_argument("--bd-method", choices=("pchip", "poly"), default="pchip")
    p.add_argument("--json", help="write the run with the merged records here")
    p.add_argument("--plot", help="write the merged PSNR/MS-SSIM vs bpp curves here (a name ending in .png, "
                                  "or any other figure suffix matplotlib writes)")
    args = p.parse_args(argv)
    if not args.codec_from and not args.points_from and not args.rename and len(args.run) < 2:
        p.error("give two or more runs to pool, or --rename, --points-from or --codec-from")
    if args.rename and not args.witness:
        p.error("--rename needs --witness RUN.json")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            p.error("--plot needs matplotlib: pip install -e '.[bench]' (or drop --plot)")
    donor_paths = [path for item in args.points_from + args.codec_from
                   for path in item.partition("=")[2].split(",") if path]
    # the outputs checked before any input is read: never an input, never each other, and
    # each a file that can be written
    outputs = (("--json", args.json), ("--plot", args.plot))
    if args.plot is not None and figure_problem(args.plot, "--plot"):
        refuse(figure_problem(args.plot, "--plot"))
    refuse_clobbering("rd_merge", [path for _, path in outputs], args.run + donor_paths + args.witness)
    for option, path in outputs:
        if path is not None:
            check_output(option, path)
    loaded: dict = {}  # path -> run: each file read (and checked) once

    def read(path: str) -> dict:
        if path not in loaded:
            loaded[path] = load_run(path)
        return loaded[path]

    all_paths = args.run + donor_paths + args.witness
    for path in all_paths:  # every input checked before any is used
        read(path)
    rd_lib.image_sizes([(path, read(path)) for path in all_paths])  # one size per image name, in every run
    runs = [(read(path), path) for path in args.run]
    images = {im["name"]: im for one, _ in runs for im in one.get("images", [])}
    run = dict(runs[0][0], records=pool(runs), images=list(images.values()))
    sources = {}
    witness = pool([(read(path), path) for path in args.witness]) if args.rename else []
    for item in args.rename:
        old, sep, new = item.partition("=")
        if not sep or not old or not new or old == new:
            raise SystemExit(f"--rename: expected OLD=NEW with two codec names, got {item!r}")
        run["records"] = rename(run["records"], old, new, witness)
        sources[new] = f"the run, {old}'s records counted as {new}'s (witnesses: {', '.join(args.witness)})"
    if args.donor_point and not args.points_from:
        p.error("--donor-point needs --points-from")
    for item in args.points_from:
        codec, path = _codec_and_path("--points-from", item)
        paths = [one for one in path.split(",") if one]
        donor = pool([(read(one), one) for one in paths])  # [records]
        if args.donor_point:
            donor = [r for r in donor if r.get("point") in set(args.donor_point)]
            if not donor:
                raise SystemExit(f"--points-from {path}: no record at {', '.join(args.donor_point)}")
        run["records"] = add_points(run["records"], codec, {"records": donor}, path)
        only = f" (only {', '.join(args.donor_point)})" if args.donor_point else ""
        sources[codec] = f"the run, points missing there from {path}{only}"
    donors = []
    for item in args.codec_from:
        codec, path = _codec_and_path("--codec-from", item)
        donors.append((codec, read(path), path))
        sources[codec] = path
    records = merge(run, donors, args.test)
    print(report(records, args.test, sources, args.bd_method))
    if args.json:
        merged = dict(run, records=records, merged_from=sources, pooled=list(args.run))
        merged.pop("summary", None)  # the run's own summary no longer covers every codec
        write_atomic(args.json, json.dumps(merged, indent=1))
    if args.plot:
        images = sorted({r["image"] for r in records})
        labels = run.get("meta", {}).get("codec_labels", {})
        plot({"summary": {"mean_curves": rd_lib.mean_curves(records)}, "meta": {"codec_labels": labels},
              "images": images}, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(guarded("rd_merge", main))

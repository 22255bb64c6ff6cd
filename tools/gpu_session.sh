#!/usr/bin/env bash
# The GPU measurements of BENCHMARKS.md §7 in one call on a lent GPU machine.
#
# Usage, from the repository root:  tools/gpu_session.sh OUTDIR KODAKDIR BUDGET_S
#   OUTDIR    where results.tgz (every record and log) and summary.txt are written
#   KODAKDIR  the Kodak PNGs (kodim01.png ... kodim24.png)
#   BUDGET_S  wall-clock seconds this script may take; it stops its last step in time
#             to pack the results (give the caller's own limit some 30 s more)
#
# Steps (UTC times in session.log; a failing step does not stop the independent ones):
#   1. the machine: GPU, CPU count, Python and package versions
#   2. a tiny --bpp encode and decode on the CPU (compiles every numba kernel into
#      NUMBA_CACHE_DIR once for all later processes); meanwhile the renderer
#      micro-benchmark tools/bench_gpu.py (forward, forward+backward, parity)
#   3. the GPU tests: pytest -m gpu (Triton renderer and binning parity, the Triton kernels
#      of Adam, the fake quantizer and its constraints, the rate term, fitting and encoding on CUDA)
#      -- if they fail, steps 4 and 5 are skipped (the encoder on CUDA is not trusted); the
#      decoder on CUDA against every conformance vector runs after them, gating nothing, and
#      with the bench step its speed (tools/bench_decode.py --cuda on kodim23 at 0.5 bpp); the
#      Triton code search's test runs first on its own: if it fails, the encodes keep the
#      search on the CPU instead
#   4. one Kodak image (kodim23) at 0.5 bpp, 5000 iterations, encoded on cuda and then on
#      the same machine's CPU, one after the other, each after an untimed warm-up encode
#      (bench_rd --gimg-warmup): the encode-time ratio
#   4b. tools/encode_profile.py on kodim23 (0.5 bpp, 1000 iterations, --phases): the time
#      of one float and one QAT iteration on the GPU, and where an encode's time goes; then
#      tools/part_speed.py --cuda: one code-search sweep on the CPU's cores against the Triton
#      sweep; tools/gpu_kernel_profile.py: the kernels and host operations inside an iteration
#   4c. if .gpu/base holds an older commit's code (made here with
#      `mkdir -p .gpu/base && git archive COMMIT gipp_codec tools | tar -x -C .gpu/base`),
#      the same profile with it right after: a before/after on one machine in one call
#   5. every Kodak image on cuda at RATES (0.15, 1.0, 0.5, 0.25 bpp), 5000 iterations,
#      WORKERS processes sharing the GPU, each taking every WORKERS-th image, rate by rate
#      (one bench_rd JSON per rate and worker, rewritten after every image), until the
#      budget ends; the .gimg files are kept
#
# GS_STEPS (default "bench pair profile rd") picks the optional steps: bench (2's
# micro-benchmark), pair (4), profile (4b and 4c), rd (5); the machine facts, the warm-up and
# the GPU tests always run. Overrides for a dry run on a machine without CUDA: GS_DEVICE=cpu
# GS_ITERS=30 GS_IMAGES="kodim01.png kodim02.png" GS_DOWNSCALE=4 GS_WORKERS=2 GS_RATES=0.5
# GS_PAIR_BPP=0.5.
set -u
OUTDIR=${1:?usage: tools/gpu_session.sh OUTDIR KODAKDIR BUDGET_S}
KODAK=${2:?usage: tools/gpu_session.sh OUTDIR KODAKDIR BUDGET_S}
BUDGET=${3:?usage: tools/gpu_session.sh OUTDIR KODAKDIR BUDGET_S}
DEVICE=${GS_DEVICE:-cuda}
ITERS=${GS_ITERS:-5000}
WORKERS=${GS_WORKERS:-8}
RATES=${GS_RATES:-"0.15 1.0 0.5 0.25"}
DOWNSCALE=${GS_DOWNSCALE:-1}
PAIR_BPP=${GS_PAIR_BPP:-0.5}
STEPS=" ${GS_STEPS:-bench pair profile rd} "
REPO=$(pwd)
START=$(date +%s)
DEADLINE=$((START + BUDGET - 25))  # leave time to pack the results
WORK=$(mktemp -d /tmp/gpu_session.XXXX)
LOG=$WORK/session.log
mkdir -p "$OUTDIR" "$WORK/rd" "$WORK/files"
export PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=$WORK/numba_cache
if ls "$REPO"/.whl/*.whl >/dev/null 2>&1; then  # carried wheels (constriction, pytorch-msssim)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$WORK/site" "$REPO"/.whl/*.whl >"$WORK/pip.log" 2>&1 || echo "wheel install failed" >>"$LOG"
    export PYTHONPATH=$WORK/site:$REPO
else
    export PYTHONPATH=$REPO
fi
if [ -n "${GS_IMAGES:-}" ]; then IMAGES=$GS_IMAGES; else IMAGES=$(cd "$KODAK" && ls kodim*.png | sort); fi

wants() { [[ "$STEPS" == *" $1 "* ]]; }  # wants STEP: whether GS_STEPS names it
say() { echo "$(date -u +%T) $*" | tee -a "$LOG"; }
left() { echo $((DEADLINE - $(date +%s))); }
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to NAME.log, record rc
    local name=$1 limit=$2; shift 2
    local cap; cap=$(left); [ "$limit" -gt "$cap" ] && limit=$cap
    if [ "$limit" -le 5 ]; then say "$name skipped: budget spent"; return 99; fi
    say "$name start (limit ${limit}s): $*"
    timeout "$limit" "$@" >"$WORK/$name.log" 2>&1
    local rc=$?
    say "$name end rc=$rc"
    return $rc
}
pack() {
    say "packing"
    cp "$LOG" "$OUTDIR/session.log"
    tar czf "$OUTDIR/results.tgz" -C "$WORK" --exclude numba_cache --exclude numba_cache_base --exclude site . 2>/dev/null
    summary >"$OUTDIR/summary.txt" 2>&1
    cat "$OUTDIR/summary.txt"
}
summary() {
    echo "== session.log"; cat "$LOG"
    echo "== bench_gpu"; tail -n 20 "$WORK/bench_gpu.log" 2>/dev/null
    echo "== gpu test of the Triton code search"; tail -n 8 "$WORK/gpu_search_test.log" 2>/dev/null
    echo "== gpu tests"; tail -n 15 "$WORK/gpu_tests.log" 2>/dev/null
    echo "== gpu decode test"; tail -n 8 "$WORK/gpu_decode_test.log" 2>/dev/null
    echo "== decode speed: CPU, GPU, WebP"; tail -n 12 "$WORK/decode_gpu.log" 2>/dev/null
    echo "== encode profile"; tail -n 12 "$WORK/profile.log" 2>/dev/null
    echo "== encode profile, .gpu/base"; tail -n 12 "$WORK/profile_base.log" 2>/dev/null
    echo "== code-search sweep, CPU against Triton"; tail -n 6 "$WORK/search_speed.log" 2>/dev/null
    echo "== kernel profile"; grep -v "^USDT" "$WORK/kernels.log" 2>/dev/null | tail -n 40
    python3 - "$WORK" <<'EOF'
import glob, json, os, sys
work = sys.argv[1]
for name in ("pair_gpu", "pair_cpu"):
    path = os.path.join(work, name + ".json")
    if os.path.exists(path):
        recs = [r for r in json.load(open(path)).get("records", []) if r.get("codec") == "gimg"]
        for r in recs:
            if r.get("error"):
                print(f"{name}: {r['image']} error {r['error']}")
                continue
            print(f"{name}: {r['image']} bpp {r['bpp']:.4f} psnr {r['psnr']:.3f} encode {r['encode_s']:.2f} s")
by_rate = {}
for path in sorted(glob.glob(os.path.join(work, "rd", "*.json"))):
    for r in json.load(open(path)).get("records", []):
        if r.get("codec") == "gimg":
            by_rate.setdefault(os.path.basename(path).split("_w")[0], []).append(r)
for rate, recs in sorted(by_rate.items()):
    errors = [r for r in recs if r.get("error")]
    for r in errors:
        print(f"{rate}: {r['image']} error {r['error']}")
    recs = [r for r in recs if not r.get("error")]
    n = len(recs)
    if not n:
        continue
    mean = lambda k: sum(r[k] for r in recs) / n
    print(f"{rate}: {n} images, mean bpp {mean('bpp'):.4f} psnr {mean('psnr'):.3f} encode {mean('encode_s'):.1f} s")
EOF
}
trap 'say "interrupted"; pack; exit 1' INT TERM

say "budget ${BUDGET}s, device $DEVICE, $ITERS iterations, $WORKERS workers, rates $RATES, steps$STEPS"
# 1. the machine
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>&1
    echo "cpus: $(nproc)"; lscpu 2>/dev/null | grep -m1 "Model name"
    python3 -c "import sys, numpy, numba, torch, PIL; print(sys.version.split()[0], 'numpy', numpy.__version__, 'numba', numba.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'PIL', PIL.__version__)"
    python3 -c "import triton; print('triton', triton.__version__)"
    python3 -c "import constriction, pytorch_msssim; print('constriction and pytorch_msssim import')"
} >"$WORK/machine.log" 2>&1
cat "$WORK/machine.log" >>"$LOG"

# 2. numba warm-up on the CPU, and meanwhile the renderer micro-benchmark on the GPU
python3 -c "
import numpy as np; from PIL import Image
y, x = np.mgrid[0:64, 0:96]
img = np.stack([128 + 100 * np.sin(x / 9), 128 + 100 * np.cos(y / 7), (x * y) % 256], 2)
Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save('$WORK/tiny.png')"
step warmup 240 bash -c "python3 -m gipp_codec encode $WORK/tiny.png $WORK/tiny.gimg --bpp 1 --iterations 200 --device cpu --json && python3 -m gipp_codec decode $WORK/tiny.gimg $WORK/tiny_out.png" &
WARM=$!
if [ "$DEVICE" = cuda ] && wants bench; then
    step bench_gpu 150 python3 tools/bench_gpu.py --n 5000 10000 --json
fi
wait $WARM

# 3. the GPU tests; the Triton code search's first, on its own: if it fails, every encode
# here keeps the search on the CPU (QATConfig.code_search_on_gpu off) and the codec tests
# that would run it are left out, so one new kernel cannot cost the lease its encodes
TESTS_OK=1
SEARCH_QAT=()   # bench_rd's flags for the encodes
SEARCH_TOOL=()  # encode_profile's and gpu_kernel_profile's
CODEC_TESTS=()
if [ "$DEVICE" = cuda ]; then
    if ! step gpu_search_test 180 python3 -m pytest -p no:cacheprovider -q -m gpu tests/test_code_search_triton.py; then
        say "the Triton code search failed its GPU test: the encodes keep the search on the CPU"
        SEARCH_QAT=(--gimg-qat code_search_on_gpu=false)
        SEARCH_TOOL=(--cpu-search)
        CODEC_TESTS=(-k "not test_encode_on_cuda_decodes and not test_auto_device")
    fi
    step gpu_tests 240 python3 -m pytest -p no:cacheprovider -q -m gpu tests/test_render_triton.py tests/test_adam_triton.py tests/test_lsq_triton.py tests/test_rate_triton.py tests/test_gpu_codec.py "${CODEC_TESTS[@]}" || TESTS_OK=0
    # decoding on CUDA against every conformance vector: its own step, gating nothing; then
    # its speed against the CPU decoder and Pillow's WebP (tools/bench_decode.py --cuda)
    step gpu_decode_test 120 python3 -m pytest -p no:cacheprovider -q -m gpu tests/test_gpu_decode.py
    if wants bench; then
        step decode_gpu 120 python3 tools/bench_decode.py "$KODAK/kodim23.png" \
            benchmarks/files_session40/kodim23_05_b7c1233.gimg --cuda --repeats 30 --cli-repeats 3 \
            --json "$WORK/decode_gpu.json"
    fi
fi
if [ $TESTS_OK = 0 ]; then
    say "GPU tests failed: encodes on $DEVICE skipped"
    pack; exit 0
fi

# 4. one image, GPU then CPU
PAIR=(kodim23.png --codecs gimg --gimg-bpp "$PAIR_BPP" --gimg-iterations "$ITERS" --downscale "$DOWNSCALE" --decode-repeats 1 --gimg-warmup -q)
if wants pair; then
    (cd "$KODAK" && step pair_gpu 150 python3 "$REPO/tools/bench_rd.py" "${PAIR[@]}" "${SEARCH_QAT[@]}" --gimg-device "$DEVICE" --json "$WORK/pair_gpu.json")
    (cd "$KODAK" && step pair_cpu 200 python3 "$REPO/tools/bench_rd.py" "${PAIR[@]}" --gimg-device cpu --json "$WORK/pair_cpu.json")
fi

# 4b. where a GPU encode's time goes: the median time of one float and one QAT iteration
if [ "$DEVICE" = cuda ] && wants profile; then
    step profile 150 python3 tools/encode_profile.py "$KODAK/kodim23.png" --bpp "$PAIR_BPP" --iterations 1000 \
        --phases "${SEARCH_TOOL[@]}" --json "$WORK/encode_profile.json"
    # one code-search sweep on the CPU's cores against the Triton sweep (a file in the repo)
    [ ${#SEARCH_TOOL[@]} -eq 0 ] && step search_speed 90 python3 tools/part_speed.py benchmarks/files_session40/kodim23_05_b7c1233.gimg \
        "$KODAK/kodim23.png" --cuda --repeats 5 --json "$WORK/part_speed_cuda.json"
    # which kernels and host operations an iteration's time goes to (torch's profiler)
    step kernels 120 python3 tools/gpu_kernel_profile.py "$KODAK/kodim23.png" --bpp "$PAIR_BPP" --iterations 1000 \
        "${SEARCH_TOOL[@]}" --json "$WORK/kernel_profile.json"
    # 4c. the same with an older checkout's code, when one was carried in .gpu/base
    if [ -d "$REPO/.gpu/base/gipp_codec" ]; then
        (export PYTHONPATH=$WORK/site:$REPO/.gpu/base NUMBA_CACHE_DIR=$WORK/numba_cache_base
         step profile_base 200 python3 "$REPO/.gpu/base/tools/encode_profile.py" "$KODAK/kodim23.png" \
            --bpp "$PAIR_BPP" --iterations 1000 --phases --json "$WORK/encode_profile_base.json")
    fi
fi

# 5. every image on the GPU, WORKERS processes, rate by rate
worker() {  # worker INDEX: its images, every rate in turn
    local k=$1 mine="" i=0 im
    for im in $IMAGES; do [ $((i % WORKERS)) -eq "$k" ] && mine="$mine $im"; i=$((i + 1)); done
    [ -z "$mine" ] && return 0
    for r in $RATES; do
        mkdir -p "$WORK/files/$r"
        # shellcheck disable=SC2086
        (cd "$KODAK" && NUMBA_NUM_THREADS=2 OMP_NUM_THREADS=1 step "rd_${r}_w$k" 600 python3 "$REPO/tools/bench_rd.py" $mine \
            --codecs gimg --gimg-bpp "$r" --gimg-iterations "$ITERS" --gimg-device "$DEVICE" "${SEARCH_QAT[@]}" --downscale "$DOWNSCALE" \
            --decode-repeats 1 --gimg-warmup --gimg-keep "$WORK/files/$r" --json "$WORK/rd/rd_${r}_w$k.json" -q) || return 0
    done
}
if wants rd; then
    for k in $(seq 0 $((WORKERS - 1))); do worker "$k" & done
fi
wait
pack

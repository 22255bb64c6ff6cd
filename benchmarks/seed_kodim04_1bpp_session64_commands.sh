#!/bin/bash
# kodim04 at 1.0 bpp: seeds 1 and 2, the default (correlation) and b, to size the per-image seed spread
cd /work/shared/datasets/kodak
for s in 1 2; do
  for form in auto b; do
    PYTHONPATH=/tmp/wt64b NUMBA_CACHE_DIR=/tmp/wt64b/.numba python /tmp/wt64b/tools/bench_rd.py kodim04.png --codecs gimg --gimg-bpp 1 --gimg-iterations 5000 --gimg-qat covariance_form=$form --seed $s --decode-repeats 1 --json /work/main/runs/s64/seed_k04_1_${form}_s$s.json -q > /work/main/runs/s64/seed_k04_1_${form}_s$s.log 2>&1
  done
done
echo done > /work/main/runs/s64/seeds.done

"""Configuration of the fitting pipeline (representation) and of quantization-aware training.

Every schedule is a FRACTION of the iteration budget, so that a short run follows the
same shape as the paper's 50 000-iteration protocol (e.g. the paper grows every 5000 of
50 000 iterations: ``grow_every_frac = 0.1``). Two presets:

- ``FitConfig.paper()``: GaussianImage++ as published (DESIGN.md §1): Adam lr 0.018 on
  every attribute halved every 40 % of the run (20k of 50k), growth every 10 % with
  k = min(1000, Nmax - N), zero colour and initial covariance for new Gaussians,
  float warm-up 6000 of 50 000 iterations (12 %) before QAT. Like every fit it renders in
  render convention 2 (``render.convention``: the weight tapered to 0 at the 3-sigma edge),
  which the file records; the paper's renderer stops with a step there.
- ``FitConfig()``: our faster default; see the field comments and tools/convergence_sweep.py
  for the measurements behind each value that differs from the paper.
"""

import math
from dataclasses import asdict, dataclass, field, replace

from gipp_codec.errors import ConfigError
from gipp_codec.format.base_layer import MAX_BASE_CELLS, MAX_FACTOR_LOG2, MAX_SAMPLE_BITS, MIN_FACTOR_LOG2, grid_shape

DEFAULT_ITERATIONS = 5000
PAPER_ITERATIONS = 50_000
# QATConfig.high_rate_bpp: from this rate up bits_covariance_high_rate and
# base_samples_across_high_rate apply, where set (1.5: the finer base grid gains from there,
# BENCHMARKS.md §4, "A finer base layer from 1.5 bpp")
HIGH_RATE_BPP = 1.5
COLOR_HIGH_RATE_BPP = 0.25  # QATConfig.color_high_rate_bpp: from this rate up the colours take a bit more
# what a base layer's sample takes, for sizing it against a budget (Kodak's: 4.5 bits a
# sample at 6 bits, tools/base_layer_bits.py)
BASE_BITS_PER_SAMPLE = 5.0


INIT_POSITION_CHOICES = ("uniform", "gradient")  # FitConfig.init_positions
INIT_CAF_CHOICES = ("even", "density")  # FitConfig.init_caf
GROW_PIXEL_CHOICES = ("top", "sample")  # FitConfig.grow_pixels
GROW_ERROR_CHOICES = ("l1", "matched")  # FitConfig.grow_error
RECYCLE_RANKINGS = ("energy", "contrast", "removal", "removal_contrast")  # FitConfig.grow_recycle_by
MAX_PEAK_RADIUS = 64  # FitConfig.grow_peak_radius*: the largest radius, in pixels
POSITION_HOLD_CHOICES = ("initial", "image", "none")  # QATConfig.position_hold
COVARIANCE_FORMS = ("auto", "b", "correlation")  # QATConfig.covariance_form
RATE_CHANNEL_CHOICES = ("all", "covariance")  # QATConfig.rate_channels (rate_proxy.RATE_CHANNEL_SETS' keys)


@dataclass(frozen=True)
class QATConfig:
    """Quantization-aware training (LSQ+) settings; bit depths are per attribute group."""

    # x, y, uniform (paper 12); with position_steps_per_spacing set, the most the rule below
    # gives (the depth where the rule is off)
    bits_position: int = 12
    # the position depth by rule: the fewest bits (at most bits_position) whose step,
    # max(width, height) / 2**p, is at most 1/K of the Gaussians' mean spacing
    # sqrt(width * height / N) (N: the count asked for, or the rate model's count at the rate);
    # None: bits_position at every rate. 23 alone gives 11/11/11/12/12 bits on a Kodak-sized
    # image at 0.15 / 0.25 / 0.5 / 0.75 / 1.0 bpp, Gaussians about 17 / 13 / 9 / 7.3 / 6 px
    # apart (steps 0.375 px at 11 bits, 0.19 at 12; with the dense rule below, 11 at 0.75 and
    # 1.0 bpp too) and 10/10/10/11/11 at 384 x 256: where measured
    # (Kodak size at 0.15 / 0.25 / 0.5 / 1.0 bpp, 384 x 256 at 0.15 / 0.25), the best depths,
    # and the same as 24 gave with 6-bit colours (5-bit colours, below, put ~5 % more
    # Gaussians at a rate: 23.9 steps of 11 bits apart at 0.5 bpp, tools/lr_by_rate.py). On kodim01/08/15/23
    # against 12 bits: 11 bits +0.10 / +0.07 / +0.08 dB at 0.15 / 0.25 / 0.5 bpp (4, 4, 3 of
    # 4 up), -0.05 at 1.0 (1 of 4); 10 bits +0.01 / -0.07 dB against 11 at 0.15 / 0.25. On
    # all 24 Kodak images 11 bits +0.10 / +0.10 / +0.08 dB at 0.15 / 0.25 / 0.5 bpp (19 / 24
    # / 20 of 24 up); at 384 x 256 the rule's 10 bits beat 12 by +0.17 / +0.23 dB at 0.15 /
    # 0.25 bpp (8 of 8 Kodak images up), and 11 and 9 bits do not beat 10 (BENCHMARKS.md §4,
    # "The position depth by spacing")
    position_steps_per_spacing: float | None = 23.0
    # the rule's steps per spacing from position_dense_from Gaussians per pixel up (None:
    # position_steps_per_spacing there too). 16 gives 11 bits at 1.0 bpp on a Kodak-sized
    # image (17.2 steps apart) and keeps 12 at 2 bpp (24.7); on all 24 Kodak images 11 bits
    # at 1.0 bpp +0.01 dB (14 of 24 up) and MS-SSIM +0.0009 (22 of 24 up), 7 % more
    # Gaussians; 11 bits at 2 bpp (K 12) lost 0.20 dB (0 of 6 up) and 10 bits at 0.25 bpp
    # (K 16 there) 0.05 dB (7 of 24 up), so the sparse rule keeps 23 (BENCHMARKS.md §4,
    # "Eleven-bit positions at 1.0 bpp")
    position_steps_per_spacing_dense: float | None = 16.0
    # 0.013: just above Kodak's density at 0.5 bpp (0.0124, where K 23 and 16 both give 11
    # bits), so that 0.6 to 0.8 bpp on Kodak take 11 bits as 0.5 and 1.0 do, not K 23's 12.
    # At 0.75 bpp (0.018 per pixel) on all 24 Kodak images, 11 bits against 12: +0.04 dB
    # (18 of 24 up), MS-SSIM +0.0010 (23 of 24 up), 7 % more Gaussians; at 0.6 bpp (0.0146)
    # on the four CPU images +0.01 dB (2 of 4 up), MS-SSIM +0.0013 (4 of 4 up) (BENCHMARKS.md
    # §4, "Eleven-bit positions from 0.013 Gaussians per pixel" and "Eleven-bit positions at
    # 0.6 bpp"); until the fifty-third session 0.02
    position_dense_from: float = 0.013
    # log(a), b, log(c) (paper 10). 7 by measurement: a bit of covariance precision costs
    # the render less than the ~3 bits per Gaussian it takes buy in more Gaussians at the
    # same rate. 12/9/6 was ahead of 12/10/6 on all 10 points of 5 Kodak images; coarser
    # depths were held back by QAT pruning the Gaussians that rounding b made
    # non-positive-definite (12/8/6: kodim05 -0.48 dB at 0.5 bpp) until psd_safe (below)
    # kept them. Then, on kodim01/05/08/15/23, 12/8/6 was ahead of 12/9/6 on 19 of 20 points
    # and 12/7/6 ahead of 12/8/6 on 10 of 10 (0.15 and 0.5 bpp); 12/6/6 lost on 2 of 3
    # images. 12/7/6 over all 24 Kodak images against 12/9/6 at equal rate: +0.21 / +0.21 /
    # +0.18 / +0.10 dB at 0.15 / 0.25 / 0.5 / 1.0 bpp, up on 24 / 24 / 24 / 19 of 24
    # (BENCHMARKS.md §4, "All 24 Kodak images at 12/7/6"). FitConfig.paper() keeps 10
    bits_covariance: int = 7
    # the covariance depth at high_rate_bpp and above (None: bits_covariance at every rate).
    # The trade moves with the rate: 12/8/6 against 12/7/6 measured -0.12 / -0.08 / -0.07 dB
    # at 0.15 / 0.25 / 0.5 bpp on the five-image sweep, +0.00 dB at 1.0 bpp on all 24 Kodak
    # images (14 of 24 up), +0.02 dB at 1.5 bpp on kodim01/05/08/15/23 (MS-SSIM -0.0005) and
    # +0.07 dB at 2.0 bpp on those and kodim02/03/04/06/07 (7 of 10 up, MS-SSIM level), so 8
    # bits from 2.0 bpp until the fifty-second session ("The covariance depth at high
    # rates"). With today's encoder 7 bits against 8 at 2 bpp on all 24 Kodak images:
    # -0.00 dB (14 of 24 up), MS-SSIM +0.0002 (23 of 24 up), 4 % more Gaussians; at 3 bpp on
    # the four CPU images +0.29 dB (3 of 4 up), MS-SSIM +0.0005; so 7 at every rate
    # (BENCHMARKS.md §4, "Seven-bit covariance at 2 bpp and up")
    bits_covariance_high_rate: int | None = None
    high_rate_bpp: float = HIGH_RATE_BPP
    # r, g, b, uniform (paper 6) below color_high_rate_bpp. 5 by measurement at low rates: the
    # colour bit saved, ~2 bits per Gaussian, buys ~5 % more Gaussians. On all 24 Kodak
    # images 11/7/5 against 11/7/6: +0.04 / +0.05 / +0.05 dB at 0.15 / 0.25 / 0.5 bpp
    # (17 / 19 / 17 of 24 up); 12/7/5 against 12/7/6 +0.05 dB at 0.75 bpp on kodim01-08 (5
    # of 8 up), -0.03 dB at 1.0 bpp on all 24 (median -0.00, 12 of 24 up, MS-SSIM -0.0010;
    # BENCHMARKS.md §4, "5-bit colours below 1 bpp"); so 6 bits from 1.0 bpp. Since red and
    # blue are priced as residuals from green (``rate_color_residuals``) a colour step costs
    # fewer bits, and 6 bits pay from 0.5 bpp: 12/7/6 against 12/7/5 on all 24 Kodak images
    # +0.10 / +0.04 dB at 0.75 / 0.5 bpp (17 / 14 of 24 up, MS-SSIM +0.0008 / +0.0001), +0.01
    # dB at 0.25 (MS-SSIM -0.0003) (BENCHMARKS.md §4, "Six-bit colours from 0.5 bpp"). With
    # the base layer the colours are residuals around it, and 6 bits pay from 0.25 bpp: on
    # all 24 Kodak images +0.04 dB at 0.25 bpp (16 of 24 up, MS-SSIM +0.00003), and at 0.15
    # bpp +0.02 dB (12 of 24 up) but MS-SSIM -0.0010 (BENCHMARKS.md §4, "Six-bit colours
    # from 0.25 bpp")
    bits_color: int = 5
    # the colour depth at color_high_rate_bpp and above (None: bits_color at every rate). 7
    # bits lost to 6 on the four CPU Kodak images at 1.0 and 2 bpp (-0.12 and -0.08 dB: fewer
    # Gaussians for finer colours; BENCHMARKS.md §4); again with residual colours and the base
    # layer, on all 24 Kodak images -0.04 / -0.02 dB, the smooth images up a little ("Seven-bit
    # colours at 1.0 and 2 bpp again")
    bits_color_high_rate: int | None = 6
    color_high_rate_bpp: float = COLOR_HIGH_RATE_BPP
    # float warm-up fraction of the budget, then QAT (paper: 6000/50000 = 0.12). 0.8 since the
    # code search (below) finishes what QAT leaves: at 5000 iterations, 0.5 bpp, QAT from 80 %
    # gained +0.04 dB over 70 % on all 24 Kodak images (20 of 24 up), +0.01 dB at 0.15 bpp
    # (13 of 24), +0.09 dB at 1.0 bpp (21 of 24); before the search 80 % had lost 0.03 dB
    # (BENCHMARKS.md §4). With a rate term (search off) 0.8 and 0.7 measured level: +0.00 dB
    # on the four CPU images at 0.5 bpp, 12/10/6, rate_weight 0.5 (Adam at 0.999 / lr 0.5 then)
    start_frac: float = 0.8
    lr: float = 1e-3  # quantizers' own Adam (paper 1e-3)
    # the quantizers' Adam's epsilon (torch's default, the paper's). Unlike the fit's
    # (FitConfig.adam_eps) it measured level at 1e-14: -0.01 dB on the four CPU Kodak images
    # at 0.5 bpp (BENCHMARKS.md §4, "Adam's epsilon")
    adam_eps: float = 1e-8
    lr_halve_every_frac: float = 0.4  # quantizer lr halves every 40 % of the budget (paper 20k/50k)
    # LSQ+ range initialisation: "render" (minmax, then per group the clipping range whose
    # quantized render has the smallest error), "minmax", or "mse" (per channel, the clipping
    # range minimising the attributes' quantization MSE)
    init: str = "render"
    # the position ranges held while LSQ+ learns the rest (learning may widen a held range,
    # not shrink it): "image" (the image's own extent, [0, width] and [0, height]: margins
    # off the image may shrink, and a range the initialisation clipped inside the image is
    # widened back), "initial" (the ranges the initialisation chose), or "none". Unheld,
    # kodim16 at 12/10/6 ended with its y grid stopping 15 pixels above the image's bottom
    # edge; held ("initial"), +1.13 dB there and -0.01 dB on all 24 Kodak images at 12/7/6,
    # 0.5 bpp, but 2 of the 24 grids still stopped 1.7-1.8 px short. "image" against
    # "initial" with the rate term: +0.01 dB on all 24 at 0.5 bpp, no grid short
    # (BENCHMARKS.md §4)
    position_hold: str = "image"
    eval_every: int = 10  # best-state tracking interval during QAT (quantized render)
    # with a rate budget, the rate hook sizes the set again this far into QAT (fraction of
    # the QAT iterations; 0 = only at QAT start): QAT's pruning and its learned ranges
    # move the rate after the first sizing
    resize_frac: float = 0.5
    # with a rate budget, the rate hook aims this fraction over it: QAT and its pruning may
    # shrink the file a little after the hook, and the encoder trims the finished set to the
    # budget. From its second call on, the hook aims over by the fraction of Gaussians pruned
    # since its previous call when that is more (with plain rounding of b, at 0.5 bpp, 12/8/6
    # lost 13-32 % on kodim15 and kodim05, 12/9/6 11-13 % on kodim05, BENCHMARKS.md §4).
    # 0.01 measured -0.05 dB at 1.0 bpp and +0.01 at 0.5 on the four CPU Kodak images
    # (BENCHMARKS.md §4, "PSD-safe rounding again")
    hook_margin: float = 0.05
    # quantize the off-diagonal b so that the covariance stays positive definite (0 on b's
    # grid, b moved towards 0 where rounding breaks a*c > b*b). Plain rounding lets QAT's
    # pruning drop the small Gaussians, whose sqrt(a*c) is below b's step. With the fit's
    # Adam epsilon at 1e-14 the fit makes many more of them, and the Gaussians the mid-QAT
    # sizing adds shrink below b's step too: QAT pruned 86 % of those it added on kodim15
    # at 1.0 bpp, so files fell up to 4 % short of their rate. Keeping them: on the four
    # CPU Kodak images at 5000 iterations, +0.18 / +0.05 / +0.01 / +0.17 dB at 0.15 / 0.25 /
    # 0.5 / 1.0 bpp, every file within 0.6 % of its rate (BENCHMARKS.md §4, "PSD-safe
    # rounding again"). With Adam's 1e-8 it had measured 0.0-0.24 dB worse (10 000 iterations)
    psd_safe: bool = True
    # keep QAT's grid on values that the file's attribute mode 2 holds (format 1.5: each
    # scale binary16, each offset a binary16 count of steps; 32 bytes fewer a file): Adam
    # moves float32 master values, and each step's forward pass and every state kept use
    # their nearest such grid (``LSQPlus.round_compact_``)
    compact_grid: bool = True
    # how the file codes the off-diagonal b: "b" itself on one uniform grid (payload coding 2),
    # or "correlation", rho = b / sqrt(a c) on a grid inside +-0.999 (payload coding 3, format
    # 1.4), which keeps every covariance valid (psd_safe then has nothing to do) and gives small
    # Gaussians the orientation b's grid, set by the largest, rounds away; "auto": "b" below
    # correlation_from_bpp, "correlation" from it up (``covariance_form_at``, which
    # ``encode_with_report`` applies; where no rate is known, as in a bare ``fit_and_quantize``,
    # "auto" codes b). The correlation against b on all 24 Kodak images at equal rate: +0.05 /
    # +0.06 / +0.02 / +0.11 / +0.10 / +0.16 dB at 0.5 / 0.75 / 1.0 / 1.25 / 1.5 / 2 bpp, MS-SSIM
    # up at each (+0.00069 at 0.5); at 0.25 bpp +0.02 dB and MS-SSIM level, at 0.15 bpp -0.00 dB and
    # MS-SSIM -0.0016 (BENCHMARKS.md §4, "The off-diagonal coded as the correlation rho" and
    # "The correlation form as the default from 0.5 bpp"), so from 0.5 bpp up; grey images
    # gained nothing (+0.03 / -0.01 / +0.00 dB at 0.5 / 0.75 / 1.0 bpp, MS-SSIM -0.0004 /
    # -0.0003 / +0.0001, 6 / 7 / 4 of 24 up) and keep b
    covariance_form: str = "auto"
    correlation_from_bpp: float | None = 0.5
    # rate term in QAT: loss = mse + rate_weight * mse_now * bits / pixels (mse_now the
    # current MSE, held constant), bits from ``rate_proxy.attribute_bits`` (order-0 cost of
    # the quantized a, b, c and colours, red and blue as residuals from green with
    # ``rate_color_residuals``); the RD balance is at rate_weight ~ ln(10)/10 *
    # (dB per bpp) of the RD curve; 0 = off. The code search then weighs the same rate
    # (``code_search``). While the search was switched off by the term, every weight lost
    # PSNR at equal rate (12/10/6, 0.5: -0.62 dB on all 24 Kodak images); with the weighted
    # search, 0.5 at 12/7/6 measured +0.03 / +0.07 dB at 0.15 / 1.0 bpp on the four CPU
    # images and +0.07 dB at 0.5 bpp on all 24, 23 of 24 up (BENCHMARKS.md §4, "A rate
    # term with the rate-weighted code search")
    rate_weight: float = 0.5
    # above this rate (bits per pixel) the encoder scales the weight by rate_weight_until_bpp
    # / bpp, so that rate_weight * bpp, the term's pull on a Gaussian against its share of
    # the squared error, stays what it is at this rate (``rate_weight_at``; None: the same
    # weight at every rate). On the four CPU Kodak images at 1.0 bpp, weight 0.25 against
    # 0.5: +0.06 dB, each image up; at 0.5 bpp 0.25 lost (-0.02 dB) and 1.0 lost (-0.10 dB),
    # at 0.15 bpp 1.0 lost (-0.04 dB). On all 24 at 1.0 bpp: level (+0.01 dB, 14 of 24 up,
    # against a run that also held the initial position ranges). At 2 bpp on the four,
    # 0.125 against a fixed 0.5: +0.46 dB, each image up; 0.0625 there +0.02 dB, 0.25
    # -0.08 dB, and 0.25 below 0.5 bpp +0.01 dB at 0.15 and at 0.25 bpp, all level or
    # worse, so the schedule stays (BENCHMARKS.md §4); with the encoder of the forty-eighth
    # session the weight at 1.0 / 2 bpp halved -0.10 / -0.08 dB, doubled -0.08 / -0.01 dB
    # ("QAT's rate weight halved and doubled at 1.0 and 2 bpp")
    rate_weight_until_bpp: float | None = 0.5
    # the channels the rate term covers: "all" (a, b, c and the colours) or "covariance"
    # (a, b, c only, whose precision buys the least PSNR per bit, BENCHMARKS.md §4)
    rate_channels: str = "all"
    # price red and blue as the residuals of their prediction from green, as the coder codes
    # them (about 3 bits each on Kodak), instead of by their own histograms (about 5 bits),
    # in the rate term and in the code search (``rate_proxy``, ``code_search``): the term no
    # longer pulls a red towards the commonest reds but towards its green's. On all 24 Kodak
    # images +0.09 / +0.10 dB at 0.5 / 1.0 bpp at equal rate (23 / 24 of 24 up), MS-SSIM
    # +0.0006 / +0.0003 (BENCHMARKS.md §4, "Red and blue priced as residuals from green")
    rate_color_residuals: bool = True
    # after QAT, re-choose the colour codes by least squares for the finished positions and
    # shapes, rounded in stages (``color_refit``); kept only where the render gets closer.
    # Skipped when rate_weight > 0 with the colours in rate_channels (it ignores the rate),
    # so at the defaults; it runs with rate_weight=0 or rate_channels="covariance"
    refit_colors: bool = True
    # after that, sweeps of a greedy search over the integer codes themselves: each Gaussian in
    # turn takes the single one-step code move (any of its 8 channels) that most lowers the
    # clamped render's squared error (``code_search``); 0 = off. With a rate term it lowers
    # squared error + the term's weight times the bits of the channels the term covers
    # (priced as the term prices them, ``code_search.rate_tables``) instead (a rate-blind search would undo the term's savings). On two 0.5 bpp
    # files, 3 / 8 / 20 sweeps gained +0.33 / +0.40 / +0.44 dB (kodim15) and +0.14 / +0.18 /
    # +0.21 dB (kodim01), each sweep 1.0-1.4 s on two shared cores; a whole encode with 8
    # took 1.16x the time (BENCHMARKS.md §4 "The code search", §8). 16 against 8 on all 24
    # Kodak images: +0.01 / +0.01 / +0.01 / +0.03 / +0.06 dB at 0.15 / 0.25 / 0.5 / 1.0 / 2
    # bpp, MS-SSIM +0.0001 to +0.0002 (21 to 24 of 24 up), 1.05x the encode time at 1.0 bpp
    # ("Sixteen code-search sweeps as the default")
    code_search_sweeps: int = 16
    # a fit of fewer iterations than this runs proportionally fewer sweeps, at least
    # code_search_min_sweeps (``sweeps_for``), so that a short fit, asked for speed, is not
    # held up by a search that does not shrink with it: at 1000 iterations 4 sweeps instead
    # of 16 took 0.68x the encode time for -0.08 dB at 0.5 bpp, on four CPU Kodak images
    # (BENCHMARKS.md §8, "Code-search sweeps by the iteration count"); None: always
    # code_search_sweeps
    code_search_full_from: int | None = DEFAULT_ITERATIONS
    code_search_min_sweeps: int = 4
    # where CUDA serves (a CUDA device, triton installed), run the search's sweeps in Triton on
    # the GPU (``code_search_triton``, the same moves up to rounding) instead of numba on the
    # CPU's cores; False keeps them on the CPU (a fallback, and for comparisons)
    code_search_on_gpu: bool = True
    # multiplier of the Gaussians' own learning rates (FitConfig.lr_means, lr_covs, lr_colors,
    # on their schedule) during QAT; 1.0: the schedule as it is. On the four CPU Kodak images
    # at 0.5 bpp (lr 0.7 then) x0.5 lost 0.06 dB (0 of 4 up) and x2 gained +0.05 dB (3 of 4
    # up; BENCHMARKS.md §4, "The lr by density"); with lr_density_ref on, x2 measured -0.02 / -0.04 dB
    # at 0.15 / 0.5 bpp (BENCHMARKS.md §4, "11-bit positions at low rates")
    params_lr_scale: float = 1.0
    # the file's base layer (format 1.3, spec "BASE chunk"): a grid of block means of the
    # image, of base_bits bits a channel, which the decoder upsamples bilinearly and adds under
    # the Gaussians, so that they fit only what it misses; about base_samples_across samples
    # along the image's geometric-mean side (the block side F the power of two nearest to
    # sqrt(width * height) / base_samples_across, in 8..1024: 64 on Kodak); None: no base.
    # On all 24 Kodak images (64-pixel blocks, 6-bit samples, about 1.4 kbit a file) at equal
    # rate, +0.13 to +0.44 dB from 0.15 to 2 bpp, MS-SSIM up at every rate: BENCHMARKS.md §4,
    # "The base layer as the default"
    base_samples_across: float | None = 10.0
    # the base layer's samples across from high_rate_bpp up (None: base_samples_across at every
    # rate; no effect without a base layer). 20 (32-pixel blocks on Kodak, 24 x 16 samples)
    # against 10 at 2 bpp on all 24 Kodak images: +0.09 dB (22 of 24 up), MS-SSIM +0.00005; 40
    # on the four CPU images +0.17 dB against 20's +0.14; at 3 bpp 20 +0.05 dB on the four (3
    # of 4 up). At 1.5 bpp on all 24 +0.06 dB (20 of 24 up), MS-SSIM -0.00004, so from 1.5
    # bpp since the fifty-third session; at 1.0 bpp 32-pixel blocks measured +0.01 dB
    # (BENCHMARKS.md §4, "A finer base layer from 1.5 bpp", "A finer base layer from 2 bpp"
    # and "Tuning the base layer")
    base_samples_across_high_rate: float | None = 20.0
    base_bits: int = 6
    # with a rate budget, F doubles until the grid, at BASE_BITS_PER_SAMPLE a sample, takes at
    # most this share of it (none fits: no base): small images at low rates get a coarser base
    # (Kodak keeps 64 down to about 0.1 bpp)
    base_max_share: float = 0.04

    def depths(self) -> tuple[int, int, int]:
        """(position, covariance, colour) bit depths below ``color_high_rate_bpp`` and
        ``high_rate_bpp``."""
        return self.bits_position, self.bits_covariance, self.bits_color

    def position_depth(self, gaussians: float | None, width: int, height: int) -> int:
        """The position bit depth for ``gaussians`` Gaussians on a ``width`` x ``height`` image:
        the smallest p <= ``bits_position`` with max(width, height) / 2**p <= mean spacing /
        ``position_steps_per_spacing`` (mean spacing sqrt(width * height / gaussians); from
        ``position_dense_from`` Gaussians per pixel up, ``position_steps_per_spacing_dense``
        where set); ``bits_position`` when the rule is off or the count is unknown (None)."""
        k = self.position_steps_per_spacing
        if k is None or gaussians is None or gaussians <= 0:
            return self.bits_position
        if self.position_steps_per_spacing_dense is not None and gaussians >= self.position_dense_from * width * height:
            k = self.position_steps_per_spacing_dense
        spacing = math.sqrt(width * height / gaussians)
        need = math.ceil(math.log2(k * max(width, height) / spacing))
        return int(min(self.bits_position, max(1, need)))

    def depths_at(self, bpp: float | None) -> tuple[int, int, int]:
        """(position, covariance, colour) bit depths for a file of ``bpp`` bits per pixel:
        ``depths()``, with the covariance at ``bits_covariance_high_rate`` from
        ``high_rate_bpp`` up and the colours at ``bits_color_high_rate`` from
        ``color_high_rate_bpp`` up (None: the rate is unknown, ``depths()``)."""
        p, c, k = self.depths()
        if bpp is None:
            return p, c, k
        if self.bits_covariance_high_rate is not None and bpp >= self.high_rate_bpp:
            c = self.bits_covariance_high_rate
        if self.bits_color_high_rate is not None and bpp >= self.color_high_rate_bpp:
            k = self.bits_color_high_rate
        return p, c, k

    def rate_weight_at(self, bpp: float | None) -> float:
        """The rate term's weight for a file of ``bpp`` bits per pixel: ``rate_weight``, times
        ``rate_weight_until_bpp`` / bpp above that rate (None: the rate is unknown, or no
        fall: ``rate_weight``)."""
        until = self.rate_weight_until_bpp
        if until is None or bpp is None or bpp <= until:
            return self.rate_weight
        return self.rate_weight * until / bpp

    def codes_correlation(self) -> bool:
        """Whether a fit with this config codes b as the correlation (payload coding 3): only
        "correlation" does; "auto" is resolved to "b" or "correlation" by
        ``encode_with_report`` (``covariance_form_at``), and left as it is it codes b."""
        return self.covariance_form == "correlation"

    def covariance_form_at(self, bpp: float | None, grey: bool = False) -> str:
        """How a file of ``bpp`` bits per pixel codes the off-diagonal, "b" or "correlation":
        ``covariance_form``, or for "auto" "correlation" from ``correlation_from_bpp`` up and
        "b" below it, where no such rate is set, where the rate is unknown (None) and for a
        ``grey`` image (measured: no gain there, BENCHMARKS.md §4)."""
        if self.covariance_form != "auto":
            return self.covariance_form
        start = self.correlation_from_bpp
        return "correlation" if start is not None and bpp is not None and bpp >= start and not grey else "b"

    def base_samples_across_at(self, bpp: float | None) -> float | None:
        """The base layer's samples across for a file of ``bpp`` bits per pixel:
        ``base_samples_across``, or ``base_samples_across_high_rate`` from ``high_rate_bpp``
        up when both are set (None: no base layer; an unknown rate: ``base_samples_across``)."""
        across = self.base_samples_across
        if across is not None and self.base_samples_across_high_rate is not None and bpp is not None \
                and bpp >= self.high_rate_bpp:
            return self.base_samples_across_high_rate
        return across

    def base_factor_log2(self, width: int, height: int, budget_bits: float | None = None,
                         bpp: float | None = None) -> int | None:
        """log2 of the base layer's block side for a ``width`` x ``height`` image
        (``base_samples_across_at`` the rate ``bpp``; with a file budget of ``budget_bits``,
        coarser until the grid fits ``base_max_share`` of it), or None when there is no base
        layer."""
        across = self.base_samples_across_at(bpp)
        if across is None:
            return None
        f = round(math.log2(math.sqrt(width * height) / across))
        f = int(min(MAX_FACTOR_LOG2, max(MIN_FACTOR_LOG2, f)))
        while f < MAX_FACTOR_LOG2 and math.prod(grid_shape(width, height, f)) > MAX_BASE_CELLS:
            f += 1
        if budget_bits is None:
            return f
        while f <= MAX_FACTOR_LOG2:
            gh, gw = grid_shape(width, height, f)
            if 3 * gh * gw * BASE_BITS_PER_SAMPLE <= self.base_max_share * budget_bits:
                return f
            f += 1
        return None

    def sweeps_for(self, iterations: int) -> int:
        """The code search's sweeps for a fit of ``iterations``: ``code_search_sweeps`` from
        ``code_search_full_from`` iterations up (or when that is None, or the search is off),
        else that many times iterations / code_search_full_from, rounded, at least
        ``code_search_min_sweeps`` (and never more than ``code_search_sweeps``)."""
        full, sweeps = self.code_search_full_from, self.code_search_sweeps
        if full is None or sweeps == 0 or iterations >= full:
            return sweeps
        return min(sweeps, max(self.code_search_min_sweeps, round(sweeps * iterations / full)))

    def bits(self) -> tuple[int, ...]:
        """Bit depth of each of the 8 channels x, y, a, b, c, r, g, b."""
        p, c, k = self.depths()
        return (p, p, c, c, c, k, k, k)


@dataclass(frozen=True)
class FitConfig:
    """Every knob of the fit. Defaults are our faster variant; ``paper()`` is the published one."""

    # --- optimisation -------------------------------------------------------------
    # Measured (tools/convergence_sweep.py, kodim01/08/23 at 384x256, N=1250): positions and
    # covariance at 0.5 instead of 0.018 gave +7.6 dB at 1000 iterations and +4.3 dB at 3000;
    # 1.0 was slightly worse than 0.5; a higher colour lr did not help. With Adam's second
    # moment decaying at 0.9 (adam_beta2, below) 0.7 is better: on the four CPU Kodak images at
    # 0.5 bpp, 5000 iterations, 0.35 / 0.7 gave -0.18 / +0.14 dB against 0.5, each on every
    # image; 1.0 was +0.03 dB over 0.7, 1.4 only +0.01 over 0.5 (BENCHMARKS.md §4, "Adam's
    # second-moment decay")
    # (both at the density lr_density_ref and above; sparser fits scale them up, below)
    lr_means: float = 0.7  # Adam lr for positions, pixels (paper 0.018: <= 0.018 px/step)
    lr_covs: float = 0.7  # Adam lr for the effective covariance (a, b, c), px^2 (paper 0.018)
    lr_colors: float = 0.018  # Adam lr for colours (paper 0.018)
    # Gaussians per pixel from which up lr_means and lr_covs apply as given; a sparser fit, at
    # density d = N / (H * W) (N the count the fit aims at), scales both by
    # sqrt(lr_density_ref / d), its Gaussians' spacing against the reference spacing (None:
    # the same lr at every density). Sparse fits have larger Gaussians, which take larger
    # steps well: on the four CPU Kodak images at 5000 iterations a flat lr of 1.0 / 1.4
    # against 0.7 gained +0.07 / +0.10 dB at 0.15 bpp, 1.0 gained +0.07 dB at 0.5 bpp and
    # lost 0.15 dB at 1.0 bpp, where 0.5 was level; 0.024 (about Kodak's density at 1.0
    # bpp; lr 1.86 / 1.43 / 1.0 at 0.15 / 0.25 / 0.5 bpp) gained +0.12 / +0.11 / -0.02 dB,
    # 4 / 4 / 3 of 4 up; on all 24 Kodak images +0.08 / +0.06 / -0.03 dB, 17 / 16 / 10 of
    # 24 up (BENCHMARKS.md §4, "The lr by density")
    lr_density_ref: float | None = 0.024
    lr_schedule: str = "step"  # "step" (paper: halve every lr_halve_every_frac) or "cosine" (measured equal)
    lr_halve_every_frac: float = 0.4  # "step": halve every 40 % of the budget (20k/50k)
    # "step": the halving interval from init_dense_from Gaussians per pixel up (None:
    # lr_halve_every_frac at every density; no upper bound). 0.3 against 0.4 on all 24 Kodak
    # images: +0.03 / +0.02 / +0.11 dB at 0.5 / 1.0 / 2 bpp (19 / 16 / 22 of 24 up, MS-SSIM
    # within 0.0001), but on the four CPU images -0.04 / +0.00 dB at 0.15 / 0.25 bpp, below
    # 0.01 per pixel (BENCHMARKS.md §4, "The lr halved every 30 % from 0.01 Gaussians per
    # pixel as the default")
    lr_halve_every_frac_dense: float | None = 0.3
    lr_warmup_frac: float = 0.0  # "cosine": linear warm-up fraction
    lr_final_frac: float = 0.1  # "cosine": final lr as a fraction of the initial one
    # Adam's epsilon (torch's default and the paper's: 1e-8). The loss is a mean over the
    # H*W*3 values, so its gradients are tiny and shrink with the pixel count: fitting kodim15
    # (768x512) with 1e-8, the median RMS gradient (sqrt of Adam's v) of a covariance entry
    # was 0.8e-8 to 2.6e-8 and 26-54 % of them were below 1e-8, which shrank their steps
    # (tools/adam_gradient_scale.py). 1e-14 takes it out of the way: on the four CPU Kodak
    # images at 0.5 bpp, 5000 iterations, 1e-10 / 1e-12 / 1e-14 gave +0.21 / +0.15 / +0.25 dB
    # over 1e-8, each on every image; with it, lr 0.5 and 1.0 and adam_beta2 0.8 each lost
    # (BENCHMARKS.md §4, "Adam's epsilon")
    adam_eps: float = 1e-14
    adam_beta1: float = 0.9  # first-moment decay (torch's default, the paper's)
    # second-moment decay (torch's default and the paper's: 0.999). 0.9 by measurement: on
    # the four CPU Kodak images at 0.5 bpp (5000 iterations), 0.98 / 0.95 / 0.9 / 0.8 gave
    # +0.28 / +0.32 / +0.32 / +0.34 dB over 0.999, each on every image
    # (BENCHMARKS.md §4, "Adam's second-moment decay"). Presumably because the gradients
    # shrink as the fit converges, and a second moment that remembers ~1000 steps of larger
    # ones keeps Adam's steps well below the lr
    adam_beta2: float = 0.9
    # Adam's second moment for Gaussians added during the run: "zero" (a fresh Adam state,
    # whose first steps are the full lr once eps no longer damps them) or "median" (the
    # median of the other Gaussians' per entry, so their first steps are gentler). "median"
    # is not the default: on the four CPU Kodak images it gained +0.09 dB at 1.0 bpp, where
    # fewer of the Gaussians added in QAT were pruned, and lost 0.03 dB at 0.5 bpp
    # (BENCHMARKS.md §4, "All 24 Kodak images at Adam's epsilon 1e-14", the rate bullet)
    adam_new_rows: str = "zero"
    # per-Gaussian lr warm-up, in the Gaussian's own steps: its step is scaled by
    # min(1, age / adam_row_warmup) (0: none). New Gaussians otherwise take full-lr steps
    # from a fresh Adam state while the others' are damped by their history. Not the
    # default: 50 steps lost 0.12 dB at 0.5 bpp on the four CPU Kodak images and was level
    # at 1.0 bpp (BENCHMARKS.md §4, "PSD-safe rounding again")
    adam_row_warmup: int = 0
    # --- initialisation -----------------------------------------------------------
    # N0 = round(f * Nmax) (paper: f = 1/2), f = init_fraction_dense from init_dense_from up to
    # init_dense_until Gaussians per pixel (Nmax / (H*W)) and init_fraction elsewhere (None:
    # init_fraction at every density). Fewer at the start leaves more to the growth at the
    # largest errors: on the four CPU Kodak images 0.2 / 0.3 / 0.75 against 0.5 gave +0.23 /
    # +0.15 / -0.34 dB at 1.0 bpp (4 / 4 / 0 of 4 up), 0.3 +0.11 dB at 0.5 bpp and +0.01 at 0.15
    # bpp, where MS-SSIM fell 0.006 (BENCHMARKS.md §4, "How many Gaussians the fit starts
    # with"). On all 24 Kodak images 0.2 from 0.01 per pixel (between Kodak's densities at 0.25
    # bpp, <= 0.0067, and at 0.5 bpp, >= 0.012) gained PSNR but lost more in MS-SSIM, most on
    # textured images, so it is off (BENCHMARKS.md §4, "Starting dense fits from a fifth"). 0.35
    # on the four images: +0.13 / +0.19 dB at 0.5 / 1.0 bpp, MS-SSIM -0.0005 / -0.0004; on all
    # 24 +0.10 / +0.16 dB (21 / 21 of 24 up) but MS-SSIM -0.0024 / -0.0011, BD-rate against WebP
    # +11.6 % instead of +13.3 %, on MS-SSIM +33.3 % instead of +29.7 %: off too (BENCHMARKS.md
    # §4, "Starting dense fits from 0.35"). With the peaks (grow_peak_radius 2) on all 24: +0.12
    # / +0.17 dB, MS-SSIM -0.0020 / -0.0009, against WebP +9.5 % instead of +11.4 %, on MS-SSIM
    # +25.2 % instead of +22.7 % ("Starting dense fits from 0.35 with the peaks"): off alone.
    # With grow_peak_radius_dense 3 as well (both the default since the thirty-third session):
    # see that field
    init_fraction: float = 0.5
    init_fraction_dense: float | None = 0.35
    # the share below init_dense_from Gaussians per pixel (None: init_fraction there too), so
    # that sparse fits can start with fewer without changing fits above init_dense_until. 0.35
    # with grow_peak_radius_per_spacing 0.38 (radius 6 / 5 at 0.15 / 0.25 bpp on Kodak) against
    # N/2 with 0.33 (radius 5 / 4), on all 24 Kodak images: +0.06 / +0.07 dB (17 / 20 of 24
    # up), MS-SSIM +0.0009 / +0.0008 (16 / 14 of 24 up); BD-rate over 0.15-1.0 bpp against
    # WebP +11.1 % -> +10.3 %, on MS-SSIM +15.4 % -> +14.6 % (BENCHMARKS.md §4, "A 0.35 · N
    # start at the sparse rates as the default"). 0.35 with 0.33 gained more PSNR (+0.09 /
    # +0.16 dB) but lost MS-SSIM (-0.0025 / -0.0026), with 0.45 the other way round ("A 0.35 ·
    # N start at the sparse rates, with the wider peaks"); 0.25 with 0.38 +0.03 / +0.04 dB but
    # MS-SSIM -0.0017 / -0.0006 ("A 0.25 · N start at the sparse rates")
    init_fraction_sparse: float | None = 0.35
    init_dense_from: float = 0.01
    # the dense settings (init_fraction_dense, grow_peak_radius_dense) stop at this many
    # Gaussians per pixel (None: no upper bound), so that they apply from init_dense_from up to
    # and not including it. 0.035 lies between Kodak's densities at 1.0 bpp (0.024) and at 2
    # bpp (0.047): without it the dense settings cost 0.22 dB at 2 bpp on all 24 images (3 of
    # 24 up); with it 2 bpp fits as before them (BENCHMARKS.md §4, "An upper density for the
    # dense settings"). Below 1.25 bpp's 0.030 instead (0.028) on all 24: +0.10 dB at 1.25 bpp
    # (20 of 24 up) but MS-SSIM -0.0013 (2 of 24 up), so 0.035 stays ("The dense start and
    # growth at 1.25 bpp"); at 1.5 bpp the dense settings lost 0.12 dB for MS-SSIM +0.0009
    init_dense_until: float | None = 0.035
    # the dense start from init_denser_from Gaussians per pixel up to init_dense_until (None:
    # init_fraction_dense over the whole dense range; an init_denser_from at or below
    # init_dense_from puts it over the whole dense range). 0.25 against 0.35 on all 24 Kodak images: +0.05 dB at 1.0 bpp
    # (0.024 per pixel; 19 of 24 up) with MS-SSIM +0.0002 (15 of 24 up), but at 0.5 bpp
    # (0.013) +0.06 dB with MS-SSIM -0.0008 (8 of 24 up); so 0.02 lies between them, and the
    # merged BD-rate over 0.15-1.0 bpp against WebP goes +10.3 % -> +10.2 %, on MS-SSIM
    # +14.6 % -> +14.4 % (BENCHMARKS.md §4, "A 0.25 · N start at 1.0 bpp as the default")
    init_fraction_denser: float | None = 0.25
    init_denser_from: float = 0.02
    # where the N0 initial Gaussians go: "uniform" (paper: uniformly random over the image) or
    # "gradient" (random pixels drawn with probability init_uniform_share / pixels +
    # (1 - init_uniform_share) * |gradient| / sum |gradient|, a uniform offset inside the pixel).
    # "gradient" against "uniform" on all 24 Kodak images: +0.02 / +0.05 / +0.10 / +0.12 dB at
    # 0.15 / 0.25 / 0.5 / 1.0 bpp (14 / 17 / 18 / 19 of 24 up; MS-SSIM -0.0004 to -0.0008;
    # BENCHMARKS.md §4, "Initial positions by gradient"). init_uniform_share 0.6 measured no better at 0.15
    # bpp on kodim01/08/15/23
    init_positions: str = "gradient"
    init_uniform_share: float = 0.3
    caf: bool = True  # content-aware filter lp = min(H*W / (9*pi*N_now), caf_max)
    caf_max: float = 300.0
    # the initial Gaussians' CAF: "even" (the paper's lp above, the same for all) or "density"
    # (each its own: lp_i = min(1 / (9*pi*N0*p_i), caf_max), p_i the init density at its pixel,
    # so the area per Gaussian where it sits; the same as "even" for uniform positions).
    # "density" measured +0.01 dB at 0.5 bpp on the four CPU Kodak images (3 of 4 up), noise
    # (BENCHMARKS.md §4, "Each initial Gaussian's own CAF")
    init_caf: str = "even"
    # --- densification ------------------------------------------------------------
    # Measured: growing 5 % of Nmax every 2 % (Nmax reached at 20 %) was 0.2-0.3 dB worse than
    # filling up to Nmax at the first growth step (10 %) and refilling pruned ones afterwards.
    # Growing every 2.5 % of the budget instead of every 10 % (the paper's), so that the set
    # fills by 5 % and pruned Gaussians come back four times as often: on all 24 Kodak images
    # +0.03 / +0.02 / +0.05 / +0.19 / +0.15 dB at 0.15 / 0.25 / 0.5 / 1.0 / 2 bpp (level at
    # 0.25 at a second seed); every 5 % +0.12 and every 1 % +0.14 dB at 1.0 bpp (BENCHMARKS.md
    # §4, "Growth every 2.5 % of the run")
    grow_every_frac: float = 0.025  # grow every 2.5 % of the budget (paper 5000/50000 = 0.1)
    # below grow_every_min_until Gaussians per pixel, the growth interval in iterations is at
    # least grow_every_min (None: grow_every_frac alone), unless fewer than GROW_MIN_STEPS
    # growth steps would then fit before growth stops (the interval is then as long as lets
    # that many fit). 2.5 % of a 5000-iteration run is 125 iterations, so the default encoder
    # is unchanged; a shorter fit grew every 2.5 % of its own length (every 25 iterations at
    # 1000), too soon for the Gaussians added at one step to settle before the next. Denser
    # fits (smaller Gaussians) do not gain (BENCHMARKS.md §4, "A floor under the growth
    # interval of short fits")
    grow_every_min: int | None = 125
    grow_every_min_until: float | None = 0.02  # None: the floor at every density
    grow_stop_frac: float = 0.9  # no growth after this fraction (paper: refills until 0.9)
    grow_k: int | None = None  # absolute k per growth step (paper: 1000); None -> grow_k_frac
    grow_k_frac: float = 0.5  # k = grow_k_frac * Nmax per step when grow_k is None (0.5: fill at once)
    # at each growth step once the set is full, this share of Nmax is recycled: the least
    # important Gaussians (grow_recycle_by) are dropped and as many are added at the error's
    # peaks (0: none, the paper). At 2 % per step the float phase of a 5000-iteration run
    # recycles 2 % of N about 30 times (every 125 iterations). On all 24 Kodak images, with
    # "contrast" and a floor of 0.03: +0.05 / +0.09 / +0.06 / +0.16 / +0.11 dB at 0.15 / 0.25 /
    # 0.5 / 1.0 / 2 bpp (19 / 23 / 23 / 23 / 23 of 24 up), MS-SSIM +0.0001 / +0.0002 / -0.0001
    # / -0.0003 / -0.0000; BD-rate over 0.15-1.0 bpp against WebP -0.2 % -> -2.0 %, on MS-SSIM
    # +1.4 % as before (BENCHMARKS.md §4, "Recycling the least important Gaussians at each
    # growth step"; the floor is 0.01 since). At 1.0 bpp against 2 %: 1 % -0.02 dB (MS-SSIM
    # +0.0001), 4 % -0.01 dB (MS-SSIM -0.0004) ("Recycling 1 % and 4 % per step, and the floor
    # 0.01, at 1.0 bpp")
    grow_recycle_frac: float = 0.02
    # how the recycled ones are chosen: "energy" (the least rendered energy, |colour|^2 *
    # sqrt(det): prune.importance), "contrast" (that energy over the target's local
    # variance where the Gaussian sits plus recycle_variance_floor, in a box of the Gaussians'
    # mean spacing: prune.contrast_importance), which spares faint Gaussians in flat areas,
    # where MS-SSIM, normalising by the local contrast, sees them. On kodim01/08/15/23:
    # "energy" +0.14 dB at 0.25 bpp (2 %), +0.10 / +0.16 dB at 1.0 bpp (1 % / 3 %), MS-SSIM
    # -0.0008 / -0.0007 / -0.0011; "contrast" (2 %) with floors 0.0027 / 0.01 / 0.03
    # +0.02 / +0.06 / +0.09 dB at 0.25 bpp (MS-SSIM +0.0014 / +0.0011 / +0.0007) and
    # +0.02 / +0.06 / +0.11 dB at 1.0 bpp (MS-SSIM +0.0002 / +0.0003 / -0.0000).
    # "removal" ranks by how much the clamped squared error of the render (plus the base
    # layer) would grow if each Gaussian alone were removed (prune.removal_importance, the
    # encoder's trim cost), which sees overlap, the cut-off and the clamp that the energy
    # ignores; "removal_contrast" divides that by the local variance plus the floor, as
    # "contrast" does the energy (prune.removal_contrast_importance). Against "contrast" on
    # all 24 Kodak images: "removal_contrast" +0.02 / -0.00 / +0.02 / +0.01 / +0.01 / +0.02 /
    # +0.02 / +0.00 dB at 0.15 / 0.25 / 0.5 / 0.75 / 1.0 / 1.25 / 1.5 / 2 bpp (17 / 14 / 20 /
    # 16 / 14 / 17 / 14 / 13 of 24 up), MS-SSIM +0.00017 / +0.00016 / +0.00014 / +0.00020 /
    # +0.00004 / +0.00003 / +0.00002 / +0.00004; grey images +0.01 / +0.03 / +0.01 / +0.03 dB
    # at 0.25 / 0.5 / 0.75 / 1.0 bpp; at 1.10x the encode time (kodim15, 0.5 bpp: each
    # recycling step prices every Gaussian's footprint); "removal" on kodim01/08/15/23 +0.09 /
    # +0.08 dB at 0.25 / 0.5 bpp but MS-SSIM -0.0012 / -0.0013 (BENCHMARKS.md §4,
    # "Recycling by removal cost over the local variance as the default")
    grow_recycle_by: str = "removal_contrast"
    # the floor, the variance summed over the 3 channels of [0, 1] values. 0.01 against 0.03 on
    # all 24 Kodak images at 0.15 / 0.25 / 0.5 / 1.0 / 2 bpp: -0.00 / -0.02 / -0.03 / -0.03 /
    # -0.01 dB, MS-SSIM +0.0004 / +0.0006 / +0.0004 / +0.0004 / +0.0002 (15 / 19 / 19 / 20 /
    # 23 of 24 up); BD-rate over 0.15-1.0 bpp against WebP -2.0 % -> -1.5 % on PSNR and
    # +1.4 % -> +0.5 % on MS-SSIM, the MS-SSIM gain larger than the PSNR loss against each
    # peer (BENCHMARKS.md §4, "The recycling floor 0.01 as the default")
    recycle_variance_floor: float = 0.01
    # no recycling after this fraction of the run (1.0: at every growth step of a full set,
    # which stops at QAT's start), so that the last Gaussians added settle before QAT. 0.6 on
    # all 24 Kodak images at 1.0 / 0.25 bpp: +0.01 / +0.00 dB, MS-SSIM -0.0001 / -0.0004
    # (BENCHMARKS.md §4, "Recycling only until 60 % of the run")
    recycle_stop_frac: float = 1.0
    # the colour of a new Gaussian (at a growth step, also in place of recycled ones) below
    # new_color_until Gaussians per pixel: "zero" (paper) or "residual", new_color_gain times
    # the target minus the render at its pixel. The density is the fit's Nmax, the rate model's
    # first guess (encoder.predict_gaussians; tools/lr_by_rate.py). From new_color_until up
    # (None: never) new Gaussians start at 0. The full residual from 0.01 up to 0.02 per pixel
    # (the fifty-seventh session's first rule) on all 24 Kodak images: +0.05 / +0.04 dB at 0.5 /
    # 0.75 bpp, MS-SSIM -0.0002 / +0.00001; at 0.25 bpp on four +0.03 dB but MS-SSIM -0.0015
    # (BENCHMARKS.md §4, "New Gaussians coloured with the residual from 0.01 Gaussians per
    # pixel"). Half of it at every density below 0.02 (0.15 to 0.75 bpp on Kodak), on all 24:
    # +0.05 / +0.06 dB at 0.15 / 0.25 bpp against 0 (21 / 19 of 24 up) with MS-SSIM -0.0010 /
    # -0.0003, +0.03 / +0.03 dB at 0.5 / 0.75 bpp against the full residual (17 / 17 of 24 up)
    # with MS-SSIM +0.0003 / +0.0002; BD-rate over 0.15-1.0 bpp against WebP -2.2 % -> -3.1 %,
    # on MS-SSIM -2.2 % -> -2.5 %. A gain of 1.5 at 0.5 bpp lost 0.12 dB on four; half the
    # residual at 1.0 bpp (0.0254 per pixel) on four +0.03 dB but MS-SSIM -0.0003 (1 of 4 up),
    # so it stops at 0.02 (BENCHMARKS.md §4, "Half the residual as the new Gaussians' colour")
    new_color: str = "residual"
    new_color_until: float | None = 0.02
    new_color_gain: float = 0.5
    # "init": as at initialisation (paper); "error_scale": from the error spacing (with
    # recycling, on kodim01/08/15/23 +0.03 / -0.01 dB at 1.0 / 0.25 bpp, on all 24 Kodak
    # images -0.02 dB at 1.0 bpp: BENCHMARKS.md §4, "Recycling only until 60 % of the run")
    new_cov: str = "init"
    # which pixels get the new Gaussians: "top" (the paper: the k largest per-pixel errors) or
    # "sample" (k distinct pixels drawn with probability proportional to error ** grow_error_power).
    # "sample" at power 1 lost 0.64 dB at 0.5 bpp on the four CPU Kodak images, 0 of 4 up
    # (BENCHMARKS.md §4, "Each initial Gaussian's own CAF, and growth pixels drawn by the error")
    grow_pixels: str = "top"
    grow_error_power: float = 1.0
    # the error map growth takes its pixels from: "l1" (the paper: each pixel's L1 error) or
    # "matched" (the residual correlated with a small isotropic Gaussian, squared and summed
    # over the channels: how much a new Gaussian of that shape could lower the squared error
    # there, which ranks errors that are coherent over a few pixels above pixel noise). The
    # kernel's variance is grow_error_scale times a new Gaussian's mean initial variance
    # (1 + the CAF lp; at 0.1, sigma 1.0 / 0.8 / 0.6 / 0.5 px at 0.15 / 0.25 / 0.5 / 0.75 bpp on Kodak).
    # Against "l1" on all 24 Kodak images at 0.15 / 0.25 / 0.5 / 0.75 bpp: +0.02 / +0.02 / -0.01
    # / -0.01 dB (14 / 16 / 9 / 12 of 24 up, standard errors 0.008-0.017), MS-SSIM +0.0055 /
    # +0.0044 / +0.0016 / +0.0009 (23 / 20 / 23 / 22 of 24 up); BD-rate over 0.15-1.0 bpp on
    # MS-SSIM against WebP -2.5 % -> -6.4 %, AVIF +45.7 % -> +40.2 %, on PSNR within 0.1 point.
    # Scale 1 (sigma 2-2.6 px) cost 0.3-0.4 dB on four images, 0.15 about 0.04 dB, and the
    # squared error alone (no blur) was level on both metrics (BENCHMARKS.md §4, "Growth at the
    # peaks of the matched error")
    grow_error: str = "matched"
    grow_error_scale: float = 0.1
    # Gaussians per pixel from which growth takes "l1" whatever grow_error says (None: no
    # bound), as for new_color_until: 0.02 is 0.75 bpp's side of 1.0 bpp on Kodak.
    grow_error_until: float | None = 0.02
    # with grow_pixels="top": r > 0 takes the error's local peaks first (pixels whose error is
    # the largest within r pixels each way), so that the new Gaussians spread along an edge
    # and into textured areas instead of lining up on adjacent pixels; 0: the k largest (the
    # paper). "sample" ignores it. On the four CPU Kodak images r = 2 gave +0.06 / +0.17 /
    # +0.04 / +0.05 dB at 0.15 / 0.25 / 0.5 / 1.0 bpp with MS-SSIM +0.0024 / +0.0028 / +0.0016
    # / +0.0014; r = 1, 3 and 4 +0.01, -0.02 and -0.21 dB at 0.5 bpp (MS-SSIM +0.0004, +0.0028,
    # +0.0041). On all 24 images r = 2 gave +0.12 / +0.07 / +0.06 / +0.04 dB with MS-SSIM
    # +0.0038 / +0.0029 / +0.0020 / +0.0017; BD-rate against WebP +13.3 % -> +11.4 %, on
    # MS-SSIM +29.7 % -> +22.7 % (BENCHMARKS.md §4, "Growth at the error's local peaks"); at
    # 2 bpp -0.05 dB (6 of 24 up) with MS-SSIM +0.0013 on all 24 ("All 24 Kodak images at 2 bpp
    # with the peaks")
    grow_peak_radius: int = 2
    # the radius from init_dense_from up to init_dense_until Gaussians per pixel (None:
    # grow_peak_radius at every density), so that dense fits can spread their growth wider than
    # sparse ones. 3 with init_fraction_dense 0.35 against r = 2 from N/2, on all 24 Kodak
    # images (0.5 and 1.0 bpp are dense, 0.15 and 0.25 not): +0.08 / -0.09 dB at 0.5 / 1.0 bpp
    # (17 / 9 of 24 up), MS-SSIM +0.0012 / +0.0017 (20 / 22 of 24 up); BD-rate over 0.15-1.0 bpp
    # against WebP +11.4 % -> +10.6 %, on MS-SSIM +22.7 % -> +18.8 %, better against every peer
    # on both (BENCHMARKS.md §4, "Dense fits from 0.35 with growth peaks of radius 3"). At 2 bpp
    # they cost 0.22 dB (3 of 24 up) for MS-SSIM +0.0005, so they stop at init_dense_until.
    # Radius 2 here at 1.25 bpp (0.030 per pixel) on all 24: +0.18 dB (24 of 24 up) but MS-SSIM
    # -0.0020 (2 of 24 up; -0.45 dB on -10 log10(1 - MS-SSIM)), at 1.0 bpp on the four CPU
    # images +0.08 dB, MS-SSIM -0.0021: kept at 3 ("The dense start and growth at 1.25 bpp")
    grow_peak_radius_dense: int | None = 3
    # outside the dense range the radius is at least this share of the Gaussians' mean spacing
    # sqrt(H*W / Nmax) in pixels, rounded half to even (None: grow_peak_radius alone), so that
    # sparse fits, whose Gaussians lie further apart, spread their growth further. On Kodak
    # 0.33 gives radius 5 / 4 at 0.15 / 0.25 bpp and leaves 0.5-2 bpp as they were; on all 24
    # images against r = 2: +0.01 / -0.05 dB with MS-SSIM +0.0061 / +0.0045 (24 of 24 up at
    # both); BD-rate over 0.15-1.0 bpp against WebP +10.6 % -> +11.1 %, on MS-SSIM +18.8 % ->
    # +15.4 % (BENCHMARKS.md §4, "Wider growth peaks at the sparse rates"). 0.38 (radius 6 / 5
    # on Kodak, 2 at 2 bpp as before) with init_fraction_sparse 0.35 since the thirty-sixth
    # session: see that field. 0.42 since the fifty-seventh session: radius 7 at 0.15 bpp on
    # Kodak (0.42 * 16.3), 5 at 0.25 (0.42 * 12.9) and 2 at 1.5 / 2 bpp as before. Radius 7 at
    # 0.15 bpp on all 24: -0.02 dB (standard error 0.023, 8 of 24 up) for MS-SSIM +0.0028 (20
    # of 24 up, +0.10 dB on -10 log10(1 - MS-SSIM)); BD-rates over 0.15-1.0 bpp within 0.3
    # points. Radius 6 at 0.25 bpp (0.45) cost 0.06 dB for +0.0029 and the PSNR BD-rate 0.6
    # points against WebP, so the share stops short of it (BENCHMARKS.md §4, "Radius-7 sparse
    # peaks at 0.15 bpp as the default")
    grow_peak_radius_per_spacing: float | None = 0.42
    # the radius from init_dense_from up to (not including) grow_peak_radius_lower_until
    # Gaussians per pixel, in place of grow_peak_radius_dense (None: grow_peak_radius_dense over
    # the whole dense range). The density is the fit's Nmax, the rate model's first guess
    # (encoder.predict_gaussians; tools/lr_by_rate.py), as for the other dense settings. 4
    # against 3 at 0.5 bpp (0.0124 per pixel on Kodak): on all 24 colour Kodak images -0.05 dB
    # (10 of 24 up) with MS-SSIM +0.0033 (21 of 24 up), BD-rate over 0.15-1.0 bpp against WebP
    # -1.9 % -> -1.6 %, on MS-SSIM -0.0 % -> -2.2 % (better against every peer on MS-SSIM);
    # on all 24 grey copies -0.04 dB (11 of 24 up), MS-SSIM +0.0034 (23 of 24 up), grey BD-rate
    # on MS-SSIM against JPEG +8.2 % -> +1.6 % (BENCHMARKS.md §4, "Radius-4 growth peaks at 0.5
    # bpp's densities for every image", "... for grey images ..."). On grey images at 0.75 bpp
    # (0.0188) -0.18 dB (0 of 24 up), MS-SSIM +0.0020, at 1.0 bpp (0.0254) -0.16 dB, MS-SSIM
    # +0.0005: so it stops at 0.015. (In the thirty-seventh session, on that default, radius 4
    # at 0.5 bpp had cost colour images 0.09-0.22 dB on four images.)
    grow_peak_radius_lower_dense: int | None = 4
    grow_peak_radius_lower_until: float = 0.015
    # --- pruning ------------------------------------------------------------------
    prune_every: int = 100  # PSD pruning interval, iterations (paper 100); not scaled
    prune_offscreen: bool = True  # also drop Gaussians whose 3-sigma box misses the image
    # --- bookkeeping --------------------------------------------------------------
    eval_every: int = 20  # PSNR of the clamped render for best-state tracking / history
    # --- coarse-to-fine -----------------------------------------------------------
    # the first coarse_frac of the budget (float phase only) trains on the image at half
    # resolution (2x2 means), rendering the Gaussians scaled by 1/2: a quarter of the pixels.
    # Off by default: 0.1 at 5000 iterations gave +0.00 dB over all 24 Kodak images at 0.5
    # bpp but -0.05 and -0.04 dB on the four CPU images at 0.15 and 1.0 bpp, and side by
    # side 0.99x the encode time: nothing saved (BENCHMARKS.md §4, §8)
    coarse_frac: float = 0.0
    iterations: int = DEFAULT_ITERATIONS  # used when fit_image(iterations=None)
    qat: QATConfig = field(default_factory=QATConfig)

    @classmethod
    def paper(cls) -> "FitConfig":
        """The GaussianImage++ protocol as published (DESIGN.md §1)."""
        return cls(
            lr_means=0.018,
            lr_covs=0.018,
            lr_colors=0.018,
            lr_density_ref=None,
            lr_schedule="step",
            lr_halve_every_frac=0.4,
            lr_halve_every_frac_dense=None,
            grow_every_frac=0.1,
            grow_every_min=None,
            grow_stop_frac=0.9,
            grow_k=1000,
            grow_recycle_frac=0.0,
            new_color="zero",
            new_cov="init",
            init_positions="uniform",
            init_fraction=0.5,
            init_fraction_dense=None,
            init_fraction_denser=None,
            init_fraction_sparse=None,
            init_caf="even",
            grow_pixels="top",
            grow_error="l1",
            grow_peak_radius=0,
            grow_peak_radius_dense=None,
            grow_peak_radius_lower_dense=None,
            grow_peak_radius_per_spacing=None,
            prune_offscreen=False,
            coarse_frac=0.0,
            adam_beta1=0.9,
            adam_beta2=0.999,
            adam_eps=1e-8,
            iterations=PAPER_ITERATIONS,
            qat=QATConfig(bits_covariance=10, bits_covariance_high_rate=None, position_steps_per_spacing=None,
                          bits_color=6, bits_color_high_rate=None, start_frac=0.12, init="minmax",
                          refit_colors=False, code_search_sweeps=0, psd_safe=False, rate_weight=0.0,
                          base_samples_across=None, covariance_form="b", compact_grid=False),
        )

    def is_dense(self, n_max: int, pixels: int) -> bool:
        """Whether ``n_max`` Gaussians on ``pixels`` pixels are from init_dense_from up to (not
        including) init_dense_until per pixel."""
        density = n_max / pixels  # a quotient, so that 350 / 10_000 == 0.035 exactly
        below_top = self.init_dense_until is None or density < self.init_dense_until
        return density >= self.init_dense_from and below_top

    def init_fraction_at(self, n_max: int, pixels: int) -> float:
        """The share of ``n_max`` Gaussians a fit of an image of ``pixels`` starts with."""
        if self.init_fraction_dense is not None and self.is_dense(n_max, pixels):
            if self.init_fraction_denser is not None and n_max / pixels >= self.init_denser_from:
                return self.init_fraction_denser
            return self.init_fraction_dense
        if self.init_fraction_sparse is not None and n_max / pixels < self.init_dense_from:
            return self.init_fraction_sparse
        return self.init_fraction

    def lr_halve_every_frac_at(self, n_max: int, pixels: int) -> float:
        """The "step" schedule's halving interval, as a share of the budget, for a fit of
        ``n_max`` Gaussians to ``pixels`` pixels."""
        if self.lr_halve_every_frac_dense is not None and n_max / pixels >= self.init_dense_from:
            return self.lr_halve_every_frac_dense
        return self.lr_halve_every_frac

    def new_color_at(self, n_max: int, pixels: int) -> str:
        """How a fit of ``n_max`` Gaussians to ``pixels`` pixels colours the Gaussians it adds:
        "zero" or "residual" (``new_color_gain`` times the residual at their pixels)."""
        if self.new_color_until is not None and n_max / pixels >= self.new_color_until:
            return "zero"
        return self.new_color

    def grow_error_at(self, n_max: int, pixels: int) -> str:
        """The error map ("l1" or "matched") a fit of ``n_max`` Gaussians to ``pixels`` pixels
        grows from."""
        if self.grow_error_until is not None and n_max / pixels >= self.grow_error_until:
            return "l1"
        return self.grow_error

    def grow_every_min_at(self, n_max: int, pixels: int) -> int | None:
        """The floor (iterations) under the growth interval of a fit of ``n_max`` Gaussians to
        ``pixels`` pixels (None: none)."""
        if self.grow_every_min_until is not None and n_max / pixels >= self.grow_every_min_until:
            return None
        return self.grow_every_min

    def grow_peak_radius_at(self, n_max: int, pixels: int) -> int:
        """The growth's peak radius for a fit of ``n_max`` Gaussians to ``pixels`` pixels."""
        if (self.grow_peak_radius_lower_dense is not None and self.is_dense(n_max, pixels)
                and n_max / pixels < self.grow_peak_radius_lower_until):
            return self.grow_peak_radius_lower_dense
        if self.grow_peak_radius_dense is not None and self.is_dense(n_max, pixels):
            return self.grow_peak_radius_dense
        if self.grow_peak_radius_per_spacing is None:
            return self.grow_peak_radius
        spacing = math.sqrt(pixels / n_max)  # pixels between neighbouring Gaussians, on average
        return max(self.grow_peak_radius, min(MAX_PEAK_RADIUS, round(self.grow_peak_radius_per_spacing * spacing)))

    def replace(self, **changes) -> "FitConfig":
        """A copy with ``changes`` applied (validated)."""
        cfg = replace(self, **changes)
        cfg.validate()
        return cfg

    def with_qat(self, **changes) -> "FitConfig":
        """A copy whose ``qat`` has ``changes`` applied (validated)."""
        return self.replace(qat=replace(self.qat, **changes))

    def to_dict(self) -> dict:
        """Plain-data view (for JSON reports)."""
        return asdict(self)

    def validate(self) -> None:
        """Raise ConfigError on any out-of-range or inconsistent value."""
        def pos(name, v):
            if not (v > 0):
                raise ConfigError(f"FitConfig.{name} must be > 0, got {v!r}")

        def finite_positive(v) -> bool:
            return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v > 0

        def frac(name, v, lo_open=True):
            if not (0.0 <= v <= 1.0) or (lo_open and v == 0.0):
                raise ConfigError(f"FitConfig.{name} must be in {'(0' if lo_open else '[0'}, 1], got {v!r}")

        if self.lr_density_ref is not None:
            if not math.isfinite(self.lr_density_ref):
                raise ConfigError(f"FitConfig.lr_density_ref must be None or a finite number > 0, got {self.lr_density_ref!r}")
            pos("lr_density_ref", self.lr_density_ref)
        for name in ("lr_means", "lr_covs", "lr_colors", "adam_eps", "caf_max"):
            pos(name, getattr(self, name))
        for name in ("adam_beta1", "adam_beta2"):
            if not (0.0 <= getattr(self, name) < 1.0):
                raise ConfigError(f"FitConfig.{name} must be in [0, 1), got {getattr(self, name)!r}")
        if isinstance(self.adam_row_warmup, bool) or not isinstance(self.adam_row_warmup, int) \
                or self.adam_row_warmup < 0:
            raise ConfigError(f"FitConfig.adam_row_warmup must be an integer >= 0, got {self.adam_row_warmup!r}")
        if self.adam_new_rows not in ("zero", "median"):
            raise ConfigError(f"FitConfig.adam_new_rows must be 'zero' or 'median', got {self.adam_new_rows!r}")
        if self.lr_schedule not in ("step", "cosine"):
            raise ConfigError(f"FitConfig.lr_schedule must be 'step' or 'cosine', got {self.lr_schedule!r}")
        frac("lr_halve_every_frac", self.lr_halve_every_frac)
        if self.lr_halve_every_frac_dense is not None:
            frac("lr_halve_every_frac_dense", self.lr_halve_every_frac_dense)
        frac("lr_warmup_frac", self.lr_warmup_frac, lo_open=False)
        frac("lr_final_frac", self.lr_final_frac, lo_open=False)
        frac("init_fraction", self.init_fraction)
        for name in ("init_fraction_dense", "init_fraction_denser", "init_fraction_sparse"):
            if getattr(self, name) is not None:
                frac(name, getattr(self, name))
        if not (math.isfinite(self.init_dense_from) and self.init_dense_from > 0):
            raise ConfigError(f"FitConfig.init_dense_from must be a finite number > 0, got {self.init_dense_from!r}")
        until = self.init_dense_until
        if until is not None and not (math.isfinite(until) and until > self.init_dense_from):
            raise ConfigError("FitConfig.init_dense_until must be None or a finite number above "
                              f"init_dense_from ({self.init_dense_from!r}), got {until!r}")
        if not (math.isfinite(self.init_denser_from) and self.init_denser_from > 0):
            raise ConfigError(f"FitConfig.init_denser_from must be a finite number > 0, got {self.init_denser_from!r}")
        if self.init_positions not in INIT_POSITION_CHOICES:
            raise ConfigError(f"FitConfig.init_positions must be one of {INIT_POSITION_CHOICES}, got {self.init_positions!r}")
        frac("init_uniform_share", self.init_uniform_share, lo_open=False)
        if self.init_caf not in INIT_CAF_CHOICES:
            raise ConfigError(f"FitConfig.init_caf must be one of {INIT_CAF_CHOICES}, got {self.init_caf!r}")
        if self.grow_pixels not in GROW_PIXEL_CHOICES:
            raise ConfigError(f"FitConfig.grow_pixels must be one of {GROW_PIXEL_CHOICES}, got {self.grow_pixels!r}")
        if not (math.isfinite(self.grow_error_power) and self.grow_error_power > 0):
            raise ConfigError(f"FitConfig.grow_error_power must be a finite number > 0, got {self.grow_error_power!r}")
        if self.grow_error not in GROW_ERROR_CHOICES:
            raise ConfigError(f"FitConfig.grow_error must be one of {GROW_ERROR_CHOICES}, got {self.grow_error!r}")
        radii = {"grow_peak_radius": self.grow_peak_radius}
        if self.grow_peak_radius_dense is not None:
            radii["grow_peak_radius_dense"] = self.grow_peak_radius_dense
        if self.grow_peak_radius_lower_dense is not None:
            radii["grow_peak_radius_lower_dense"] = self.grow_peak_radius_lower_dense
        for name, radius in radii.items():
            if not (isinstance(radius, int) and not isinstance(radius, bool) and 0 <= radius <= MAX_PEAK_RADIUS):
                raise ConfigError(f"FitConfig.{name} must be an integer from 0 to {MAX_PEAK_RADIUS}, got {radius!r}")
        lower_until = self.grow_peak_radius_lower_until
        if not (isinstance(lower_until, (int, float)) and math.isfinite(lower_until) and lower_until > 0):
            raise ConfigError(f"FitConfig.grow_peak_radius_lower_until must be a finite number > 0, got {lower_until!r}")
        share = self.grow_peak_radius_per_spacing
        if share is not None and not (math.isfinite(share) and share > 0):
            raise ConfigError("FitConfig.grow_peak_radius_per_spacing must be None or a finite number > 0, "
                              f"got {share!r}")
        frac("grow_every_frac", self.grow_every_frac)
        if self.grow_every_min is not None and not (isinstance(self.grow_every_min, int)
                                                    and not isinstance(self.grow_every_min, bool)
                                                    and self.grow_every_min >= 1):
            raise ConfigError(f"FitConfig.grow_every_min must be None or an integer >= 1, got {self.grow_every_min!r}")
        if self.grow_every_min_until is not None and not finite_positive(self.grow_every_min_until):
            raise ConfigError("FitConfig.grow_every_min_until must be None or a finite number > 0, "
                              f"got {self.grow_every_min_until!r}")
        frac("grow_stop_frac", self.grow_stop_frac, lo_open=False)
        frac("coarse_frac", self.coarse_frac, lo_open=False)
        if self.grow_k is not None and self.grow_k < 1:
            raise ConfigError(f"FitConfig.grow_k must be >= 1 or None, got {self.grow_k!r}")
        frac("grow_k_frac", self.grow_k_frac)
        frac("grow_recycle_frac", self.grow_recycle_frac, lo_open=False)
        frac("recycle_stop_frac", self.recycle_stop_frac, lo_open=False)
        if self.grow_recycle_by not in RECYCLE_RANKINGS:
            raise ConfigError(f"FitConfig.grow_recycle_by must be one of {', '.join(map(repr, RECYCLE_RANKINGS))}, "
                              f"got {self.grow_recycle_by!r}")
        if not (math.isfinite(self.recycle_variance_floor) and self.recycle_variance_floor > 0):
            raise ConfigError("FitConfig.recycle_variance_floor must be a finite number > 0, "
                              f"got {self.recycle_variance_floor!r}")
        if self.new_color not in ("zero", "residual"):
            raise ConfigError(f"FitConfig.new_color must be 'zero' or 'residual', got {self.new_color!r}")
        if self.new_color_until is not None and not finite_positive(self.new_color_until):
            raise ConfigError("FitConfig.new_color_until must be None or a finite number > 0, "
                              f"got {self.new_color_until!r}")
        if not finite_positive(self.new_color_gain):
            raise ConfigError(f"FitConfig.new_color_gain must be a finite number > 0, got {self.new_color_gain!r}")
        if not finite_positive(self.grow_error_scale):
            raise ConfigError(f"FitConfig.grow_error_scale must be a finite number > 0, got {self.grow_error_scale!r}")
        if self.grow_error_until is not None and not finite_positive(self.grow_error_until):
            raise ConfigError("FitConfig.grow_error_until must be None or a finite number > 0, "
                              f"got {self.grow_error_until!r}")
        if self.new_cov not in ("init", "error_scale"):
            raise ConfigError(f"FitConfig.new_cov must be 'init' or 'error_scale', got {self.new_cov!r}")
        for name in ("prune_every", "eval_every", "iterations"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"FitConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        q = self.qat
        for name, b in (("bits_position", q.bits_position), ("bits_covariance", q.bits_covariance),
                        ("bits_color", q.bits_color)):
            if not isinstance(b, int) or not (1 <= b <= 16):
                raise ConfigError(f"QATConfig.{name} must be an integer in 1..16, got {b!r}")
        for name in ("position_steps_per_spacing", "position_steps_per_spacing_dense"):
            k = getattr(q, name)
            if k is not None and not finite_positive(k):
                raise ConfigError(f"QATConfig.{name} must be None or a finite number > 0, got {k!r}")
        pos("qat.position_dense_from", q.position_dense_from)
        for name in ("bits_covariance_high_rate", "bits_color_high_rate"):
            high = getattr(q, name)
            if high is not None and (isinstance(high, bool) or not isinstance(high, int) or not (1 <= high <= 16)):
                raise ConfigError(f"QATConfig.{name} must be None or an integer in 1..16, got {high!r}")
        pos("qat.high_rate_bpp", q.high_rate_bpp)
        pos("qat.color_high_rate_bpp", q.color_high_rate_bpp)
        if not (0.0 <= q.start_frac < 1.0):
            raise ConfigError(f"QATConfig.start_frac must be in [0, 1), got {q.start_frac!r}")
        pos("qat.lr", q.lr)
        pos("qat.params_lr_scale", q.params_lr_scale)
        pos("qat.adam_eps", q.adam_eps)
        frac("qat.lr_halve_every_frac", q.lr_halve_every_frac)
        if not (0.0 <= q.hook_margin < 1.0):
            raise ConfigError(f"QATConfig.hook_margin must be in [0, 1), got {q.hook_margin!r}")
        if not (0.0 <= q.resize_frac < 1.0):
            raise ConfigError(f"QATConfig.resize_frac must be in [0, 1), got {q.resize_frac!r}")
        if not (isinstance(q.rate_weight, (int, float)) and math.isfinite(q.rate_weight) and q.rate_weight >= 0):
            raise ConfigError(f"QATConfig.rate_weight must be a finite number >= 0, got {q.rate_weight!r}")
        if q.rate_weight_until_bpp is not None:
            pos("qat.rate_weight_until_bpp", q.rate_weight_until_bpp)
        if q.rate_channels not in RATE_CHANNEL_CHOICES:
            raise ConfigError(f"QATConfig.rate_channels must be one of {RATE_CHANNEL_CHOICES}, got {q.rate_channels!r}")
        if q.position_hold not in POSITION_HOLD_CHOICES:
            raise ConfigError(f"QATConfig.position_hold must be one of {POSITION_HOLD_CHOICES}, got {q.position_hold!r}")
        if q.init not in ("render", "minmax", "mse"):
            raise ConfigError(f"QATConfig.init must be 'render', 'minmax' or 'mse', got {q.init!r}")
        if not isinstance(q.rate_color_residuals, bool):
            raise ConfigError(f"QATConfig.rate_color_residuals must be True or False, got {q.rate_color_residuals!r}")
        if not isinstance(q.code_search_on_gpu, bool):
            raise ConfigError(f"QATConfig.code_search_on_gpu must be True or False, got {q.code_search_on_gpu!r}")
        if q.covariance_form not in COVARIANCE_FORMS:
            raise ConfigError(f"QATConfig.covariance_form must be one of {COVARIANCE_FORMS}, got {q.covariance_form!r}")
        if q.correlation_from_bpp is not None:
            pos("qat.correlation_from_bpp", q.correlation_from_bpp)
        if not isinstance(q.code_search_sweeps, int) or q.code_search_sweeps < 0:
            raise ConfigError(f"QATConfig.code_search_sweeps must be an integer >= 0, got {q.code_search_sweeps!r}")
        full = q.code_search_full_from
        if full is not None and (isinstance(full, bool) or not isinstance(full, int) or full < 1):
            raise ConfigError(f"QATConfig.code_search_full_from must be None or an integer >= 1, got {full!r}")
        if isinstance(q.code_search_min_sweeps, bool) or not isinstance(q.code_search_min_sweeps, int) \
                or q.code_search_min_sweeps < 1:
            raise ConfigError(f"QATConfig.code_search_min_sweeps must be an integer >= 1, got {q.code_search_min_sweeps!r}")
        if q.eval_every < 1:
            raise ConfigError(f"QATConfig.eval_every must be >= 1, got {q.eval_every!r}")
        for name in ("base_samples_across", "base_samples_across_high_rate"):
            across = getattr(q, name)
            if across is not None and (isinstance(across, bool) or not isinstance(across, (int, float))
                                       or not (math.isfinite(across) and across > 0)):
                raise ConfigError(f"QATConfig.{name} must be None or a finite number > 0, got {across!r}")
        if isinstance(q.base_bits, bool) or not isinstance(q.base_bits, int) or not 1 <= q.base_bits <= MAX_SAMPLE_BITS:
            raise ConfigError(f"QATConfig.base_bits must be an integer in 1..{MAX_SAMPLE_BITS}, got {q.base_bits!r}")
        if not (isinstance(q.base_max_share, (int, float)) and 0.0 < q.base_max_share <= 1.0):
            raise ConfigError(f"QATConfig.base_max_share must be in (0, 1], got {q.base_max_share!r}")

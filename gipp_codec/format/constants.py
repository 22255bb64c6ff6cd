"""Constants of the .gimg format, mirroring format_spec/gimg.md one to one (same names).

Everything multi-byte in a .gimg file is little-endian.
"""

# --- Signature and version (spec: "File layout") --------------------------------------
# 0x89: high bit set, catches 7-bit transfers; "GIM": readable magic; CR LF: catches
# CRLF -> LF conversion; 0x1A: stops `type` on DOS; LF: catches LF -> CRLF conversion.
SIGNATURE = b"\x89GIM\r\n\x1a\n"
VERSION_MAJOR = 1  # an unknown major version is rejected
VERSION_MINOR = 5  # a newer minor version is decoded as far as it is understood
PREAMBLE_SIZE = len(SIGNATURE) + 2  # signature + major (u8) + minor (u8)

# --- Chunks (spec: "Chunks") ----------------------------------------------------------
CHUNK_OVERHEAD = 12  # length (u32) + type (4 bytes) + CRC-32 (u32)
CHUNK_HEAD = b"HEAD"  # header, critical, first chunk
CHUNK_GAUS = b"GAUS"  # Gaussian payload, critical, one or more consecutive chunks
CHUNK_END = b"DONE"  # end marker, critical, empty, last
CHUNK_ICCP = b"iccp"  # ICC profile, ancillary
CHUNK_EXIF = b"exif"  # EXIF block, ancillary
CHUNK_BASE = b"BASE"  # base layer, critical, at most one, before the GAUS run (1.3)
KNOWN_CRITICAL = (CHUNK_HEAD, CHUNK_BASE, CHUNK_GAUS, CHUNK_END)
MINOR_OF_BASE = 3  # the first minor version with a BASE chunk

# --- Limits (spec: "Limits"), checked before any allocation ----------------------------
MAX_WIDTH = 65535
MAX_HEIGHT = 65535
MAX_PIXELS = 1 << 28  # width * height
MAX_GAUSSIANS = 1 << 22  # N
MAX_CHUNK_LENGTH = 1 << 26  # payload bytes of one chunk
# the render work (the pixels of every valid Gaussian's bounding box, spec §8) may not exceed
# MAX_RENDER_WORK_BASE + MAX_RENDER_WORK_PER_PIXEL * width * height: a small file cannot ask for
# unbounded rendering (millions of identical image-sized Gaussians code to a few bytes)
MAX_RENDER_WORK_BASE = 1 << 30
MAX_RENDER_WORK_PER_PIXEL = 256
# Ranges of dequantized values (keep a float32 renderer free of overflow).
MAX_ABS_POSITION = float(1 << 20)  # |x|, |y| in pixels
MAX_ABS_LOG_VARIANCE = 32.0  # |log a|, |log c|
MAX_ABS_COVARIANCE = float(1 << 46)  # |b| (and a, c in float32 mode)
MAX_ABS_COLOR = float(1 << 16)  # |r|, |g|, |b|
MAX_ABS_CORRELATION = 1.0  # |rho|, channel b's value in payload coding 3 (1.4)

# --- Header values (spec: "HEAD chunk") -----------------------------------------------
CHANNELS_RGB = 3
ATTRIBUTE_MODE_QUANTIZED = 0
ATTRIBUTE_MODE_FLOAT32 = 1
ATTRIBUTE_MODE_COMPACT = 2  # quantized, the grid as binary16 scales and offsets in steps (1.5)
ATTRIBUTE_MODES = {ATTRIBUTE_MODE_QUANTIZED: "quantized", ATTRIBUTE_MODE_FLOAT32: "float32",
                   ATTRIBUTE_MODE_COMPACT: "quantized16"}
ATTRIBUTE_MODES_QUANTIZED = (ATTRIBUTE_MODE_QUANTIZED, ATTRIBUTE_MODE_COMPACT)
MINOR_OF_ATTRIBUTE_MODE = {ATTRIBUTE_MODE_QUANTIZED: 0, ATTRIBUTE_MODE_FLOAT32: 0, ATTRIBUTE_MODE_COMPACT: 5}
RENDER_CONVENTION_V1 = 1  # pixel centres at +0.5, inclusive 3-sigma cut-off, plain sum
RENDER_CONVENTION_V2 = 2  # convention 1 with exp(-9/2) subtracted inside the cut-off: no step at its edge (1.2)
RENDER_CONVENTIONS = (RENDER_CONVENTION_V1, RENDER_CONVENTION_V2)
PAYLOAD_CODING_RAW = 0  # float32 mode: raw little-endian float32 rows
PAYLOAD_CODING_ENTROPY_V1 = 1  # quantized mode: the coding of spec "Entropy coding" (1.0)
PAYLOAD_CODING_ENTROPY_V2 = 2  # quantized mode: coding 1 plus derived context sources (1.1)
# quantized mode: coding 2 whose channel b holds the correlation rho, b = rho * sqrt(a * c) (1.4)
PAYLOAD_CODING_CORRELATION = 3
PAYLOAD_CODINGS_QUANTIZED = (PAYLOAD_CODING_ENTROPY_V1, PAYLOAD_CODING_ENTROPY_V2, PAYLOAD_CODING_CORRELATION)
# A writer sets `minor` to the first minor version that defines what the file uses.
MINOR_OF_PAYLOAD_CODING = {PAYLOAD_CODING_RAW: 0, PAYLOAD_CODING_ENTROPY_V1: 0, PAYLOAD_CODING_ENTROPY_V2: 1,
                           PAYLOAD_CODING_CORRELATION: 4}
MINOR_OF_RENDER_CONVENTION = {RENDER_CONVENTION_V1: 0, RENDER_CONVENTION_V2: 2}
MIN_BITS = 1
MAX_BITS = 16

# --- Attribute channels (spec: "Attributes") ------------------------------------------
NUM_CHANNELS = 8
CHANNEL_NAMES = ("x", "y", "a", "b", "c", "red", "green", "blue")
CH_X, CH_Y, CH_A, CH_B, CH_C, CH_RED, CH_GREEN, CH_BLUE = range(8)
# Context sources beyond the channels 0..7 (payload coding 2; spec: "Context features")
CTX_CELLS = 8  # Gaussians in the 3x3 block of 2^g-unit cells around the Gaussian's own cell
CTX_AREA = 9  # q_a + q_c (the log of the area; it bounds |b|)
LOG_CHANNELS = (CH_A, CH_C)  # quantized in the log domain
# Largest |value| of each channel's dequantized range (log-variance for a and c).
CHANNEL_LIMITS = (MAX_ABS_POSITION, MAX_ABS_POSITION, MAX_ABS_LOG_VARIANCE, MAX_ABS_COVARIANCE,
                  MAX_ABS_LOG_VARIANCE, MAX_ABS_COLOR, MAX_ABS_COLOR, MAX_ABS_COLOR)
# payload coding 3: channel b holds rho = b / sqrt(a c), whose range is [-1, 1]
CHANNEL_LIMITS_CORRELATION = CHANNEL_LIMITS[:CH_B] + (MAX_ABS_CORRELATION,) + CHANNEL_LIMITS[CH_B + 1:]
# Which bit depth field governs each channel.
CHANNEL_GROUP = ("position", "position", "covariance", "covariance", "covariance", "color", "color", "color")

"""The in-memory image the Python API encodes and fits: a uint8 [H, W, 3] array, or a grey
one, [H, W] or [H, W, 1], which is replicated to three equal channels (and then fitted with
one colour per Gaussian, ``fit.gray``). Torch-free."""

import os

import numpy as np

from gipp_codec.errors import InputImageError


def rgb_array(image) -> np.ndarray:
    """``image`` as a C-contiguous uint8 array [H, W, 3]; a grey [H, W] or [H, W, 1] array gets
    its one channel three times. Anything else (another dtype or shape, an empty image) is an
    InputImageError."""
    if isinstance(image, (str, os.PathLike)):
        raise InputImageError(f"expected an image array, got the path {os.fspath(image)!r}: read the file first "
                              "(gipp_codec.imageio.load_image(path) gives the array and its metadata)")
    if isinstance(image, (bytes, bytearray, memoryview)):
        raise InputImageError("expected an image array, got bytes: decode them first "
                              "(gipp_codec.imageio.decode_image_bytes(data) gives the array and its metadata)")
    arr = np.asarray(image)
    grey = arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 1)
    if arr.dtype != np.uint8 or not (grey or (arr.ndim == 3 and arr.shape[2] == 3)) or min(arr.shape[:2]) < 1:
        raise InputImageError("expected a uint8 image of shape [H, W, 3], or a grey one of shape [H, W] or "
                              f"[H, W, 1], got {arr.dtype} {arr.shape}")
    if grey:
        arr = np.repeat(arr.reshape(arr.shape[0], arr.shape[1], 1), 3, axis=2)  # [H, W, 3]
    return np.ascontiguousarray(arr)

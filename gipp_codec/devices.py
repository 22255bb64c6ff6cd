"""Which torch device a command runs on: one rule for fitting, encoding and decoding on a GPU.

Imports torch, so the CPU decode path never imports this module.
"""

import torch

from gipp_codec.errors import ConfigError


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> cuda if available else cpu; refuse cuda without CUDA and unknown names."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; expected auto, cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' requested but CUDA is not available on this machine (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {name!r}; expected auto, cpu or cuda")
    return dev

"""What a coded stream is: the stream order, the predictors, the context limit and a
stream's configuration (spec: "Entropy coding", payload coding 1). Shared by the encoder
(``gaussian_coder``) and the decoder's side-stream reader (``side_stream``)."""

from dataclasses import dataclass

from gipp_codec.format.constants import CH_A, CH_B, CH_BLUE, CH_C, CH_GREEN, CH_RED, CHANNEL_NAMES

STREAM_POSITION = -1
STREAM_ORDER = (STREAM_POSITION, CH_A, CH_C, CH_B, CH_GREEN, CH_RED, CH_BLUE)
PRED_NONE, PRED_CONST, PRED_PREV, PRED_CHANNEL = 0, 1, 2, 3
PRED_NAMES = ("none", "const", "prev", "channel")
MAX_CONTEXTS = 16


def stream_name(channel: int) -> str:
    """"position" for the position stream, else the channel's name."""
    return "position" if channel == STREAM_POSITION else CHANNEL_NAMES[channel]


@dataclass
class StreamConfig:
    """How one stream is coded (all of it is in the side stream)."""

    channel: int  # STREAM_POSITION or a channel index
    pred: int = PRED_NONE
    pred_param: int = 0  # the constant (PRED_CONST) or the source channel (PRED_CHANNEL)
    ctx_source: int = -1
    thresholds: tuple = ()
    k: int = 4
    m: int = 1

    @property
    def contexts(self) -> int:
        return len(self.thresholds) + 1

"""The one error hierarchy of gimg.

Every error a user can cause (bad input image, bad option, corrupt file) is a
``GimgError``; the CLI turns it into a one-line message and a non-zero exit.
Anything else escaping is a bug.
"""


class GimgError(ValueError):
    """Base of every error gimg raises on purpose."""


class ArgumentTypeError(GimgError, TypeError):
    """A function was given something of the wrong kind, such as a path or an int where the
    bytes of a .gimg file are expected: a ``GimgError`` and a ``TypeError`` both."""


class InputImageError(GimgError):
    """The input image is missing, unreadable, not an image, or of an unsupported kind."""


class ConfigError(GimgError):
    """An option or configuration value is out of range or inconsistent."""


class FormatError(GimgError):
    """A .gimg byte stream is invalid; subclasses say how."""


class SignatureError(FormatError):
    """The stream does not start with the .gimg signature."""


class VersionError(FormatError):
    """The stream's major version is not one this decoder supports."""


class ChunkError(FormatError):
    """A chunk is malformed: bad CRC, bad length, unknown critical type, bad order."""


class TruncatedError(FormatError):
    """The stream ends before a complete structure was read."""


class LimitError(FormatError):
    """A declared size exceeds the documented limits (checked before allocation)."""


class HeaderError(FormatError):
    """A header field holds an invalid value (bit depth, scale, dimensions, ...)."""


class PayloadError(FormatError):
    """The Gaussian payload cannot be decoded consistently with the header."""


class GimgWarning(UserWarning):
    """Something the user should know that does not stop the work (the CLI prints it as one
    ``gimg: warning: ...`` line)."""

"""CLI command modules. Each exposes click commands; ``REGISTERED`` lists them all.

Imports are done inside ``REGISTERED`` so that ``gimg decode`` does not pay for
importing the training code.
"""


def REGISTERED() -> list:  # noqa: N802 - a registry, read like a constant
    """Return the click commands of every command module that exists."""
    import importlib

    commands = []
    for module_name, names in (
        ("gipp_codec.commands.fit_cmd", ("fit",)),
        ("gipp_codec.commands.codec_cmd", ("encode", "decode", "info")),
        ("gipp_codec.commands.export_cmd", ("export",)),
        ("gipp_codec.commands.pack_cmd", ("pack",)),
        ("gipp_codec.commands.prebuilt_cmd", ("compile_decoder",)),
    ):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        commands.extend(getattr(module, n) for n in names if hasattr(module, n))
    return commands

"""The options a fit takes from both `encode` and `fit`, checked under their command-line
names before any work (the library checks them too, under its argument names)."""

from gipp_codec.errors import ConfigError


def check_run_options(iterations: int | None, seed: int) -> None:
    """--iterations (when given) at least 1 and --seed in 0 .. 2^32 - 1, else a ConfigError
    that names the option."""
    from gipp_codec.fit.api import MAX_ITERATIONS, MAX_SEED

    if iterations is not None and iterations < 1:
        raise ConfigError(f"--iterations must be >= 1, got {iterations}")
    if iterations is not None and iterations > MAX_ITERATIONS:
        raise ConfigError(f"--iterations must be <= {MAX_ITERATIONS}, got {iterations}")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"--seed must be an integer in 0..{MAX_SEED}, got {seed}")

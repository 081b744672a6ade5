"""Placeholder replaced by the CLI module."""
def main() -> None:
    raise SystemExit("not yet")

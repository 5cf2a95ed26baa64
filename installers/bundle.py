"""Entry point of the standalone bundle (installers/lkjam_engine.spec): the `lkjam` command
with what runs next to Live, frozen with its own Python so a musician needs none.

    lkjam engine | lkjam install | lkjam ports | lkjam accompany IN.mid -o OUT.mid

Double-clicked (no arguments, in a window of its own), it offers `lkjam install`, so the
control surface goes into Live without a terminal. Training and the simulated demo need
torch or a development setup: they stay with the wheel (`pip install "lkjam[train]"`), and
the bundle's usage does not list them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from lkjam import cli

# The spec freezes exactly these commands' modules (see its hidden imports).
BUNDLED = ("engine", "install", "ports", "accompany")


def double_click_install() -> int:
    """`lkjam install` after asking, then keep the window open until it has been read."""
    print("lkjam: this installs the LKJam control surface into Ableton Live's User Library.")
    try:
        input("Press Return to install (or close this window to cancel). ")
        code = cli.main(["install"])
        input("Press Return to close this window. ")
    except (EOFError, KeyboardInterrupt):
        print("\ncancelled")
        return 1
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    cli.COMMANDS = {name: cli.COMMANDS[name] for name in BUNDLED}
    # A double-click opens a terminal window with no arguments; a pipe or Live's autostart
    # never reaches this (no terminal, or arguments).
    if not args and sys.stdin is not None and sys.stdin.isatty():
        return double_click_install()
    return cli.main(args)


if __name__ == "__main__":
    raise SystemExit(main())

"""The `lkjam` command: one subcommand per job, each implemented by its own module.

Subcommand modules are imported only when used, so `lkjam engine` never pays for
(or needs) torch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

# name -> (module, function, one-line help). Each function takes argv and returns an exit code.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "engine": ("lkjam.engine.main", "main", "run the engine next to Ableton Live"),
    "ports": ("lkjam.engine.ports", "main", "list the MIDI backends and ports lkjam sees"),
    "demo": ("lkjam.demo", "main", "run a whole simulated jam on this machine"),
    "accompany": ("lkjam.accompany", "main", "accompany a MIDI file offline"),
    "train": ("lkjam.training.cli", "train_main", "train the default model or a custom style"),
    "eval": ("lkjam.training.cli", "eval_main", "evaluate a model on held-out music"),
    "install": ("lkjam.installers.install", "main", "install the Ableton control surface"),
}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: lkjam COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, _, text) in COMMANDS.items()]
    lines += ["", "Run `lkjam COMMAND --help` for a command's options."]
    return "\n".join(lines)


def resolve(name: str) -> Callable[[Sequence[str]], int]:
    module_name, function_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise SystemExit(f"lkjam {name}: not built yet in this version") from exc
        if exc.name and exc.name.split(".")[0] in {"torch", "music21", "tqdm", "matplotlib"}:
            raise SystemExit(
                f"lkjam {name} needs the training extras: pip install 'lkjam[train]' "
                f"(missing module: {exc.name})"
            ) from exc
        raise
    function: Callable[[Sequence[str]], int] = getattr(module, function_name)
    return function


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    if args[0] == "--version":
        from lkjam import __version__

        print(f"lkjam {__version__}")
        return 0
    if args[0] not in COMMANDS:
        print(f"lkjam: unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return resolve(args[0])(args[1:])

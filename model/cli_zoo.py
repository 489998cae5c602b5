"""Command line of the model zoo and the γ explorer: ``python -m model zoo [export|check]`` and
``python -m model explore`` (added to :mod:`model.cli`'s parser by :func:`add_parsers`)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from datagen.cli_common import HelpFormatter

ZOO_EPILOG = """\
examples:
  python -m model zoo                                   # list the models
  python -m model zoo check                             # re-measure every card's check figures
  python -m model zoo export --runs ~/.cache/decouple/small/runs \\
      --data ~/.cache/decouple/small/data.h5 --out model/zoo decouple-l0 realtime-tpami10-b2
  python -m model apply --model l0 --gamma 0.05 in.png out.png
"""


def _port(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a port number, got {text!r}") from None
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"must be in 0..65535, got {v}")
    return v


def add_parsers(sub) -> None:
    """The ``zoo`` and ``explore`` subcommands."""
    from .cli import _positive_int, _threads
    z = sub.add_parser("zoo", help="list, check or re-export the trained models shipped with "
                                   "the package", formatter_class=HelpFormatter, epilog=ZOO_EPILOG)
    _threads(z)
    z.add_argument("--markdown", action="store_true",
                   help="list the models as docs/zoo.md's Markdown table")
    zs = z.add_subparsers(dest="zoo_command", metavar="ACTION",
                          help="list (default), check or export")
    zs.add_parser("list", help="the models (the default action)", formatter_class=HelpFormatter)
    c = zs.add_parser("check", help="re-measure each card's check figures (no dataset needed)",
                      formatter_class=HelpFormatter)
    c.add_argument("names", nargs="*", help="zoo models (default: all)")
    e = zs.add_parser("export", help="write zoo models from trained run folders, evaluated on "
                                     "the dataset's test split", formatter_class=HelpFormatter)
    e.add_argument("--runs", type=Path, required=True, help="folder of run folders")
    e.add_argument("--data", type=Path, required=True,
                   help="the dataset the runs were trained on (its test split scores the cards)")
    e.add_argument("--out", type=Path, required=True, help="the zoo folder (model/zoo)")
    e.add_argument("--allow-partial", action="store_true",
                   help="export runs that have not reached their planned iterations")
    e.add_argument("--float16", action="store_true",
                   help="store float16 weights (the card's scores are measured with them)")
    for action in (c, e):  # --threads after the action too (SUPPRESS: zoo's value is kept)
        action.add_argument("--threads", type=_positive_int, default=argparse.SUPPRESS,
                            help="threads this process computes with")
    e.add_argument("runs_", nargs="*", metavar="RUN[=NAME]",
                   help="run folders to export, optionally renamed (default: every run with a "
                        "last.pt; decouple-OP becomes OP, a -bK budget suffix is dropped)")

    x = sub.add_parser("explore", help="a local web page to tune γ by hand (needs the "
                                       "'explore' extra)", formatter_class=HelpFormatter)
    x.add_argument("--ckpt", type=Path, action="append", default=[],
                   help="also offer this checkpoint or run folder (repeatable)")
    x.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on; anything but 127.0.0.1/localhost exposes the "
                        "page (and the CPU) to the network")
    x.add_argument("--port", type=_port, default=0, help="port (0: a free one)")
    x.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    x.add_argument("--max-side", type=int, default=512,
                   help="images are shrunk to at most this many pixels per side")
    _threads(x)


def _checkpoint_ops(ckpt) -> list:
    """The operators of the model at ``ckpt`` as :func:`model.load` reads it (a zoo name, an
    exported card ``NAME.json``, a checkpoint or run folder), without building the network; a
    ValueError naming what is missing."""
    from . import zoo

    name = zoo.name_of(ckpt)
    if name is not None:
        return zoo.card(name)["operators"]
    if str(ckpt).endswith(".json"):
        return zoo.read_card_file(ckpt)["operators"]
    from .checkpoint import load

    state = load(ckpt)
    config = state.get("config") if isinstance(state, dict) else None
    ops = config.get("ops") if isinstance(config, dict) else None
    if not (isinstance(ops, list) and ops and all(isinstance(o, str) for o in ops)):
        raise ValueError(f"{ckpt}: the checkpoint has no model config naming its operators "
                         "('config' or its 'ops' is missing)")
    return ops


def apply_model_args(args) -> None:
    """``apply --model NAME``: the zoo model as the checkpoint (``zoo:NAME``), never together with
    --ckpt; without --op, the model's operator when it has only one."""
    from . import zoo

    if args.model is not None:
        if args.ckpt is not None:
            raise ValueError("give --ckpt or --model, not both")
        if args.method != "model":
            raise ValueError("--model needs --method model")
        name = zoo.name_of(args.model if args.model.startswith(zoo.PREFIX)
                           else zoo.PREFIX + args.model)
        args.ckpt = zoo.PREFIX + name
    if args.op is None:
        if args.method != "model":
            raise ValueError("--op is needed for --method bgu")
        if args.ckpt is None:  # --model has set it to zoo:NAME
            raise ValueError("--ckpt or --model is needed for --method model")
        ops = _checkpoint_ops(args.ckpt)
        if len(ops) != 1:
            raise ValueError(f"--op is needed: this model was trained for {', '.join(ops)}")
        args.op = ops[0]


def run(args) -> int:
    """Run a ``zoo`` or ``explore`` command (errors as ValueError/FileNotFoundError)."""
    from . import zoo

    if args.command == "explore":
        from .explore import serve

        return serve(ckpts=args.ckpt, host=args.host, port=args.port, device=args.device,
                     max_side=args.max_side)
    action = args.zoo_command or "list"
    if action == "list":
        rows = zoo.table()
        print(zoo.format_markdown(rows) if args.markdown else zoo.format_table(rows))
        return 0
    if action == "check":
        bad = []
        for name in args.names or zoo.names():
            problems = zoo.verify(name)
            print(f"{name}: {'ok' if not problems else 'MISMATCH'}")
            bad += problems
        for p in bad:
            print(f"error: {p}", file=sys.stderr)
        return 1 if bad else 0
    out = str(args.out) if not args.out.is_absolute() else zoo._portable(args.out)
    words = ["python", "-m", "model", "zoo", "export", "--runs", zoo._portable(args.runs),
             "--data", zoo._portable(args.data), "--out", out] + \
        (["--float16"] if args.float16 else []) + list(args.runs_)
    command = " ".join(zoo.shell_word(w) for w in words)
    written, skipped = zoo.export(args.runs, args.data, args.out, args.runs_ or None,
                                  allow_partial=args.allow_partial,
                                  dtype="float16" if args.float16 else "float32",
                                  command=command)
    print(f"exported {len(written)} model(s) to {args.out}: {', '.join(written) or 'none'}; "
          f"skipped {len(skipped)}")
    return 0 if written or not skipped else 2

"""Command line: ``python -m model {train,eval,apply}``."""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import cv2

import operators
from datagen.cli_common import HelpFormatter, int_at_least

from .device import AMP, command_threads, distributed_env
from .predict import ExtrapolationWarning, OutOfRangeError
from .train import DivergedError, RunLockedError, TrainingStopped

EPILOG = """\
examples:
  python -m model train --data data/decouple.h5 --ops l0 --preset small --out runs/l0
  python -m model train --data data/decouple.h5 --ops l0 --arch single --gamma 0.02 --out runs/l0-0.02
  python -m model train --data data/decouple.h5 --ops l0 --preset small --out runs/l0 --resume
  python -m model train --data data/decouple.h5 --ops l0 --arch realtime --out runs/l0-rt
  python -m model train --data data/decouple.h5 --ops l0 --arch norm:19 --out runs/l0-norm19
  python -m model train --data data/decouple.h5 --ops eccv6 --preset paper --amp --out runs/eccv6
  torchrun --nproc_per_node 4 -m model train --data data/voc.h5 --ops l0 --preset paper --out runs/p
  python -m model eval --ckpt runs/l0 --data data/decouple.h5 --csv runs/l0/eval.csv
  python -m model apply --ckpt runs/l0 --op l0 --gamma 0.05 in.png out.png
  python -m model apply --method bgu --op l0 --gamma 0.02 in.png out.png
  python -m model apply --model l0 --gamma 0.05 in.png out.png        # a model of the zoo
  python -m model zoo                                                  # list the zoo
  python -m model explore                                              # tune γ in the browser
"""


_positive_int = int_at_least(1, "a positive integer")
_non_negative_int = int_at_least(0, "an integer >= 0")


def _arch(text: str) -> str:
    from .registry import get

    try:
        return get(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ops(text: str) -> tuple[str, ...]:
    """Operator names and groups (``operators.GROUPS``: eccv6, tpami10, restoration, filters,
    all), comma separated, case-insensitive, as :func:`operators.resolve`."""
    try:
        return operators.resolve(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _ops_help(what: str) -> str:
    return (f"{what}: names or groups, comma separated, case-insensitive (e.g. l0, l0,wls or "
            f"eccv6); operators: {', '.join(operators.ALL)}; groups: "
            + ", ".join(f"{g} ({len(v)})" for g, v in operators.GROUPS.items()))


def _threads(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="threads this process computes with (torch, BLAS/OpenMP, OpenCV, "
                        "Numba; also OMP_NUM_THREADS of the processes it starts) (default: "
                        "$OMP_NUM_THREADS, else one per core less the cores other processes "
                        "keep busy, by the load average: a busy machine gets 1, as more threads "
                        "than free cores stall each other; the first line says which)")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}") from None
    if not 0 < v < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return v


#: "(default: X)" only where a default means something: the project's one help formatter
_Help = HelpFormatter


def _version() -> str:
    from datagen import code_version

    return f"decouple-ops model {code_version()}"


def parser() -> argparse.ArgumentParser:
    from .registry import NAMES

    p = argparse.ArgumentParser(prog="python -m model", epilog=EPILOG, formatter_class=_Help,
                                description="Train, evaluate and apply decouple networks "
                                            "(Fan et al., ECCV 2018 / TPAMI 2019).")
    p.add_argument("--version", action="version", version=_version(),
                   help="print the version (and git commit) and exit")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a decouple or single-γ network", formatter_class=_Help)
    t.add_argument("--data", type=Path, required=True, help="HDF5 file from `python -m datagen build`")
    t.add_argument("--ops", type=_ops, required=True, help=_ops_help("operator(s) to train"))
    t.add_argument("--out", type=Path, required=True,
                   help="run folder (last.pt, log.csv, config.json; one training at a time)")
    t.add_argument("--arch", type=_arch, default="decouple", metavar="ARCH",
                   help="how γ conditions the network (docs/model.md has the table): "
                        "decouple: every conv weight generated from γ; single: one network at "
                        "--gamma; concat: γ as extra input channels; hdrnet: deep bilateral "
                        "learning at --gamma; realtime: TPAMI's cheap re-tuning model (only the "
                        "last IN's affine depends on γ); norm:K, norm:all, conv:K, conv-ch1:K, "
                        "conv-ch2:K: TPAMI Table 12 ablation (K in 1..19); cresmd, adafm, dni: "
                        "later modulation methods. Choices: " + ", ".join(NAMES))
    t.add_argument("--gamma", type=float, default=None,
                   help="the γ of a single or hdrnet network (one of the dataset's test γ, "
                        "built with `datagen build --single`)")
    t.add_argument("--preset", choices=("smoke", "small", "medium", "paper"), default="small",
                   help="smoke: seconds (its loss may rise: too few iterations to learn); "
                        "small: ~3 min on 2 CPU cores; medium: 128² crops, the authors' joint "
                        "schedule (hours on 2 CPU cores); paper: the authors' (GPU)")
    t.add_argument("--iterations", type=_positive_int, default=None,
                   help="training iterations (default: the preset's)")
    t.add_argument("--width", type=_positive_int, default=None,
                   help="channels of the base network (default: the preset's)")
    t.add_argument("--crop", type=_positive_int, default=None,
                   help="side of the random training crop (default: the preset's)")
    t.add_argument("--batch", type=_positive_int, default=None,
                   help="crops per batch (default: the preset's)")
    t.add_argument("--lr", type=_positive_float, default=None,
                   help="initial Adam learning rate; the final one becomes lr/10, a joint "
                        "schedule's steps are scaled alike (default: the preset's)")
    t.add_argument("--loss-norm", choices=("none", "identity"), default="none",
                   help="none: the paper's MSE; identity: each sample's MSE divided by its "
                        "operator's identity MSE (inputs vs targets of its training pairs), a "
                        "diagnostic for joint models whose operators differ in loss scale")
    t.add_argument("--norm", choices=("law", "paper"), default="law",
                   help="γ normalisation: [0,1] by the sampling law, or the authors' maps")
    t.add_argument("--op-code", choices=("scalar", "onehot"), default="scalar",
                   help="operator identity for several operators")
    t.add_argument("--mode", choices=("grouped", "linear", "loop"), default="grouped",
                   help="how a batch with per-sample weights is run (same results)")
    t.add_argument("--init", choices=("paper", "conv"), default=None,
                   help="weight-net init: 'paper' = PyTorch Linear default as the authors "
                        "(W ~ U(±1)); 'conv' = A, B at an ordinary conv's scale "
                        "(default: the preset's)")
    t.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                   help="predict a residual added to the input (TPAMI realtime model's output) "
                        "instead of the output itself (ECCV base network) (default: the preset's)")
    t.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and of the batches, crops and flips")
    t.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    t.add_argument("--resume", action="store_true",
                   help="continue the run in --out with its recorded settings (others are refused)")
    t.add_argument("--stop-at", type=_positive_int, default=None,
                   help="stop at this iteration (checkpointed); continue later with --resume")
    t.add_argument("--quiet", action="store_true",
                   help="no progress: no bar on a terminal, no progress lines elsewhere (a line "
                        "every $DECOUPLE_PROGRESS_S seconds, default 30)")
    t.add_argument("--workers", type=_non_negative_int, default=None,
                   help="DataLoader worker processes reading the batches (the same batches "
                        "whatever their number; 0: in this process) (default: the preset's)")
    t.add_argument("--batch-crop", action=argparse.BooleanOptionalAction, default=None,
                   help="read samples whole and crop each batch to its smallest sample, as the "
                        "authors' loader (default: the preset's, on for paper; --crop turns it "
                        "off)")
    t.add_argument("--amp", nargs="?", const="auto", default=None, choices=AMP,
                   help="mixed precision on CUDA (torch.autocast): bf16, fp16 (with a gradient "
                        "scaler) or auto (bf16 where the GPU has it); refused on the CPU")
    _threads(t)

    e = sub.add_parser("eval", help="PSNR/SSIM per operator and test γ (paper's protocol)",
                       formatter_class=_Help)
    e.add_argument("--ckpt", type=Path, required=True, help="checkpoint file or run folder")
    e.add_argument("--data", type=Path, required=True,
                   help="HDF5 file from `python -m datagen build` (its test split is used)")
    e.add_argument("--csv", type=Path, default=None,
                   help="also write the table (one row per operator and γ) here")
    e.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    e.add_argument("--ops", type=_ops, default=None,
                   help=_ops_help("evaluate only these of the model's operators") +
                   " (default: all of the model's)")
    _threads(e)

    a = sub.add_parser("apply", help="run a trained model (or BGU) on an image file",
                       formatter_class=_Help)
    a.add_argument("--method", choices=("model", "bgu"), default="model",
                   help="model: a trained checkpoint (any --arch); bgu: bilateral guided "
                        "upsampling of the operator run at low resolution (no training)")
    a.add_argument("--ckpt", type=Path, default=None,
                   help="checkpoint or run folder (needed for --method model)")
    a.add_argument("--model", default=None, metavar="NAME",
                   help="a model of the zoo instead of --ckpt (`python -m model zoo` lists "
                        "them); --op defaults to its operator when it has one")
    a.add_argument("--factor", type=_positive_int, default=4,
                   help="BGU's downsampling factor per axis")
    a.add_argument("--op", default=None,
                   help="operator to apply (case-insensitive; needed unless the model has only "
                        "one): " + ", ".join(operators.ALL))
    a.add_argument("--gamma", type=float, default=None,
                   help="the operator's parameter γ (e.g. λ of l0); outside the trained range "
                        "only with --extrapolate. Omit it for a fixed-effect operator (shock, "
                        "llf_remap, wls_enhance, style, pencil); a joint model is blind to a "
                        "restoration's γ: accepted, no effect")
    a.add_argument("--extrapolate", action="store_true",
                   help="allow γ outside the trained range (with a warning), as "
                        "operators.apply(..., strict=False)")
    a.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # the default now
    a.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    _threads(a)
    a.add_argument("input", type=Path, help="input image (any format OpenCV reads)")
    a.add_argument("--force", action="store_true",
                   help="replace an existing output image that this project did not write "
                        "(never the input, a folder or a special file)")
    a.add_argument("output", type=Path, help="output image; its extension sets the format "
                                             "(.png, .jpg, .tif, ...); an existing file is "
                                             "replaced only when this project wrote it (a "
                                             "PNG or JPEG it marked), or with --force")

    # --- the model zoo and the γ explorer (model/cli_zoo.py) ---
    from .cli_zoo import add_parsers

    add_parsers(sub)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    restore = None
    try:
        # the first line: how many threads and why (torchrun: rank 0 speaks for all)
        ranks = distributed_env()
        say = args.command in ("train", "eval", "apply") and (ranks is None or ranks[0] == 0)
        _, restore = command_threads(getattr(args, "threads", None), say=say)
        if args.command == "train":
            from .train import train
            from .train_config import TrainConfig

            config = TrainConfig.from_preset(
                args.preset, ops=args.ops, arch=args.arch, gamma=args.gamma, seed=args.seed,
                norm=args.norm, op_code=args.op_code, init=args.init, residual=args.residual,
                loss_norm=args.loss_norm, iterations=args.iterations, width=args.width,
                crop=args.crop, batch=args.batch, lr=args.lr, workers=args.workers,
                batch_crop=args.batch_crop)
            state = train(config, args.data, args.out, resume=args.resume, device=args.device,
                          mode=args.mode, progress=not args.quiet, stop_at=args.stop_at,
                          amp=args.amp)
            ranks = distributed_env()
            if ranks is not None and ranks[0] != 0:
                return 0  # torchrun: rank 0 reports
            print(f"trained {state['iteration']} iterations in {state['elapsed_s']:.1f} s -> "
                  f"{args.out / 'last.pt'} (log: {args.out / 'log.csv'}, "
                  f"config: {args.out / 'config.json'})")
            return 0
        if args.command == "eval":
            from datagen.fs import check_output, write_checked

            from .checkpoint import resolve
            from .evaluate import CSV_MARKER, evaluate, with_averages
            from .predict import load

            if args.csv:  # before any work: never an input, a folder or a file not ours
                check_output(args.csv, inputs=(args.data, resolve(args.ckpt)),
                             own_marker=CSV_MARKER, what="--csv")
            predictor = _load(args.ckpt, args.device)
            print(f"checkpoint {args.ckpt}: {predictor.config['arch']} on "
                  f"{', '.join(predictor.ops)}, {predictor.trained_text()}")
            if args.ops is not None:
                unknown = [o for o in args.ops if o not in predictor.ops]
                if unknown:
                    raise ValueError(f"--ops {','.join(unknown)}: this model was trained on "
                                     f"{', '.join(predictor.ops)} only")
            table = with_averages(evaluate(predictor, args.data, ops=args.ops))
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
            if args.csv:
                write_checked(args.csv, table.to_csv(index=False),
                              inputs=(args.data, resolve(args.ckpt)), own_marker=CSV_MARKER,
                              what="--csv")
            return 0
        if args.command == "apply":
            return _apply(args)
        if args.command in ("zoo", "explore"):  # model/cli_zoo.py
            from .cli_zoo import run

            return run(args)
    except TrainingStopped as exc:  # SIGINT/SIGTERM during train: checkpointed, then stopped
        print(f"{exc}", file=sys.stderr)
        return 128 + exc.signum
    except OutOfRangeError as exc:
        msg = str(exc).replace("pass strict=False to extrapolate on purpose",
                               "add --extrapolate to extrapolate on purpose")
        print(f"error: {msg.replace('pass strict=False', 'add --extrapolate')}", file=sys.stderr)
        return 2
    except (FileNotFoundError, FileExistsError, ValueError, TypeError, RunLockedError,
            DivergedError, MemoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if restore is not None:
            restore()  # the thread settings as they were (main() called in-process)
    return 2


def _load(ckpt, device):
    """:func:`model.load`, its warnings (an unfinished training: :class:`UnfinishedWarning`)
    as ``warning: ...`` lines on stderr instead of Python's two-line form."""
    from .predict import load

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictor = load(ckpt, device)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return predictor


def _apply(args) -> int:
    from .data import check_domain
    from .predict import load

    from .cli_zoo import apply_model_args

    apply_model_args(args)  # --model NAME (the zoo), and --op from a one-operator model
    spec = operators.get(args.op)  # unknown operator: listed before any work
    if args.gamma is not None:
        check_domain(spec.name, args.gamma)
    elif spec.has_gamma and args.method == "bgu":
        raise ValueError(f"--gamma is needed for {spec.name} ({spec.gamma_name})")
    suffix = args.output.suffix.lower()
    if not suffix or not cv2.haveImageWriter("x" + suffix):
        raise ValueError(f"cannot write {args.output}: its extension "
                         f"({args.output.suffix or 'none'}) is not an image format OpenCV "
                         "writes; use .png, .jpg, .tif, .bmp, ...")
    from datagen.fs import check_output, image_is_ours, mark_image, write_checked

    from .checkpoint import resolve

    inputs = (args.input, resolve(args.ckpt) if args.ckpt is not None else None)
    # not the input, not a folder, not an image of the user's: before any work
    guard = dict(inputs=inputs, own_marker=None if args.force else image_is_ours,
                 replace_hint="; --force replaces it")
    check_output(args.output, **guard)
    predictor = None
    if args.method == "model":
        if args.ckpt is None:
            raise ValueError("--ckpt is needed for --method model")
        predictor = _load(args.ckpt, args.device)
        predictor.check(spec.name, args.gamma, strict=not args.extrapolate)
        if args.gamma is not None and spec.has_gamma and not predictor.uses_gamma(spec.name):
            print(f"note: this model is blind to {spec.name}'s {spec.gamma_name}: --gamma "
                  f"{args.gamma:g} is accepted and has no effect", file=sys.stderr)
    from datagen.sources import read_image

    if not args.input.exists():
        raise FileNotFoundError(f"no input image at {args.input}")
    rgb, reason = read_image(args.input)
    if rgb is None:
        raise ValueError(f"cannot read an image from {args.input}: {reason}")
    if args.method == "bgu":
        from .bgu import bgu

        out = operators.to_uint8(bgu(rgb, spec.name, args.gamma, factor=args.factor))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)  # already warned by check()
            out = predictor.apply(rgb, spec.name, args.gamma, strict=not args.extrapolate)
    ok, encoded = cv2.imencode(suffix, cv2.cvtColor(out, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode the output as {suffix}")
    # Python writes (any file name works); PNG and JPEG marked as ours (written again, replaced)
    write_checked(args.output, mark_image(encoded.tobytes()), **guard)
    print(f"wrote {args.output}")
    return 0

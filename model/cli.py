"""Command line: ``python -m model {train,eval,apply}``."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

import operators

EPILOG = """\
examples:
  python -m model train --data data/decouple.h5 --ops l0 --preset small --out runs/l0
  python -m model train --data data/decouple.h5 --ops l0 --arch single --gamma 0.02 --out runs/l0-0.02
  python -m model train --data data/decouple.h5 --ops l0 --preset small --out runs/l0 --resume
  python -m model eval --ckpt runs/l0 --data data/decouple.h5 --csv runs/l0/eval.csv
  python -m model apply --ckpt runs/l0 --op l0 --gamma 0.05 in.png out.png
  python -m model apply --method bgu --op l0 --gamma 0.02 in.png out.png
"""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m model", epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                description="Train, evaluate and apply decouple networks "
                                            "(Fan et al., ECCV 2018 / TPAMI 2019).")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    d = argparse.ArgumentDefaultsHelpFormatter

    t = sub.add_parser("train", help="train a decouple or single-γ network", formatter_class=d)
    t.add_argument("--data", type=Path, required=True, help="HDF5 file from `python -m datagen build`")
    t.add_argument("--ops", required=True, help="operator(s), comma separated (e.g. l0 or l0,wls)")
    t.add_argument("--out", type=Path, required=True, help="run folder (last.pt, log.csv)")
    t.add_argument("--arch", choices=("decouple", "single", "concat", "hdrnet"), default="decouple",
                   help="decouple: weights generated from γ; single: one network at --gamma; "
                        "concat: γ as extra constant input channels (baseline); hdrnet: deep "
                        "bilateral learning (DBL baseline) at --gamma")
    t.add_argument("--gamma", type=float, default=None, help="the γ of a single or hdrnet network")
    t.add_argument("--preset", choices=("smoke", "small", "paper"), default="small",
                   help="smoke: seconds; small: ~3 min on 2 CPU cores; paper: the authors' (GPU)")
    t.add_argument("--iterations", type=int, default=None, help="override the preset's")
    t.add_argument("--width", type=int, default=None, help="override the preset's")
    t.add_argument("--crop", type=int, default=None, help="override the preset's training crop")
    t.add_argument("--batch", type=int, default=None, help="override the preset's")
    t.add_argument("--lr", type=float, default=None, help="override the preset's initial Adam lr (the final one becomes lr/10)")
    t.add_argument("--norm", choices=("law", "paper"), default="law",
                   help="γ normalisation: [0,1] by the sampling law, or the authors' maps")
    t.add_argument("--op-code", choices=("scalar", "onehot"), default="scalar",
                   help="operator identity for several operators")
    t.add_argument("--mode", choices=("grouped", "linear", "loop"), default="grouped",
                   help="how a batch with per-sample weights is run")
    t.add_argument("--init", choices=("paper", "conv"), default=None,
                   help="weight-net init: 'paper' = PyTorch Linear default as the authors (W ~ U(±1)); "
                        "'conv' = A, B at an ordinary conv's scale (default: the preset's)")
    t.add_argument("--residual", action=argparse.BooleanOptionalAction, default=None,
                   help="predict a residual added to the input (TPAMI realtime model's output) "
                        "instead of the output itself (ECCV base network); default: the preset's")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out")
    t.add_argument("--stop-at", type=int, default=None,
                   help="stop at this iteration (checkpointed); continue later with --resume")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="PSNR/SSIM per operator and test γ (paper's protocol)",
                       formatter_class=d)
    e.add_argument("--ckpt", type=Path, required=True, help="checkpoint file or run folder")
    e.add_argument("--data", type=Path, required=True)
    e.add_argument("--csv", type=Path, default=None, help="also write the table here")
    e.add_argument("--device", default=None)

    a = sub.add_parser("apply", help="run a trained model (or BGU) on an image file",
                       formatter_class=d)
    a.add_argument("--method", choices=("model", "bgu"), default="model",
                   help="model: a trained checkpoint (any --arch); bgu: bilateral guided "
                        "upsampling of the operator run at low resolution (no training)")
    a.add_argument("--ckpt", type=Path, default=None, help="checkpoint or run folder (--method model)")
    a.add_argument("--factor", type=int, default=4, help="BGU's downsampling factor per axis")
    a.add_argument("--op", required=True)
    a.add_argument("--gamma", type=float, required=True)
    a.add_argument("--strict", action="store_true", help="refuse γ outside the trained range")
    a.add_argument("--device", default=None)
    a.add_argument("input", type=Path)
    a.add_argument("output", type=Path)
    return p


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "train":
            from .presets import get_preset
            from .train import train

            preset = get_preset(args.preset).with_(iterations=args.iterations, width=args.width,
                                                   crop=args.crop, batch=args.batch, lr=args.lr,
                                                   lr_final=args.lr / 10 if args.lr else None)
            ops = tuple(o.strip() for o in args.ops.split(",") if o.strip())
            state = train(args.data, ops, args.out, preset=preset, arch=args.arch,
                          gamma=args.gamma, seed=args.seed, resume=args.resume,
                          device=args.device, norm=args.norm, op_code=args.op_code,
                          mode=args.mode, progress=not args.quiet,
                          stop_at=args.stop_at, init=args.init or preset.init,
                          residual=preset.residual if args.residual is None else args.residual)
            print(f"trained {state['iteration']} iterations in {state['elapsed_s']:.1f} s -> "
                  f"{args.out / 'last.pt'} (log: {args.out / 'log.csv'})")
            return 0
        if args.command == "eval":
            from .evaluate import evaluate
            from .predict import load

            table = evaluate(load(args.ckpt, args.device), args.data)
            print(table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
            ave = table.groupby("operator")[["psnr", "ssim"]].mean()
            print("\nave.\n" + ave.to_string(float_format=lambda v: f"{v:.4f}"))
            if args.csv:
                args.csv.parent.mkdir(parents=True, exist_ok=True)
                table.to_csv(args.csv, index=False)
            return 0
        if args.command == "apply":
            from .predict import load

            bgr = cv2.imread(str(args.input), cv2.IMREAD_COLOR)
            if bgr is None:
                raise FileNotFoundError(f"cannot read an image from {args.input}")
            operators.get(args.op)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if args.method == "bgu":
                from .bgu import bgu

                out = operators.to_uint8(bgu(rgb, args.op, args.gamma, factor=args.factor))
            else:
                if args.ckpt is None:
                    raise ValueError("--ckpt is needed for --method model")
                out = load(args.ckpt, args.device).apply(rgb, args.op, args.gamma,
                                                         strict=args.strict)
            args.output.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(args.output), cv2.cvtColor(out, cv2.COLOR_RGB2BGR)):
                raise ValueError(f"cannot write {args.output} (unknown extension?)")
            print(f"wrote {args.output}")
            return 0
    except (FileNotFoundError, FileExistsError, ValueError, TypeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2

"""The base network of Fan et al. and the ways γ can condition it.

:class:`OperatorNet` is N_base (ECCV 2018 supplementary Table 6; TPAMI 2019 §3.2) whose layers
get their parameters from a :class:`Plan` through the conditioning interface of
:mod:`model.conditioning`:

* ``decouple`` (TPAMI's conv(all)): every convolution's weights are generated from the γ code by a
  fully connected layer, ``W_i = A_i · code + B_i`` (ECCV 2018, Eq. 4);
* ``single``: ordinary learned weights (the one-network-per-γ baseline);
* ``concat``: ordinary weights, and the γ code tiled as extra constant input channels (the
  γ-as-input baseline of TPAMI Table 3, after Chen et al., ICCV 2017). A constant channel only
  shifts each output channel of the first conv by a per-sample constant, which the InstanceNorm
  after it removes: γ then reaches the network only through the zero-padded border;
* the TPAMI §6.3.2 (Table 12) ablation, layers numbered as the paper numbers its 19
  InstanceNorm layers (IN k follows conv k; conv 20 is the output conv): ``norm:K`` (only IN K's
  scale and shift come from the code), ``norm:all``, ``conv:K`` (every weight of conv K),
  ``conv-ch1:K`` (an M×1×k×k slice of conv K: every output channel's weights on input channel
  1) and ``conv-ch2:K`` (a 1×N×k×k slice: output channel 1's weights on every input channel);
* ``cresmd``: He, Dong, Qiao, "Interactive Multi-Dimension Modulation with Dynamic Controllable
  Residual Learning for Image Restoration", ECCV 2020 (arXiv:2008.06750): a condition network
  maps the code to one scalar per residual block that scales the block's residual;
* ``adafm``: He, Dong, Qiao, "Modulating Image Restoration with Continual Levels via Adaptive
  Feature Modification Layers", CVPR 2019 (arXiv:1904.08118): a depthwise k×k filter and bias
  after every conv but the last, interpolated between the identity (λ = 0) and the learned
  filter (λ = 1), λ the normalised γ.

Batches mix γ values, so generated weights differ per sample (``mode``): ``"grouped"`` stacks
them into one grouped convolution; ``"linear"`` uses conv(x, Σ_j c_j A_j + B) = Σ_j c_j conv(x,
A_j) + conv(x, B) for fully generated layers (exact for the linear weight network; other
per-sample layers run grouped); ``"loop"`` is the authors' per-sample loop. The batched modes
also compute the few-layer methods' per-sample steps in batched forms that equal the loop's
(docs/model_architecture.md, "Training speed"): a generated InstanceNorm affine inside the
normalisation (one fused call, as a static affine), a conv with a generated slice as one grouped
conv of the whole per-sample weight (as a fully generated conv), AdaFM's filter I + λ(f − I) as
h + λ·(f − I) ∗ h, a residual gate inside the affine of the IN before the add.

At inference for one γ, :meth:`OperatorNet.fixed_weights` generates every parameter once and
the network then costs what a plain network costs; :meth:`OperatorNet.prefix` and
:meth:`OperatorNet.finish` split the forward pass at the first γ-dependent step, so that a new γ
on the same image re-runs only what follows it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .conditioning import Container, Generated, NormAffine, Params, Slice

PAPER_DILATIONS = (2, 4, 4, 8, 8, 16, 1)
MODES = ("grouped", "linear", "loop")
ARCHS = ("decouple", "single", "concat")  # the plain names OperatorNet(name) accepts
#: AdaFM's filter size (He et al. compare 1×1 to 7×7; 5×5 here)
ADAFM_KERNEL = 5
#: width of CResMD's condition network's hidden layer
CRESMD_HIDDEN = 32


@dataclass(frozen=True)
class ConvSpec:
    cin: int
    cout: int
    k: int
    stride: int = 1
    padding: int = 1
    dilation: int = 1
    transposed: bool = False

    @property
    def shape(self) -> tuple[int, int, int, int]:
        # conv2d weights are (out, in, k, k); conv_transpose2d weights are (in, out, k, k)
        return (self.cin, self.cout, self.k, self.k) if self.transposed else \
            (self.cout, self.cin, self.k, self.k)


def base_layout(width: int = 64, dilations=PAPER_DILATIONS, in_channels: int = 4) -> list[ConvSpec]:
    """The 20 convolutions of N_base (ECCV 2018 supplementary Table 6) for width 64 and 7 blocks.

    conv 3x3 4→w; conv 3x3 w→w; conv 3x3 stride 2; per residual block two 3x3 convs with the
    block's dilation; transposed conv 4x4 stride 2; conv 3x3; conv 3x3 w→3.
    """
    w = width
    convs = [ConvSpec(in_channels, w, 3), ConvSpec(w, w, 3), ConvSpec(w, w, 3, stride=2)]
    for d in dilations:
        convs += [ConvSpec(w, w, 3, padding=d, dilation=d)] * 2
    convs += [ConvSpec(w, w, 4, stride=2, padding=1, transposed=True), ConvSpec(w, w, 3),
              ConvSpec(w, 3, 3)]
    return convs


def _conv(x, w, spec: ConvSpec, groups: int = 1):
    if spec.transposed:
        return F.conv_transpose2d(x, w, stride=spec.stride, padding=spec.padding, groups=groups)
    return F.conv2d(x, w, stride=spec.stride, padding=spec.padding, dilation=spec.dilation,
                    groups=groups)


#: a per-sample conv with fewer output channels than this runs as a loop over the batch on the
#: CPU: there a grouped conv of a few outputs per group is slow (the 64→3 output conv: 3× an
#: ordinary conv of the batch; the loop: 1.1×)
FEW_OUTPUTS = 4


def _per_sample_conv(x, w, spec: ConvSpec):
    """``x`` (N, C, H, W) convolved per sample with its own weights ``w`` (N, *weight shape):
    one grouped conv over the batch (groups = N), or a loop over the samples for a conv with
    few output channels on the CPU (:data:`FEW_OUTPUTS`). Both equal the per-sample loop."""
    n = x.shape[0]
    cout = w.shape[2] if spec.transposed else w.shape[1]
    if cout < FEW_OUTPUTS and x.device.type == "cpu":
        return torch.cat([_conv(x[j:j + 1], w[j], spec) for j in range(n)])
    y = _conv(x.reshape(1, n * x.shape[1], *x.shape[2:]), w.reshape(n * w.shape[1], *w.shape[2:]),
              spec, groups=n)
    return y.reshape(n, cout, *y.shape[2:])


@dataclass(frozen=True)
class Plan:
    """Which parameters of N_base depend on the code, and how (0-based layer indices).

    ``convs``: conv index → ``"full"`` (generated), ``"ch1"``/``"ch2"`` (a slice generated, the
    rest static); ``norms``: IN indices whose affine is generated; ``input_planes``: the code tiled
    as extra input channels; ``gates``: a condition network scales each block's residual
    (CResMD); ``adafm``: AdaFM filters after every conv but the last.
    """

    convs: dict = field(default_factory=dict)
    norms: frozenset = frozenset()
    input_planes: bool = False
    gates: bool = False
    adafm: bool = False

    @property
    def needs_code(self) -> bool:
        return bool(self.convs or self.norms or self.input_planes or self.gates or self.adafm)

    @classmethod
    def named(cls, arch: str, n_convs: int) -> "Plan":
        """The plan of a plain architecture name (``decouple``, ``single``, ``concat``)."""
        if arch == "decouple":
            return cls(convs={i: "full" for i in range(n_convs)})
        if arch == "single":
            return cls()
        if arch == "concat":
            return cls(input_planes=True)
        raise ValueError(f"arch must be one of {ARCHS} (or a Plan), got {arch!r}")


class OperatorNet(nn.Module):
    """N_base whose parameters come from a :class:`Plan` (see the module docstring).

    Input: (N, 4, H, W) from :func:`model.data.prepare` (RGB and edge map on the 0–255 scale minus
    128), H and W even. Output: (N, 3, H, W) on the 0–255 scale (ReLU'd, as the authors' code), or
    with ``residual=True`` the input RGB plus the last conv's output (the output form of the
    TPAMI realtime model), which starts training from near the identity.
    No conv biases; InstanceNorm(affine) + ReLU after every conv but the last; residual blocks are
    conv-IN-ReLU-conv-IN, add, ReLU.

    Parameters (state-dict names kept from the first version, so old checkpoints load):
    ``weights.i`` static conv weights, ``weight_net.i`` the FC layer generating conv i (or its
    slice), ``norms.i`` the IN layers (with their static affine), ``norm_net.i`` the FC layer
    generating IN i's affine, ``gate_net`` (CResMD), ``adafm_filter.i``/``adafm_bias.i`` (AdaFM).
    """

    def __init__(self, arch="decouple", *, width: int = 64, dilations=PAPER_DILATIONS,
                 code_dim: int = 1, mode: str = "grouped", init: str = "paper",
                 residual: bool = False, name: str | None = None):
        super().__init__()
        if init not in ("paper", "conv"):
            raise ValueError(f"init must be 'paper' or 'conv', got {init!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        n_convs = 6 + 2 * len(tuple(dilations))
        plan = arch if isinstance(arch, Plan) else Plan.named(arch, n_convs)
        self.arch = name or (arch if isinstance(arch, str) else "custom")
        self.plan, self.mode, self.code_dim, self.residual = plan, mode, code_dim, residual
        self.layout = base_layout(width, tuple(dilations),
                                  4 + (code_dim if plan.input_planes else 0))
        n_norms = len(self.layout) - 1
        bad = [i for i in plan.convs if not 0 <= i < len(self.layout)] + \
              [i for i in plan.norms if not 0 <= i < n_norms]
        if bad:
            raise ValueError(f"layers {sorted(bad)} do not exist in a network of "
                             f"{len(self.layout)} convs and {n_norms} InstanceNorm layers")
        self.norms = nn.ModuleList(nn.InstanceNorm2d(s.cout, affine=i not in plan.norms)
                                   for i, s in enumerate(self.layout[:-1]))
        static, gen = {}, {}
        for i, s in enumerate(self.layout):
            kind = plan.convs.get(i)
            if kind != "full":
                conv = (nn.ConvTranspose2d if s.transposed else nn.Conv2d)(s.cin, s.cout, s.k,
                                                                           bias=False)
                static[i] = nn.Parameter(conv.weight.detach().clone())
            if kind is not None:
                # Linear(m, numel): weight = A (numel x m), bias = B; PyTorch's default init, as
                # the authors' code; the output is reshaped row-major to the weight's shape.
                # init="conv": A and B ~ U(±1/sqrt(fan_in)), an ordinary conv's scale, instead
                # of U(±1) (Linear's default for m = 1).
                bound = 1.0 / math.sqrt(s.shape[1] * s.k * s.k) if init == "conv" else None
                gen[i] = (Generated(code_dim, s.shape, bound) if kind == "full"
                          else Slice(code_dim, s.shape, kind, bound))
        self.weights = Container(len(self.layout), static)
        self.weight_net = Container(len(self.layout), gen)
        self.norm_net = Container(n_norms, {i: NormAffine(code_dim, self.layout[i].cout)
                                            for i in sorted(plan.norms)})
        n_blocks = len(tuple(dilations))
        self.gate_net = None
        if plan.gates:  # the last layer starts at 0 with bias 1: the plain residual network
            self.gate_net = nn.Sequential(nn.Linear(code_dim, CRESMD_HIDDEN), nn.ReLU(),
                                          nn.Linear(CRESMD_HIDDEN, n_blocks))
            with torch.no_grad():
                self.gate_net[2].weight.zero_()
                self.gate_net[2].bias.fill_(1.0)
        if plan.adafm:
            k = ADAFM_KERNEL
            self.adafm_filter = nn.ParameterList(
                nn.Parameter(_identity_filter(s.cout, k)) for s in self.layout[:-1])
            self.adafm_bias = nn.ParameterList(
                nn.Parameter(torch.zeros(s.cout)) for s in self.layout[:-1])
        self.steps = self._steps(n_blocks)
        #: IN index → the residual block whose add directly follows it (its second IN)
        self._norm_before_add = {a[1]: b[1] for a, b in zip(self.steps, self.steps[1:])
                                 if a[0] == "norm" and b[0] == "add"}

    # ------------------------------------------------------------------ structure
    def _steps(self, n_blocks: int) -> list[tuple]:
        """The forward pass as a list of steps, run by :meth:`_run` from any position."""
        steps = [("planes",)] if self.plan.input_planes else []

        def cnr(i, relu=True):
            s = [("conv", i)] + ([("adafm", i)] if self.plan.adafm else []) + [("norm", i)]
            return s + ([("relu",)] if relu else [])

        for i in range(3):
            steps += cnr(i)
        i = 3
        for b in range(n_blocks):
            steps += [("save",)] + cnr(i) + cnr(i + 1, relu=False) + [("add", b), ("relu",)]
            i += 2
        steps += cnr(i) + cnr(i + 1) + [("conv", i + 2), ("out",)]
        return steps

    def depends_on_code(self, step: tuple) -> bool:
        kind = step[0]
        if kind == "planes" or kind == "adafm":
            return True
        if kind == "conv":
            return step[1] in self.plan.convs
        if kind == "norm":
            return step[1] in self.plan.norms
        if kind == "add":
            return self.plan.gates
        return False

    @property
    def first_dependent(self) -> int:
        """Position in :attr:`steps` of the first step that depends on the code."""
        return next((k for k, s in enumerate(self.steps) if self.depends_on_code(s)),
                    len(self.steps))

    # ------------------------------------------------------------------ stages
    def stage_parameters(self, stage: int) -> list[nn.Parameter]:
        """What a training stage trains: everything, except with AdaFM (He et al., CVPR 2019):
        stage 0 the base network (at λ = 0 the AdaFM filters are the identity), stage 1 only
        the AdaFM filters and biases (the base frozen)."""
        if not self.plan.adafm:
            return list(self.parameters())
        ada = {id(p) for p in [*self.adafm_filter, *self.adafm_bias]}
        return [p for p in self.parameters() if (id(p) in ada) == (stage == 1)]

    # ------------------------------------------------------------------ parameters
    @property
    def needs_code(self) -> bool:
        """Whether :meth:`forward` needs the γ code."""
        return self.plan.needs_code

    def params(self, code: torch.Tensor | None, *, linear: bool = False,
               batched: bool = False) -> Params:
        """Every code-dependent parameter for a batch of codes (N, m): per-sample tensors with a
        leading N axis (static parameters are not listed). ``linear``: fully generated conv
        weights are left out (None), for the "linear" mode that never materialises them.
        ``batched`` (the batched modes' forward pass): AdaFM's per-sample filters are left out
        (that pass computes them in a batched form)."""
        p = Params()
        if not self.plan.needs_code:
            return p
        for i, gen in self.weight_net.items():
            kind = self.plan.convs[i]
            if linear and kind == "full":
                p.conv[i] = None
            else:
                p.conv[i] = gen(code, self.weights[i] if i in self.weights else None)
        for i, gen in self.norm_net.items():
            p.affine[i] = gen(code)
        if self.gate_net is not None:
            p.gates = self.gate_net(code)
        if self.plan.adafm and not batched:
            lam = code[:, :1]  # the normalised γ
            p.adafm = {i: (_lerp_identity(f, lam), lam * b[None])
                       for i, (f, b) in enumerate(zip(self.adafm_filter, self.adafm_bias))}
        p.code = code
        return p

    def fixed_weights(self, code: torch.Tensor | None = None) -> Params:
        """Every code-dependent parameter for one code (m,), computed once and reused for any
        batch (:meth:`forward` with ``fixed=``)."""
        if not self.needs_code:
            return Params(shared=True)
        device = next(self.parameters()).device
        code = torch.as_tensor(code, dtype=torch.float32, device=device).reshape(1, -1)
        p = self.params(code)
        return p.squeeze()

    # ------------------------------------------------------------------ forward
    def _check(self, x, code, fixed):
        if x.ndim != 4 or x.shape[1] != 4:
            raise ValueError(f"expected input (N, 4, H, W), got {tuple(x.shape)}")
        if x.shape[2] % 2 or x.shape[3] % 2:
            raise ValueError(f"height and width must be even, got {tuple(x.shape[2:])}")
        if self.needs_code and (fixed is None or self.plan.input_planes):
            if code is None or code.shape != (x.shape[0], self.code_dim):
                raise ValueError(f"{self.arch} needs a code of shape (N, {self.code_dim}), got "
                                 f"{None if code is None else tuple(code.shape)}")

    def forward(self, x: torch.Tensor, code: torch.Tensor | None = None, *, fixed=None):
        """``x`` (N, 4, H, W) from :func:`model.data.prepare`; ``code`` (N, m) unless ``fixed``
        parameters are given (concat always needs it); returns (N, 3, H, W) on 0–255."""
        self._check(x, code, fixed)
        if fixed is None:
            fixed = (self.params(code, linear=self.mode == "linear",
                                 batched=self.mode != "loop") if self.needs_code
                     else Params(shared=True))
        state = {"h": x, "x": x, "skip": None}
        return self._run(state, 0, fixed, code)

    def prefix(self, x: torch.Tensor, code: torch.Tensor | None = None) -> tuple[int, dict]:
        """Run the steps before the first code-dependent one: (position, state) to pass to
        :meth:`finish` with any code's parameters."""
        stop = self.first_dependent
        state = {"h": x, "x": x, "skip": None}
        self._run(state, 0, Params(shared=True), code, stop=stop)
        return stop, state

    def finish(self, position: int, state: dict, fixed, code=None) -> torch.Tensor:
        """The rest of the forward pass from :meth:`prefix`'s result."""
        return self._run(dict(state), position, fixed, code)

    def _run(self, st: dict, start: int, p: Params, code, stop: int | None = None):
        steps = self.steps if stop is None else self.steps[:stop]
        h, gated = st["h"], None  # gated: the block whose gate the last IN applied
        for kind, *arg in steps[start:]:
            if kind == "planes":  # the code on the input's scale (0–255 minus 128), tiled
                planes = (code.to(h.dtype) * 255.0 - 128.0)[:, :, None, None]
                h = torch.cat([h, planes.expand(-1, -1, *h.shape[2:])], dim=1)
            elif kind == "conv":
                h = self._conv_step(arg[0], h, p, code)
            elif kind == "adafm":
                if arg[0] in p.adafm:
                    f, b = p.adafm[arg[0]]
                    h = _depthwise(h, f, b, p.shared)
                else:  # batched modes: h + λ (f − I) ∗ h + λ b, as I + λ (f − I) (see params)
                    h = _adafm_batched(h, self.adafm_filter[arg[0]], self.adafm_bias[arg[0]],
                                       p.code[:, :1])
            elif kind == "norm":
                i = arg[0]
                blk = self._gated_norm(i, p)
                if blk is not None:  # batched CResMD: the gate inside this IN's affine (see there)
                    h, gated = self._gated_instance_norm(i, blk, h, p), blk
                elif i in self.plan.norms:
                    scale, shift = p.affine[i]
                    if p.shared:
                        h = F.instance_norm(h, eps=self.norms[i].eps)
                        h = h * scale[None, :, None, None] + shift[None, :, None, None]
                    elif self.mode == "loop":  # the literal form: normalise, then the affine
                        h = F.instance_norm(h, eps=self.norms[i].eps)
                        h = h * scale[:, :, None, None] + shift[:, :, None, None]
                    else:
                        h = instance_norm_affine(h, scale, shift, self.norms[i].eps)
                else:
                    h = self.norms[i](h)
            elif kind == "relu":
                h = F.relu(h)
            elif kind == "save":
                st["skip"] = h
            elif kind == "add":
                if self.plan.gates and gated != arg[0]:
                    g = p.gates[arg[0]] if p.shared else p.gates[:, arg[0], None, None, None]
                    h = st["skip"] + g * h
                else:  # ungated, or the gate already applied by the IN before (batched CResMD)
                    h = st["skip"] + h
            elif kind == "out":
                if self.residual:  # TPAMI's realtime variant: input RGB + predicted residual
                    h = st["x"][:, :3] + 128.0 + h
                else:
                    h = F.relu(h)
        st["h"] = h
        return h

    def _conv_step(self, i: int, h, p: Params, code):
        spec = self.layout[i]
        if i not in self.plan.convs:
            return _conv(h, self.weights[i], spec)
        w = p.conv.get(i)
        if w is None:  # "linear" mode, fully generated layer
            return self._linear_conv(i, h, code)
        if p.shared:
            return _conv(h, w, spec)
        if self.mode == "loop":
            return torch.cat([_conv(h[j:j + 1], w[j], spec) for j in range(h.shape[0])])
        return _per_sample_conv(h, w, spec)

    def _gated_norm(self, i: int, p: Params) -> int | None:
        """The residual block whose gate the batched modes fold into IN ``i`` (the block's
        second IN, right before its add), or None: the shared and loop forms gate at the add."""
        if not self.plan.gates or p.shared or self.mode == "loop":
            return None
        return self._norm_before_add.get(i)

    def _gated_instance_norm(self, i: int, b: int, h, p: Params):
        """IN ``i`` followed by block ``b``'s gate g (CResMD), batched: the block's residual is
        this IN's output (no ReLU between), and g · (ĥ · s + t) = ĥ · (g s) + g t, so the gate
        becomes a per-sample affine inside the one fused normalisation call
        (:func:`instance_norm_affine`) and the add is a plain add. Equal to the loop's
        ``skip + g · IN(h)``; costs what the static IN and the plain add of ``single`` cost,
        where a separate multiply(-add) costs an extra pass over the feature map forward and
        two backward (∂/∂h and the reduction for ∂/∂g)."""
        g = p.gates[:, b, None]  # (n, 1)
        if i in self.plan.norms:
            scale, shift = p.affine[i]
        else:
            scale, shift = self.norms[i].weight[None], self.norms[i].bias[None]
        return instance_norm_affine(h, g * scale, g * shift, self.norms[i].eps)

    def _linear_conv(self, i: int, x, code):
        spec, fc, n = self.layout[i], self.weight_net[i], x.shape[0]
        m = code.shape[1]
        a = fc.weight.t().reshape(m, *spec.shape)  # A_j for each code component
        basis = torch.cat([a, fc.bias.reshape(1, *spec.shape)])  # (m+1, ...)
        if spec.transposed:  # stack along the output axis (dim 1 of a transposed weight)
            y = _conv(x, basis.permute(1, 0, 2, 3, 4).reshape(spec.cin, -1, spec.k, spec.k), spec)
        else:
            y = _conv(x, basis.reshape(-1, spec.cin, spec.k, spec.k), spec)
        y = y.reshape(n, m + 1, spec.cout, *y.shape[2:])
        coeff = torch.cat([code, code.new_ones(n, 1)], dim=1)
        return torch.einsum("nj,njchw->nchw", coeff, y)


# ---------------------------------------------------------------------- AdaFM helpers
def _identity_filter(channels: int, k: int) -> torch.Tensor:
    f = torch.zeros(channels, 1, k, k)
    f[:, 0, k // 2, k // 2] = 1.0
    return f


def _lerp_identity(f: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Per-sample filters I + λ (f − I), I the identity (a centred delta): (N, C, 1, k, k)."""
    ident = _identity_filter(f.shape[0], f.shape[-1]).to(f)
    return ident[None] + lam[:, :, None, None, None] * (f - ident)[None]


def _adafm_batched(h, f, b, lam):
    """AdaFM's per-sample step, batched: ``h + λ ((f − I) ∗ h + b)`` per sample, which equals the
    depthwise filter I + λ (f − I) with bias λ b (the convolution is linear in the filter) but
    runs one depthwise conv with the shared filter f − I over the whole batch instead of a
    grouped conv with N·C groups. A batch whose λ are all 0 (the first stage, the base network
    at the low end) is the identity there, and skips the conv."""
    if not bool((lam != 0).any()):
        return h
    ident = _identity_filter(f.shape[0], f.shape[-1]).to(f)
    d = F.conv2d(h, f - ident, b, padding=f.shape[-1] // 2, groups=h.shape[1])
    return torch.addcmul(h, lam[:, :, None, None].to(h.dtype), d)


def instance_norm_affine(h, scale, shift, eps: float):
    """InstanceNorm with a per-sample affine, scale and shift (N, C): one fused normalisation
    of the batch seen as one sample of N·C channels (what ``F.instance_norm`` runs for a static
    affine), instead of normalising and then two passes of multiply and add."""
    n, c = h.shape[:2]
    y = F.batch_norm(h.reshape(1, n * c, *h.shape[2:]), None, None, scale.reshape(n * c),
                     shift.reshape(n * c), training=True, momentum=0.0, eps=eps)
    return y.reshape(h.shape)


def _depthwise(h, f, b, shared: bool):
    c, k = h.shape[1], f.shape[-1]
    if shared:
        return F.conv2d(h, f, b, padding=k // 2, groups=c)
    n = h.shape[0]
    y = F.conv2d(h.reshape(1, n * c, *h.shape[2:]), f.reshape(n * c, 1, k, k),
                 b.reshape(n * c), padding=k // 2, groups=n * c)
    return y.reshape(n, c, *y.shape[2:])

"""Values and window arithmetic of the fast ISM engine (see ``_fast_ism_ops``
for what each value means and ``_fast_ism`` for the engine).

The local rules here act on a batch of edits whose change is confined to a
window per site: ``conv_local`` convolves the change (a one-base change at
the first layer), ``pool_local`` and ``unary_local`` recompute the window from
the reference activations (read once per site, shared by its alternative
bases), ``add_local`` adds two changes on the union of their windows.
"""
import math

import torch
import torch.nn.functional as F


class Unsupported(Exception):
    """An op whose effect on an edit the engine cannot vouch for."""


class _BatchDim:
    def __repr__(self):
        return 'BATCH'


BATCH = _BatchDim()


class Static:
    __slots__ = ('value',)

    def __init__(self, value):
        self.value = value


class Batched:
    __slots__ = ('node',)

    def __init__(self, node):
        self.node = node


class Local:
    __slots__ = ('delta', 'start', 'length', 'trail', 'node')

    def __init__(self, delta, start, length, trail, node):
        self.delta, self.start, self.length, self.trail, self.node = delta, start, length, trail, node

    @property
    def width(self):
        return self.delta.shape[-1]


class FlatLocal:
    __slots__ = ('local', 'node')

    def __init__(self, local, node):
        self.local, self.node = local, node


class SwappedLocal:
    __slots__ = ('local', 'node')

    def __init__(self, local, node):
        self.local, self.node = local, node


class Dense:
    __slots__ = ('value', 'node')

    def __init__(self, value, node):
        self.value, self.node = value, node


# ---------------------------------------------------------------------------
# windows


def ceil_div(a, b):
    return -((-a) // b)


def place(ctx, delta, src_start, dst_start, width):
    """``delta`` (B, C, W) on windows starting at ``src_start`` (per site)
    re-expressed on windows of ``width`` starting at ``dst_start``: zero where
    the source does not reach, cropped where the destination is narrower."""
    W = delta.shape[-1]
    off = src_start - dst_start
    lo, hi = int(off.min()), int(off.max())
    if lo == hi:  # one geometry for the whole batch (always so for stride-1 ops)
        return F.pad(delta, (lo, width - lo - W))
    off = ctx.per_edit(off.clamp(-W, width))
    padded = F.pad(delta, (width, width))
    rows = torch.arange(len(delta), device=delta.device)
    return padded.unfold(2, width, 1)[rows, :, width - off]


def valid_mask(ctx, start, width, length):
    """(B, 1, W) bool of the window positions inside ``[0, length)``, or None
    when all are."""
    if int(start.min()) >= 0 and int(start.max()) + width <= length:
        return None
    pos = start[:, None] + torch.arange(width, device=start.device)
    return ctx.per_edit((pos >= 0) & (pos < length)).unsqueeze(1)


def zero_outside(ctx, delta, start, length, fresh=False):
    """Zero the window positions outside ``[0, length)`` (in place when
    ``delta`` is a fresh tensor nobody else holds)."""
    mask = valid_mask(ctx, start, delta.shape[-1], length)
    if mask is None:
        return delta
    if fresh:
        return delta.masked_fill_(~mask, 0)
    return torch.where(mask, delta, torch.zeros((), dtype=delta.dtype, device=delta.device))


def _trail(t, n):
    for _ in range(n):
        t = t.unsqueeze(-1)
    return t


def to_dense(ctx, v):
    """The full per-edit tensor of any input-dependent value."""
    if isinstance(v, Dense):
        return v.value
    if isinstance(v, Batched):
        return ctx.ref_rows(v.node)
    if isinstance(v, Local):
        full = place(ctx, v.delta, v.start, torch.zeros_like(v.start), v.length)
        return ctx.ref_rows(v.node) + _trail(full, v.trail)
    if isinstance(v, FlatLocal):
        return to_dense(ctx, v.local).flatten(1)
    if isinstance(v, SwappedLocal):
        return to_dense(ctx, v.local).transpose(1, 2)
    raise Unsupported(f"cannot expand a {type(v).__name__}")


def union(ctx, values):
    start = torch.stack([v.start for v in values]).min(0).values
    end = torch.stack([v.start + v.width for v in values]).max(0).values
    width = int((end - start).max())
    return start, width, [place(ctx, v.delta, v.start, start, width) for v in values]


def add_local(ctx, a, b, sign, node):
    """Δa + sign * Δb on the union of the two windows; when one window holds
    the other at one offset (residual blocks), add into the wider one (in
    place when no other value holds it)."""
    for big, small, big_sign, small_sign in ((a, b, 1, sign), (b, a, sign, 1)):
        off = small.start - big.start
        lo, hi = int(off.min()), int(off.max())
        if lo == hi and lo >= 0 and lo + small.width <= big.width and big is not small:
            if big_sign == 1:
                out = big.delta if ctx.consumable(big.delta) else big.delta.clone()
            else:
                out = big.delta.neg_() if ctx.consumable(big.delta) else -big.delta
            if small_sign == 1:
                out[..., lo:lo + small.width] += small.delta
            else:
                out[..., lo:lo + small.width] -= small.delta
            return Local(out, big.start, big.length, big.trail, node)
    start, _, (da, db) = union(ctx, [a, b])
    return Local(da + db if sign == 1 else da - db, start, a.length, a.trail, node)


def _geometry(v, k, stride, pad, dil):
    """Output window of a sliding op (kernel k) over a Local window, and the
    input span it reads: (out_start, out_width, in_start, in_width)."""
    ext = (k - 1) * dil
    o_lo = ceil_div(v.start + pad - ext, stride)
    wo = (v.width - 1 + ext) // stride + 1
    return o_lo, wo, o_lo * stride - pad, (wo - 1) * stride + ext + 1


def conv_local(ctx, v, weight, stride, pad, dil, groups, node):
    """Δout: the convolution (no bias) of Δin over the outputs it can reach."""
    o_lo, wo, i_lo, wi = _geometry(v, weight.shape[-1], stride, pad, dil)
    off = v.start - i_lo
    lo, hi = int(off.min()), int(off.max())
    right = wi - lo - v.width
    ctx.count(len(v.delta) * weight.numel() * wo)
    if lo == hi and lo == right and lo >= 0:  # symmetric: let the convolution pad
        d = F.conv1d(v.delta, weight, None, stride, lo, dil, groups)
    else:
        d = F.conv1d(place(ctx, v.delta, v.start, i_lo, wi), weight, None, stride, 0, dil, groups)
    L = ctx.ref_len(node)
    return Local(zero_outside(ctx, d, o_lo, L, fresh=True), o_lo, L, v.trail, node)


def pool_local(ctx, v, is_max, k, stride, pad, dil, node, count_include_pad=True):
    """Average pooling is linear (acts on Δ); max pooling recomputes the
    window from the reference plus Δ, with -inf outside the sequence."""
    o_lo, wo, i_lo, wi = _geometry(v, k, stride, pad, dil)
    x = place(ctx, v.delta, v.start, i_lo, wi)
    L = ctx.ref_len(node)
    if not is_max:
        if pad and not count_include_pad:
            raise Unsupported("avg_pool with count_include_pad=False and padding")
        return Local(zero_outside(ctx, F.avg_pool1d(x, k, stride, 0), o_lo, L, fresh=True), o_lo, L,
                     v.trail, node)
    ref_in = ctx.ref_windows(v.node, i_lo, wi)                          # (P, C, wi)
    P, C = ref_in.shape[:2]
    mut = (ref_in.unsqueeze(1) + x.view(P, -1, C, wi)).view(-1, C, wi)
    mask = valid_mask(ctx, i_lo, wi, ctx.ref_len(v.node))
    if mask is not None:
        mut = torch.where(mask, mut, torch.full((), -math.inf, dtype=mut.dtype, device=mut.device))
    out = F.max_pool1d(mut, k, stride, 0, dil).view(P, -1, C, wo)
    out.sub_(ctx.ref_windows(node, o_lo, wo).unsqueeze(1))
    return Local(zero_outside(ctx, out.view(-1, C, wo), o_lo, L, fresh=True), o_lo, L, v.trail, node)


def unary_local(ctx, v, fn, node, inplace_fn=None):
    """Δout = f(ref + Δ) - f(ref) on the window; f sees (rows, C, W) tensors
    so that per-channel parameters (PReLU) line up. ``inplace_fn`` (e.g.
    ``torch.relu_``) avoids allocations; Δ itself is reused when no other
    value holds it."""
    ref = ctx.ref_windows(v.node, v.start, v.width)                     # (P, C, W)
    P, C, W = ref.shape
    d = v.delta.view(P, -1, C, W)
    mut = d.add_(ref.unsqueeze(1)) if ctx.consumable(v.delta) else d + ref.unsqueeze(1)
    mut = mut.view(-1, C, W)
    out = inplace_fn(mut) if inplace_fn is not None else fn(mut)
    out.view(P, -1, C, W).sub_(fn(ref).unsqueeze(1))
    return Local(out, v.start, v.length, v.trail, node)

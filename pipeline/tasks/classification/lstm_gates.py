"""An LSTM written out from its gate equations, with its backpropagation through time, weight-compatible
with ``torch.nn.LSTM``.

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh   (W_ig x + b_ig + W_hg h + b_hg)      cell candidate
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g,   h' = o * tanh(c')

Backward through time, from the last step to the first (``dh``, ``dc``: the loss's
gradient with respect to h and c at the step):

    dc += dh * o * (1 - tanh(c')^2)
    d(pre-activation) of i, f, g, o = dc*g * i(1-i),  dc*c * f(1-f),  dc*i * (1-g^2),  dh*tanh(c') * o(1-o)
    dh_prev = d(pre-activation) @ W_h,     dc_prev = dc * f

Parameters are stacked in torch's (i, f, g, o) order under torch's names, so a state dict
moves between the two. Speed: every step's input projection is one matrix product before the
loop and each weight gradient one product after it (over all steps at once); the loops write
into buffers allocated once per call, and autograd records one node per layer instead of a
dozen per step. What remains is bound by the per-step products (oneDNN's, as nn.LSTM uses) and,
at small sizes, by the fixed cost of each tensor operation.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T (+ bias)``. On CPU in float32 through oneDNN, the library nn.LSTM itself runs on:
    MKL's sgemm (torch.mm) takes up to twice as long for these shapes on CPUs MKL does not tune for."""
    if _ONEDNN and x.device.type == "cpu" and x.dtype == torch.float32:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return torch.nn.functional.linear(x, weight, bias)


def _t_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a.T @ b``, a sum over all steps' rows. oneDNN first copies both operands transposed; that
    pays off only when each copied element takes part in enough products (a wide ``b``)."""
    if b.shape[1] >= 256:
        return _linear(a.t(), b.t())
    return a.t().mm(b)


_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


class _LSTMLayer(torch.autograd.Function):
    """One layer over a whole time-major sequence (T, B, I): hidden states out.

    Small shapes are bound by the per-operation dispatch cost, not arithmetic, so the loops
    index pre-made per-step views (one ``unbind`` per tensor) and do the fewest operations a
    step needs; everything that does not depend on the incoming gradient is computed for all
    steps at once, outside the loops.
    """

    @staticmethod
    def forward(ctx, seq: torch.Tensor, w_ih: torch.Tensor, bias: torch.Tensor, w_hh: torch.Tensor,
                h0: torch.Tensor, c0: torch.Tensor):
        steps, batch, _ = seq.shape
        hidden = w_hh.shape[1]
        # (T, B, 4H) pre-activations of every step's input at once, turned into activations step by step
        acts = _linear(seq.reshape(steps * batch, -1), w_ih, bias).view(steps, batch, 4 * hidden)
        hs = seq.new_empty(steps + 1, batch, hidden)  # h_0 .. h_T
        cs = seq.new_empty(steps + 1, batch, hidden)  # c_0 .. c_T
        tanh_cs = seq.new_empty(steps, batch, hidden)
        hs[0], cs[0] = h0, c0
        # torch's tanh is several times slower than its sigmoid on CPU, so tanh(x) = 2 sigmoid(2x) - 1:
        # the cell candidate's pre-activations are doubled (its rows of both products) and all four
        # gates take one sigmoid.
        acts[..., 2 * hidden:3 * hidden].mul_(2)
        w_hh_doubled = w_hh.clone()
        w_hh_doubled[2 * hidden:3 * hidden].mul_(2)
        a_t, h_t, c_t, tc_t = acts.unbind(0), hs.unbind(0), cs.unbind(0), tanh_cs.unbind(0)
        i_t, f_t, g_t, o_t = (part.unbind(0) for part in acts.chunk(4, dim=2))
        for t in range(steps):
            a_t[t].add_(_linear(h_t[t], w_hh_doubled)).sigmoid_()
            g_t[t].mul_(2).sub_(1)
            torch.mul(f_t[t], c_t[t], out=c_t[t + 1]).addcmul_(i_t[t], g_t[t])
            torch.mul(c_t[t + 1], 2, out=tc_t[t]).sigmoid_().mul_(2).sub_(1)
            torch.mul(o_t[t], tc_t[t], out=h_t[t + 1])
        ctx.save_for_backward(seq, w_ih, w_hh, acts, hs, cs, tanh_cs)
        return hs[1:], hs[steps].clone(), cs[steps].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor, grad_h: torch.Tensor, grad_c: torch.Tensor):
        seq, w_ih, w_hh, acts, hs, cs, tanh_cs = ctx.saved_tensors
        steps, batch, four_h = acts.shape
        hidden = four_h // 4
        i, f, g, o = acts.chunk(4, dim=2)
        # d(pre-activation) = coef * dc for i, f, g and coef * dh for o; dc picks up dh * keep_c.
        coef = torch.empty_like(acts)
        coef_i, coef_f, coef_g, coef_o = coef.chunk(4, dim=2)
        torch.mul(i, 1 - i, out=coef_i).mul_(g)
        torch.mul(f, 1 - f, out=coef_f).mul_(cs[:-1])
        torch.mul(g, g, out=coef_g).neg_().add_(1).mul_(i)
        torch.mul(o, 1 - o, out=coef_o).mul_(tanh_cs)
        keep_c = tanh_cs.square().neg_().add_(1).mul_(o)
        dgates = torch.empty_like(acts)
        coef_t = [part.unbind(0) for part in coef.chunk(4, dim=2)]
        dgates_t4 = [part.unbind(0) for part in dgates.chunk(4, dim=2)]
        keep_t, f_t, dgates_t, grad_out_t = keep_c.unbind(0), f.unbind(0), dgates.unbind(0), grad_out.unbind(0)
        w_hh_t = w_hh.t().contiguous()
        dh = grad_out_t[steps - 1] + grad_h
        dc = grad_c.clone()
        for t in reversed(range(steps)):
            if t < steps - 1:
                torch.add(grad_out_t[t], _linear(dgates_t[t + 1], w_hh_t), out=dh)
            dc.addcmul_(dh, keep_t[t])
            for gate in range(3):  # i, f, g (one broadcast product over the three is slower)
                torch.mul(coef_t[gate][t], dc, out=dgates_t4[gate][t])
            torch.mul(coef_t[3][t], dh, out=dgates_t4[3][t])
            dc.mul_(f_t[t])
        flat = dgates.view(-1, four_h)
        # Weight gradients: one product each over all steps at once.
        grad_w_hh = _t_mm(flat, hs[:-1].reshape(-1, hidden))
        grad_w_ih = _t_mm(flat, seq.reshape(steps * batch, -1))
        grad_seq = _linear(flat, w_ih.t().contiguous()).view(seq.shape)
        return grad_seq, grad_w_ih, flat.sum(0), grad_w_hh, _linear(dgates_t[0], w_hh_t), dc


class GateLSTM(nn.Module):
    """Single-direction, batch-first LSTM with the interface of ``nn.LSTM(batch_first=True)``."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        for layer in range(num_layers):
            in_size = input_size if layer == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{layer}", nn.Parameter(torch.empty(4 * hidden_size, in_size)))
            self.register_parameter(f"weight_hh_l{layer}", nn.Parameter(torch.empty(4 * hidden_size, hidden_size)))
            self.register_parameter(f"bias_ih_l{layer}", nn.Parameter(torch.empty(4 * hidden_size)))
            self.register_parameter(f"bias_hh_l{layer}", nn.Parameter(torch.empty(4 * hidden_size)))
        bound = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():  # nn.LSTM's initialisation
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None):
        if state is None:
            zeros = x.new_zeros(self.num_layers, x.size(0), self.hidden_size)
            state = (zeros, zeros)
        h_n, c_n = [], []
        seq = x.transpose(0, 1)  # time-major inside: each step's rows are contiguous
        for layer in range(self.num_layers):
            weights = [getattr(self, f"{kind}_l{layer}") for kind in ("weight_ih", "bias_ih", "bias_hh", "weight_hh")]
            w_ih, b_ih, b_hh, w_hh = weights
            seq, h, c = _LSTMLayer.apply(seq.contiguous(), w_ih, b_ih + b_hh, w_hh, state[0][layer], state[1][layer])
            h_n.append(h)
            c_n.append(c)
        return seq.transpose(0, 1), (torch.stack(h_n), torch.stack(c_n))

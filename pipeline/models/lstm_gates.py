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
moves between the two. Speed: the input projections of all steps are one matrix product
before the loop, and the recurrent weights' gradient one matrix product after it (over all
steps at once); the loops write into buffers allocated once per call, and autograd records
one node per layer instead of a dozen per step.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.autograd.function import once_differentiable


class _LSTMLayer(torch.autograd.Function):
    """One layer over a whole sequence: time-major pre-activations in, hidden states out."""

    @staticmethod
    def forward(ctx, gates_x: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor,
                c0: torch.Tensor):
        steps, batch, four_h = gates_x.shape
        hidden = four_h // 4
        acts = torch.add(gates_x, b_hh)  # (T, B, 4H): pre-activations, turned into activations step by step
        hs = gates_x.new_empty(steps + 1, batch, hidden)  # h_0 .. h_T
        cs = gates_x.new_empty(steps + 1, batch, hidden)  # c_0 .. c_T
        tanh_cs = gates_x.new_empty(steps, batch, hidden)
        hs[0], cs[0] = h0, c0
        w_t = w_hh.t()
        for t in range(steps):
            a = acts[t]
            a.addmm_(hs[t], w_t)
            a[:, :2 * hidden].sigmoid_()
            a[:, 2 * hidden:3 * hidden].tanh_()
            a[:, 3 * hidden:].sigmoid_()
            i, f, g, o = a.chunk(4, dim=1)
            torch.mul(f, cs[t], out=cs[t + 1]).addcmul_(i, g)
            torch.tanh(cs[t + 1], out=tanh_cs[t])
            torch.mul(o, tanh_cs[t], out=hs[t + 1])
        ctx.save_for_backward(w_hh, acts, hs, cs, tanh_cs)
        return hs[1:], hs[steps].clone(), cs[steps].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: torch.Tensor, grad_h: torch.Tensor, grad_c: torch.Tensor):
        w_hh, acts, hs, cs, tanh_cs = ctx.saved_tensors
        steps = acts.shape[0]
        dgates = torch.empty_like(acts)
        dh = grad_h.clone()
        dc = grad_c.clone()
        scratch = torch.empty_like(dh)
        for t in reversed(range(steps)):
            dh.add_(grad_out[t])
            i, f, g, o = acts[t].chunk(4, dim=1)
            di, df, dg, do = dgates[t].chunk(4, dim=1)
            tc = tanh_cs[t]
            # dc += dh * o * (1 - tanh(c')^2)
            torch.mul(tc, tc, out=scratch).neg_().add_(1).mul_(o).mul_(dh)
            dc.add_(scratch)
            # output gate: dh * tanh(c') * o(1 - o)
            torch.mul(dh, tc, out=do).mul_(o).mul_(1 - o)
            torch.mul(dc, g, out=di).mul_(i).mul_(1 - i)
            torch.mul(dc, cs[t], out=df).mul_(f).mul_(1 - f)
            torch.mul(dc, i, out=dg).mul_(1 - g * g)
            dc.mul_(f)
            torch.mm(dgates[t], w_hh, out=dh)
        flat = dgates.reshape(-1, dgates.shape[-1])
        grad_w_hh = flat.t().mm(hs[:-1].reshape(-1, hs.shape[-1]))
        return dgates, grad_w_hh, flat.sum(0), dh, dc


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
            w_ih = getattr(self, f"weight_ih_l{layer}")
            gates_x = torch.matmul(seq, w_ih.t()) + getattr(self, f"bias_ih_l{layer}")
            seq, h, c = _LSTMLayer.apply(gates_x, getattr(self, f"weight_hh_l{layer}"),
                                         getattr(self, f"bias_hh_l{layer}"), state[0][layer], state[1][layer])
            h_n.append(h)
            c_n.append(c)
        return seq.transpose(0, 1), (torch.stack(h_n), torch.stack(c_n))

"""An LSTM written out from its gate equations, weight-compatible with ``torch.nn.LSTM``.

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      input gate
    f = sigmoid(W_if x + b_if + W_hf h + b_hf)      forget gate
    g = tanh   (W_ig x + b_ig + W_hg h + b_hg)      cell candidate
    o = sigmoid(W_io x + b_io + W_ho h + b_ho)      output gate
    c' = f * c + i * g,   h' = o * tanh(c')

Parameters are stacked in torch's (i, f, g, o) order under torch's names, so a
state dict moves between the two. Speed: the input projections of all steps
are one matrix product before the loop; only the recurrent product stays in
it, and the loop body is TorchScript-compiled.
"""

from __future__ import annotations

import math

import torch
from torch import nn


@torch.jit.script
def _recur(gates_x: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    outputs = []
    for t in range(gates_x.size(1)):
        gates = gates_x[:, t] + torch.mm(h, w_hh.t()) + b_hh
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outputs.append(h)
    return torch.stack(outputs, dim=1), h, c


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
        batch = x.size(0)
        if state is None:
            zeros = x.new_zeros(self.num_layers, batch, self.hidden_size)
            state = (zeros, zeros)
        h_n, c_n = [], []
        out = x
        for layer in range(self.num_layers):
            w_ih = getattr(self, f"weight_ih_l{layer}")
            gates_x = torch.matmul(out, w_ih.t()) + getattr(self, f"bias_ih_l{layer}")
            out, h, c = _recur(
                gates_x, getattr(self, f"weight_hh_l{layer}"), getattr(self, f"bias_hh_l{layer}"),
                state[0][layer], state[1][layer],
            )
            h_n.append(h)
            c_n.append(c)
        return out, (torch.stack(h_n), torch.stack(c_n))

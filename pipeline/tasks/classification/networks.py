"""Classifiers that read an image as a sequence (or mix convolutions with an LSTM)."""

from __future__ import annotations

import torch
from torch import nn

from pipeline.tasks.classification.lstm_gates import GateLSTM

_CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def _row_lstm(input_size: int, hidden: int) -> nn.LSTM:
    return nn.LSTM(input_size, hidden, batch_first=True)


class RecurrentClassifier(nn.Module):
    """A recurrent net over a sequence (B, T, F); the last step's state is classified.

    ``cell`` picks nn.RNN, nn.GRU, nn.LSTM or the gate-equation LSTM ("gates").
    The sequence view (rows, pixels, permuted pixels) is the data module's choice.
    """

    def __init__(self, input_size: int, num_classes: int, cell: str = "lstm", hidden: int = 128,
                 layers: int = 1, bidirectional: bool = False):
        super().__init__()
        if cell == "gates":
            if bidirectional:
                raise ValueError("cell 'gates' is single-direction")
            self.rnn = GateLSTM(input_size, hidden, layers)
        elif cell in _CELLS:
            self.rnn = _CELLS[cell](input_size, hidden, num_layers=layers, batch_first=True,
                                    bidirectional=bidirectional)
            if cell == "rnn":
                # A plain tanh RNN trains only when its recurrence starts norm-preserving
                # (orthogonal W_hh, Saxe et al. 2014); uniform init leaves it ~5 points behind.
                for name, weight in self.rnn.named_parameters():
                    if name.startswith("weight_hh"):
                        nn.init.orthogonal_(weight)
        else:
            raise ValueError(f"cell must be one of rnn, gru, lstm, gates; got {cell!r}")
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_classes)
        self.bidirectional = bidirectional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        if self.bidirectional:
            half = out.size(-1) // 2
            # Forward direction ends at the last step, backward at the first.
            features = torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=-1)
        else:
            features = out[:, -1]
        return self.head(features)


class StackedLSTM(nn.Module):
    """The seeds' stack: LSTM(hidden1, every step) -> LSTM(hidden2, last step) -> classes."""

    def __init__(self, input_size: int, num_classes: int, hidden1: int = 128, hidden2: int = 64):
        super().__init__()
        self.first = _row_lstm(input_size, hidden1)
        self.second = _row_lstm(hidden1, hidden2)
        self.head = nn.Linear(hidden2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.first(x)
        out, _ = self.second(seq)
        return self.head(out[:, -1])


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2))


class CNNLSTM(nn.Module):
    """Two streams over the same image: a CNN and a row-reading LSTM, concatenated, then dense."""

    def __init__(self, image_size: int, num_classes: int, channels: int = 32, hidden: int = 128):
        super().__init__()
        self.cnn = nn.Sequential(_conv_block(1, channels), _conv_block(channels, 2 * channels),
                                 nn.AdaptiveAvgPool2d(3), nn.Flatten())
        self.lstm = _row_lstm(image_size, hidden)
        self.head = nn.Sequential(nn.Linear(2 * channels * 9 + hidden, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, _ = self.lstm(x[:, 0])
        return self.head(torch.cat([self.cnn(x), rows[:, -1]], dim=-1))


class CRNN(nn.Module):
    """Convolutional features, then an LSTM reading the feature map column by column."""

    def __init__(self, image_size: int, num_classes: int, channels: int = 32, hidden: int = 128):
        super().__init__()
        self.cnn = nn.Sequential(_conv_block(1, channels), _conv_block(channels, 2 * channels))
        feat_h = image_size // 4
        self.lstm = _row_lstm(2 * channels * feat_h, hidden)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.cnn(x)  # (B, C, H', W')
        columns = f.permute(0, 3, 1, 2).flatten(2)  # (B, W', C*H')
        out, _ = self.lstm(columns)
        return self.head(out[:, -1])


NETWORKS = {"recurrent": RecurrentClassifier, "stacked_lstm": StackedLSTM, "cnn_lstm": CNNLSTM, "crnn": CRNN}

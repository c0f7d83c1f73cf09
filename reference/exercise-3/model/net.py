"""A small convnet for 8x8 single-channel images."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ConvNet(nn.Module):
    """(n, 1, 8, 8) images -> (n, num_classes) scores (logits: the loss applies the softmax).

    conv 3x3 (8 maps) -> relu -> max-pool 2 -> conv 3x3 (16 maps) -> relu -> max-pool 2
    -> dropout -> linear.
    """

    def __init__(self, num_classes: int = 10, dropout: float = 0.25):
        super(ConvNet, self).__init__()
        self.conv1 = nn.Conv2d(1, 8, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, kernel_size=3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(16 * 2 * 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (n, 8, 4, 4)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (n, 16, 2, 2)
        x = self.dropout(x.flatten(1))              # (n, 64)
        return self.fc(x)

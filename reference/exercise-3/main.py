"""Debug me! Train a small convnet on scikit-learn's 8x8 handwritten digits.

    python main.py --seed 1

prints the loss on the first minibatch, then trains and prints the test accuracy. `dldiy check`
imports this file and calls train(), evaluate() and test_set() (see README.md): keep their names
and signatures.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from data import batches, load_splits
from model import ConvNet
from optimizer import SGD

NUM_CLASSES = 10
BATCH_SIZE = 64
LEARNING_RATE = 0.05
MOMENTUM = 0.9


def train(seed: int, steps: int) -> tuple[nn.Module, list[float]]:
    """Train a fresh model for `steps` minibatches; losses[k] is the loss of minibatch k, before its update."""
    torch.manual_seed(seed)
    (images, labels), _ = load_splits()
    model = ConvNet(num_classes=NUM_CLASSES)
    optimizer = SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)
    criterion = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for _, (x, y) in zip(range(steps), batches(images, labels, BATCH_SIZE)):
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model, losses


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` on a labelled set, with dropout switched off; the model
    is handed back in the mode it came in."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scores = model(images)
        loss = F.cross_entropy(scores, labels).item()
        accuracy = (scores.argmax(dim=1) == labels).float().mean().item()
    model.train(was_training)
    return loss, accuracy


def test_set() -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out images (n, 1, 8, 8), normalised like the training ones, and their labels (n,)."""
    return load_splits()[1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: 1)")
    parser.add_argument("--steps", type=int, default=300, help="minibatches to train on (default: 300)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # on 8x8 images a thread pool costs more than it saves
    model, losses = train(args.seed, args.steps)
    print(f"first loss: {losses[0]!r}")
    loss, accuracy = evaluate(model, *test_set())
    print(f"after {args.steps} steps: test loss {loss:.4f}, test accuracy {accuracy:.2%}")


if __name__ == "__main__":
    main()

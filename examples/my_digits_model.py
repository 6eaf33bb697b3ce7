"""Train your own digits classifier and save it the two ways arbench reads checkpoints.

    python examples/my_digits_model.py            # writes my_cnn.pt (state_dict), my_cnn.ts
    arbench run digits --model my_cnn.pt --arch examples.my_digits_model:make_cnn
    arbench run digits --model my_cnn.ts
"""

from __future__ import annotations

import torch
from torch import nn

from bench.runner import build_dataset
from bench.spec import load_spec


def make_cnn() -> nn.Module:
    """The architecture: conv(8) + pool, conv(16) + pool, linear."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 7 * 7, 10),
    )


def main() -> None:
    """Train for a few epochs on the digits train split and save the weights."""
    torch.manual_seed(0)
    train = build_dataset(load_spec("digits"), split="train")
    images = torch.stack([train[i]["image"] for i in range(len(train))])
    labels = torch.tensor([train[i]["label"] for i in range(len(train))])
    model = make_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(15):
        for chunk in torch.randperm(len(labels)).split(64):
            loss = nn.functional.cross_entropy(model(images[chunk]), labels[chunk])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: loss {loss.item():.3f}")
    model.eval()
    torch.save(model.state_dict(), "my_cnn.pt")
    torch.jit.script(model).save("my_cnn.ts")
    print("saved my_cnn.pt (state_dict) and my_cnn.ts (TorchScript)")


if __name__ == "__main__":
    main()

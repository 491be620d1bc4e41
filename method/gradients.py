"""The linear-head gradients LGM matches, and the matching loss.

For a head ``logits = z W^T + b`` and mean cross-entropy over ``M`` rows, the gradient with respect to
the head is closed form: ``dL/dW = (softmax(logits) - onehot)^T z / M`` and ``dL/db = mean(softmax -
onehot)``. It depends on the features only, so differentiating it with respect to the synthetic pixels
(the "second-order" term) is an ordinary backward pass through the frozen backbone. We use the closed
form in the loop (identical to autograd with ``create_graph=True``, which the tests check) and compute
it in float32 whatever the backbone's autocast dtype.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_head(num_classes: int, dim: int, std: float, gen: torch.Generator,
                device: torch.device) -> tuple[Tensor, Tensor]:
    """A fresh, never-trained head: W ~ N(0, std^2) of shape C x F, bias 0."""
    weight = std * torch.randn(num_classes, dim, generator=gen, device=gen.device)
    return weight.to(device), torch.zeros(num_classes, device=device)


def head_gradient(z: Tensor, y: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """Closed-form d CE(z W^T + b, y) / d[W, b], flattened as ``[W.flatten(), b]``; differentiable in z."""
    z = z.float()
    probs = torch.softmax(z @ weight.t() + bias, dim=1)
    delta = (probs - F.one_hot(y, weight.shape[0]).to(probs)) / z.shape[0]
    return torch.cat([(delta.t() @ z).flatten(), delta.sum(0)])


def head_gradient_autograd(z: Tensor, y: Tensor, weight: Tensor, bias: Tensor,
                           create_graph: bool = False) -> Tensor:
    """The same gradient from autograd (the official code's way); used to check the closed form."""
    w = weight.detach().clone().requires_grad_(True)
    b = bias.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(z.float() @ w.t() + b, y)
    gw, gb = torch.autograd.grad(loss, (w, b), create_graph=create_graph)
    return torch.cat([gw.flatten(), gb])


def matching_loss(g_real: Tensor, g_syn: Tensor) -> Tensor:
    """1 - cosine(g_real, g_syn): one cosine over the whole flattened [W; b] vector."""
    return 1 - F.cosine_similarity(g_real.flatten(), g_syn.flatten(), dim=0)

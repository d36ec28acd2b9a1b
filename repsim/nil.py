"""NIL: the No-Inner-Loop classifier of Raghu et al. (2020), Section 5.

Remove the head; classify each query by the cosine similarity of its penultimate features to
the support features, with softmax-weighted support labels (the Matching Networks rule,
Vinyals et al. 2016): ``p(y | q) = sum_j softmax_j(scale * cos(q, s_j)) [y_j = y]``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nil_probabilities(
    support_features: torch.Tensor,
    support_y: torch.Tensor,
    query_features: torch.Tensor,
    ways: int,
    scale: float = 1.0,
) -> torch.Tensor:
    """Class probabilities ``(n_query, ways)`` from features ``(n_support, d)``/``(n_query, d)``.

    ``scale`` multiplies the cosine similarities before the softmax. At evaluation it is 1
    (the Matching Networks rule); NIL *training* uses a larger one so the loss can saturate.
    """
    s = F.normalize(support_features, dim=-1)
    q = F.normalize(query_features, dim=-1)
    attention = torch.softmax(scale * q @ s.transpose(-1, -2), dim=-1)
    return attention @ F.one_hot(support_y, ways).to(attention.dtype)

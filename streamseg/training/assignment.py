"""GenVIS's unified video label assignment for online training over a clip.

The model decodes a clip frame by frame, each frame's output queries seeding the next frame, so a
query slot should keep following one object. The assignment therefore persists over the clip: once
a query is matched to an instance it keeps that instance for the rest of the clip (and is not
offered to anyone else, even while its instance is out of view); only instances that appear for
the first time are matched, by the Hungarian matcher, among the queries never assigned so far.
"""
from __future__ import annotations

import torch

from streamseg.training.matcher import HungarianMatcher


class VideoAssignment:
    """The query <-> instance assignment of one video over one clip (one per decoder layer)."""

    def __init__(self, num_queries: int) -> None:
        self.num_queries = num_queries
        self.query_of: dict[int, int] = {}  # instance id -> query index

    def free_queries(self, device: torch.device | str = "cpu") -> torch.Tensor:
        taken = set(self.query_of.values())
        free = [q for q in range(self.num_queries) if q not in taken]
        return torch.tensor(free, dtype=torch.long, device=device)

    def assign(
        self,
        matcher: HungarianMatcher,
        logits: torch.Tensor,
        masks: torch.Tensor,
        labels: torch.Tensor,
        target_masks: torch.Tensor,
        instance_ids: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pairs (query_idx, target_idx) for this frame, sorted by target index.

        Known instances keep their query; newcomers are matched to free queries. A newcomer left
        over when the free queries run out stays unmatched (unsupervised) in this frame.
        """
        device = logits.device
        ids = [int(i) for i in instance_ids.tolist()]
        pairs: dict[int, int] = {}  # target index -> query index
        newcomers = []
        for t, inst in enumerate(ids):
            if inst in self.query_of:
                pairs[t] = self.query_of[inst]
            else:
                newcomers.append(t)
        if newcomers:
            sub = torch.tensor(newcomers, dtype=torch.long, device=labels.device)
            q_idx, t_idx = matcher(
                logits, masks, labels[sub], target_masks[sub], queries=self.free_queries(device)
            )
            for q, t in zip(q_idx.tolist(), t_idx.tolist()):
                target = newcomers[t]
                pairs[target] = q
                self.query_of[ids[target]] = q
        order = sorted(pairs)
        return (
            torch.tensor([pairs[t] for t in order], dtype=torch.long, device=device),
            torch.tensor(order, dtype=torch.long, device=device),
        )

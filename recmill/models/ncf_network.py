"""The hybrid neural collaborative filter's network (recmill.models.ncf): a collaborative
and a content branch per side, fused by dense layers into one logit."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recmill.config import NCFConfig
from recmill.models.ncf_features import Features

# user x item pairs through the fusion layers at once when scoring all items: on a CPU few
# enough to stay in its cache (twice as fast as 65,536), on a GPU enough to fill it
CHUNK_PAIRS = 4_096
GPU_CHUNK_PAIRS = 1_048_576


class NCFNet(nn.Module):
    """The two branches and the fusion layers; forward() returns logits, the score is their
    sigmoid. The feature tables are buffers outside the state_dict (they live in features.npz)."""

    def __init__(self, cfg: NCFConfig, features: Features):
        super().__init__()
        for name in ("user", "user_category", "item", "item_category", "item_brand"):
            self.register_buffer(name, torch.as_tensor(getattr(features, name)), persistent=False)
        n_users, n_items = len(features.user), len(features.item)
        # a large table gets sparse gradients: a step updates the rows of its batch, not every row
        self.user_embedding = nn.Embedding(n_users, cfg.embedding_dim, sparse=n_users > cfg.sparse_above_rows)
        self.item_embedding = nn.Embedding(n_items, cfg.embedding_dim, sparse=n_items > cfg.sparse_above_rows)
        has_category, has_brand = len(features.categories) > 0, len(features.brands) > 0
        self.category_embedding = (
            nn.Embedding(len(features.categories) + 1, cfg.category_embedding_dim, padding_idx=0) if has_category else None
        )
        self.brand_embedding = nn.Embedding(len(features.brands) + 1, cfg.brand_embedding_dim, padding_idx=0) if has_brand else None
        category_width = cfg.category_embedding_dim if has_category else 0
        self.user_dense = nn.Linear(features.user.shape[1] + category_width, cfg.user_dense)
        brand_width = cfg.brand_embedding_dim if has_brand else 0
        self.item_dense = nn.Linear(features.item.shape[1] + category_width + brand_width, cfg.item_dense)
        widths = [2 * cfg.embedding_dim + cfg.user_dense + cfg.item_dense, *cfg.hidden]
        layers = []
        for n, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            layers += [nn.Linear(width_in, width_out), nn.ReLU()]
            if n < len(cfg.hidden) - 1:
                layers.append(nn.Dropout(cfg.dropout))
        self.fusion = nn.Sequential(*layers, nn.Linear(widths[-1], 1))
        self.user_width = cfg.embedding_dim + cfg.user_dense

    def user_side(self, users: torch.Tensor) -> torch.Tensor:
        x = self.user.index_select(0, users)  # index_select: as self.user[users], faster on a CPU
        if self.category_embedding is not None:
            x = torch.cat([x, self.category_embedding(self.user_category.index_select(0, users))], 1)
        return torch.cat([self.user_embedding(users), F.relu(self.user_dense(x))], 1)

    def item_side(self, items: torch.Tensor) -> torch.Tensor:
        x = [self.item.index_select(0, items)]
        if self.category_embedding is not None:
            x.append(self.category_embedding(self.item_category.index_select(0, items)))
        if self.brand_embedding is not None:
            x.append(self.brand_embedding(self.item_brand.index_select(0, items)))
        return torch.cat([self.item_embedding(items), F.relu(self.item_dense(torch.cat(x, 1)))], 1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.fusion(torch.cat([self.user_side(users), self.item_side(items)], 1)).squeeze(1)

    def score_all(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of every item (or of these items) for these users, (len(users), n_items), in
        eval mode: the first fusion layer is W [user side, item side] + b = W_u user side +
        (W_i item side + b), so each part is computed once and only the later layers see
        users x items, a chunk at a time, each layer's product, bias and ReLU fused in place."""
        assert not self.training, "score_all leaves out dropout: call eval() first"
        first = self.fusion[0]
        user_part = self.user_side(users) @ first.weight[:, : self.user_width].T
        if items is None:
            items = torch.arange(len(self.item), device=users.device)
        item_part = self.item_side(items) @ first.weight[:, self.user_width :].T + first.bias
        linears = [m for m in self.fusion if isinstance(m, nn.Linear)]

        def later_layers(hidden: torch.Tensor) -> torch.Tensor:
            hidden = hidden.relu_()
            for layer in linears[1:-1]:
                hidden = torch.addmm(layer.bias, hidden, layer.weight.T).relu_()
            return torch.addmm(linears[-1].bias, hidden, linears[-1].weight.T).squeeze(-1)

        chunk = CHUNK_PAIRS if users.device.type == "cpu" else GPU_CHUNK_PAIRS
        out = torch.empty(len(users), len(items), device=users.device)
        if len(items) <= chunk:  # whole users per chunk
            step = max(1, chunk // max(len(items), 1))
            for start in range(0, len(users), step):
                hidden = user_part[start : start + step, None, :] + item_part[None, :, :]
                out[start : start + step] = later_layers(hidden.reshape(-1, hidden.shape[-1])).reshape(-1, len(items))
        else:  # one user, a chunk of items at a time
            for row in range(len(users)):
                for start in range(0, len(items), chunk):
                    out[row, start : start + chunk] = later_layers(user_part[row, None, :] + item_part[start : start + chunk])
        return out

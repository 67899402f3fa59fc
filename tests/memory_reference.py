"""Test oracle: a literal transcription of the reference MemoryManager (REFERENCE §2.2–2.3), batch semantics.

Used only by the tests. It deliberately mirrors the reference's data layout (lists of ``[1, K, C]``
tensors, parallel Python lists for time / merge count / similarity) and recomputes everything from
scratch on ``get_memory_tokens``; it shares nothing with ``streamforest.memory`` except the ToMe
primitives of ``streamforest.tome``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from streamforest.tome import head_mean_metric, matching_scores, merge_tokens


class ReferenceMemoryManager:
    """``update(frame [P, C])`` for every frame, then ``get_memory_tokens() -> [1, N, C]``."""

    def __init__(
        self,
        hidden_size=1152,
        num_attention_heads=16,
        st_memory_windows=(1, 18),
        st_memory_tokens=(729, 128),
        event_split_window=8,
        long_memory_tokens_per_frame=64,
        long_memory_tokens_quota=5120,
        sim_weight_g=0.4,
        time_weight_a=0.2,
        merge_weight_b=0.4,
    ):
        self.hidden_size = hidden_size
        self.num_heads = num_attention_heads
        self.st_memory_windows = st_memory_windows
        self.st_memory_tokens = st_memory_tokens
        self.event_split_window = event_split_window
        self.long_memory_tokens_per_frame = long_memory_tokens_per_frame
        self.long_memory_tokens_quota = long_memory_tokens_quota
        self.sim_weight_g = sim_weight_g
        self.time_weight_a = time_weight_a
        self.merge_weight_b = merge_weight_b

        self.memory_now = []
        self.memory_short = []
        self.memory_long = []
        self.time_buffer = []
        self.mergecnt_buffer = []
        self.similarity_buffer = []
        self.long_memory_current_tokens = 0
        self.long_memory_last_time_pos = -1
        self.last_frame_flat = None
        self.frame_sim_buffer = []

    @classmethod
    def from_config(cls, cfg):
        """From a ``streamforest.memory.MemoryConfig``."""
        return cls(
            hidden_size=cfg.hidden_size,
            num_attention_heads=cfg.num_heads,
            st_memory_windows=(cfg.now_frames, cfg.short_frames),
            st_memory_tokens=(cfg.now_tokens, cfg.short_tokens),
            event_split_window=cfg.event_window,
            long_memory_tokens_per_frame=cfg.long_tokens_per_frame,
            long_memory_tokens_quota=cfg.long_token_quota,
            sim_weight_g=cfg.sim_weight,
            time_weight_a=cfg.time_weight,
            merge_weight_b=cfg.merge_weight,
        )

    def merge_tokens(self, x, target):
        return merge_tokens(x, target, self.num_heads)

    # ---------------------------------------------------------------- per frame
    def update(self, frame):
        cur = frame.reshape(-1)
        if self.last_frame_flat is not None:
            with torch.no_grad():
                sim = F.cosine_similarity(self.last_frame_flat, cur, dim=0, eps=1e-8)
            self.frame_sim_buffer.append(sim.item())
        self.last_frame_flat = cur
        self.memory_now.append(self.merge_tokens(frame.unsqueeze(0), self.st_memory_tokens[0]))

    # ---------------------------------------------------------------- read-out
    def get_memory_tokens(self):
        self.update_short_memory()
        self.split_events()
        self.update_long_memory()
        parts = [event.reshape(1, -1, self.hidden_size) for event in self.memory_long]
        parts += self.memory_short + self.memory_now
        return torch.cat(parts, dim=1)

    def update_short_memory(self):  # step A
        overflow = len(self.memory_now) - self.st_memory_windows[0]
        if overflow > 0:
            batch = torch.cat(self.memory_now[:overflow], dim=0)
            self.memory_now = self.memory_now[overflow:]
            merged = self.merge_tokens(batch, self.st_memory_tokens[1])
            for i in range(overflow):
                self.memory_short.append(merged[i : i + 1])

    def split_events(self):  # step B
        window = self.event_split_window
        while len(self.memory_short) >= self.st_memory_windows[1] + window:
            w = self.frame_sim_buffer[0:window]
            m = w.index(min(w))
            s = m + 1
            frames = torch.cat(self.memory_short[:s], dim=0)
            self.memory_short = self.memory_short[s:]
            self.frame_sim_buffer = self.frame_sim_buffer[s:]
            k_short, k_long = self.st_memory_tokens[1], self.long_memory_tokens_per_frame
            event = self.merge_tokens(frames.reshape(1, s * k_short, self.hidden_size), s * k_long)
            event = event.reshape(s, k_long, self.hidden_size)
            self.memory_long.append(event)
            self.long_memory_current_tokens += s * k_long
            self.time_buffer.append((2 * self.long_memory_last_time_pos + s + 1) / 2)
            self.long_memory_last_time_pos += s
            self.mergecnt_buffer.append(1)
            if len(self.memory_long) >= 2:
                self.similarity_buffer.append(self.sim(self.memory_long[-2], self.memory_long[-1]))

    def sim(self, c1, c2):
        n = c1.shape[0] + c2.shape[0]
        k = self.long_memory_tokens_per_frame
        total = n * k
        target = math.ceil(n / 2) * k
        r = total - target
        assert 0 < r <= total // 2
        x = torch.cat([c1, c2], dim=0).reshape(1, total, self.hidden_size)
        with torch.no_grad():
            node_max, _ = matching_scores(head_mean_metric(x, self.num_heads))
            best = torch.sort(node_max[0], descending=True).values
            return best[:r].mean().item()

    def update_long_memory(self):  # step C
        k = self.long_memory_tokens_per_frame
        while self.long_memory_current_tokens > self.long_memory_tokens_quota and len(self.memory_long) >= 2:
            normaliser = self.long_memory_last_time_pos + len(self.memory_short) + len(self.memory_now)
            merge_means = [
                (self.mergecnt_buffer[i] + self.mergecnt_buffer[i + 1]) / 2 for i in range(len(self.memory_long) - 1)
            ]
            largest = max(merge_means)
            totals = []
            for i in range(len(self.memory_long) - 1):
                sim_pen = 1 - self.similarity_buffer[i]
                time_pen = ((self.time_buffer[i] + self.time_buffer[i + 1]) / 2) / normaliser
                merge_pen = merge_means[i] / largest + 1e-6
                totals.append(self.sim_weight_g * sim_pen + self.time_weight_a * time_pen + self.merge_weight_b * merge_pen)
            i = totals.index(min(totals))

            s1, s2 = self.memory_long[i].shape[0], self.memory_long[i + 1].shape[0]
            n = s1 + s2
            both = torch.cat([self.memory_long[i], self.memory_long[i + 1]], dim=0).reshape(1, n * k, self.hidden_size)
            merged = self.merge_tokens(both, math.ceil(n / 2) * k).reshape(math.ceil(n / 2), k, self.hidden_size)
            self.memory_long[i] = merged
            del self.memory_long[i + 1]
            self.long_memory_current_tokens -= (n - math.ceil(n / 2)) * k

            self.time_buffer[i] = (self.time_buffer[i] * s1 + self.time_buffer[i + 1] * s2) / (s1 + s2)
            del self.time_buffer[i + 1]
            self.mergecnt_buffer[i] += self.mergecnt_buffer[i + 1]
            del self.mergecnt_buffer[i + 1]

            del self.similarity_buffer[i]
            if i > 0:
                self.similarity_buffer[i - 1] = self.sim(self.memory_long[i - 1], self.memory_long[i])
            if i < len(self.memory_long) - 1:
                self.similarity_buffer[i] = self.sim(self.memory_long[i], self.memory_long[i + 1])


def reference_tokens(frames, cfg):
    """Fresh reference memory over ``frames [T, P, C]``; returns ``[N, C]``."""
    manager = ReferenceMemoryManager.from_config(cfg)
    for frame in frames:
        manager.update(frame)
    return manager.get_memory_tokens()[0]

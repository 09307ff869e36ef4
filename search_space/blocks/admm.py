"""ADMM block (Li et al., eq. 20): two parallel paths x' and x that share one merge.

x'_{k+1} = ReLU(T'(x'_k) + m_k),  x_{k+1} = ReLU(T(x_k) + m_k),
m_k = sum_{t<=k} (alpha_t x'_t + beta_t x_t)   (the same sums appear in both lines of eq. 20)

with alpha_k = ``a`` and beta_k = ``c`` on the newest maps and alpha_t = ``a_past``,
beta_t = ``c_past`` on the older ones (t < k); learnable coefficients are one parameter per
term, i.e. eq. 20's alpha_t, beta_t free per block and per t. a = c = 1/2 with no past terms is
DMRNet's merge-and-run block (Table 3): the two branch inputs are averaged and the average is
added to each branch. The paths T' and T have their own weights (two residual branches).

There is no paper mode: eq. 14's exact ADMM updates are not of this form (x_{k+1} reads
x'_{k+1}) and Table 3 gives DMRNet's constants, which are fixed values.

Conventions (documented choices where the paper is silent):
- the stage input starts both paths, x'_0 = x_0, and the sums run over t = 0..k (the paper
  writes t = 1..k with its first iterate as x_1), so the first block has DMRNet's skip;
- at a stage transition the first block merges (a + c) P(x_0) with the stage's shortcut P,
  and both transforms downsample x_0 themselves; when past terms are weighed, P(x_0) is the
  t = 0 entry of both paths for every later block;
- the stage's output is the average (x'_K + x_K) / 2 of the two paths (DMRNet's final merge).

History: [x'_0, x_0, x'_1, x_1, ..., x'_k, x_k] with None for maps no later block weighs,
then (last block only) the stage output.
"""

from __future__ import annotations

import functools

import torch.nn.functional as F
from torch import nn

from ..cost.layer_records import body_records, shortcut_records, sum_record
from ..modules import WeightedSum, make_body, make_shortcut
from ..registry import BlockPattern
from .nesterov import plain_stage

__all__ = ["MergeRunBlock", "ADMM", "admm_terms"]


def admm_terms(stage, index):
    """(terms, keeps past): block ``index``'s merge terms (path "p" or "q", t, value, learnable).

    Path "p" is x', "q" is x; a term is listed when its coefficient is non-zero or learnable.
    """
    coefficients = {entry["name"]: entry for entry in stage["block"]["coefficients"]}
    a, c, a_past, c_past = (coefficients[name] for name in ("a", "c", "a_past", "c_past"))
    learn = {name: coefficients[name]["mode"] == "learnable" for name in coefficients}
    keeps_past = stage["depth"] > 1 and (learn["a_past"] or learn["c_past"]
                                         or a_past["value"] != 0.0 or c_past["value"] != 0.0)
    if index == 0:
        # x'_0 = x_0: one term, weighted a + c.
        candidates = [("q", 0, a["value"] + c["value"], learn["a"] or learn["c"])]
    else:
        candidates = []
        for t in range(index):
            candidates += [("p", t, a_past["value"], learn["a_past"]), ("q", t, c_past["value"], learn["c_past"])]
        candidates += [("p", index, a["value"], learn["a"]), ("q", index, c["value"], learn["c"])]
    terms = [term for term in candidates if term[3] or term[2] != 0.0]
    return terms, keeps_past


class MergeRunBlock(nn.Module):
    """x'_{k+1} = ReLU(T'(x'_k) + m_k), x_{k+1} = ReLU(T(x_k) + m_k)  (Li et al., eq. 20; DMRNet)."""

    def __init__(self, in_channels, out_channels, stride, stage, index, kinds):
        super().__init__()
        terms, self.keep_past = admm_terms(stage, index)
        self.index = index
        self.last = index == stage["depth"] - 1
        self.terms = [(path, t) for path, t, _, _ in terms]
        self.body_prime = make_body(in_channels, out_channels, stride, stage, kinds)
        self.body = make_body(in_channels, out_channels, stride, stage, kinds)
        projected = index == 0 and (bool(terms) or self.keep_past)
        self.shortcut = make_shortcut(in_channels, out_channels, stride, stage, kinds) if projected else None
        if terms:
            self.merge = WeightedSum([term[2] for term in terms], [term[3] for term in terms])
            self.run_prime = WeightedSum([1.0, 1.0], [False, False])
            self.run = WeightedSum([1.0, 1.0], [False, False])
        else:
            self.merge = None
        if self.last:
            self.out = WeightedSum([0.5, 0.5], [False, False])

    def forward(self, history):
        if self.index == 0:
            prime = state = history[0]
            skip = self.shortcut(state) if self.shortcut is not None else None
            stored = [skip, skip]
        else:
            prime, state = history[-2], history[-1]
            stored = list(history)
        new_prime, new_state = self.body_prime(prime), self.body(state)
        if self.merge is not None:
            merged = self.merge(*[stored[2 * t + (path == "q")] for path, t in self.terms])
            new_prime, new_state = self.run_prime(new_prime, merged), self.run(new_state, merged)
        if not self.keep_past:
            stored[-2:] = [None, None]
        result = stored + [F.relu(new_prime), F.relu(new_state)]
        if self.last:
            result.append(self.out(result[-2], result[-1]))
        return result


@functools.lru_cache(maxsize=4096)
def _cached_terms(block, depth, index):
    return admm_terms(plain_stage(block, depth), index)


def _cost(prefix, stage, index, in_channels, out_channels, stride, height, width):
    terms, keeps_past = _cached_terms(stage.block, stage.depth, index)
    records, out_h, out_w = body_records(
        f"{prefix}.body_prime", stage, in_channels, out_channels, stride, height, width)
    records += body_records(f"{prefix}.body", stage, in_channels, out_channels, stride, height, width)[0]
    if index == 0 and (terms or keeps_past):
        records += shortcut_records(f"{prefix}.shortcut", stage, in_channels, out_channels, stride, height, width)
    shape = (out_channels, out_h, out_w)
    if terms:
        records.append(sum_record(f"{prefix}.merge", [t[2] for t in terms], [t[3] for t in terms], *shape))
        records.append(sum_record(f"{prefix}.run_prime", [1.0, 1.0], [False, False], *shape))
        records.append(sum_record(f"{prefix}.run", [1.0, 1.0], [False, False], *shape))
    if index == stage.depth - 1:
        records.append(sum_record(f"{prefix}.out", [0.5, 0.5], [False, False], *shape))
    return records, out_h, out_w


ADMM = BlockPattern(
    name="admm", module=MergeRunBlock,
    coefficients=(("a", 0.5), ("c", 0.5), ("a_past", 0.0), ("c_past", 0.0)), cost=_cost,
    export_objects=(admm_terms,),
    summary="ADMM two paths (eq. 20), shared merge a x'_k + c x_k; DMRNet at a = c = 1/2",
)

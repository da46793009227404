"""kpo's balanced mini-batch order (src/learner/minibatch_order.c) against a
Python rendition of what the KPO fork of verl does to a rollout batch
(docs/minibatch-order.md): trainer.balance_batch's Karmarkar-Karp split
over data-parallel ranks (verl/utils/seqlen_balancing.py), the per-rank
sort and fold (RayPPOTrainer._balance_batch), the even chunk each rank
receives, and the actor's split of its chunk into mini-batches
(DataParallelPPOActor.update_policy). Mini-batch membership, the rank
that trains each response and the order within a rank must all agree."""
import heapq
import os
import random
import subprocess

import pytest

PROBE = os.environ.get("KPO_MINIBATCH_ORDER_PROBE")


def workload(seqlen):
    """verl's calculate_workload: attention-FLOPs estimate, not tokens."""
    return 24576 * seqlen + seqlen * seqlen


class Part:
    """One set of a differencing state: (index, value) items in the order
    they joined, compared as verl compares them (sum, size, item list)."""

    def __init__(self):
        self.total = 0
        self.members = []

    def take(self, other):
        self.members.extend(other.members)
        self.total += other.total

    def key(self):
        return (self.total, len(self.members), self.members)

    def __lt__(self, other):
        return self.key() < other.key()


class Differencing:
    """k sets kept heaviest first; ordered so the widest spread pops first
    from a min-heap, ties going to the greater heaviest set."""

    def __init__(self, seeds, k):
        self.k = k
        self.parts = [Part() for _ in range(k)]
        for part, (idx, value) in zip(self.parts, seeds):
            part.members.append((idx, value))
            part.total += value
        self.parts.sort(reverse=True)

    def spread(self):
        return self.parts[0].total - self.parts[-1].total

    def absorb(self, other):
        for i in range(self.k):
            self.parts[i].take(other.parts[self.k - 1 - i])
        self.parts.sort(reverse=True)

    def __lt__(self, other):
        if self.spread() != other.spread():
            return self.spread() > other.spread()
        return other.parts[0] < self.parts[0]


def equal_size_partition(values, k):
    """Largest differencing method, equal_size=True, parts sorted ascending."""
    assert len(values) % k == 0
    ranked = sorted((v, i) for i, v in enumerate(values))
    heap = []
    for at in range(0, len(ranked), k):
        seeds = [(i, v) for v, i in ranked[at:at + k]]
        heapq.heappush(heap, Differencing(seeds, k))
    while len(heap) > 1:
        first = heapq.heappop(heap)
        second = heapq.heappop(heap)
        first.absorb(second)
        heapq.heappush(heap, first)
    return [sorted(i for i, _ in part.members) for part in heap[0].parts]


def verl_minibatches(seqlens, dp, minibatches):
    """What each (mini-batch, rank) trains on in verl: a list over
    mini-batches of a list over ranks of global response indices, in the
    order the rank holds them."""
    work = [workload(s) for s in seqlens]
    parts = equal_size_partition(work, dp)
    folded = []
    for part in parts:
        part = sorted(part, key=lambda x: (work[x], x))
        folded.append(part[::2] + part[1::2][::-1])
    # The reordered batch is the folded parts back to back; the dispatcher
    # gives rank r the r-th of dp equal chunks, i.e. folded[r] ...
    order = [i for part in folded for i in part]
    per_rank = len(order) // dp
    chunks = [order[r * per_rank:(r + 1) * per_rank] for r in range(dp)]
    assert chunks == folded
    # ... and the actor splits its chunk by ppo_mini_batch_size * n / dp.
    size = per_rank // minibatches
    return [[chunks[r][k * size:(k + 1) * size] for r in range(dp)]
            for k in range(minibatches)], parts


def kpo_minibatches(perm, dp, minibatches, learners):
    """kpo's split of the reordered batch (learner_step.c share_of)."""
    n = len(perm)
    out = []
    for k in range(minibatches):
        first, end = k * n // minibatches, (k + 1) * n // minibatches
        mb = end - first
        out.append([perm[first + l * mb // learners:first + (l + 1) * mb // learners]
                    for l in range(learners)])
    return out


def run_probe(cases):
    text = "".join(f"{len(s)} {dp} {m} " + " ".join(map(str, s)) + "\n" for s, dp, m in cases)
    done = subprocess.run([PROBE], input=text, capture_output=True, text=True, check=True)
    lines = done.stdout.splitlines()
    results, at = [], 0
    for _, dp, _ in cases:
        if lines[at].startswith("error"):
            results.append(lines[at])
            at += 1
            continue
        perm = [int(x) for x in lines[at].split()[1:]]
        assert lines[at + 1] == "parts"
        parts = [[int(x) for x in lines[at + 2 + r].split()[1:]] for r in range(dp)]
        results.append((perm, parts))
        at += 2 + dp
    assert at == len(lines)
    return results


def check(cases):
    for (seqlens, dp, m), got in zip(cases, run_probe(cases)):
        assert not isinstance(got, str), got
        perm, parts = got
        want, want_parts = verl_minibatches(seqlens, dp, m)
        assert parts == want_parts, (seqlens, dp)
        assert sorted(perm) == list(range(len(seqlens)))
        # With one learner per verl rank every learner holds its rank's
        # responses in its rank's order; membership holds for any count.
        assert kpo_minibatches(perm, dp, m, dp) == want
        for k, mb in enumerate(kpo_minibatches(perm, dp, m, 1)):
            assert sorted(mb[0]) == sorted(i for rank in want[k] for i in rank)


pytestmark = pytest.mark.skipif(not PROBE, reason="KPO_MINIBATCH_ORDER_PROBE not set (run via meson)")


@pytest.mark.parametrize("dp", [1, 2, 8])
def test_paper_shape_random(dp):
    """32 prompts x 8 responses, 4 mini-batches, lengths as the paper's runs
    allow (prompt up to 1024 + response up to 4096 tokens)."""
    rng = random.Random(1000 + dp)
    cases = [([rng.randint(100, 5120) for _ in range(256)], dp, 4) for _ in range(150)]
    check(cases)


def test_many_ties():
    """Few distinct lengths: most comparisons fall through to sizes and
    item lists, where the tie-breaking has to match verl's exactly."""
    rng = random.Random(7)
    cases = []
    for dp in (1, 2, 4, 8):
        for _ in range(40):
            cases.append(([rng.choice([100, 101, 2048, 5120]) for _ in range(256)], dp, 4))
    check(cases)


def test_edge_cases():
    cases = [([777] * 256, dp, 4) for dp in (1, 2, 8)]
    cases += [(list(range(5120, 5120 - 256, -1)), dp, 4) for dp in (1, 2, 8)]
    cases += [(list(range(100, 356)), dp, 4) for dp in (1, 2, 8)]
    cases += [([5, 5, 5, 5], 2, 1), ([1, 2, 3, 4], 2, 2), ([9, 1], 2, 1), ([3], 1, 1)]
    # Truncated responses: many at the cap, with prompts of a few lengths.
    rng = random.Random(3)
    cases += [([rng.choice([300, 450]) + (4096 if rng.random() < 0.4 else rng.randint(1, 4096))
                for _ in range(256)], dp, 4) for dp in (1, 2, 8) for _ in range(10)]
    # Other shapes: odd per-rank sizes (the fold's odd tail), more mini-batches.
    cases += [([rng.randint(1, 50) for _ in range(n)], dp, m)
              for n, dp, m in [(6, 2, 1), (18, 2, 3), (30, 2, 5), (56, 8, 7), (96, 4, 8)]
              for _ in range(10)]
    check(cases)


def test_uneven_split_rejected():
    got = run_probe([([1, 2, 3, 4, 5, 6], 4, 1), ([1, 2, 3, 4, 5, 6], 2, 2)])
    assert got[0].startswith("error") and "4 data-parallel" in got[0]
    assert got[1].startswith("error")

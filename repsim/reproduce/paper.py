"""The paper's numbers: Raghu, Raghu, Bengio & Vinyals, "Rapid Learning or Feature Reuse?
Towards Understanding the Effectiveness of MAML", ICLR 2020 (camera-ready).

Accuracies in %, mean (± the paper's spread where it gives one). Table 1 and Table 5 are
MiniImageNet; Tables 2 and 4 have Omniglot 20-way and MiniImageNet 5-way rows. The ICLR
submission had other Table 1 values; they are kept in ``SUBMISSION`` for the footnote only.
"""

from __future__ import annotations

FREEZE_LABELS = ("none", "conv1", "conv1-2", "conv1-3", "conv1-4")

PAPER = {
    # Table 1: MAML, test-time freezing of conv1..convK, MiniImageNet 5-way.
    "table1_freezing": {
        "miniimagenet-5w1s": {
            "none": 46.9,
            "conv1": 46.5,
            "conv1-2": 46.4,
            "conv1-3": 46.3,
            "conv1-4": 46.3,
        },
        "miniimagenet-5w5s": {"none": 63.1, "conv1-4": 61.0},
    },
    # Figure 2: CCA before vs after the inner loop (MiniImageNet, MAML).
    "figure2_cca": {"body": "> 0.9", "head": "< 0.5"},
    # Table 2: MAML vs ANIL, mean ± std.
    "table2": {
        "omniglot-20w1s": {"maml": (93.7, 0.7), "anil": (96.2, 0.5)},
        "omniglot-20w5s": {"maml": (96.4, 0.1), "anil": (98.0, 0.3)},
        "miniimagenet-5w1s": {"maml": (46.9, 0.2), "anil": (46.7, 0.4)},
        "miniimagenet-5w5s": {"maml": (63.1, 0.4), "anil": (61.5, 0.5)},
    },
    # Table 2, meta-RL: average return after adaptation, mean ± std over 3 seeds.
    "table2_rl": {
        "2d-navigation": {"maml": (-20.3, 3.2), "anil": (-20.1, 2.3)},
        "halfcheetah-direction": {"maml": (170.4, 21.0), "anil": (363.2, 14.8)},
        "halfcheetah-velocity": {"maml": (-139.0, 18.9), "anil": (-120.9, 6.3)},
    },
    # Table 3: body-averaged similarity of meta-inits across seeds (MiniImageNet).
    "table3": {
        "MAML-MAML": {"cca": 0.51, "cka": 0.83},
        "ANIL-ANIL": {"cca": 0.51, "cka": 0.86},
        "ANIL-MAML": {"cca": 0.50, "cka": 0.83},
    },
    # Table 4: NIL (no head) against MAML and ANIL.
    "table4": {"omniglot-20w1s": {"maml": 93.7, "anil": 96.2, "nil": 96.7}},
    # Table 5: each training regime's body with the NIL head (MiniImageNet 5-way 1-shot).
    "table5_nil_head": {
        "maml": 48.4,
        "anil": 48.0,
        "multiclass": 39.7,
        "multitask": 26.5,
        "random": 32.9,
        "nil": 38.3,
    },
    # Section 4.2: ANIL's speed-up over MAML (training step, test-time adaptation).
    "speedup": {"train": 1.7, "test": 4.1},
}

SUBMISSION = {
    "table1_freezing": {
        "miniimagenet-5w1s": {
            "none": 44.5,
            "conv1": 44.8,
            "conv1-2": 44.8,
            "conv1-3": 44.7,
            "conv1-4": 44.7,
        }
    }
}

"""Experiment: does fine-tuning the embedding model's top layers tag better than models on its frozen vectors?

Run: python benchmarks/bench_finetune.py [--folds 0,1,2,3,4] [--layers 2] [--epochs 3] [--lr 5e-5] [--save DIR]
     python benchmarks/bench_finetune.py --ensemble --folds N --save DIR   # the ensemble's held-out scores
     python benchmarks/bench_finetune.py --report DIR     # the figures of every fold saved in DIR

Held out exactly as `vkpp evaluate` holds out (5 folds of the sample gold by review, the same folds; each fold
trains on the other folds' reviews and every passage of corpus_samples/training). Two models per fold, on
the same passages:
- frozen: one balanced logistic regression per label on the passage's all-MiniLM-L6-v2 vector (and the
  review's mean vector for vulnerabilities and agencies, as the supervised tagger has), C=1;
- fine-tuned: the model's top --layers transformer layers, trained with one linear output per label of every
  facet (binary cross-entropy, positives weighted by the square root of their rarity, at most 10) for
  --epochs epochs, on the lower layers' hidden states (computed once: the lower layers stay frozen).
Prints, per facet, the mean average precision (labels with at least 3 gold positives in the fold, averaged
over folds) and the macro-F1 at probability 0.5, pooled over the folds (F1 per label over every held-out
passage, as `vkpp evaluate` reports; no threshold is tuned on the held-out passages). With --ensemble it
fits the default ensemble per fold instead, as `vkpp evaluate` does, and saves its held-out scores (rescaled:
0.5 decides); --report then adds the ensemble alone and the plain mean of its score and the fine-tuned
probability, decided at 0.5 (nothing fitted on the held-out passages). Runs torch (training needs it);
minutes per fold. Never fails on a figure.
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

os.environ["VKPP_EMBEDDING_RUNTIME"] = "torch"
os.environ["VKPP_EMBEDDING_PRECISION"] = "float32"

from vkpp_learning import embeddings, settings
from vkpp_learning.evaluate import BINARY_FACETS, MULTI_LABEL, document_folds, load_gold
from vkpp_learning.tagging.supervised import REVIEW_CONTEXT_FACETS, review_means

ROOT = settings.project_root()
REPORTED = [facet for _, facet in MULTI_LABEL.values()] + [facet for _, facet in BINARY_FACETS.values()]
HIDDEN = embeddings.DIM


def columns(passages: Sequence) -> list[tuple[str, str]]:
    return [(facet, label) for facet in REPORTED for label in sorted({x for p in passages for x in p.labels[facet]})]


def lower_states(texts: Sequence[str], top: int) -> list:
    """Each text's hidden states below the top `top` layers (tokens of the text only)."""
    import torch

    model = embeddings.load_model()
    transformer, tokenizer = model[0].auto_model, model.tokenizer
    states: list = [None] * len(texts)
    order = np.argsort([len(t) for t in texts])
    with torch.no_grad():
        for start in range(0, len(texts), 32):
            chosen = order[start : start + 32]
            batch = tokenizer(
                [texts[i] for i in chosen], padding=True, truncation=True, max_length=256, return_tensors="pt"
            )
            hidden = transformer(**batch, output_hidden_states=True).hidden_states[-1 - top]
            for row, i in enumerate(chosen):
                states[i] = hidden[row, : int(batch["attention_mask"][row].sum())].clone()
    return states


def encoded(texts: list[str], top: int, folder: Path | None) -> tuple[np.ndarray, list]:
    """The texts' vectors and lower hidden states, kept in `folder` for the next fold's run when given."""
    import torch

    kept = folder / f"encoded_{top}.pt" if folder else None
    if kept and kept.is_file():
        saved = torch.load(kept, weights_only=False)  # our own file, from an earlier run
        if saved["texts"] == texts:
            return saved["vectors"], saved["states"]
    vectors, states = embeddings.encode(texts), lower_states(texts, top)
    if kept:
        folder.mkdir(parents=True, exist_ok=True)
        torch.save({"texts": texts, "vectors": vectors, "states": states}, kept)
    return vectors, states


class TopLayers:
    """The transformer's top layers (a trainable copy) and one linear output per label over their mean token."""

    def __init__(self, top: int, outputs: int) -> None:
        import torch

        encoder = embeddings.load_model()[0].auto_model.encoder
        self.layers = torch.nn.ModuleList([copy.deepcopy(layer) for layer in encoder.layer[-top:]])
        self.head = torch.nn.Linear(HIDDEN, outputs)

    def __call__(self, states: Sequence) -> tuple:
        import torch

        length = max(len(s) for s in states)
        hidden = torch.zeros(len(states), length, HIDDEN)
        mask = torch.zeros(len(states), length)
        for row, state in enumerate(states):
            hidden[row, : len(state)], mask[row, : len(state)] = state, 1
        additive = (1.0 - mask[:, None, None, :]) * -1e9
        for layer in self.layers:
            hidden = layer(hidden, attention_mask=additive)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return self.head(pooled), pooled


def fine_tuned_scores(
    states: list, truth: np.ndarray, train: np.ndarray, test: np.ndarray, top: int, epochs: int, lr: float
) -> np.ndarray:
    import torch

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = TopLayers(top, truth.shape[1])
    positives = truth[train].sum(0)
    weight = np.clip((len(train) - positives) / np.maximum(positives, 1), 1, 10) ** 0.5
    loss_of = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(weight, dtype=torch.float32))
    optimiser = torch.optim.AdamW(
        [{"params": model.layers.parameters(), "lr": lr}, {"params": model.head.parameters(), "lr": 1e-3}],
        weight_decay=0.01,
    )
    target = torch.tensor(truth, dtype=torch.float32)
    for _ in range(epochs):
        model.layers.train()
        order = rng.permutation(train)
        for start in range(0, len(order), 16):
            batch = order[start : start + 16]
            logits, _ = model([states[i] for i in batch])
            loss = loss_of(logits, target[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.layers.eval()
    with torch.no_grad():
        return np.vstack(
            [torch.sigmoid(model([states[i] for i in test[s : s + 32]])[0]).numpy() for s in range(0, len(test), 32)]
        )


def frozen_scores(
    vectors: np.ndarray, context: np.ndarray, truth: np.ndarray, facets: list[str], train: np.ndarray, test: np.ndarray
) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    scores = np.zeros((len(test), truth.shape[1]))
    for j, facet in enumerate(facets):
        inputs = np.hstack([vectors, context]) if facet in REVIEW_CONTEXT_FACETS else vectors
        if truth[train, j].sum() < 8 or truth[train, j].all():
            continue
        model = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced").fit(inputs[train], truth[train, j])
        scores[:, j] = model.predict_proba(inputs[test])[:, 1]
    return scores


def summary(truth: np.ndarray, scores: np.ndarray, facets: list[str], folds: list[np.ndarray]) -> dict[str, str]:
    from sklearn.metrics import average_precision_score, f1_score

    out = {}
    for facet in REPORTED:
        chosen = [j for j, f in enumerate(facets) if f == facet]
        precisions = [
            average_precision_score(truth[fold, j], scores[fold, j])
            for fold in folds
            for j in chosen
            if truth[fold, j].sum() >= 3
        ]
        held = np.concatenate(folds)
        f1 = [
            f1_score(truth[held, j], scores[held, j] >= 0.5, zero_division=0.0) for j in chosen if truth[held, j].any()
        ]
        out[facet] = f"MAP {np.mean(precisions):.3f}  macro-F1@0.5 {np.mean(f1):.3f}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", default="0,1,2,3,4", help="which of the 5 gold folds to hold out")
    parser.add_argument("--layers", type=int, default=2, help="top transformer layers to fine-tune (of 6)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=5e-5, help="learning rate of the layers (the outputs: 1e-3)")
    parser.add_argument("--save", type=Path, help="also save each fold's scores here (fold_N.npz)")
    parser.add_argument("--report", type=Path, help="only report the folds saved here, pooled")
    parser.add_argument("--ensemble", action="store_true", help="save the default ensemble's held-out scores")
    args = parser.parse_args()
    if args.report:
        saved = [np.load(path) for path in sorted(args.report.glob("fold_*.npz"))]
        truth, facets = saved[0]["truth"], list(saved[0]["facets"])
        tuned, frozen = np.zeros_like(truth), np.zeros_like(truth)
        for fold in saved:
            tuned[fold["test"]], frozen[fold["test"]] = fold["tuned"], fold["frozen"]
        named = {"frozen": frozen, "fine-tuned": tuned, "mean of both": (tuned + frozen) / 2}
        ensembles = [np.load(path) for path in sorted(args.report.glob("ensemble_*.npz"))]
        if len(ensembles) == len(saved):
            stacked = np.zeros_like(truth)
            for fold in ensembles:
                stacked[fold["test"]] = fold["scores"]
            named |= {"ensemble": stacked, "ensemble+tuned": (stacked + tuned) / 2}
        report(truth, named, facets, [fold["test"] for fold in saved])
        return

    gold = load_gold(ROOT / "corpus_samples" / "gold")
    passages = gold + load_gold(ROOT / "corpus_samples" / "training")
    cols = columns(passages)
    facets = [facet for facet, _ in cols]
    truth = np.array([[label in p.labels[facet] for facet, label in cols] for p in passages], dtype=np.float32)
    texts = [p.text for p in passages]
    if args.ensemble:
        for number in [int(f) for f in args.folds.split(",")]:
            test = np.array(document_folds(gold)[number])
            scores = ensemble_scores(passages, cols, test)
            args.save.mkdir(parents=True, exist_ok=True)
            np.savez(args.save / f"ensemble_{number}.npz", test=test, scores=scores)
            print(f"fold {number}: ensemble scores saved", flush=True)
        return
    started = time.perf_counter()
    vectors, states = encoded(texts, args.layers, args.save)
    context = review_means([p.doc_id for p in passages], vectors)
    seconds = time.perf_counter() - started
    print(f"{len(passages)} passages, {len(cols)} labels; vectors and lower states in {seconds:.0f} s")
    tuned, frozen = np.zeros_like(truth), np.zeros_like(truth)
    held_folds = []
    for number in [int(f) for f in args.folds.split(",")]:
        test = np.array(document_folds(gold)[number])
        train = np.setdiff1d(np.arange(len(passages)), test)
        started = time.perf_counter()
        tuned[test] = fine_tuned_scores(states, truth, train, test, args.layers, args.epochs, args.lr)
        seconds = time.perf_counter() - started
        frozen[test] = frozen_scores(vectors, context, truth, facets, train, test)
        held_folds.append(test)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            np.savez(
                args.save / f"fold_{number}.npz",
                test=test,
                truth=truth,
                facets=np.array(facets),
                tuned=tuned[test],
                frozen=frozen[test],
            )
        print(f"fold {number}: {len(test)} held out, fine-tuned on {len(train)} in {seconds:.0f} s", flush=True)
    report(truth, {"frozen": frozen, "fine-tuned": tuned, "mean of both": (tuned + frozen) / 2}, facets, held_folds)


def report(truth: np.ndarray, named: dict[str, np.ndarray], facets: list[str], folds: list[np.ndarray]) -> None:
    for name, scores in named.items():
        for facet, figures in summary(truth, scores, facets, folds).items():
            print(f"{name:<15} {facet:<19} {figures}")


def ensemble_scores(passages: Sequence, cols: list[tuple[str, str]], test: np.ndarray) -> np.ndarray:
    """The default ensemble's rescaled held-out scores of the `test` passages, fitted as `vkpp evaluate` fits."""
    from bench_tagging_ceiling import ensemble_scores as fitted_scores  # the script's folder is on the path

    held = set(test.tolist())
    found = fitted_scores([p for i, p in enumerate(passages) if i not in held], [passages[i] for i in test])
    return np.column_stack([found[f"{facet}/{label}"] for facet, label in cols])


if __name__ == "__main__":
    main()

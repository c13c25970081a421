#!/usr/bin/env python3
"""Python baseline for crates/classify: scikit-learn random forest on the flow
features exported by `cargo run -p classify --release --example eval_real --
--export FEATURES.csv`, on exactly the same grouped folds (columns fold_seedN).

nfstream needs libpcap and could not be installed here, so the baseline uses
the exported flow statistics instead of nfstream's. Two feature sets:
  * "stats": the nfstream-like flow statistics only (no application hints:
    drops kw_*, tok_*, app_*, detected_*, svc_*, seen_*, http_* and service
    columns);
  * "all": every exported feature (the schema's flow features: the Rust
    models get the learned token evidence on top, which is fitted per fold
    and not exported).
Only whole-flow rows (prefix == 0) are used, for training and scoring, like
the Rust benchmark models.

usage: python3 scripts/classify_baseline.py FEATURES.csv
"""
import sys

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def main(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    raw = np.genfromtxt(path, delimiter=",", skip_header=1, dtype=str)
    groups, classes, prefix = raw[:, 0], raw[:, 1], raw[:, 2].astype(int)
    fold_cols = [i for i, h in enumerate(header) if h.startswith("fold_seed")]
    feat_cols = [i for i, h in enumerate(header) if i > max(fold_cols)]
    names = [header[i] for i in feat_cols]
    X = raw[:, feat_cols].astype(np.float32)
    class_names = sorted(set(classes))
    y = np.array([class_names.index(c) for c in classes])
    hint = ("kw_", "tok_", "app_", "detected_", "service_", "svc_", "seen_", "http_")
    stats = [j for j, n in enumerate(names) if not n.startswith(hint)]
    for label, cols in (("stats", stats), ("all", list(range(len(names))))):
        f1s, truth, pred = [], [], []
        for fc in fold_cols:
            folds = raw[:, fc].astype(int)
            seed = fold_cols.index(fc)
            for k in sorted(set(folds)):
                tr = (folds != k) & (prefix == 0)
                te = (folds == k) & (prefix == 0)
                if te.sum() == 0:
                    continue
                rf = RandomForestClassifier(
                    n_estimators=100, class_weight="balanced", random_state=seed, n_jobs=1
                )
                rf.fit(X[tr][:, cols], y[tr])
                p = rf.predict(X[te][:, cols])
                f1s.append(f1_score(y[te], p, average="macro", labels=sorted(set(y[te]))))
                truth.extend(y[te])
                pred.extend(p)
        truth, pred = np.array(truth), np.array(pred)
        per = f1_score(truth, pred, average=None, labels=range(len(class_names)))
        print(
            f"sklearn RF [{label}, {len(cols)} features]: pooled accuracy {accuracy_score(truth, pred):.4f} "
            f"macro-F1 {f1_score(truth, pred, average='macro'):.4f}; per-fold macro-F1 mean {np.mean(f1s):.4f}; "
            + " ".join(f"F1 {c} {v:.3f}" for c, v in zip(class_names, per))
        )
        print(confusion_matrix(truth, pred))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/classify_features.csv")

"""The report's tables: AUBC and final accuracy per arm (mean ± std over seeds) and the
runtime split per arm relative to Entropy (the paper's Table 2), as frames and Markdown."""

from __future__ import annotations

from typing import Any, Sequence

from autoal.platform.report.runs import RUNTIME_PARTS, is_missing


def arm_summary(trials, order: Sequence[str]):
    """Per arm over finished trials: seeds, AUBC and final accuracy mean and std (ddof 1)."""
    import pandas as pd

    done = trials[trials["status"] == "FINISHED"]
    rows = []
    for arm in order:
        g = done[done["arm"] == arm]
        if g.empty:
            continue
        rows.append(
            {
                "arm": arm,
                "seeds": int(len(g)),
                "aubc_mean": float(g["aubc"].mean()),
                "aubc_std": float(g["aubc"].std(ddof=1)) if len(g) > 1 else 0.0,
                "final_accuracy_mean": float(g["final_accuracy"].mean()),
                "final_accuracy_std": float(g["final_accuracy"].std(ddof=1)) if len(g) > 1 else 0.0,
            }
        )
    return pd.DataFrame(
        rows, columns=["arm", "seeds", "aubc_mean", "aubc_std", "final_accuracy_mean", "final_accuracy_std"]
    )


def markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def summary_markdown(summary) -> str:
    """AUBC and final accuracy as ``mean ± std``; the best mean of each column in bold."""
    if summary.empty:
        return "_no finished trials_"
    best_a = summary["aubc_mean"].max()
    best_f = summary["final_accuracy_mean"].max()
    rows = []
    for _, r in summary.iterrows():
        a = f"{r.aubc_mean:.4f} ± {r.aubc_std:.4f}"
        f = f"{r.final_accuracy_mean:.4f} ± {r.final_accuracy_std:.4f}"
        rows.append(
            [
                r.arm,
                int(r.seeds),
                f"**{a}**" if r.aubc_mean == best_a else a,
                f"**{f}**" if r.final_accuracy_mean == best_f else f,
            ]
        )
    return markdown(["arm", "seeds", "AUBC (mean ± std)", "final accuracy (mean ± std)"], rows)


def runtime_split(trials, order: Sequence[str]):
    """Mean seconds per run and arm (Table 2): candidate scoring (the shared cache pass plus
    AutoAL's candidate indicators), search, task training, the rest of selection, total; and the
    total relative to the Entropy arm (None when there is no Entropy arm)."""
    import pandas as pd

    if "seconds_train" not in trials.columns:
        return None
    done = trials[trials["status"] == "FINISHED"].copy()
    if done.empty:
        return None
    for part in RUNTIME_PARTS:
        if part not in done.columns:
            done[part] = 0.0
        done[part] = done[part].fillna(0.0)
    entropy = [a for a in order if (done[done["arm"] == a]["strategy"] == "entropy").any()]
    rows = []
    for arm in order:
        g = done[done["arm"] == arm]
        if g.empty:
            continue
        cand = float((g["seconds_score"] + g["seconds_candidates"]).mean())
        search = float(g["seconds_search"].mean())
        train = float(g["seconds_train"].mean())
        other = float((g["seconds_select"] - g["seconds_candidates"] - g["seconds_search"]).clip(lower=0).mean())
        rows.append(
            {
                "arm": arm,
                "candidate_scoring_s": cand,
                "search_s": search,
                "task_training_s": train,
                "selection_other_s": other,
                "total_s": cand + search + train + other,
            }
        )
    out = pd.DataFrame(rows)
    ref_total = float(out.loc[out["arm"] == entropy[0], "total_s"].iloc[0]) if entropy else None
    out["relative_to_entropy"] = out["total_s"] / ref_total if ref_total else float("nan")
    return out


def runtime_markdown(rt) -> str:
    rows = [
        [
            r.arm,
            f"{r.candidate_scoring_s:.2f}",
            f"{r.search_s:.2f}",
            f"{r.task_training_s:.2f}",
            f"{r.selection_other_s:.2f}",
            f"{r.total_s:.2f}",
            "–" if is_missing(r.relative_to_entropy) else f"{r.relative_to_entropy:.2f}×",
        ]
        for r in rt.itertuples()
    ]
    return markdown(
        ["arm", "candidate scoring s", "search s", "task training s", "selection (rest) s", "total s", "× Entropy"],
        rows,
    )

"""A model card for each registered version, in Markdown and HTML, built from what its decision rests on.

The register task writes it to the version's MLflow run (``model_card/model_card.md`` and ``.html``) and
tags the version with where it is (``mlc.model_card``). Its sections (:data:`SECTIONS`): purpose, decision,
data, features, model, metrics (with the comparisons' intervals), fairness, slices, importance, and lineage
(source, snapshot, run, version). A section with nothing recorded says so rather than vanishing, so every
card has the same outline. The card is built from the version's tags, the evaluation (the evaluate task's
result) and the training run's parameters: no data is read.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_mlc.core import tracking
from airflow_mlc.spec import ModelLifecycleSpec

#: The sections of every card, in order.
SECTIONS = (
    "Purpose",
    "Decision",
    "Data",
    "Features",
    "Model",
    "Metrics",
    "Fairness",
    "Slices",
    "Importance",
    "Lineage",
)
#: Where the card goes in the version's MLflow run: the folder, and the two files in it.
CARD_FOLDER = "model_card"
CARD_MARKDOWN, CARD_HTML = f"{CARD_FOLDER}/model_card.md", f"{CARD_FOLDER}/model_card.html"


@dataclass
class Section:
    """A heading, its paragraphs, and its tables (a header row, then rows)."""

    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[list[list[str]]] = field(default_factory=list)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _comparison_rows(label: str, comparison: Mapping[str, Any] | None) -> list[list[str]]:
    if not comparison:
        return []
    interval = f"[{_text(comparison.get('low'))}, {_text(comparison.get('high'))}]"
    return [
        [
            label,
            _text(comparison.get("challenger")),
            _text(comparison.get("champion")),
            _text(comparison.get("improvement")),
            f"{interval} at {_text(comparison.get('confidence'))}",
            _text(comparison.get("rows")),
        ]
    ]


def _trigger(tags: Mapping[str, str]) -> str:
    raw = tags.get(tracking.TAG_TRIGGERED_BY, "")
    try:
        found = json.loads(raw)
    except (TypeError, ValueError):
        return raw or "not recorded"
    if isinstance(found, dict):
        return ", ".join(f"{key} {value}" for key, value in found.items() if value not in (None, "", [], {}))
    return raw


def card_sections(
    spec: ModelLifecycleSpec,
    version: str,
    tags: Mapping[str, str],
    evaluation: Mapping[str, Any],
    decision: Mapping[str, Any],
    run: Mapping[str, Any],
) -> list[Section]:
    """The card's sections.

    Args:
        spec: the model's spec.
        version: the registered version.
        tags: the version's tags (``mlc.*``).
        evaluation: the evaluate task's result (metrics, comparisons, reasons, governance).
        decision: the register task's result (promoted, reason, previous champion).
        run: the training run: ``run_id``, ``experiment_id``, ``params``, ``dag_run_id``.
    """
    governance = evaluation.get("governance") or {}
    metric = evaluation.get("metric", spec.gates.metric)
    sections = [
        Section("Purpose", [spec.description or f"Predict {spec.target!r} ({spec.task}) for {spec.name}."]),
        Section(
            "Decision",
            [
                f"**{'Promoted to champion' if decision.get('promoted') else 'Not promoted'}**: "
                f"{decision.get('reason', '')}",
                f"Decided at {tags.get(tracking.TAG_DECIDED_AT) or 'the registration'}; previous champion: "
                f"{decision.get('previous_champion') or decision.get('champion') or 'none'}.",
                f"Training triggered by: {_trigger(tags)}.",
            ],
            [[["Check"], *[[reason] for reason in evaluation.get("reasons", [])]]],
        ),
        Section(
            "Data",
            [f"Source: {_source(spec)}."],
            [
                [
                    ["Item", "Value"],
                    [
                        "window",
                        f"{tags.get(tracking.TAG_WINDOW_START) or '…'} to {tags.get(tracking.TAG_WINDOW_END) or '…'}",
                    ],
                    ["fingerprint", tags.get(tracking.TAG_FINGERPRINT, "not recorded")],
                    ["split", tags.get(tracking.TAG_SPLIT_RULE, spec.split.method)],
                    ["compared on", str(evaluation.get("scored_on", ""))],
                ]
            ],
        ),
        Section(
            "Features",
            [f"Target {spec.target!r}; positive class: {evaluation.get('positive_class') or 'none'}."],
            [
                [
                    ["Feature", "Kind"],
                    *[[c, "numeric"] for c in spec.features.numeric],
                    *[[c, "categorical"] for c in spec.features.categorical],
                ]
            ],
        ),
        Section(
            "Model",
            [f"Estimator {spec.model.estimator}."],
            [[["Parameter", "Value"], *[[k, v] for k, v in sorted((run.get("params") or {}).items())]]],
        ),
        Section(
            "Metrics",
            [f"Gate metric {metric}. The metrics are this version's on all its test rows."],
            [
                [["Metric", "Value"], *[[k, _text(v)] for k, v in sorted(evaluation.get("metrics", {}).items())]],
                [
                    ["Compared with", "This version", "Other", "Improvement", "Interval", "Rows"],
                    *_comparison_rows("the champion", evaluation.get("comparison")),
                    *_comparison_rows("a trivial model", evaluation.get("baseline")),
                ],
            ],
        ),
        _fairness_section(governance.get("fairness")),
        _slices_section(governance.get("slices")),
        _importance_section(governance.get("explanations")),
        Section(
            "Lineage",
            [],
            [
                [
                    ["Step", "Where"],
                    ["source", _source(spec)],
                    ["training snapshot", tags.get(tracking.TAG_TRAIN_DATA, "not recorded")],
                    ["test rows", tags.get(tracking.TAG_TEST_DATA, "not recorded")],
                    ["Airflow run", f"{tags.get(tracking.TAG_DAG_ID, '')} {tags.get(tracking.TAG_RUN_ID, '')}".strip()],
                    ["MLflow run", f"{run.get('run_id', '')} (experiment {run.get('experiment_id', '')})"],
                    ["registered version", f"{spec.registered_model_name} v{version}"],
                ]
            ],
        ),
    ]
    return sections


def _source(spec: ModelLifecycleSpec) -> str:
    from airflow_mlc.core.ingest import describe_source

    return describe_source(spec.source)


def _fairness_section(check: Mapping[str, Any] | None) -> Section:
    if not check:
        return Section("Fairness", ["Not checked: the spec sets no gates.fairness."])
    details = check.get("details", {})
    table = [["Column", "Group", details.get("metric", "value"), "Rows", "Judged"]]
    for column, measured in details.get("columns", {}).items():
        for group, value in measured.get("groups", {}).items():
            judged = "yes" if group in measured.get("judged", []) else "no"
            table.append([column, group, _text(value.get("value")), _text(value.get("rows")), judged])
    return Section(
        "Fairness", [("**Blocked.** " if check.get("blocked") else "") + " ".join(check.get("reasons", []))], [table]
    )


def _slices_section(check: Mapping[str, Any] | None) -> Section:
    if not check:
        return Section("Slices", ["Not measured: the spec sets no gates.slices."])
    details = check.get("details", {})
    table = [["Column", "Slice", "Rows", "This version", "Champion"]]
    for column, slices in details.get("columns", {}).items():
        for name, entry in slices.items():
            table.append(
                [column, name, _text(entry.get("rows")), _text(entry.get("candidate")), _text(entry.get("champion"))]
            )
    verdict = " ".join(check.get("reasons", [])) or "No slice blocks this version."
    return Section("Slices", [("**Blocked.** " if check.get("blocked") else "") + verdict], [table])


def _importance_section(check: Mapping[str, Any] | None) -> Section:
    if not check:
        return Section("Importance", ["Not measured: explanations.importance is off."])
    details = check.get("details", {})
    table = [["Rank", "Feature", "Importance (mean)", "Spread (std)"]]
    for rank, entry in enumerate(details.get("ranking", []), start=1):
        table.append([str(rank), entry["feature"], _text(entry["mean"]), _text(entry["std"])])
    words = (
        f"Permutation importance: how much {details.get('metric')} gets worse when a feature is shuffled "
        f"({details.get('repeats')} shuffles, {details.get('rows')} test rows)."
    )
    return Section("Importance", [words, *check.get("reasons", [])], [table])


def _markdown_text(text: str) -> str:
    """``text`` that a Markdown renderer shows as written: no raw HTML."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(title: str, sections: Sequence[Section]) -> str:
    """The card as Markdown: a title, then each section with its paragraphs and tables."""
    lines = [f"# {_markdown_text(title)}", ""]
    for section in sections:
        lines += [f"## {section.title}", ""]
        for paragraph in section.paragraphs:
            lines += [_markdown_text(paragraph), ""]
        for table in section.tables:
            if len(table) < 2:
                lines += ["(nothing recorded)", ""]
                continue
            cells = [[_markdown_text(cell).replace("|", "\\|").replace("\n", " ") for cell in row] for row in table]
            lines.append("| " + " | ".join(cells[0]) + " |")
            lines.append("|" + "---|" * len(cells[0]))
            lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
            lines.append("")
    return "\n".join(lines)


def to_html(title: str, sections: Sequence[Section]) -> str:
    """The card as a standalone HTML page (no script, no external resource), every value escaped."""

    def inline(text: str) -> str:
        escaped = html.escape(text)
        while escaped.count("**") >= 2:  # **bold**, the only mark-up the paragraphs use
            escaped = escaped.replace("**", "<strong>", 1).replace("**", "</strong>", 1)
        return escaped

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    for section in sections:
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts += [f"<p>{inline(paragraph)}</p>" for paragraph in section.paragraphs]
        for table in section.tables:
            if len(table) < 2:
                parts.append("<p>(nothing recorded)</p>")
                continue
            header = "".join(f"<th>{html.escape(cell)}</th>" for cell in table[0])
            rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in table[1:])
            parts.append(f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def log_model_card(
    client: Any,
    spec: ModelLifecycleSpec,
    version: str,
    evaluation: Mapping[str, Any],
    decision: Mapping[str, Any],
    run_id: str,
) -> str:
    """Build the version's card, log it to its training run, tag the version with it; returns the card's URI."""
    found = client.get_model_version(spec.registered_model_name, version)
    run = client.get_run(run_id)
    facts = {"run_id": run_id, "experiment_id": run.info.experiment_id, "params": dict(run.data.params)}
    sections = card_sections(spec, version, dict(found.tags or {}), evaluation, decision, facts)
    title = f"Model card: {spec.registered_model_name} version {version}"
    client.log_text(run_id, to_markdown(title, sections), CARD_MARKDOWN)
    client.log_text(run_id, to_html(title, sections), CARD_HTML)
    uri = f"runs:/{run_id}/{CARD_MARKDOWN}"
    client.set_model_version_tag(spec.registered_model_name, version, tracking.TAG_MODEL_CARD, uri)
    return uri

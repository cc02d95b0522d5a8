"""HTML pages of the approval flow: small, self-contained, escaped, no scripts."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

from pipeline_common.approvals import Approval, Status, champion_rmse_text

_STYLE = "".join(
    [
        "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:760px;margin:2rem auto;padding:0 1rem;color:#1b1f24}",
        "h1{font-size:1.4rem}",
        "table{border-collapse:collapse;margin:1rem 0}",
        "td,th{padding:.3rem .8rem;border-bottom:1px solid #ddd;text-align:left}",
        ".buttons button{font-size:1rem;padding:.6rem 1.4rem;margin-right:.6rem;border:0;border-radius:4px;cursor:pointer}",
        ".approve{background:#1a7f37;color:#fff}",
        ".reject{background:#cf222e;color:#fff}",
        ".note{color:#57606a}",
        ".status{color:#57606a;font-size:.9rem}",
        "img{max-width:100%;border:1px solid #ddd}",
        "input,textarea{font-size:1rem;padding:.3rem;width:100%;box-sizing:border-box}",
    ]
)

_STATUS_WORDS = {
    400: "Bad request",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    410: "Gone",
    413: "Content too large",
}


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        "<meta name=robots content=noindex><meta name=referrer content=no-referrer>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style>"
        f"</head><body>{body}</body></html>"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def evidence_rows(approval: Approval) -> list[tuple[str, str]]:
    e = approval.evidence
    champion = champion_rmse_text(e, _fmt) or "no model in production yet"
    return [
        ("model", approval.model_id),
        ("validation RMSE", _fmt(e.get("validation_rmse"))),
        ("production model's RMSE", champion),
        ("test-set RMSE (dev endpoint)", _fmt(e.get("test_rmse"))),
        ("test trips", _fmt(e.get("test_rows"))),
        ("data", _fmt(e.get("data"))),
        ("data version", _fmt(e.get("data_version"))),
        ("gate", _fmt(e.get("gate_summary") or e.get("gate_reason"))),
        ("requested", _when(approval.created_at)),
        ("link expires", _when(approval.expires_at)),
    ]


def _table(rows: list[tuple[str, str]], table_id: str = "") -> str:
    cells = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    attribute = f" id={table_id}" if table_id else ""
    return f"<table{attribute}>{cells}</table>"


def review_page(
    approval: Approval, action: str, expires: int, sig: str, plot_src: str | None
) -> str:
    """GET: the evidence and two buttons; nothing is decided until the form is posted."""
    if approval.status is not Status.PENDING:
        return decided_page(approval)
    form = (
        f'<form method=post action="{escape(action)}">'
        f'<input type=hidden name=expires value="{expires}">'
        f'<input type=hidden name=sig value="{escape(sig)}">'
        "<p><label>Your name (recorded with the decision)<br><input name=name required maxlength=100 autocomplete=name></label></p>"
        "<p><label>Reason (optional)<br><textarea name=reason rows=2 maxlength=500></textarea></label></p>"
        "<p class=buttons><button class=approve name=decision value=approve>Approve</button>"
        "<button class=reject name=decision value=reject>Reject</button></p></form>"
    )
    plot = (
        f'<p><img id=plot src="{escape(plot_src)}" alt="actual versus predicted fares on the test split" width=600></p>'
        if plot_src
        else "<p class=note>No actual-vs-predicted plot was recorded for this candidate.</p>"
    )
    body = (
        f"<h1>Promote model {escape(approval.model_id)} to production?</h1>"
        + _table(evidence_rows(approval), "evidence")
        + plot
        + form
        + "<p class=note>Approving starts a canary: 10% of live traffic goes to the new model first, and "
        "any alarm or failed check rolls it back. Rejecting, or no decision before the link expires, "
        "leaves production as it is. A decision is final.</p>"
    )
    return _page(f"Approve {approval.model_id}?", body)


def decided_page(approval: Approval) -> str:
    verb = {
        Status.APPROVED: "approved",
        Status.REJECTED: "rejected",
        Status.EXPIRED: "not decided in time (expired)",
    }.get(approval.status, approval.status.value.lower())
    after = {
        Status.APPROVED: "The promotion has started: a canary first, then all traffic.",
        Status.REJECTED: "The candidate is discarded; production is unchanged.",
        Status.EXPIRED: "Silence rejects: production is unchanged.",
    }.get(approval.status, "")
    body = (
        f"<h1>Model {escape(approval.model_id)} was {escape(verb)}</h1>"
        + _table(
            [
                ("decision", approval.status.value),
                ("decided by", approval.decided_by or "-"),
                ("via", approval.decided_via or "-"),
                ("at", _when(approval.decided_at)),
                ("reason", approval.reason or "-"),
            ],
            "decision",
        )
        + f"<p>{escape(after)}</p>"
        + "<p class=note>A decision is final; this link cannot change it.</p>"
    )
    return _page(f"{approval.model_id} {verb}", body)


def error_page(title: str, detail: str, status: int | None = None) -> str:
    code = (
        f"<p class=status>HTTP {status} {escape(_STATUS_WORDS.get(status, ''))}</p>"
        if status
        else ""
    )
    return _page(title, f"<h1>{escape(title)}</h1><p>{escape(detail)}</p>{code}")

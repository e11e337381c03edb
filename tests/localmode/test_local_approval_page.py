"""The approval page a local AUTO_APPROVE/REJECT run opens is kept for the
reviewer (approval-page-<run id>.html): what the browser got before it
submitted the form, without the form's nonce or the link's reference, which
decide the run until used."""
from __future__ import annotations

import urllib.parse

from localmode import approval_server

NONCE = "n0nce-&-\"quoted\"_Zx9"
REFERENCE = "Ab3_dE-fGh1jK2lM"


def page(nonce: str = NONCE) -> str:
    import html

    return ("<!doctype html><html><body><h1>Approve car run r-1 for production?</h1>"
            f'<p>Link: https://x/approvals/{REFERENCE}?decision=approve</p>'
            '<form method="post"><input type="radio" name="decision" value="approve">'
            f'<input type="hidden" name="nonce" value="{html.escape(nonce, quote=True)}">'
            '<button type="submit">Submit decision</button></form></body></html>')


def test_the_kept_page_has_neither_the_nonce_nor_the_reference():
    kept = approval_server.redacted_page(page())
    assert approval_server.hidden_fields(kept)["nonce"] == "redacted"
    assert NONCE not in kept and "n0nce" not in kept and REFERENCE not in kept
    assert "/approvals/<reference>?decision=approve" in kept
    assert "Approve car run r-1 for production?" in kept  # everything else is as the browser showed it


def test_the_page_is_handed_over_before_the_form_is_submitted():
    seen: list[tuple[str, object]] = []

    def handler(event, context):
        seen.append((event["httpMethod"], event["body"]))
        if event["httpMethod"] == "GET":
            return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": page()}
        return {"statusCode": 200, "headers": {"Content-Type": "text/html"}, "body": "<p>Approved.</p>"}

    server, base = approval_server.start_approval_server(handler=handler)
    try:
        opened = []
        status, final = approval_server.browser_decide(
            f"{base}/approvals/{REFERENCE}?decision=approve", "approve",
            on_page=lambda code, html_page: opened.append((code, html_page, len(seen))))
    finally:
        server.shutdown()
    assert (status, final) == (200, "<p>Approved.</p>")
    # The callback got the GET's page while only the GET had reached the API.
    assert opened == [(200, page(), 1)]
    method, body = seen[1]
    assert method == "POST" and urllib.parse.parse_qs(body)["nonce"] == [NONCE]

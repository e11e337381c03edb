"""The approval page on this machine: a small HTTP server that turns browser
GET/POST requests on /approvals/<ref> into API Gateway REST proxy events (v1)
for the real `functions/approval_api` handler and writes back its response.

    server, base_url = start_approval_server()      # or handler=...
    ...                                            # base_url -> API_BASE_URL
    server.shutdown()

`browser_decide(link, decision, reason)` does what a person does with the
email's link: open the page, then submit its form.
"""
from __future__ import annotations

import base64
import html
import os
import re
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from html.parser import HTMLParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from localmode.lambdas import LambdaContext, LocalLambdas

RESOURCE = "/approvals/{ref}"
_APPROVAL_PATH = re.compile(r"^/approvals/([^/]+)$")
_MAX_BODY = 64 * 1024
_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}")
# A client that stops sending (or announces more than it sends) must not hold a thread for ever.
_SOCKET_TIMEOUT_SECONDS = 10
Handler = Callable[[dict, Any], dict]


def default_handler(region: str | None = None) -> Handler:
    """The real handler, loaded by path with the shared layer on sys.path."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    return LocalLambdas(region=region).module("approval_api").lambda_handler


def proxy_event(method: str, raw_path: str, headers: dict[str, str], body: bytes, host: str) -> dict:
    """An API Gateway REST API proxy integration event (payload format 1.0)."""
    parsed = urllib.parse.urlsplit(raw_path)
    path = parsed.path
    match = _APPROVAL_PATH.match(path)
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    text_body: str | None
    is_base64 = False
    if not body:
        text_body = None
    else:
        try:
            text_body = body.decode("utf-8")
        except UnicodeDecodeError:
            text_body, is_base64 = base64.b64encode(body).decode("ascii"), True
    request_time = time.time()
    return {
        "resource": RESOURCE if match else path,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": {"ref": urllib.parse.unquote(match.group(1))} if match else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": RESOURCE if match else path,
            "httpMethod": method,
            "path": path,
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(request_time * 1000),
            "protocol": "HTTP/1.1",
            "domainName": host,
            "apiId": "local",
            "accountId": "123456789012",
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent")},
        },
        "body": text_body,
        "isBase64Encoded": is_base64,
    }


def _make_request_handler(handler: Handler, region: str):
    class ApprovalRequestHandler(BaseHTTPRequestHandler):
        server_version = "local-approval-api"

        timeout = _SOCKET_TIMEOUT_SECONDS  # StreamRequestHandler applies it to the connection

        def _content_length(self) -> int | None:
            """The body's length, or None when the request does not say it in
            a way that can be trusted (negative, not a number, two different
            values, or a chunked body, which this server does not read)."""
            if self.headers.get("Transfer-Encoding"):
                return None
            values = {value.strip() for value in self.headers.get_all("Content-Length") or []}
            if not values:
                return 0
            if len(values) != 1:
                return None
            (value,) = values
            return int(value) if _CONTENT_LENGTH.fullmatch(value) else None

        def _dispatch(self, method: str) -> None:
            length = self._content_length()
            if length is None:
                self.close_connection = True
                self.send_error(400, "Bad Content-Length")
                return
            if length > _MAX_BODY:
                self.close_connection = True
                self.send_error(413)
                return
            try:
                body = self.rfile.read(length) if length else b""
            except TimeoutError:
                self.close_connection = True
                return
            if len(body) != length:  # the client closed the connection early
                self.close_connection = True
                return
            event = proxy_event(method, self.path, dict(self.headers.items()), body, self.headers.get("Host", ""))
            response = handler(event, LambdaContext("approval_api", region))
            payload = response.get("body") or ""
            data = base64.b64decode(payload) if response.get("isBase64Encoded") else payload.encode("utf-8")
            self.send_response(int(response.get("statusCode", 502)))
            for name, value in (response.get("headers") or {}).items():
                self.send_header(name, str(value))
            for name, values in (response.get("multiValueHeaders") or {}).items():
                if name not in (response.get("headers") or {}):
                    for value in values:
                        self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 (http.server's naming)
            self._dispatch("GET")

        def do_POST(self):  # noqa: N802
            self._dispatch("POST")

        def log_message(self, format, *args):  # noqa: A002
            # http.server's access and error lines carry the request line,
            # i.e. the approval reference; the page itself reports outcomes.
            return

    return ApprovalRequestHandler


class _ApprovalHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # socketserver prints the whole traceback, whose frames can hold the
        # request line (the approval reference): the exception's type is enough.
        print(f"approval server: a request failed ({sys.exc_info()[0].__name__})", file=sys.stderr)


def start_approval_server(handler: Handler | None = None, host: str = "127.0.0.1", port: int = 0,
                          region: str | None = None) -> tuple[ThreadingHTTPServer, str]:
    """Serve the approval API on host:port (0 = any free port) in a daemon
    thread. Returns the server (call `.shutdown()`) and its base URL, the
    value for the approval Lambda's API_BASE_URL."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    server = _ApprovalHTTPServer((host, port), _make_request_handler(handler or default_handler(region), region))
    threading.Thread(target=server.serve_forever, name="approval-server", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    return server, f"http://{bound_host}:{bound_port}"


class _HiddenFieldReader(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hidden: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if tag == "input" and values.get("type") == "hidden" and values.get("name"):
            self.hidden[values["name"]] = values.get("value") or ""


def hidden_fields(page: str) -> dict[str, str]:
    """The hidden inputs of an HTML page's forms, by name."""
    reader = _HiddenFieldReader()
    reader.feed(page)
    return reader.hidden


def http_request(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


def redacted_page(page: str) -> str:
    """The page without its secrets, fit for a file: every hidden nonce's value
    becomes "redacted" and approval references become <reference>."""
    for name, value in hidden_fields(page).items():
        if name == "nonce" and value:
            # As the page writes it (HTML-escaped) and as a parser reads it.
            page = page.replace(html.escape(value, quote=True), "redacted").replace(value, "redacted")
    return re.sub(r"(/approvals/)[A-Za-z0-9_-]+", r"\1<reference>", page)


def browser_decide(link: str, decision: str, reason: str = "",
                   on_page: Callable[[int, str], None] | None = None) -> tuple[int, str]:
    """Open an approval link and submit its form as a person would. Returns
    the final (status, html). Raises if the page has no form.
    `on_page(status, html)` gets the page the link opened, before its form is
    submitted (it holds the form's nonce: see redacted_page)."""
    status, page = http_request(link)
    if on_page is not None:
        on_page(status, page)
    hidden = hidden_fields(page)
    if status != 200 or "nonce" not in hidden:
        raise RuntimeError(f"the approval page answered {status} without a form")
    form = {**hidden, "decision": decision, "reason": reason}
    return http_request(
        link.split("?", 1)[0],
        data=urllib.parse.urlencode(form).encode("ascii"),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )


def links_in(message: str) -> dict[str, str]:
    """The approve/reject links in an approval email, by decision: only the
    email's own "Approve:"/"Reject:" lines count, never a URL inside a value."""
    found = re.findall(r"^(?:Approve|Reject):[ \t]+(https?://\S+/approvals/[A-Za-z0-9_-]+\?decision=(approve|reject))[ \t]*$",
                       message, re.M)
    return {decision: url for url, decision in found}


__all__ = ["browser_decide", "default_handler", "hidden_fields", "links_in", "proxy_event", "redacted_page",
           "start_approval_server"]

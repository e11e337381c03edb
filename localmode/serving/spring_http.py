"""What Spring Boot 2.7 (Spring MVC 5.3) on Jetty 9.4 puts on the wire for the answers
SparkML Serving 3.3's own code does not shape: the Content-Type of a `ResponseEntity<String>`
that names none (the controller's 400s), and the default error page (`BasicErrorController`)
for requests Spring refuses before the controller runs (415, a missing or unreadable body).

Read from the real app's code (aws/sagemaker-sparkml-serving-container at the commit that
pins mleap-runtime 0.20.0: ServingController.java lines 122-124, 148-150, 181-184 answer
`ResponseEntity.badRequest().body(ex.getMessage())`; BeanConfiguration.java lines 82-85
declare a plain `new ObjectMapper()`) and checked against that app built from source and
run on this machine (Accept header -> Content-Type and body below):

- controller 400, no Accept or `*/*`: `text/plain;charset=utf-8`; `text/csv`:
  `text/csv;charset=UTF-8`; `application/json`: `application/json`;
  `application/jsonlines;data=text`: `application/jsonlines;data=text;charset=UTF-8`;
  an unparsable Accept (`foo`): an empty body and no Content-Type.
- error page, no Accept, `*/*` or `application/json`: `{"timestamp":<epoch ms>,"status":415,
  "error":"Unsupported Media Type","path":"/invocations"}` (the app's own ObjectMapper
  keeps Jackson's default of dates as numbers); `text/html` or `text/*`: the Whitelabel
  page; `text/csv` or `application/jsonlines`: an empty body and no Content-Type.
"""
from __future__ import annotations

import functools
import html
import json
import time
from datetime import datetime, timezone
from typing import NamedTuple


class MediaType(NamedTuple):
    """org.springframework.http.MediaType: type and subtype lower-cased, parameters kept in order."""

    type: str
    subtype: str
    params: tuple[tuple[str, str], ...] = ()

    @property
    def quality(self) -> float:
        for key, value in self.params:
            if key.lower() == "q":
                return float(value)
        return 1.0

    @property
    def wildcard_type(self) -> bool:
        return self.type == "*"

    @property
    def wildcard_subtype(self) -> bool:
        return self.subtype == "*" or self.subtype.startswith("*+")

    @property
    def concrete(self) -> bool:
        return not self.wildcard_type and not self.wildcard_subtype

    def without_quality(self) -> "MediaType":
        return self._replace(params=tuple((k, v) for k, v in self.params if k.lower() != "q"))

    def with_quality_of(self, other: "MediaType") -> "MediaType":
        quality = [(k, v) for k, v in other.params if k.lower() == "q"]
        return self._replace(params=self.without_quality().params + tuple(quality))

    def charset(self) -> str | None:
        return next((v for k, v in self.params if k.lower() == "charset"), None)

    def compatible(self, other: "MediaType") -> bool:
        """MimeType.isCompatibleWith."""
        if self.wildcard_type or other.wildcard_type:
            return True
        if self.type != other.type:
            return False
        if self.subtype == other.subtype:
            return True
        for one, two in ((self, other), (other, self)):
            if one.wildcard_subtype:
                if one.subtype == "*":
                    return True
                suffix = one.subtype[2:]  # "*+json"
                if two.subtype == suffix or two.subtype.endswith("+" + suffix):
                    return True
        return False

    def includes(self, other: "MediaType") -> bool:
        """MimeType.includes (used by Spring to rank request mappings)."""
        if self.wildcard_type:
            return True
        if self.type != other.type:
            return False
        if self.subtype == other.subtype or self.subtype == "*":
            return True
        return self.subtype.startswith("*+") and other.subtype.endswith("+" + self.subtype[2:])

    def same(self, other: "MediaType") -> bool:
        return self.type == other.type and self.subtype == other.subtype

    def __str__(self) -> str:
        return f"{self.type}/{self.subtype}" + "".join(f";{k}={v}" for k, v in self.params)


ALL = MediaType("*", "*")
TEXT_PLAIN = MediaType("text", "plain")
TEXT_HTML = MediaType("text", "html")
APPLICATION_JSON = MediaType("application", "json")
APPLICATION_PLUS_JSON = MediaType("application", "*+json")
# What StringHttpMessageConverter then MappingJackson2HttpMessageConverter can write a String as.
_STRING_PRODUCIBLE = (TEXT_PLAIN, ALL, APPLICATION_JSON, APPLICATION_PLUS_JSON)
_JSON_PRODUCIBLE = (APPLICATION_JSON, APPLICATION_PLUS_JSON)


class InvalidAccept(ValueError):
    """Spring's InvalidMediaTypeException: the request then gets no body and no Content-Type."""


def parse_media_types(header: str | None) -> list[MediaType]:
    """MediaType.parseMediaTypes plus HeaderContentNegotiationStrategy's `*/*` for no header."""
    if header is None or not header.strip():
        return [ALL]
    result = []
    for part in _split_outside_quotes(header, ","):
        if part.strip():
            result.append(_parse_one(part.strip()))
    return result or [ALL]


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_one(text: str) -> MediaType:
    pieces = _split_outside_quotes(text, ";")
    full = pieces[0].strip()
    if full == "*":
        full = "*/*"
    if "/" not in full:
        raise InvalidAccept(f'Invalid mime type "{text}": does not contain \'/\'')
    main, _, sub = full.partition("/")
    if not main or not sub or "/" in sub:
        raise InvalidAccept(f'Invalid mime type "{text}"')
    if main == "*" and sub != "*":
        raise InvalidAccept(f"Invalid mime type \"{text}\": wildcard type is legal only in '*/*' (all mime types)")
    params = []
    for piece in pieces[1:]:
        piece = piece.strip()
        if not piece:
            continue
        key, eq, value = piece.partition("=")
        if not eq or not key.strip():
            raise InvalidAccept(f'Invalid mime type "{text}"')
        key, value = key.strip(), value.strip()
        if key.lower() == "q":
            try:
                quality = float(value)
            except ValueError:
                raise InvalidAccept(f'Invalid mime type "{text}"') from None
            if not 0.0 <= quality <= 1.0:
                raise InvalidAccept(f'Invalid mime type "{text}"')
        params.append((key, value))
    return MediaType(main.lower(), sub.lower(), tuple(params))


def _specificity(one: MediaType, two: MediaType) -> int:
    """MediaType.SPECIFICITY_COMPARATOR (not a total order: distinct types compare equal)."""
    if one.wildcard_type != two.wildcard_type:
        return 1 if one.wildcard_type else -1
    if one.type != two.type:
        return 0
    if one.wildcard_subtype != two.wildcard_subtype:
        return 1 if one.wildcard_subtype else -1
    if one.subtype != two.subtype:
        return 0
    if one.quality != two.quality:
        return -1 if one.quality > two.quality else 1
    return (len(one.params) < len(two.params)) - (len(one.params) > len(two.params))


def _quality(one: MediaType, two: MediaType) -> int:
    """MediaType.QUALITY_VALUE_COMPARATOR."""
    if one.quality != two.quality:
        return -1 if one.quality > two.quality else 1
    if one.wildcard_type != two.wildcard_type:
        return 1 if one.wildcard_type else -1
    if one.type != two.type:
        return 0
    if one.wildcard_subtype != two.wildcard_subtype:
        return 1 if one.wildcard_subtype else -1
    if one.subtype != two.subtype:
        return 0
    return (len(one.params) < len(two.params)) - (len(one.params) > len(two.params))


def sort_by_specificity_and_quality(types: list[MediaType]) -> list[MediaType]:
    """MediaType.sortBySpecificityAndQuality: SPECIFICITY_COMPARATOR, then QUALITY_VALUE_COMPARATOR."""
    def compare(one: MediaType, two: MediaType) -> int:
        return _specificity(one, two) or _quality(one, two)

    return sorted(types, key=functools.cmp_to_key(compare))


def _negotiate(accepted: list[MediaType], producible: tuple[MediaType, ...]) -> MediaType | None:
    """AbstractMessageConverterMethodProcessor.writeWithMessageConverters' choice, or None (406)."""
    candidates = []
    for requested in sort_by_specificity_and_quality(accepted):
        for produced in producible:
            if requested.compatible(produced):
                produced_q = produced.with_quality_of(requested)
                candidates.append(requested if _specificity(requested, produced_q) <= 0 else produced_q)
    for candidate in sort_by_specificity_and_quality(candidates):
        if candidate.concrete:
            return candidate.without_quality()
        if candidate.same(ALL) or candidate.same(MediaType("application", "*")):
            return MediaType("application", "octet-stream")
    return None


# Jetty 9.4's MimeTypes cache: a Content-Type equal (ignoring case) to one of these is sent
# in this spelling (Spring writes "text/plain;charset=UTF-8", the client sees "...=utf-8").
_JETTY_CANONICAL = {
    f"{base};charset={charset}": f"{base};charset={charset}"
    for base in ("text/html", "text/plain", "text/xml", "text/json", "application/json")
    for charset in ("utf-8", "iso-8859-1")
}


def _on_the_wire(content_type: str) -> str:
    return _JETTY_CANONICAL.get(content_type.lower().replace("; charset=", ";charset="), content_type)


def string_entity_content_type(accept: str | None) -> tuple[str | None, str]:
    """The Content-Type Spring gives a `ResponseEntity<String>` without one, and the body's charset.

    (None, ...) when Spring cannot pick one: it then sends the status with an empty body."""
    try:
        accepted = parse_media_types(accept)
    except InvalidAccept:
        return None, "utf-8"
    chosen = _negotiate(accepted, _STRING_PRODUCIBLE)
    if chosen is None:
        return None, "utf-8"
    if chosen.same(MediaType("application", "octet-stream")):
        chosen = TEXT_PLAIN  # StringHttpMessageConverter's default type for octet-stream
    # StringHttpMessageConverter.addDefaultHeaders: JSON types keep no charset; the others get
    # the converter's default charset, which Spring Boot sets to UTF-8.
    charset = chosen.charset()
    if charset is None and not (chosen.compatible(APPLICATION_JSON) or chosen.compatible(APPLICATION_PLUS_JSON)):
        chosen = chosen._replace(params=chosen.params + (("charset", "UTF-8"),))
    return _on_the_wire(str(chosen)), (charset or "utf-8")


def _error_view(accepted: list[MediaType]) -> str:
    """Which BasicErrorController method Spring maps the error dispatch to: 'html' or 'json'."""
    if not any(m.compatible(TEXT_HTML) for m in accepted):
        return "json"
    # ProducesRequestCondition.compareTo: errorHtml produces text/html, error() counts as */*.
    for requested in sort_by_specificity_and_quality(accepted):
        html_equal, all_equal = requested.same(TEXT_HTML), requested.same(ALL)
        if html_equal != all_equal:
            return "html" if html_equal else "json"
        html_included, all_included = requested.includes(TEXT_HTML), requested.includes(ALL)
        if html_included != all_included:
            return "html" if html_included else "json"
    return "json"


def error_page(status: int, reason: str, accept: str | None, path: str = "/invocations",
               now: float | None = None) -> tuple[bytes, str | None]:
    """Spring Boot 2.7's answer for an error raised before the controller: (body, Content-Type)."""
    stamp = time.time() if now is None else now
    try:
        accepted = parse_media_types(accept)
    except InvalidAccept:
        return b"", None
    if _error_view(accepted) == "html":
        created = datetime.fromtimestamp(stamp, timezone.utc).strftime("%a %b %d %H:%M:%S UTC %Y")
        page = ("<html><body><h1>Whitelabel Error Page</h1><p>This application has no explicit mapping for "
                "/error, so you are seeing this as a fallback.</p>"
                f"<div id='created'>{created}</div><div>There was an unexpected error "
                f"(type={html.escape(reason)}, status={status}).</div></body></html>")
        return page.encode("utf-8"), "text/html;charset=utf-8"
    chosen = _negotiate(accepted, _JSON_PRODUCIBLE)
    if chosen is None or not chosen.compatible(APPLICATION_JSON) and not chosen.compatible(APPLICATION_PLUS_JSON):
        # BasicErrorController.mediaTypeNotAcceptable: the status alone.
        return b"", None
    body = json.dumps({"timestamp": int(stamp * 1000), "status": status, "error": reason, "path": path},
                      separators=(",", ":"))
    return body.encode("utf-8"), _on_the_wire(str(chosen))

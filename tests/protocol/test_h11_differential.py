"""A differential test against h11: every corpus case is parsed by h11 too, and the two
parsers must agree, or the difference must be one this file explains.

Each case's bytes go to `h11.Connection(h11.SERVER)` in one piece, then EOF; each request is
answered (an empty 200, or 501 to CONNECT, which a 2xx would turn into a tunnel) so that h11
goes on to the next one. For a valid case the requests
that came out complete are compared: method, target, HTTP version, the header list (names
lower-cased, values, order) and the body, so the message boundaries too. Transfer-Encoding
values are compared lower-cased: h11 lower-cases them, and codings are case-insensitive (RFC
9112 section 7). For an invalid case the question is whether h11 refuses it too.

Each explained difference names the RFC section that decides it and which side that makes
right (or that both are allowed). An unexplained disagreement fails, and so does an
explanation that no longer applies (the two parsers agree on that case now).
"""

from __future__ import annotations

from typing import Any

import h11
import pytest

from ._corpus import Case, load_cases, normalise, replay

VALID = load_cases("valid")
INVALID = load_cases("invalid")

Outcome = list[dict[str, Any]]  # requests (complete or not), then {"error": status} if any

# -- why the two differ (each: the RFC section, and who it says is right) ---------------------
HOST_FROM_TARGET = (
    "RFC 9112 3.2.2: for an absolute-form target the server ignores Host and takes the "
    "target's authority; rootserve puts that authority in the host field (last), h11 passes "
    "the fields as sent. Both meet the RFC; rootserve's is what an app should see."
)
HTTP10_KEEP_ALIVE = (
    "RFC 9112 9.3 and appendix C.2.2: an HTTP/1.0 request with Connection: keep-alive may "
    "persist; rootserve keeps it open, h11 never does for HTTP/1.0 and reads no further "
    "requests. Both allowed (persistence is the server's choice)."
)
EMPTY_LINES = (
    "RFC 9112 2.2: a server SHOULD ignore at least one empty line before a request-line; "
    "rootserve does, h11 refuses it. rootserve is right."
)
SPACES = (
    "RFC 9112 3: a recipient MAY split the request-line on whitespace; rootserve (as llhttp) "
    "takes a run of SP, h11 only one SP. Both allowed."
)
SWITCH_HOLDS = (
    "RFC 9110 7.8: after a request that asks to switch to websocket rootserve holds the "
    "bytes that follow until the server decides (they belong to the new protocol if it "
    "switches); h11, answered with a plain 200 here, parses them as requests. Both correct."
)
EMPTY_TE_MEMBER = (
    "RFC 9110 5.6.1.2: a recipient MUST ignore empty list members, so ', chunked' is chunked; "
    "rootserve is right, h11 answers 501."
)
BWS_IN_CHUNK_EXT = (
    "RFC 9112 7.1.1 allows BWS around ';' and '=' in a chunk extension and RFC 9110 5.6.3 says "
    "a recipient MUST remove it: h11 is right, rootserve refuses it (llhttp does; the corpus "
    "case is a strict xfail that records the bug)."
)
OBS_FOLD = (
    "RFC 9112 5.2: a server MUST either reject obs-fold with 400 or replace it with SP; "
    "rootserve rejects, h11 replaces. Both allowed."
)
LIMITS = (
    "rootserve applies its size limits (RFC 9112 3: 414; RFC 6585 5: 431; RFC 9110 15.5.14: "
    "413), which RFC 9110 2.3 lets a server set; h11 has none but a 16 KiB incomplete head."
)
ABSOLUTE_FORM = (
    "RFC 9112 3.2.2 and RFC 9110 4.2.1, 4.2.4: an absolute-form target must be an http(s) URI "
    "with a valid authority and no userinfo; rootserve checks it, h11 does not. rootserve right."
)
CONNECT = (
    "RFC 9110 9.3.6: CONNECT asks for a tunnel, which an origin server that is no proxy does "
    "not implement (501, RFC 9110 15.6.2); h11 hands it to the app. Both allowed."
)
TARGET_FORM = (
    "RFC 9112 3.2: the target's form must fit the method (asterisk-form only for OPTIONS, "
    "3.2.4; authority-form only for CONNECT, 3.2.3; never a fragment or a relative path), "
    "and a server SHOULD answer an invalid request-line with 400; rootserve does, h11 does "
    "not check. rootserve right."
)
TARGET_CHARS = (
    "RFC 3986 2 and RFC 9112 3.2: these characters are not allowed in a target; both "
    "parsers accept them (the corpus case is a strict xfail). h11 is as wrong as rootserve."
)
BARE_LF = (
    "RFC 9112 2.2: a recipient MAY recognise a bare LF as a line terminator; rootserve does "
    "not (a line end that other parsers may read otherwise), h11 does. Both allowed."
)
CHUNK_EXT = (
    "RFC 9112 7.1 and 7.1.1: a chunk-size line is 1*HEXDIG then extensions of token names "
    "and token or quoted-string values, and nothing else; rootserve checks it, h11 skips "
    "whatever follows the size. rootserve right."
)
CL_AND_TE = (
    "RFC 9112 6.1: a server MAY reject a request with both Content-Length and "
    "Transfer-Encoding (and MUST close after it); rootserve rejects it, h11 lets chunked win "
    "(6.3). Both allowed; rejecting closes the smuggling path."
)
CL_LIST = (
    "RFC 9110 8.6: a recipient MAY take a Content-Length list of identical values or "
    "repeated identical lines as one value, or reject it; h11 takes it, rootserve rejects. "
    "Both allowed."
)
CTL = (
    "RFC 9110 5.5: a field value holds no control character but HTAB (recipients MAY keep "
    "them for robustness); rootserve refuses them, h11 takes all but NUL, CR and LF. "
    "Both allowed; rootserve's is the stricter reading."
)
EXPECT = (
    "RFC 9110 10.1.1: a server MAY answer an expectation it does not support with 417; "
    "rootserve does, h11 ignores it. Both allowed."
)
HOST = (
    "RFC 9112 3.2: a server MUST answer 400 to a request whose Host value is invalid "
    "(uri-host [':' port], RFC 9110 7.2); rootserve checks it, h11 only counts Host lines. "
    "rootserve right."
)
METHOD = (
    "RFC 9110 9.1: a method the server does not recognise SHOULD get 501; rootserve answers "
    "it, h11 hands any token to the app (methods are case-sensitive, so 'get' is unknown)."
)
VERSION = (
    "RFC 9110 6.2 and 15.6.6: rootserve serves HTTP/1.0 and 1.1 and answers 505 to another "
    "version (the HTTP/2 preface included, RFC 9113 3.4); h11 takes any HTTP/x.y as 1.x. "
    "rootserve right."
)
TRAILER_FIELDS = (
    "RFC 9110 6.5.1: a trailer field is never merged into the head. rootserve refuses a "
    "trailer section holding Content-Length, Transfer-Encoding or Connection (llhttp would "
    "act on them); h11 passes trailers on. Both keep the RFC; rootserve's is stricter."
)
UPGRADE_CHUNKED = (
    "rootserve does not read a chunked body on a request with Upgrade (llhttp hands such a "
    "request over at its head) and refuses it with 400; RFC 9110 7.8 lets a server ignore "
    "Upgrade and read it as usual, as h11 does. h11 is right; rootserve's documented limit."
)
TE_HTTP10 = (
    "RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing and the "
    "connection closes after it; rootserve refuses it at once, h11 reads it as chunked. "
    "Both allowed."
)


def _by_case(groups: dict[str, str]) -> dict[str, str]:
    """{case name: reason} from {reason: the case names, separated by whitespace}."""
    return {name: reason for reason, names in groups.items() for name in names.split()}


# Valid cases on which h11 differs (in the requests that come out complete).
VALID_DIFFERENCES = _by_case(
    {
        HOST_FROM_TARGET: """
            absolute_form absolute_form_http10_no_host absolute_form_https_port
            absolute_form_uppercase_scheme host_absolute_form_overrides
            line_absolute_form_post line_absolute_form_uppercase
        """,
        BWS_IN_CHUNK_EXT: """
            chunk_bws_after_semicolon chunk_bws_around_equals
        """,
        HTTP10_KEEP_ALIVE: """
            http10_keep_alive_pipelined pipe_http10_keep_alive_then_11
            upgrade_websocket_http10_ignored
        """,
        EMPTY_LINES: """
            leading_empty_lines pipelined_extra_crlf
        """,
        SPACES: """
            line_three_spaces request_line_double_space
        """,
        EMPTY_TE_MEMBER: """
            te_empty_member_first te_empty_members_first
        """,
        SWITCH_HOLDS: "upgrade_websocket_token_list",
    }
)

# Invalid cases that h11 accepts.
INVALID_DIFFERENCES = _by_case(
    {
        ABSOLUTE_FORM: """
            absolute_form_bad_brackets absolute_form_bad_port absolute_form_empty_authority
            absolute_form_ftp absolute_form_no_authority absolute_form_userinfo
        """,
        TARGET_FORM: """
            asterisk_get asterisk_post authority_form_get line_asterisk_delete
            line_asterisk_double line_asterisk_head line_asterisk_path line_asterisk_query
            line_authority_form_options line_authority_form_post target_fragment
            target_fragment_after_query target_relative
        """,
        BARE_LF: """
            bare_lf_field_line bare_lf_head_end bare_lf_request_line
            chunk_last_chunk_bare_lf_end method_unknown_bare_lf
        """,
        CHUNK_EXT: """
            chunk_ext_bad_char chunk_ext_comma chunk_ext_del chunk_ext_empty_after_semicolon
            chunk_ext_empty_extension chunk_ext_empty_name chunk_ext_empty_value
            chunk_ext_empty_value_last_chunk chunk_ext_empty_value_second_chunk
            chunk_ext_empty_value_then_more chunk_ext_name_equals_only chunk_ext_name_space
            chunk_ext_obs_text_name chunk_ext_quoted_nul chunk_ext_value_nul
            chunk_ext_value_space chunk_ext_value_unterminated chunk_size_htab_after
            chunk_size_trailing_space pipelined_body_with_blank_line_then_bad_chunk_ext
            pipelined_chunked_then_empty_chunk_ext te_chunked_tab_then_bad_chunk_ext
        """,
        CL_AND_TE: """
            cl_and_te cl_zero_and_te pipe_then_te_conflict pipelined_then_smuggle te_and_cl
            te_chunked_and_cl_after te_chunked_and_cl_zero
        """,
        CL_LIST: """
            cl_comma_same cl_duplicate_same cl_list cl_same_lines_case_differs
        """,
        OBS_FOLD: """
            cl_obs_fold conn_obs_fold expect_obs_fold field_line_crlf_sp_crlf
            field_obs_fold_second_field host_obs_fold host_obs_fold_continued obs_fold_space
            obs_fold_tab te_obs_fold_htab trailer_obs_fold trailer_obs_fold_in_trailers
            upgrade_obs_fold
        """,
        CTL: """
            conn_esc field_value_bs value_ctl_del value_ctl_esc value_ctl_soh
            value_ctl_unit_sep
        """,
        CONNECT: """
            connect line_connect_http10 line_connect_ipv6 line_connect_origin_form
        """,
        EXPECT: """
            expect_100_continue_params expect_200_ok expect_other_in_list expect_quoted
            expect_typo expect_unknown expect_with_value
        """,
        HOST: """
            host_absolute_form_bad_host_header host_angle host_backslash host_bad_ipv6
            host_bad_pct host_bad_port host_ipv6_no_brackets host_non_ascii host_port_letter
            host_quoted host_slash host_space host_tab_inside host_two_ports
            host_unclosed_bracket host_userinfo host_userinfo_at
        """,
        LIMITS: """
            limit_body_chunked limit_body_chunked_one_chunk limit_body_content_length
            limit_custom_body_cl_one_over limit_custom_header_count_one_over
            limit_custom_header_bytes_trailers limit_default_header_bytes_one_over
            limit_default_target_one_over limit_header_bytes
            limit_method_unknown_line_too_long limit_target_too_long
            limit_target_too_long_default limit_too_many_headers
            limit_too_many_headers_default limit_trailer_bytes
            pipelined_then_target_too_long
        """,
        TARGET_CHARS: """
            line_target_backslash line_target_brace line_target_quote
        """,
        VERSION: """
            line_version_1_2 line_version_2_0 pipelined_then_http2 version_http09
            version_http12 version_http20 version_http30
        """,
        METHOD: """
            method_brew method_lowercase method_prefix_of_known method_rtsp_describe
            method_rtsp_play method_rtsp_setup method_token_chars method_unknown
            method_unknown_http20 pipelined_body_then_unknown_method
            pipelined_then_unknown_method pipelined_three_then_unknown_method
            te_chunked_tab_then_unknown_method
        """,
        TRAILER_FIELDS: """
            pipe_then_trailer_connection trailer_connection_close
            trailer_connection_keep_alive trailer_content_length trailer_transfer_encoding
        """,
        TE_HTTP10: """
            te_http10 te_http10_chunked_upper
        """,
        UPGRADE_CHUNKED: """
            upgrade_chunked_body upgrade_with_chunked_body
        """,
    }
)


def h11_outcome(raw: bytes) -> Outcome:
    """The requests h11 reads from `raw` then EOF, each answered so that it goes on."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    out: Outcome = []
    eof = False
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            out.append({"error": exc.error_status_hint})
            return out
        if event is h11.NEED_DATA:
            if eof:
                return out
            conn.receive_data(b"")
            eof = True
        elif isinstance(event, h11.Request):
            out.append(
                {
                    "method": event.method.decode("ascii"),
                    "target": event.target.decode("latin-1"),
                    "http_version": event.http_version.decode("ascii"),
                    "headers": [
                        [name.decode("latin-1").lower(), value.decode("latin-1")]
                        for name, value in event.headers.raw_items()
                    ],
                    "body": "",
                    "complete": False,
                }
            )
        elif isinstance(event, h11.Data):
            out[-1]["body"] += event.data.decode("latin-1")
        elif isinstance(event, h11.EndOfMessage):
            out[-1]["complete"] = True
            # A 2xx to CONNECT would make h11 switch protocols: declined, h11 reads on.
            status = 501 if out[-1]["method"] == "CONNECT" else 200
            conn.send(h11.Response(status_code=status, headers=[("content-length", "0")]))
            conn.send(h11.EndOfMessage())
            if conn.our_state is h11.MUST_CLOSE:
                return out
            conn.start_next_cycle()
        else:  # ConnectionClosed, or PAUSED on a request h11 cannot go past
            return out


def rootserve_outcome(case: Case) -> Outcome:
    _, events = replay([case.raw], case.limits)
    out: Outcome = []
    for event in normalise(events):
        if isinstance(event, dict) and "method" in event:
            keep = ("method", "target", "http_version", "headers", "body", "complete")
            out.append({key: event[key] for key in keep})
        elif isinstance(event, dict):
            out.append({"error": event["bad_request"]})
    return out


def _complete(outcome: Outcome) -> Outcome:
    # Codings are case-insensitive (RFC 9112 section 7) and h11 lower-cases them.
    requests = [r for r in outcome if r.get("complete")]
    for request in requests:
        request["headers"] = [
            [n, v.lower() if n == "transfer-encoding" else v] for n, v in request["headers"]
        ]
    return requests


def agrees(case: Case) -> bool:
    h11_side = h11_outcome(case.raw)
    if case.kind == "invalid":
        return any("error" in part for part in h11_side)
    return _complete(h11_side) == _complete(rootserve_outcome(case))


@pytest.mark.parametrize("case", VALID + INVALID, ids=lambda c: f"{c.kind}/{c.name}")
def test_h11_agrees_or_the_difference_is_explained(case: Case) -> None:
    explained = (VALID_DIFFERENCES if case.kind == "valid" else INVALID_DIFFERENCES).get(case.name)
    if explained is None:
        assert agrees(case), f"h11 and rootserve disagree on {case.kind}/{case.name}"
    else:
        assert not agrees(case), f"{case.name} is explained, but the parsers agree now"


def test_differential_counts(capsys: pytest.CaptureFixture[str]) -> None:
    cases = VALID + INVALID
    names = {case.name for case in cases}
    # Every explanation is for a case that exists, under the right kind.
    assert set(VALID_DIFFERENCES) <= {case.name for case in VALID}
    assert set(INVALID_DIFFERENCES) <= {case.name for case in INVALID}
    explained = len(VALID_DIFFERENCES) + len(INVALID_DIFFERENCES)
    with capsys.disabled():
        print(
            f"\nh11 differential: {len(names)} cases, {len(names) - explained} agree, "
            f"{explained} explained differences ({len(VALID_DIFFERENCES)} valid, "
            f"{len(INVALID_DIFFERENCES)} invalid)"
        )
    assert len(names) - explained > explained

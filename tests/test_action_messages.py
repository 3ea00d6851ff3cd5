"""An e-mail action's message (DESIGN §6, issue 15): a subject is one line, whether the agent
proposes it or the CSM edits it; a message the MIME library or Gmail refuses fails its action with
INVALID_MESSAGE at once (never a 500 that Cloud Tasks retries while the action stays `executing`);
an internationalised domain goes out in its ASCII form. Through the running functions: the agent
through the model stand-in, the approval route, the worker through the Cloud Tasks emulator, and
what Gmail received at the Google stand-in."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from scripts.stack import Stack
from standins.client import StandinClient
from standins.google_client import GoogleStandinClient
from tests.chat_support import Chat
from tests.conftest import Api, Caller, assert_error, raw_firestore
from tests.test_approvals import stored_action, wait_for_status
from tests.test_chat import WIRE, checked, model_text
from tests.test_google_actions import connect_and_complete, email_action, sent

# Every line separator DESIGN §6 names, and the three more that Python's email refuses too.
SEPARATORS = ["\r", "\n", "\x85", "\u2028", "\u2029", "\v", "\f", "\x1c", "\x1d", "\x1e"]


@pytest.fixture
def connected(crud: Api, alice: Caller, google: GoogleStandinClient) -> Caller:
    connect_and_complete(crud, alice)
    return alice


def stored_actions(uid: str) -> list[dict[str, Any]]:
    from google.cloud.firestore import FieldFilter

    query = raw_firestore().collection("actions").where(filter=FieldFilter("owner_id", "==", uid))
    return [snapshot.to_dict() or {} for snapshot in query.stream()]


# -- a subject is one line ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "separator"),
    # The stand-in (Python's json) writes NEL, U+2028 and U+2029 unescaped, and both SDKs'
    # event-stream readers split lines at them, failing the model call before any tool runs:
    # those three are proposed to the tool itself below.
    [("claude", "\n"), ("claude", "\f"), ("gemini", "\v"), ("gemini", "\x1e")],
    ids=repr,
)
def test_a_subject_the_agent_proposes_with_a_line_separator_creates_no_action(
    chat: Chat, models: StandinClient, alice: Caller, provider: str, separator: str
) -> None:
    email_input = {"to": ["cfo@acme.com"], "subject": f"Renewal{separator}Bcc: x@elsewhere.com", "body": "Hello"}
    models.script(
        {"provider": WIRE[provider], "steps": [{"tool_call": {"name": "send_email", "input": email_input}}]},
        {"provider": WIRE[provider], "steps": [{"text": "The subject must be one line; I will fix it."}]},
    )

    reply = chat.send(alice, message="E-mail the CFO", provider=provider)

    checked(reply)
    [refused] = reply.of_type("tool-output-error")
    assert "subject" in refused["errorText"]
    assert "one line" in refused["errorText"]
    assert not reply.of_type("tool-approval-request")
    assert stored_actions(alice.uid) == []
    assert "one line" in model_text(models.wait_for_request(2))  # the model is told why


@pytest.mark.parametrize("separator", SEPARATORS, ids=repr)
def test_the_email_tools_refuse_a_subject_with_any_line_separator(alice: Caller, repo_for: Any, separator: str) -> None:
    from common.agent.tools import ToolContext, run_tool

    context = ToolContext(repo_for(alice.uid), session_id="s1", call_id="c1", auto_approve=["email.draft"])
    email_input = {"to": ["cfo@acme.com"], "subject": f"Renewal{separator}pricing", "body": "Hello"}
    for tool in ("send_email", "draft_email"):
        outcome = run_tool(context, tool, email_input)
        assert outcome.is_error
        assert outcome.action is None
        assert f"subject: must be one line, without a line break or separator (U+{ord(separator):04X})" in str(
            outcome.output["error"]
        )
    assert stored_actions(alice.uid) == []


@pytest.mark.parametrize("separator", SEPARATORS, ids=repr)
def test_a_subject_edited_with_a_line_separator_is_400_and_the_action_stays_pending(
    approvals: Api,
    alice: Caller,
    separator: str,
) -> None:
    action = email_action(alice)
    edited = {"to": ["cfo@acme.com"], "subject": f"Renewal{separator}pricing", "body": "Hello"}

    refused = assert_error(
        approvals.post(f"/actions/{action['id']}/approve", alice, json={"payload": edited}), 400, "INVALID_ARGUMENT"
    )

    [detail] = refused["details"]
    assert detail["field"].endswith("subject")
    assert f"U+{ord(separator):04X}" in detail["message"]
    assert stored_action(action["id"])["status"] == "pending"
    fine = approvals.post(f"/actions/{action['id']}/approve", alice, json={"payload": {**edited, "subject": "Pricing"}})
    assert fine.status_code == 202, fine.text


# -- what the library or Gmail still refuses -----------------------------------------------------


@pytest.mark.parametrize("action_type", ["email.send", "email.draft"])
def test_a_message_the_mime_library_refuses_fails_with_invalid_message_at_the_first_attempt(
    stack: Stack,
    approvals: Api,
    connected: Caller,
    google: GoogleStandinClient,
    action_type: str,
) -> None:
    # Stored before subjects were checked: approving it as it is sends the payload unchecked.
    action = email_action(connected, action_type, subject="Renewal\u2028pricing")

    assert approvals.post(f"/actions/{action['id']}/approve", connected).status_code == 202

    failed = wait_for_status(action["id"], "failed")
    assert failed["error"]["code"] == "INVALID_MESSAGE"
    assert "cannot be written" in failed["error"]["message"]
    assert failed["attempts"] == 1  # answered 200: Cloud Tasks did not come back
    assert failed["lease"] is None
    assert google.requests("gmail.drafts.create") == google.requests("gmail.drafts.send") == []
    # Delivered again (as Cloud Tasks may), it is a 200 that does nothing.
    body = {"action_id": action["id"], "owner_id": connected.uid}
    assert requests.post(f"{stack.url('execute_action')}/execute", json=body, timeout=30).status_code == 200
    assert stored_action(action["id"])["attempts"] == 1


def test_a_message_gmail_refuses_fails_with_invalid_message_without_retry(
    approvals: Api,
    connected: Caller,
    google: GoogleStandinClient,
) -> None:
    google.fail("gmail.drafts.create", 400, times=5, reason="invalidArgument", message="Invalid To header")
    action = email_action(connected, "email.draft")

    approvals.post(f"/actions/{action['id']}/approve", connected)

    failed = wait_for_status(action["id"], "failed")
    assert failed["error"]["code"] == "INVALID_MESSAGE"
    assert failed["error"]["message"].startswith("Gmail refused the e-mail")
    assert "Invalid To header" in failed["error"]["message"]
    assert failed["attempts"] == 1
    assert len(google.requests("gmail.drafts.create")) == 1


# -- internationalised addresses ---------------------------------------------------------------


def test_an_internationalised_domain_goes_out_in_its_ascii_form(
    approvals: Api,
    connected: Caller,
    google: GoogleStandinClient,
) -> None:
    action = email_action(connected)
    edited = {"to": ["info@bücher.de"], "cc": ["kontakt@münchen.de"], "subject": "Grüße", "body": "Hallo"}

    approved = approvals.post(f"/actions/{action['id']}/approve", connected, json={"payload": edited})

    assert approved.status_code == 202, approved.text
    assert approved.json()["payload"]["to"] == ["info@bücher.de"]  # as the CSM wrote and approved it
    wait_for_status(action["id"], "executed")
    [message] = sent(google)
    # The stand-in reads headers as Gmail does, encoded words decoded: an address written as
    # one (info@=?utf-8?q?b=C3=BCcher?=.de) would read info@bücher.de here.
    assert message["to"] == ["info@xn--bcher-kva.de"]
    assert message["cc"] == ["kontakt@xn--mnchen-3ya.de"]
    assert message["subject"] == "Grüße"  # a subject is text: an encoded word is right for it


@pytest.mark.parametrize("field", ["to", "cc"])
def test_an_address_whose_local_part_is_not_ascii_is_400(
    approvals: Api,
    alice: Caller,
    field: str,
) -> None:
    action = email_action(alice)
    edited = {"to": ["cfo@acme.com"], "cc": [], "subject": "Renewal", "body": "Hello", field: ["jörg@acme.com"]}

    refused = assert_error(
        approvals.post(f"/actions/{action['id']}/approve", alice, json={"payload": edited}), 400, "INVALID_ARGUMENT"
    )

    assert [d["field"] for d in refused["details"]] == [f"{field}.0"]
    assert "before the @ must be ASCII" in refused["details"][0]["message"]
    assert stored_action(action["id"])["status"] == "pending"

"""Resuming an answer in the console (DESIGN §7, §12) in a real browser against the stack: the
page sends useChat's default body, and an answer whose connection dropped — the page reloaded,
or its connection cut mid-stream — is picked up through GET /chat/{session_id}/stream and ends
as one message, exactly as an unbroken stream shows it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from playwright.sync_api import Page, Request, Route, expect

from scripts.stack import Stack
from standins.client import StandinClient
from tests.chat_support import Chat
from tests.conftest import Api, Caller
from tests.console.network import CuttableLink
from tests.console.support import Steps, agent_messages, agent_said, sign_in

WORDS = 25
ANSWER = "".join(f"part{n} " for n in range(WORDS))


def start_a_long_answer(page: Page, console: str, alice: Caller, models: StandinClient) -> str:
    """A new chat whose answer takes five seconds; its session id once the answer has begun."""
    models.script({"steps": [{"text": f"part{n} ", "delay_ms": 200} for n in range(WORDS)]})
    sign_in(page, console, alice)
    page.get_by_role("link", name="Chat", exact=True).click()

    def chat_request(request: Request) -> bool:
        return request.method == "POST" and request.url.endswith("/chat")

    with page.expect_request(chat_request) as sent:
        page.get_by_label("Message", exact=True).fill("Walk me through the renewal")
        page.get_by_role("button", name="Send").click()
    body = json.loads(sent.value.post_data or "{}")
    assert body["trigger"] == "submit-message"  # useChat's own body: the chat's id is the session's
    assert [m["role"] for m in body["messages"]] == ["user"]
    expect(agent_messages(page).last).to_contain_text("part2")
    expect(page).to_have_url(re.compile(rf"/chat/{re.escape(body['id'])}$"))
    return str(body["id"])


def resumes(session_id: str) -> Callable[[Request], bool]:
    """The page's GET of the session's stream: what useChat's resume asks."""
    return lambda request: request.method == "GET" and request.url.endswith(f"/chat/{session_id}/stream")


def assert_stored_once(crud: Api, alice: Caller, session_id: str) -> None:
    stored = crud.get(f"/sessions/{session_id}/messages", alice).json()["items"]
    assert [(m["role"], m["status"]) for m in stored] == [("user", "complete"), ("assistant", "complete")]


def test_an_answer_resumes_after_the_page_reloads_mid_stream(
    page: Page, console: str, steps: Steps, alice: Caller, crud: Api, models: StandinClient
) -> None:
    session_id = start_a_long_answer(page, console, alice, models)
    with page.expect_request(resumes(session_id)):
        page.reload()  # the connection drops mid-answer; the page comes back and resumes
    expect(agent_messages(page).last).to_contain_text("part")
    steps.shot("resuming")
    expect(agent_messages(page).last).to_have_text(agent_said(ANSWER))
    expect(agent_messages(page)).to_have_count(1)
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    steps.shot("resumed")
    assert_stored_once(crud, alice, session_id)


@contextmanager
def chat_through_a_link(page: Page, stack: Stack) -> Iterator[CuttableLink]:
    """The page's chat_stream reached through a link the test can cut (its /config.json says so)."""
    chat_stream = urlsplit(stack.url("chat_stream"))
    with CuttableLink((chat_stream.hostname or "127.0.0.1", chat_stream.port or 80)) as link:

        def through_the_link(route: Route) -> None:
            config = route.fetch().json()
            config["api"]["chat_stream"] = link.url
            route.fulfill(json=config)

        page.route("**/config.json", through_the_link)
        yield link


def test_an_answer_resumes_after_its_connection_drops_mid_stream(
    page: Page, console: str, steps: Steps, alice: Caller, crud: Api, models: StandinClient, stack: Stack
) -> None:
    with chat_through_a_link(page, stack) as link:
        session_id = start_a_long_answer(page, console, alice, models)
        with page.expect_request(resumes(session_id)):
            link.cut()  # the stream's connection is gone mid-answer; the page stays
        expect(agent_messages(page).last).to_have_text(agent_said(ANSWER))
        expect(agent_messages(page)).to_have_count(1)
        expect(page.get_by_role("alert")).to_have_count(0)
        steps.shot("resumed after the connection dropped")
    assert_stored_once(crud, alice, session_id)


def test_an_answer_the_page_cannot_reach_again_is_followed_on_try_again(
    page: Page, console: str, steps: Steps, alice: Caller, crud: Api, models: StandinClient, stack: Stack
) -> None:
    with chat_through_a_link(page, stack) as link:
        session_id = start_a_long_answer(page, console, alice, models)
        link.go_down()  # the stream is cut, and the resume a second later finds no server
        alert = page.get_by_role("alert").filter(has_text="The server cannot be reached")
        expect(alert).to_be_visible()
        steps.shot("the server unreachable")
        link.come_back()
        with page.expect_request(resumes(session_id)):
            alert.get_by_role("button", name="Try again").click()
        expect(agent_messages(page).last).to_have_text(agent_said(ANSWER))
        expect(agent_messages(page)).to_have_count(1)
        expect(page.get_by_role("alert")).to_have_count(0)
    assert_stored_once(crud, alice, session_id)


def test_a_finished_answer_is_not_resumed_but_read_from_the_history(
    page: Page, console: str, alice: Caller, chat: Chat, crud: Api, models: StandinClient
) -> None:
    models.script({"steps": [{"text": "All renewals are on track."}]})
    reply = chat.send(alice, message="Any renewals at risk?")
    sign_in(page, console, alice)
    with page.expect_response(lambda response: resumes(reply.session_id)(response.request)) as answered:
        page.goto(f"{console}/chat/{reply.session_id}")
    assert answered.value.status == 204  # nothing in flight
    expect(agent_messages(page)).to_have_text([agent_said("All renewals are on track.")])

"""Gemini on Vertex AI through `google-genai` (`vertexai=True`), streamed, with function calling.

The project is `GOOGLE_CLOUD_PROJECT`, the region `CSCX_GEMINI_LOCATION`, and
`CSCX_GEMINI_BASE_URL` moves the endpoint (the local stand-in). Deployed, the credentials are
the function's service account; a demo project never reaches Google and uses a static token,
since the SDK cannot refresh anonymous credentials (DESIGN §10).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from common.llm import (
    AssistantTurn,
    Finished,
    FinishReason,
    ModelEvent,
    ModelRequest,
    ProviderError,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallDone,
    ToolCallStarted,
    ToolResultsTurn,
    Turn,
    Upstream,
    Usage,
    UserTurn,
    tls_context,
    transport_failed,
)
from common.settings import get_settings

FINISH_REASONS: dict[str, FinishReason] = {"STOP": "stop", "MAX_TOKENS": "length"}
RETRYABLE_CODES = frozenset({408, 429, 500, 502, 503, 504})


class GeminiProvider:
    name = "gemini"

    def stream(self, request: ModelRequest, upstream: Upstream) -> Iterator[ModelEvent]:
        from google import genai
        from google.genai import errors, types

        settings = get_settings()
        credentials = None
        if settings.is_demo_project:
            from google.oauth2.credentials import Credentials

            credentials = Credentials(token="demo-project-static-token")  # type: ignore[no-untyped-call]
        client = genai.Client(
            vertexai=True,
            project=settings.project_id,
            location=settings.gemini_location,
            credentials=credentials,
            http_options=types.HttpOptions(
                base_url=settings.gemini_base_url or None,
                httpx_client=upstream.client,
                # Given, the SDK does not build TLS contexts of its own on each client (~50 ms).
                client_args={"verify": tls_context()},
                async_client_args={"verify": tls_context(), "ssl": tls_context()},
            ),
        )
        config = types.GenerateContentConfig(
            system_instruction=request.system,
            max_output_tokens=request.max_output_tokens,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        if request.tools:
            config.tools = [
                types.Tool(
                    function_declarations=[
                        types.FunctionDeclaration(
                            name=t.name, description=t.description, parameters_json_schema=t.input_schema
                        )
                        for t in request.tools
                    ]
                )
            ]
        if request.force_tool:
            config.tool_config = types.ToolConfig(
                function_calling_config=types.FunctionCallingConfig(
                    mode=types.FunctionCallingConfigMode.ANY, allowed_function_names=[request.force_tool]
                )
            )
        contents = [_content(turn, types) for turn in request.turns]
        chunks = client.models.generate_content_stream(model=request.model, contents=contents, config=config)
        try:
            yield from _events(chunks)
        except errors.APIError as error:
            retryable = error.code in RETRYABLE_CODES
            failure = f"The model answered with an error ({error.status or error.code})."
            raise ProviderError(failure, retryable=retryable) from None
        except Exception as error:  # a cut connection surfaces as the transport's own error
            transport_failed(error, upstream)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()


def _events(chunks: Iterator[Any]) -> Iterator[ModelEvent]:
    usage = Usage()
    reason: FinishReason | None = None
    called = False
    for chunk in chunks:
        reported = _usage(chunk.usage_metadata, usage)
        if reported != usage:
            usage = reported
            yield usage
        for candidate in chunk.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.function_call is not None:
                    called = True
                    call = part.function_call
                    call_id = call.id or f"call_{uuid.uuid4().hex[:24]}"  # Vertex leaves it empty
                    arguments = dict(call.args or {})
                    yield ToolCallStarted(call_id, call.name or "")
                    yield ToolCallDelta(call_id, json.dumps(arguments))
                    yield ToolCallDone(ToolCall(call_id, call.name or "", arguments))
                elif part.text and not part.thought:
                    yield TextDelta(part.text)
            if candidate.finish_reason is not None:
                reason = FINISH_REASONS.get(str(candidate.finish_reason.value), "other")
    if reason is None:  # the connection ended before the answer's finish reason: it was cut
        raise ConnectionError("the stream ended without a finish reason")
    if called and reason == "stop":
        reason = "tool-calls"
    yield Finished(reason, usage)


def _usage(metadata: Any, before: Usage) -> Usage:
    """The answer's usage so far from a chunk's `usageMetadata` (running totals; a chunk may carry
    none, or only some): the prompt with the tool-use prompt as input, the candidates with the
    model's thoughts as output, both billed (a thinking model's thoughts are not in the candidates)."""
    if metadata is None:
        return before
    sent = (metadata.prompt_token_count or 0) + (metadata.tool_use_prompt_token_count or 0)
    said = (metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0)
    return Usage(max(before.input_tokens, sent), max(before.output_tokens, said))


def _content(turn: Turn, types: Any) -> Any:
    if isinstance(turn, UserTurn):
        return types.Content(role="user", parts=[types.Part(text=turn.text)])
    if isinstance(turn, AssistantTurn):
        parts = [types.Part(text=turn.text)] if turn.text else []
        parts += [
            types.Part(function_call=types.FunctionCall(id=c.id, name=c.name, args=c.input)) for c in turn.tool_calls
        ]
        return types.Content(role="model", parts=parts)
    assert isinstance(turn, ToolResultsTurn)
    return types.Content(
        role="user",
        parts=[
            types.Part(
                function_response=types.FunctionResponse(
                    id=result.call_id,
                    name=result.name,
                    response={"error": result.output} if result.is_error else {"output": result.output},
                )
            )
            for result in turn.results
        ],
    )

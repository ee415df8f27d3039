"""The chat upstream: any OpenAI-compatible LLM server (Ollama, llama.cpp, LM Studio, vLLM, `transformers
serve`) that `/v1/chat/completions`, `/v1/responses` and `/v1/realtime` talk to. A proxy, not a runtime:
bodies pass through unchanged, one pooled httpx client, errors mapped to OpenAI envelopes."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tts_studio.config import Settings
from tts_studio.errors import StudioError, clean_text

log = logging.getLogger(__name__)
MODELS_TTL_SECONDS = 10.0  # the upstream's model list is cached this long
_RETRYABLE = (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError)  # a dead pooled connection


class ChatNotConfigured(StudioError):
    status = 503
    type = "server_error"
    code = "chat_upstream_not_configured"


class UpstreamUnreachable(StudioError):
    status = 502
    type = "server_error"
    code = "upstream_unreachable"


class UpstreamTimeout(StudioError):
    status = 504
    type = "server_error"
    code = "upstream_timeout"


class UpstreamError(StudioError):
    """The upstream answered with an error: its status and (as an envelope) its message."""

    def __init__(self, status: int, body: bytes) -> None:
        message, type_, param, code = _upstream_error(status, body)
        super().__init__(message, param=param, code=code)
        self.status = 400 if status == 422 else status  # clients of the OpenAI contract never see a 422
        self.type = type_


def _upstream_error(status: int, body: bytes) -> tuple[str, str, str | None, str | None]:
    """(message, type, param, code) from an upstream error body: OpenAI envelopes, FastAPI/Ollama
    `detail`/`error` strings, or plain text (`transformers serve` answers "Internal Server Error")."""
    type_ = "invalid_request_error" if 400 <= status < 500 else "server_error"
    text = (clean_text(body.decode("utf-8", "replace")) or "").strip() or f"HTTP {status}"
    try:
        data: Any = json.loads(text)
    except ValueError:
        return f"The chat upstream answered {status}: {text[:500]}", type_, None, "upstream_error"
    error = data.get("error", data.get("detail")) if isinstance(data, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or text[:500])
        param, code = error.get("param"), error.get("code")
        return (
            message,
            str(error.get("type") or type_),
            param if isinstance(param, str) else None,
            str(code) if code is not None else "upstream_error",
        )
    detail = error if error is not None else data
    return f"The chat upstream answered {status}: {str(detail)[:500]}", type_, None, "upstream_error"


def _content_delta(data: str) -> str | None:
    """The content delta of one `chat.completion.chunk` SSE payload, if it has one."""
    try:
        chunk = json.loads(data)
        delta = chunk["choices"][0]["delta"].get("content") if chunk.get("choices") else None
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None
    return str(delta) if delta else None


def _not_configured() -> ChatNotConfigured:
    return ChatNotConfigured(
        "No chat upstream is configured. Set TTS_STUDIO_CHAT_UPSTREAM (the setting chat_upstream) to the base URL "
        "of an OpenAI-compatible LLM server, e.g. http://127.0.0.1:11434/v1 for Ollama.",
        param="model",
    )


class ChatUpstream:
    """One pooled client for the configured upstream; `None` base URL means chat is not configured."""

    def __init__(self, settings: Settings) -> None:
        self.base_url = settings.chat_upstream.rstrip("/") if settings.chat_upstream else None
        self.default_model = settings.chat_model
        headers = {}
        key = settings.chat_upstream_api_key
        if key is not None and key.get_secret_value():
            headers["Authorization"] = f"Bearer {key.get_secret_value()}"
        timeout = httpx.Timeout(settings.chat_timeout_seconds, connect=settings.chat_connect_timeout_seconds)
        self._client = httpx.AsyncClient(headers=headers, timeout=timeout, trust_env=False)
        self._models: tuple[float, list[str]] | None = None
        self.reachable: bool | None = None  # unknown until the first call

    @property
    def configured(self) -> bool:
        return self.base_url is not None

    async def aclose(self) -> None:
        await self._client.aclose()

    def _url(self, path: str) -> str:
        if self.base_url is None:
            raise _not_configured()
        return f"{self.base_url}/{path}"

    async def _send(self, request: httpx.Request) -> httpx.Response:
        """Send (streamed), retrying once when a pooled connection turns out dead before any byte."""
        for attempt in (1, 2):
            try:
                response = await self._client.send(request, stream=True)
            except _RETRYABLE:
                if attempt == 2:
                    self.reachable = False
                    raise UpstreamUnreachable("The chat upstream closed the connection.") from None
                continue
            except httpx.TimeoutException:
                raise UpstreamTimeout(f"The chat upstream at {self.base_url} did not answer in time.") from None
            except httpx.HTTPError as exc:
                self.reachable = False
                raise UpstreamUnreachable(f"The chat upstream at {self.base_url} is unreachable ({exc}).") from None
            self.reachable = True
            return response
        raise AssertionError("unreachable")

    @asynccontextmanager
    async def open(self, body: bytes) -> AsyncIterator[httpx.Response]:
        """POST a chat completion body unchanged; the upstream's response (status 200) streamed.

        Errors before the first byte raise (502, 504, or the upstream's own status as an envelope);
        leaving the block closes the upstream request (a client that went away cancels it)."""
        request = self._client.build_request(
            "POST", self._url("chat/completions"), content=body, headers={"Content-Type": "application/json"}
        )
        response = await self._send(request)
        try:
            if response.status_code >= 400:
                raise UpstreamError(response.status_code, await self._read(response))
            yield response
        finally:
            await response.aclose()

    async def _read(self, response: httpx.Response) -> bytes:
        try:
            return await response.aread()
        except httpx.TimeoutException:
            raise UpstreamTimeout("The chat upstream stopped answering.") from None
        except httpx.HTTPError:
            raise UpstreamUnreachable("The chat upstream closed the connection mid-answer.") from None

    async def raw_parts(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """The (decoded) body's bytes as they arrive (SSE frames relayed unbuffered); errors as StudioErrors."""
        try:
            async for part in response.aiter_bytes():
                yield part
        except httpx.TimeoutException:
            raise UpstreamTimeout("The chat upstream stopped answering.") from None
        except httpx.HTTPError:
            raise UpstreamUnreachable("The chat upstream closed the connection mid-answer.") from None

    async def complete(self, body: bytes) -> tuple[int, bytes]:
        """A non-streaming completion: (status, body) of the upstream's answer."""
        async with self.open(body) as response:
            return response.status_code, await self._read(response)

    async def models(self) -> list[str]:
        """The upstream's model ids (cached briefly); [] when unconfigured or down."""
        if self.base_url is None:
            return []
        now = time.monotonic()
        if self._models is not None and now - self._models[0] < MODELS_TTL_SECONDS:
            return self._models[1]
        ids: list[str] = []
        try:
            response = await self._client.get(self._url("models"), timeout=httpx.Timeout(5.0, connect=2.0))
            self.reachable = True
            data = response.json().get("data", []) if response.status_code == 200 else []
            ids = [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            self.reachable = False
            log.warning("chat upstream %s: model list unavailable (%s)", self.base_url, exc)
        self._models = (now, ids)
        return ids

    async def model_for(self, requested: str | None = None) -> str:
        """The model to ask: the requested one, the configured `chat_model`, else the upstream's first."""
        if requested:
            return requested
        if self.default_model:
            return self.default_model
        ids = await self.models()
        if not ids:
            raise UpstreamUnreachable(
                "The chat upstream lists no models; set TTS_STUDIO_CHAT_MODEL to the model to use.", param="model"
            )
        return ids[0]

    async def reply(
        self, messages: list[dict[str, Any]], model: str | None = None, max_tokens: int | None = None
    ) -> AsyncIterator[str]:
        """The assistant's reply to `messages`, as content deltas while the upstream writes them."""
        request: dict[str, Any] = {"model": await self.model_for(model), "messages": messages, "stream": True}
        if max_tokens is not None:
            request["max_tokens"] = max_tokens
        body = json.dumps(request).encode()
        async with self.open(body) as response:
            try:
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    delta = _content_delta(data)
                    if delta:
                        yield delta
            except httpx.TimeoutException:
                raise UpstreamTimeout("The chat upstream stopped answering.") from None
            except httpx.HTTPError:
                raise UpstreamUnreachable("The chat upstream closed the connection mid-answer.") from None

    def health(self) -> dict[str, Any]:
        return {"configured": self.configured, "url": self.base_url, "reachable": self.reachable}

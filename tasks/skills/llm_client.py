"""The LLM: one chat-completions call through the openai client, with its
tokens and cost, and the client's errors mapped to retry decisions.

The client is built with `max_retries=0`: a step's retries are the engine's
(counted in the step's budget, spaced by `Retry-After`), never hidden inside
the client. `as_skill_error` is the pure mapping of an openai error to a
`SkillError`; any OpenAI-compatible server (OPENAI_BASE_URL) works.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import openai
from openai.types.chat import ChatCompletionAssistantMessageParam, ChatCompletionToolChoiceOptionParam

from tasks.rules.clock import utcnow
from tasks.rules.json_types import JSON
from tasks.rules.policy import Policy
from tasks.skills.base import SkillError

DEFAULT_MODEL = "gpt-4o-mini"


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str

    def parsed(self) -> JSON:
        """The arguments as JSON; raises ValueError when the model wrote something else."""
        value: JSON = json.loads(self.arguments or "{}")
        return value


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: tuple[ToolCall, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    model: str = ""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_message(self) -> ChatCompletionAssistantMessageParam:
        """The assistant message to send back when the conversation goes on."""
        msg: ChatCompletionAssistantMessageParam = {"role": "assistant", "content": self.text or None}
        if self.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in self.tool_calls
            ]
        return msg


@dataclass
class LLM:
    client: openai.AsyncOpenAI
    model: str = DEFAULT_MODEL
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], datetime] = utcnow  # reads an HTTP-date Retry-After

    async def complete(
        self,
        messages: Sequence[Mapping[str, object]],
        *,
        tools: Sequence[Mapping[str, object]] | None = None,
        tool_choice: ChatCompletionToolChoiceOptionParam | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        """One completion; raises SkillError (retryable or not) when the call fails."""
        kw: dict[str, Any] = {"model": self.model, "messages": list(messages)}
        if tools:
            kw["tools"] = list(tools)
            if tool_choice is not None:
                kw["tool_choice"] = tool_choice
        if max_tokens:
            kw["max_tokens"] = max_tokens
        try:
            resp = await self.client.chat.completions.create(**kw)
        except openai.OpenAIError as e:
            raise as_skill_error(e, self.clock()) from e
        return self._completion(resp)

    def _completion(self, resp: Any) -> Completion:
        if not resp.choices:
            raise SkillError("the LLM returned no answer", retryable=True)
        msg = resp.choices[0].message
        calls = tuple(
            ToolCall(id=c.id, name=c.function.name, arguments=c.function.arguments or "{}")
            for c in (msg.tool_calls or [])
            if getattr(c, "function", None) is not None
        )
        usage = resp.usage
        p_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        p_out = int(getattr(usage, "completion_tokens", 0) or 0)
        model = str(getattr(resp, "model", "") or self.model)
        return Completion(
            text=msg.content or "", tool_calls=calls, prompt_tokens=p_in, completion_tokens=p_out,
            cost=self.policy.price(self.model, p_in, p_out), model=model,
        )  # fmt: skip


def as_skill_error(e: Exception, now: datetime) -> SkillError:
    """Map an openai error to a retry decision. A 429 for an exhausted quota
    will not clear by waiting; other 429s, 408/409, 5xx and timeouts may."""
    if isinstance(e, openai.APIStatusError):
        status = e.status_code
        wait = retry_after_seconds(e.response.headers, now)
        if status == 429 and e.code == "insufficient_quota":
            return SkillError(f"LLM quota exhausted: {e.message}", retryable=False)
        if status in (408, 409, 429) or status >= 500:
            return SkillError(f"LLM unavailable ({status}): {e.message}", retryable=True, retry_after=wait)
        return SkillError(f"LLM refused the request ({status}): {e.message}", retryable=False)
    if isinstance(e, openai.APITimeoutError):
        return SkillError("LLM call timed out", retryable=True)
    if isinstance(e, openai.APIConnectionError):
        return SkillError(f"cannot reach the LLM: {e}", retryable=True)
    return SkillError(f"LLM error: {e}", retryable=False)


def retry_after_seconds(headers: Mapping[str, str], now: datetime) -> float | None:
    """`retry-after-ms`, or `Retry-After` as seconds or an HTTP date; None when absent."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        at = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, (at - now).total_seconds())


def make_llm(
    api_key: str | None,
    base_url: str | None = None,
    model: str | None = None,
    policy: Policy | None = None,
    *,
    timeout: float = 60.0,
) -> LLM | None:
    """The LLM from OPENAI_API_KEY / OPENAI_BASE_URL / COWORK_MODEL, or None
    when neither a key nor a server is configured. A local OpenAI-compatible
    server may need no key."""
    if not api_key and not base_url:
        return None
    client = openai.AsyncOpenAI(
        api_key=api_key or "not-needed", base_url=base_url or None, max_retries=0, timeout=timeout
    )
    return LLM(client=client, model=model or DEFAULT_MODEL, policy=policy or Policy())

"""The official Anthropic Python SDK against the sandbox's /v1/messages.

Usage: llm_anthropic.py BASE_URL TOOLS_LIST_JSON REFUSALS_JSON

Plays a persona's day with the platform's tools (non-streamed and streamed),
the rating turn, and every Anthropic case of the refusals list, which must
raise the SDK's typed exception with the real API's body. Prints one line per
check; exits 1 on the first mismatch, naming it.
"""

import json
import re
import sys
import uuid

import anthropic
from anthropic import Omit

base, tools_path, refusals_path = sys.argv[1:4]
doc = json.load(open(refusals_path))
GOOD, BAD = doc["good_key"], doc["bad_key"]
MODEL = "claude-sonnet-4-5"


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def client(key=GOOD):
    return anthropic.Anthropic(base_url=base, api_key=key, max_retries=0)


def tools():
    raw = json.load(open(tools_path))["tools"]
    out = [
        {"name": t["name"].replace(".", "_"), "description": t["description"],
         "input_schema": t["inputSchema"]}
        for t in raw
    ]
    out[-1]["cache_control"] = {"type": "ephemeral"}
    return out


SYSTEM = [{"type": "text", "text": "You are Ada, a night-shift nurse.",
           "cache_control": {"type": "ephemeral"}}]
FIRST = "Spend a short day in Mana, preferably in these modules: todo, habits, mood."


def result_for(block):
    """What mana-mcp would answer: a created thing with a UUID."""
    return json.dumps({"item": {"id": str(uuid.uuid4()), "input": block.input}})


def day(stream):
    c = client()
    messages = [{"role": "user", "content": FIRST}]
    calls = 0
    for turn in range(1, 15):
        kwargs = dict(model=MODEL, max_tokens=1024, system=SYSTEM, tools=tools(),
                      messages=messages)
        if stream:
            with c.messages.stream(**kwargs) as s:
                for _ in s.text_stream:
                    pass
                msg = s.get_final_message()
        else:
            msg = c.messages.create(**kwargs)
        if msg.usage.input_tokens <= 0 or msg.usage.output_tokens <= 0:
            fail(f"turn {turn}: implausible usage {msg.usage}")
        if turn >= 2 and not msg.usage.cache_read_input_tokens:
            fail(f"turn {turn}: the tools+system prefix was not read from the cache: {msg.usage}")
        uses = [b for b in msg.content if b.type == "tool_use"]
        if msg.stop_reason == "end_turn":
            text = "".join(b.text for b in msg.content if b.type == "text")
            if not text or uses:
                fail(f"turn {turn}: end_turn without a summary: {msg.content}")
            break
        if msg.stop_reason != "tool_use" or not uses:
            fail(f"turn {turn}: stop_reason {msg.stop_reason} with {len(uses)} tool uses")
        for b in uses:
            if not isinstance(b.input, dict) or not b.id.startswith("toolu_"):
                fail(f"turn {turn}: bad tool_use {b}")
        calls += len(uses)
        messages.append({"role": "assistant", "content": msg.content})
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": b.id, "content": result_for(b)} for b in uses
        ]})
    else:
        fail("the day never ended")
    if calls == 0:
        fail("a day without a tool call")
    print(f"ok {'streamed' if stream else 'non-streamed'} day: {calls} tool calls, {turn} turns")


def rating():
    msg = client().messages.create(
        model=MODEL, max_tokens=512, system=SYSTEM,
        messages=[{"role": "user", "content":
                   "Rate each module you used today (todo, habits) from 1 to 5. Answer ONLY with JSON."}])
    text = msg.content[0].text
    found = re.search(r"\{.*\}", text, re.S)
    ratings = json.loads(found.group(0))["ratings"] if found else []
    if sorted(r["module"] for r in ratings) != ["habits", "todo"]:
        fail(f"rating turn: {text}")
    print("ok rating turn")


def refusals():
    n = 0
    for case in doc["cases"]:
        if case["api"] != "anthropic":
            continue
        headers = {h: Omit() for h in case["omit_headers"]}
        key = {"good": GOOD, "bad": BAD}.get(case["key"], "unused")
        if case["key"] is None:
            # The SDK sends the key as X-Api-Key or, in 2.x, Authorization: Bearer.
            headers.update({h: Omit() for h in ["X-Api-Key", *client(key).auth_headers]})
        expected = {400: anthropic.BadRequestError, 401: anthropic.AuthenticationError}[case["status"]]
        try:
            client(key).post("/v1/messages", cast_to=object, body=case["body"],
                             options={"headers": headers})
        except anthropic.APIStatusError as e:
            if not isinstance(e, expected) or e.status_code != case["status"]:
                fail(f"{case['name']}: {type(e).__name__} {e.status_code}, expected {expected.__name__}")
            err = e.body.get("error", {}) if isinstance(e.body, dict) else {}
            if (err.get("type"), err.get("message")) != (case["type"], case["message"]):
                fail(f"{case['name']}: body {e.body}")
            if not (e.request_id or "").startswith("req_"):
                fail(f"{case['name']}: no request-id header ({e.request_id!r})")
        else:
            fail(f"{case['name']}: accepted")
        n += 1
    print(f"ok {n} refusals as {anthropic.BadRequestError.__name__}/{anthropic.AuthenticationError.__name__}")


print(f"anthropic SDK {anthropic.__version__}")
day(stream=False)
day(stream=True)
rating()
refusals()

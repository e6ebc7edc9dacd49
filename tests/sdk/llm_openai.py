"""The official OpenAI Python SDK against the sandbox's /v1/chat/completions.

Usage: llm_openai.py BASE_URL TOOLS_LIST_JSON REFUSALS_JSON

Plays a persona's day with the platform's tools (non-streamed and streamed,
tool calls accumulated from the deltas), the rating turn, and every OpenAI
case of the refusals list, which must raise the SDK's typed exception with the
real API's error object. Prints one line per check; exits 1 on the first
mismatch, naming it.
"""

import json
import re
import sys
import uuid

import openai
from openai import Omit

base, tools_path, refusals_path = sys.argv[1:4]
doc = json.load(open(refusals_path))
GOOD, BAD = doc["good_key"], doc["bad_key"]
MODEL = "gpt-4o-mini"


def fail(msg):
    print(f"FAIL {msg}")
    sys.exit(1)


def client(key=GOOD):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)


def tools():
    return [
        {"type": "function", "function": {"name": t["name"].replace(".", "_"),
                                          "description": t["description"],
                                          "parameters": t["inputSchema"]}}
        for t in json.load(open(tools_path))["tools"]
    ]


SYSTEM = "You are Bo, a student who plans too much."
FIRST = "Spend a short day in Mana, preferably in these modules: notes, journal, todo."


def streamed(c, messages):
    """One streamed completion, put back together from its chunks."""
    text, calls, finish, usage = "", {}, None, None
    for chunk in c.chat.completions.create(model=MODEL, messages=messages, tools=tools(),
                                           stream=True, stream_options={"include_usage": True}):
        if chunk.usage:
            usage = chunk.usage
        for choice in chunk.choices:
            d = choice.delta
            text += d.content or ""
            for tc in d.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] = tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
            finish = choice.finish_reason or finish
    if usage is None or usage.prompt_tokens <= 0:
        fail(f"no usage chunk: {usage}")
    return text, [calls[i] for i in sorted(calls)], finish


def day(stream):
    c = client()
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": FIRST}]
    n = 0
    for turn in range(1, 15):
        if stream:
            text, calls, finish = streamed(c, messages)
        else:
            r = c.chat.completions.create(model=MODEL, messages=messages, tools=tools())
            m = r.choices[0].message
            text, finish = m.content or "", r.choices[0].finish_reason
            calls = [{"id": t.id, "name": t.function.name, "arguments": t.function.arguments}
                     for t in m.tool_calls or []]
            if r.usage.prompt_tokens <= 0 or r.usage.completion_tokens <= 0:
                fail(f"turn {turn}: implausible usage {r.usage}")
        if finish == "stop":
            if not text or calls:
                fail(f"turn {turn}: stop without a summary")
            break
        if finish != "tool_calls" or not calls:
            fail(f"turn {turn}: finish_reason {finish} with {len(calls)} calls")
        for t in calls:
            if not isinstance(json.loads(t["arguments"]), dict):
                fail(f"turn {turn}: arguments {t['arguments']}")
        n += len(calls)
        messages.append({"role": "assistant", "content": text or None, "tool_calls": [
            {"id": t["id"], "type": "function",
             "function": {"name": t["name"], "arguments": t["arguments"]}} for t in calls]})
        for t in calls:
            messages.append({"role": "tool", "tool_call_id": t["id"],
                             "content": json.dumps({"item": {"id": str(uuid.uuid4())}})})
    else:
        fail("the day never ended")
    if n == 0:
        fail("a day without a tool call")
    print(f"ok {'streamed' if stream else 'non-streamed'} day: {n} tool calls, {turn} turns")


def rating():
    r = client().chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Rate each module you used today (notes, todo) from 1 to 5. Answer ONLY with JSON."}])
    text = r.choices[0].message.content
    found = re.search(r"\{.*\}", text, re.S)
    ratings = json.loads(found.group(0))["ratings"] if found else []
    if sorted(x["module"] for x in ratings) != ["notes", "todo"]:
        fail(f"rating turn: {text}")
    print("ok rating turn")


def refusals():
    n = 0
    for case in doc["cases"]:
        if case["api"] != "openai":
            continue
        key = {"good": GOOD, "bad": BAD}.get(case["key"], "unused")
        headers = {"Authorization": Omit()} if case["key"] is None else {}
        expected = {400: openai.BadRequestError, 401: openai.AuthenticationError}[case["status"]]
        try:
            client(key).post("/chat/completions", cast_to=object, body=case["body"],
                             options={"headers": headers})
        except openai.APIStatusError as e:
            if not isinstance(e, expected) or e.status_code != case["status"]:
                fail(f"{case['name']}: {type(e).__name__} {e.status_code}, expected {expected.__name__}")
            got = (e.type, e.body.get("message"), e.param, e.code)
            want = (case["type"], case["message"], case["param"], case["code"])
            if got != want:
                fail(f"{case['name']}: {got} != {want}")
        else:
            fail(f"{case['name']}: accepted")
        n += 1
    print(f"ok {n} refusals as {openai.BadRequestError.__name__}/{openai.AuthenticationError.__name__}")


print(f"openai SDK {openai.__version__}")
day(stream=False)
day(stream=True)
rating()
refusals()

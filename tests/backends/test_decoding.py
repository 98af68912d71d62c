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


LOOP = (
    "Step 1: Add the apples of both baskets to find the total number.\n"
    "Step 2: Multiply 3 by 4, which gives twelve.\n"
    "Step 3: Add the apples of both baskets to find the total number.\n"
    "Step 4: never written."
)


def test_a_sentence_repeated_word_for_word_ends_the_completion_before_the_repeat():
    request = Request(prompt="p", stop_repeated_sentence=40, max_tokens=500)
    pieces = [LOOP[i : i + 3] for i in range(0, len(LOOP), 3)]  # three characters a token
    choice = CompletionText.replay(request, pieces)
    # by hand: the third line repeats the first (56 characters without its "Step N:" label) -> cut before it
    expected = (
        "Step 1: Add the apples of both baskets to find the total number.\nStep 2: Multiply 3 by 4, which gives twelve."
    )
    assert (choice.text, choice.finish_reason) == (expected, "repetition")
    # the repeat ends decoding as soon as its end mark arrives: the tokens after it are never sampled
    repeat_end = LOOP.index("number.", LOOP.index("Step 3")) + len("number.")
    assert choice.completion_tokens == -(-repeat_end // 3)
    whole = cut(Choice(text=LOOP, finish_reason="length", completion_tokens=60), request)  # one piece, as a server's
    assert (whole.text, whole.finish_reason, whole.completion_tokens) == (expected, "repetition", 60)


def test_short_repeats_and_a_zero_setting_do_not_stop():
    short = "So 3 + 4 = 7.\nSo 3 + 4 = 7.\nDone."  # 13 characters a sentence: under the floor of 40
    assert CompletionText.replay(Request(prompt="p", stop_repeated_sentence=40), [short]).text == short
    assert CompletionText.replay(Request(prompt="p"), [LOOP]).text == LOOP  # off by default
    at_floor = Request(prompt="p", stop_repeated_sentence=56)  # the repeated sentence is exactly 56 long
    assert CompletionText.replay(at_floor, [LOOP]).finish_reason == "repetition"
    assert CompletionText.replay(Request(prompt="p", stop_repeated_sentence=57), [LOOP]).text == LOOP

"""GG's confidence reward, the step split and ECE, against values worked out by hand."""

import json
import math

import pytest

from thoughtgraph.trainers.calibration import (
    bin_index,
    expected_calibration_error,
    final_step_confidence,
    reliability_bins,
    reliability_diagram,
)
from thoughtgraph.trainers.rewards import (
    ConfidenceReward,
    correctness_reward,
    gg_reward,
    split_steps,
    stated_answer_reward,
    step_confidences,
    weighted_confidence,
)

ln = math.log


def test_a_boundary_token_opens_the_step_it_belongs_to():
    tokens = ["A", " b", "\n\n", "C", ".\n\nD", "e"]
    assert split_steps(tokens, [ln(0.1)] * 6) == [[ln(0.1)] * 2, [ln(0.1)] * 2, [ln(0.1)] * 2]
    assert split_steps(["\n\n", "x"], [0.0, 0.0]) == [[0.0, 0.0]]  # a leading boundary opens no empty step
    with pytest.raises(ValueError, match="3 tokens but 2 logprobs"):
        split_steps(["a", "b", "c"], [0.0, 0.0])


def test_a_boundary_written_as_two_tokens_still_opens_a_step():
    # SmolLM2 writes "\n\n" as two "\n" tokens: the first of them opens the step, as one "\n\n" token would
    tokens = ["A", ".", "\n", "\n", "B", "\n", "\n", "C", "\n", "D"]
    logprobs = [ln(p) for p in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)]
    steps = split_steps(tokens, logprobs)
    assert [[round(math.exp(x), 1) for x in step] for step in steps] == [
        [0.1, 0.2],
        [0.3, 0.4, 0.5],
        [0.6, 0.7, 0.8, 0.9, 1.0],
    ]
    assert final_step_confidence(tokens, logprobs) == pytest.approx((0.6 + 0.7 + 0.8 + 0.9 + 1.0) / 5)
    # two boundaries in one token open one step there, and none again at the next token
    assert len(split_steps(["a", "\n\n\n\n", "b"], [0.0] * 3)) == 2


def test_confidence_and_reward_of_a_correct_and_a_wrong_completion():
    # step probabilities: (0.5, 0.5) -> 0.5; (0.9, 0.7) -> 0.8; (1.0) -> 1.0
    steps = [[ln(0.5), ln(0.5)], [ln(0.9), ln(0.7)], [ln(1.0)]]
    assert step_confidences(steps) == pytest.approx([0.5, 0.8, 1.0])
    c = weighted_confidence([0.5, 0.8, 1.0])
    assert c == pytest.approx((1 * 0.5 + 2 * 0.8 + 3 * 1.0) / 6)  # 0.85
    assert gg_reward(True, c) == pytest.approx(1 + 0.85**4)  # 1.52200625
    assert gg_reward(False, c) == pytest.approx(1 - 10 * 0.85**4)  # -4.2200625
    assert gg_reward(False, 0.1) > gg_reward(False, 0.9)  # a confident mistake costs more


def test_only_the_last_five_steps_count_and_fewer_steps_use_what_there_is():
    seven = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert weighted_confidence(seven) == pytest.approx((0.3 + 0.8 + 1.5 + 2.4 + 3.5) / 15)  # 0.5667
    assert weighted_confidence([0.42]) == pytest.approx(0.42)
    assert weighted_confidence([0.2, 0.8]) == pytest.approx((0.2 + 1.6) / 3)
    assert weighted_confidence([]) == 0.8  # the reference's value for a completion without steps


def test_confidence_reward_with_trl_signature_grades_and_reads_policy_probabilities():
    calls = []

    def token_logprobs(prompts, completion_ids):  # TEST DOUBLE for the policy's forward pass
        calls.append(completion_ids)
        step = ["So", " 48", "\n\n", "The answer is 72."]
        return [(step, [ln(0.5), ln(0.5), ln(1.0), ln(1.0)]) for _ in completion_ids]

    reward = ConfidenceReward(token_logprobs)
    rewards = reward(
        prompts=["q", "q"],
        completions=[[{"role": "assistant", "content": "So 48\n\nThe answer is 72."}], "So 48\n\nThe answer is 70."],
        completion_ids=[[1, 2], [3, 4]],
        answer=["72", "72"],
        dataset=["gsm8k", "gsm8k"],
    )
    c = (1 * 0.5 + 2 * 1.0) / 3  # steps (0.5, 0.5) and (1.0, 1.0)
    assert rewards == pytest.approx([1 + c**4, 1 - 10 * c**4])
    assert reward.last_confidences == pytest.approx([c, c]) and calls == [[[1, 2], [3, 4]]]
    assert reward.__name__ == "gg_confidence_reward"


def test_correctness_and_format_rewards():
    completions = ["x\nThe answer is 72.", "I think \\boxed{71}", "no answer here"]
    assert correctness_reward(completions, answer=["72", "72", "72"], dataset=["gsm8k"] * 3) == [1.0, 0.0, 0.0]
    assert stated_answer_reward(completions) == [1.0, 1.0, 0.0]


def test_ece_and_reliability_bins_by_hand(tmp_path):
    confidences = [0.95, 0.95, 0.95, 0.15, 0.15, 0.55]
    correct = [True, True, False, False, True, True]
    # bin 9: 3 at 0.95, accuracy 2/3 -> 0.2833 x 3/6; bin 1: 2 at 0.15, accuracy 1/2 -> 0.35 x 2/6;
    # bin 5: 1 at 0.55, accuracy 1 -> 0.45 x 1/6; total 1/3
    assert expected_calibration_error(confidences, correct) == pytest.approx(1 / 3)
    table = reliability_bins(confidences, correct)
    assert [row["count"] for row in table] == [0, 2, 0, 0, 0, 1, 0, 0, 0, 3]
    assert table[9]["accuracy"] == pytest.approx(2 / 3) and table[9]["confidence"] == pytest.approx(0.95)
    assert expected_calibration_error([0.7, 0.7], [True, False]) == pytest.approx(0.2)
    assert expected_calibration_error([1.0], [True]) == 0.0
    assert (bin_index(1.0), bin_index(0.1), bin_index(0.0999), bin_index(0.0)) == (9, 1, 0, 0)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        bin_index(1.2)
    path = reliability_diagram(confidences, correct, tmp_path / "r.png", title="test")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_sft_takes_only_finished_correct_traces_with_reasoning(tmp_path):
    from thoughtgraph.trainers.common import SetupError
    from thoughtgraph.trainers.sft import solved_traces

    run = tmp_path / "bot-gsm8k"
    run.mkdir()
    samples = [
        {"id": "a", "question": "1+1?", "status": "ok", "correct": True, "reasoning": "1+1=2\nThe answer is 2."},
        {"id": "b", "question": "2+2?", "status": "ok", "correct": False, "reasoning": "The answer is 5."},
        {"id": "c", "question": "3+3?", "status": "failed", "correct": False},
        {"id": "d", "question": "4+4?", "status": "ok", "correct": True, "reasoning": "  "},
    ]
    (run / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples) + '{"id": "cut')
    (run / "results.json").write_text(json.dumps({"method": "bot"}))
    rows, skipped = solved_traces([str(run)])
    assert [r["source"] for r in rows] == ["bot-gsm8k:a"]
    assert rows[0]["completion"] == [{"role": "assistant", "content": "1+1=2\nThe answer is 2."}]
    assert rows[0]["prompt"][-1] == {"role": "user", "content": "1+1?"}
    assert skipped == {"failed": 1, "wrong": 1, "no_reasoning": 1, "other_method": 0, "unreadable": 1}
    with pytest.raises(SetupError, match="no solved traces"):
        solved_traces([str(run)], methods=["tr"])
    with pytest.raises(SetupError, match="not an evals run folder"):
        solved_traces([str(tmp_path)])


def test_calibration_reads_problems_from_the_data_folder_it_is_given(tmp_path, monkeypatch):
    from thoughtgraph.trainers.calibration import main

    monkeypatch.delenv("THOUGHTGRAPH_DATA", raising=False)
    (tmp_path / "data" / "gsm8k").mkdir(parents=True)
    rows = [
        {"question": "What is 2 + 3?", "answer": "#### 5"},
        {"question": "What is 2 + 3 again?", "answer": "#### 6"},
    ]
    (tmp_path / "data" / "gsm8k" / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    script = tmp_path / "replies.yaml"
    script.write_text('rules:\n  - match: "2 \\\\+ 3"\n    responses: ["2 plus 3 is 5. The answer is 5."]\n')
    out = tmp_path / "calibration"
    main(["--backend", f"scripted:{script}", "--data-dir", str(tmp_path / "data"), "--limit", "2", "--out", str(out)])
    summary = json.loads((out / "calibration.json").read_text())
    assert summary["samples"] == 2 and summary["accuracy"] == 0.5  # the scripted reply says 5: right, then wrong


def test_a_completion_graded_for_gg_is_not_sent_to_the_sandbox_again_for_the_correctness_reward(monkeypatch):
    import thoughtgraph.trainers.rewards as rewards_module

    real, graded = rewards_module.shared_sandbox(), []

    class CountingSandbox:  # TEST DOUBLE around the real sandbox: counts the round trips
        def grade(self, item):
            graded.append(item.reasoning)
            return real.grade(item)

    monkeypatch.setattr(rewards_module, "shared_sandbox", CountingSandbox)
    texts = ["Quokka tally: 40 + 32\n\nThe answer is 72.", "Quokka tally: 40 + 30\n\nThe answer is 70."]
    step = (["x"], [ln(0.9)])
    gg = ConfidenceReward(lambda prompts, ids: [step for _ in ids])
    columns = {"answer": ["72", "72"], "dataset": ["gsm8k", "gsm8k"]}
    gg(prompts=["q", "q"], completions=texts, completion_ids=[[1], [2]], **columns)
    assert correctness_reward(texts, **columns) == [1.0, 0.0]
    assert graded == texts  # once each, by the first reward

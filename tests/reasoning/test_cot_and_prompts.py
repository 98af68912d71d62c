import pytest

from thoughtgraph.backends import Capabilities
from thoughtgraph.backends.scripted import ScriptedBackend, ScriptRule
from thoughtgraph.prompts import PromptError, load_prompt
from thoughtgraph.reasoning import solve
from thoughtgraph.reasoning.answers import extract_answer, last_boxed


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("so 3 + 4 = 7. The answer is 7.", "7"),
        ("The answer is $1,250.", "1250"),
        ("#### 72", "72"),
        ("thus \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),
        ("\\boxed{a} then \\boxed{x^{2}}", "x^{2}"),
        ("I got 3 then 5 then -12", "-12"),
        ("The answer is: blue.", "blue"),
        ("no digits here", None),
        ("#### 1\nThe answer is 16.", "16"),
        ("The answer is 3. Then \\boxed{4}", "4"),
    ],
)
def test_answer_extraction(text, answer):
    assert extract_answer(text) == answer


def test_unbalanced_boxed_is_not_an_answer():
    assert last_boxed("\\boxed{1 + {2}") is None


def test_cot_reads_the_stated_answer_with_one_call():
    backend = ScriptedBackend([ScriptRule("apples", ["3 + 4 = 7.\nThe answer is 7."])])
    solution = solve("Tom has 3 apples and gets 4. How many apples?", "cot", backend)
    assert solution.answer == "7"
    assert solution.usage["calls"] == 1 and solution.usage["events"] == {}
    assert solution.prompt_versions == {"cot/solve": 1}
    assert backend.calls[0].messages[-1].content.startswith("Tom has 3 apples")


def test_cot_asks_for_a_constrained_final_answer_when_none_is_stated_and_counts_the_miss():
    backend = ScriptedBackend(
        [ScriptRule("only the final answer", ["7"]), ScriptRule("apples", ["I think about apples a lot"])]
    )
    solution = solve("Tom has 3 apples and gets 4. How many apples?", "cot", backend)
    assert solution.answer == "7"
    assert solution.usage["calls"] == 2
    assert solution.usage["events"] == {"parse_failure": 1, "answer_asked": 1}  # the miss, and the second call
    final_request = backend.calls[1]
    assert final_request.constraint is not None and final_request.constraint.kind == "regex"
    assert final_request.messages[-2].role == "assistant"


def test_cot_without_constraints_falls_back_to_extraction():
    class Unconstrained(ScriptedBackend):
        capabilities = Capabilities(logprobs=True)

    backend = Unconstrained([ScriptRule("only the final answer", ["It is 9."]), ScriptRule("Q", ["hmm"])])
    solution = solve("Q: how many?", "cot", backend)
    assert solution.answer == "9"
    assert backend.calls[1].constraint is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"problem": "  "}, "problem is empty"),
        ({"problem": "x", "method": "magic"}, "unknown method 'magic'"),
        ({"problem": "x", "max_tokens": 0}, "must be positive"),
        ({"problem": "x", "beams": 3}, "has no option"),
    ],
)
def test_solve_rejects_bad_input(kwargs, message):
    with pytest.raises(ValueError, match=message):
        solve(backend=ScriptedBackend(default="x"), **kwargs)


def test_user_prompt_folder_overrides_builtin_and_versions_are_kept(tmp_path):
    (tmp_path / "cot").mkdir()
    (tmp_path / "cot" / "solve.yaml").write_text("version: 7\nuser: 'Q={{ question }}'\n")
    prompt = load_prompt("cot/solve", folder=tmp_path)
    assert prompt.tag == "cot/solve@7"
    assert prompt.render(question="2+2") == [("user", "Q=2+2")]
    assert load_prompt("cot/solve").version == 1


def test_prompt_errors_name_the_prompt(tmp_path):
    with pytest.raises(PromptError, match="no prompt named 'nope/x'"):
        load_prompt("nope/x")
    with pytest.raises(PromptError, match="needs a value"):
        load_prompt("cot/solve").render()
    (tmp_path / "cot").mkdir()
    (tmp_path / "cot" / "solve.yaml").write_text("user: hi\n")
    with pytest.raises(PromptError, match="needs a `version`"):
        load_prompt("cot/solve", folder=tmp_path)


def test_solve_with_a_spec_string_builds_the_backend_once(tmp_path):
    from thoughtgraph.reasoning.api import shared_backend

    script = tmp_path / "s.yaml"
    script.write_text("rules: [{match: 'apples', responses: ['The answer is 7.']}]\n")
    spec = f"scripted:{script}"
    first = solve("How many apples?", "cot", spec)
    second = solve("How many apples now?", "cot", spec)
    assert first.answer == second.answer == "7"
    assert len(shared_backend(spec).calls) == 2  # both runs reached the same backend object


async def test_solve_works_inside_a_running_event_loop_as_in_a_notebook():
    backend = ScriptedBackend([ScriptRule("apples", ["3 + 4 = 7.\nThe answer is 7."])])
    solution = solve("Tom has 3 apples and gets 4. How many apples?", "cot", backend)  # no await: a notebook cell
    assert solution.answer == "7"


def test_boxed_answers_match_nested_braces_and_take_the_last_box():
    assert last_boxed("so \\boxed{\\frac{1}{2}} and") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{3} then \\boxed{ 4 }") == "4"  # the last box, stripped
    assert last_boxed("\\fbox{x^{2}}") == "x^{2}"
    assert last_boxed("\\boxed{a}{b}") == "a"  # the box closes at its own brace
    assert last_boxed("no box here") is None
    assert last_boxed("\\boxed{}") == ""


def test_dataset_presets_are_read_only_views_of_the_method_files():
    from thoughtgraph.reasoning.spec import dataset_presets

    bot = dataset_presets("bot")
    assert bot["math"] == {"iterations": 10, "trees": 5, "max_depth": 20, "max_sinks": 8}
    assert bot["game24"]["temperatures"] == [0.1, 0.3, 0.5, 0.7]
    assert dict(dataset_presets("gg")) == {
        "math": {"min_step_tokens": 50}, "math500": {"min_step_tokens": 50}, "aime": {"min_step_tokens": 10},
    }  # fmt: skip
    assert dataset_presets("cot") == {}  # no file: no presets
    with pytest.raises(TypeError):
        bot["math"]["trees"] = 1  # type: ignore[index]
    with pytest.raises(TypeError):
        bot["new"] = {}  # type: ignore[index]


def test_a_chain_that_repeats_itself_is_cut_and_the_answer_is_asked_for():
    loop = "First we add the apples in both of the baskets together.\n" * 3 + "The answer is 7."
    backend = ScriptedBackend([ScriptRule("only the final answer", ["7"]), ScriptRule("apples", [loop])])
    solution = solve("Tom has 3 apples and gets 4. How many apples?", "cot", backend)
    assert solution.reasoning == "First we add the apples in both of the baskets together."
    assert solution.usage["events"] == {"chain_repeated": 1, "parse_failure": 1, "answer_asked": 1}
    assert solution.answer == "7" and backend.calls[0].stop_repeated_sentence == 40
    off = ScriptedBackend([ScriptRule("apples", [loop])])
    assert solve("Tom has 3 apples and gets 4. How many apples?", "cot", off, stop_repeated_sentence=0).answer == "7"


def test_self_consistency_counts_each_sampled_chain_the_repeat_stop_cut():
    loop = "First we add the apples in both of the baskets together.\n" * 3 + "The answer is 7."
    backend = ScriptedBackend([ScriptRule("apples", [loop, "3 + 4 = 7.\nThe answer is 7.", loop])])
    solution = solve("Tom has 3 apples and gets 4. How many apples?", "sc", backend, samples=3)
    assert solution.usage["events"].get("chain_repeated") == 2  # two of the three samples looped

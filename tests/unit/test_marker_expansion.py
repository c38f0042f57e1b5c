"""The hac marker's arguments expanded into cells: ids, thresholds, attack parameters, and the refusals."""
import pytest

from pytest_hac.attacks import DEFAULT_QUERIES
from pytest_hac.core.cells.cases import expand
from pytest_hac.errors import HacError


def test_eps_list_and_attack_list_get_tags():
    cases = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": ["pgd", "fgsm"],
                    "eps": ["2/255", 8 / 255]}, {})
    assert [c.id for c in cases] == ["jpeg-q50-r1-oblivious-pgd-eps2", "jpeg-q50-r1-oblivious-pgd-eps8",
                                     "jpeg-q50-r1-oblivious-fgsm-eps2", "jpeg-q50-r1-oblivious-fgsm-eps8"]


def test_thresholds_by_threat_and_by_cell_pattern():
    cases = expand({"codecs": {"jpeg": [25, 75]}, "threats": ["clean", "oblivious"],
                    "min_accuracy": {"clean": 0.8, "jpeg-q25-*-oblivious-*": 0.4}}, {})
    assert {c.id: c.threshold for c in cases} == {
        "jpeg-q25-r1-clean": 0.8, "jpeg-q25-r1-oblivious-pgd": 0.4,
        "jpeg-q75-r1-clean": 0.8, "jpeg-q75-r1-oblivious-pgd": None,
    }


def test_query_threat_uses_a_gradient_free_attack_at_the_reference_budget():
    (case,) = expand({"codecs": {"jpeg": [50]}, "threats": ["query"], "attack": "pgd", "steps": 7, "restarts": 2}, {})
    # the id names what differs from the defaults: restarts (no two attacks share an id)
    assert case.attack.name == "square" and case.id == "jpeg-q50-r1-query-square-restarts2"
    # not torchattacks' 100 queries, not the gradient attack's steps; restarts carry over
    assert case.attack.queries == DEFAULT_QUERIES == 5000 and case.attack.restarts == 2
    assert case.attack.as_dict() == {"name": "square", "norm": "Linf", "eps": 4 / 255, "steps": 5000, "alpha": None,
                                     "restarts": 2, "eot": 1, "queries": 5000, "min_norm": False}


@pytest.mark.parametrize("kwargs, defaults, queries", [
    ({"attack": "pgd", "queries": 300}, {}, 300),
    ({"attack": "pgd"}, {"queries": 1000, "steps": 20}, 1000),  # --hac-steps' queries=; its N counts gradient steps
    ({"attack": "square", "steps": 300}, {"queries": 1000}, 300),  # square's steps are its queries
    ({"attack": "square", "queries": 300}, {}, 300),
])
def test_query_budget_follows_the_marker(kwargs, defaults, queries):
    import torchattacks

    from pytest_hac.attacks import build_attack
    from pytest_hac.models import get_model

    (case,) = expand({"codecs": {"jpeg": [50]}, "threats": ["query"], **kwargs}, defaults)
    assert case.attack.name == "square" and case.attack.queries == queries
    attack = build_attack(get_model("tiny-cnn"), case.attack)
    assert isinstance(attack, torchattacks.Square) and attack.n_queries == queries


def test_parameters_apply_to_the_attacks_that_take_them():
    cases = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": ["fgsm", "pgd", "apgd", "cw"],
                    "eps": ["2/255", "8/255"], "steps": 3, "alpha": "1/255"}, {"steps": 20})
    specs = {c.id: c.attack for c in cases}
    # ids name what differs from the defaults (eps; steps 3 instead of --hac-steps 20; alpha)
    assert list(specs) == ["jpeg-q50-r1-oblivious-fgsm-eps2", "jpeg-q50-r1-oblivious-fgsm-eps8",
                           "jpeg-q50-r1-oblivious-pgd-eps2-s3-a1", "jpeg-q50-r1-oblivious-pgd-eps8-s3-a1",
                           "jpeg-q50-r1-oblivious-apgd-eps2-s3", "jpeg-q50-r1-oblivious-apgd-eps8-s3",
                           "jpeg-q50-r1-oblivious-cw-s3"]  # cw is minimum-norm: no eps, no eps tag
    fgsm, pgd, apgd, cw = (specs[f"jpeg-q50-r1-oblivious-{a}"] for a in ("fgsm-eps2", "pgd-eps2-s3-a1",
                                                                         "apgd-eps2-s3", "cw-s3"))
    assert (fgsm.steps, fgsm.alpha) == (1, None)
    assert (pgd.steps, pgd.alpha) == (3, 1 / 255)
    assert (apgd.steps, apgd.alpha) == (3, None)
    assert (cw.eps, cw.steps, cw.min_norm) == (None, 3, True)
    # options apply where they fit, silently: they are run-wide defaults, not this marker's request
    (only_fgsm,) = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": "fgsm"}, {"steps": 20})
    assert only_fgsm.attack.steps == 1


def test_marker_soundness_thorough_reaches_the_case():
    cases = expand({"codecs": {"jpeg": [50]}, "soundness": "thorough"}, {})
    assert cases and all(c.thorough for c in cases)
    assert not any(c.thorough for c in expand({"codecs": {"jpeg": [50]}}, {}))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"codecs": {"jpg": [50]}}, "unknown codec 'jpg'. Did you mean 'jpeg'?"),
        ({"codecs": {"jpeg": [0]}}, "quality 0 is out of range for codec 'jpeg': valid qualities are 1..100"),
        ({"codecs": {"jpeg": [101]}}, "valid qualities are 1..100"),
        ({"codecs": {"jpeg": [50]}, "rounds": [0]}, "rounds must be >= 1"),
        ({"codecs": {"jpeg": [50]}, "threats": ["whitebx"]}, "unknown threat 'whitebx'. Did you mean 'whitebox'?"),
        ({"codecs": {"jpeg": [50]}, "attack": "pgdd"}, "unknown attack 'pgdd'"),
        ({"codecs": {"jpeg": [50]}, "eps": -0.1}, "eps must be >= 0"),
        ({"codecs": {"jpeg": [50]}, "eps": 1.5}, "exceeds 1"),
        ({"codecs": {"jpeg": [50]}, "min_accuracy": 1.5}, "min_accuracy: thresholds are fractions in [0, 1]"),
        ({"codecs": {"jpeg": [50]}, "epsilon": 0.1}, "unknown hac marker argument(s) ['epsilon']"),
        ({"codecs": {"identity": [3]}}, "codec 'identity' has no quality setting"),
        # no silent substitution: a parameter no attack of the marker takes is refused, naming both
        ({"attack": "fgsm", "steps": 5}, "attack 'fgsm' takes no steps"),
        ({"attack": "apgd", "alpha": "1/255"}, "attack 'apgd' takes no step size alpha"),
        ({"attack": ["fgsm", "pgd"], "restarts": 3}, "attack 'fgsm' has no random start, so restarts=3"),
        ({"attack": "ifgsm", "restarts": 2}, "attack 'ifgsm' has no random start"),
        ({"attack": "cw", "restarts": 2}, "attack 'cw' has no random start"),
        ({"attack": "ifgsm", "eot": 4, "threats": ["adaptive"]}, "attack 'ifgsm' does not average gradients"),
        ({"attack": "pgd", "eot": 4, "threats": ["oblivious"]},
         "eot=4 (attack 'pgd') averages gradients over a random defense, but the oblivious cells"),
        ({"codecs": {"identity": []}, "attack": "pgd", "eot": 4, "threats": ["adaptive"]}, "codec 'identity' attack"),
        ({"attack": "cw", "eps": "4/255"}, "attack 'cw' is a minimum-norm attack: it has no eps"),
        ({"attack": "cw", "threats": ["query"]}, "'query' threat runs Square inside an eps ball"),
        ({"attack": "pgd", "queries": 300, "threats": ["oblivious"]}, "queries=300 is the budget of the 'query'"),
        ({"attack": "square", "eot": 2}, "attack 'square' does not average gradients"),
        ({"attack": "pgd", "steps": 2.5}, "steps must be a whole number"),
        ({"attack": "pgd", "restarts": 0}, "restarts must be a whole number >= 1"),
        ({"attack": "pgd", "threats": ["query"], "queries": 0}, "queries must be a whole number >= 1"),
        ({"attack": "pgd", "norm": "L2"}, "unknown hac marker argument(s) ['norm']"),
        ({"soundness": "warn"}, "soundness must be 'thorough'"),
    ],
)
def test_bad_marker_arguments(kwargs, message):
    with pytest.raises(HacError) as info:
        expand({"codecs": {"jpeg": [50]}, **kwargs}, {})
    assert message in str(info.value)


def test_the_worst_case_is_a_cell_when_a_gate_or_the_threats_name_it():
    from pytest_hac.core.cells.cases import expand

    cases = expand({"codecs": {"jpeg": [50]}, "threats": ["clean", "oblivious"], "attack": ["pgd", "cw"],
                    "min_accuracy": {"worst": 0.3, "oblivious": 0.5}}, {"eps": "4/255"})
    worst = [c for c in cases if c.threat == "worst"]
    assert [c.id for c in worst] == ["jpeg-q50-r1-worst"] and worst[0].threshold == 0.3
    # every cell of the defense but the minimum-norm attack, which has no budget to survive
    assert [p.id for p in worst[0].parts] == ["jpeg-q50-r1-clean", "jpeg-q50-r1-oblivious-pgd"]
    listed = expand({"codecs": {"jpeg": [50]}, "threats": ["clean", "oblivious", "worst"]}, {})
    assert [c.id for c in listed][-1] == "jpeg-q50-r1-worst" and listed[-1].threshold is None
    with pytest.raises(HacError, match="needs at least one attacked cell"):
        expand({"codecs": {"jpeg": [50]}, "threats": ["clean", "worst"]}, {})


def test_threat_thresholds_do_not_gate_a_minimum_norm_attack():
    from pytest_hac.core.cells.cases import expand

    by_threat = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": ["pgd", "cw"],
                        "min_accuracy": {"oblivious": 0.5}}, {"eps": "4/255"})
    assert {c.id: c.threshold for c in by_threat} == {"jpeg-q50-r1-oblivious-pgd": 0.5,
                                                      "jpeg-q50-r1-oblivious-cw": None}
    named = expand({"codecs": {"jpeg": [50]}, "threats": ["oblivious"], "attack": ["pgd", "cw"],
                    "min_accuracy": {"*-cw": 0.1}}, {"eps": "4/255"})
    assert {c.id: c.threshold for c in named}["jpeg-q50-r1-oblivious-cw"] == 0.1


def test_threat_aliases_from_the_paper():
    from pytest_hac.attacks import Threat

    assert Threat.of("black-box") is Threat.OBLIVIOUS
    assert Threat.of("White-Box") is Threat.WHITEBOX

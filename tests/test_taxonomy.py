"""The shipped taxonomy loads and validates; edits change its version; broken files fail clearly."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import yaml

from vkpp_learning import settings
from vkpp_learning.errors import ConfigurationError
from vkpp_learning.taxonomy import load_taxonomy

SHIPPED = settings.project_root() / "taxonomy"
PACKAGE = settings.project_root() / "vkpp_learning"


def words(text: str) -> list[str]:
    return text.split()


REQUIRED = {
    "practice": words(
        "risk_assessment risk_response information_sharing multi_agency_working voice_of_victim "
        "professional_curiosity investigation_evidence record_keeping supervision_oversight training_knowledge "
        "policy_procedure capacity_resources diversity_inclusion initial_response think_family"
    ),
    "vulnerability": words(
        "domestic_abuse coercive_control stalking_harassment child_neglect physical_abuse sexual_abuse "
        "child_exploitation criminal_exploitation self_neglect mental_health substance_misuse "
        "learning_disability_autism homelessness suicide_self_harm missing_episodes young_parents "
        "honour_based_abuse modern_slavery older_adult_abuse online_harm"
    ),
    "agency": words(
        "police childrens_social_care adult_social_care health mental_health probation housing education "
        "ambulance prison other"
    ),
}


@pytest.fixture
def taxonomy_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "taxonomy"
    shutil.copytree(SHIPPED, folder)
    return folder


def edit_yaml(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def test_shipped_taxonomy_validates_and_has_every_required_id() -> None:
    taxonomy = load_taxonomy(SHIPPED)
    for facet, ids in REQUIRED.items():
        missing = set(ids) - set(taxonomy.ids(facet))
        assert not missing, f"{facet} lacks {sorted(missing)}"
    assert re.fullmatch(r"\d{4}\.\d{1,2}\.\d+\+[0-9a-f]{8}", taxonomy.version)


def test_shipped_themes_are_complete_enough_for_analysts() -> None:
    taxonomy = load_taxonomy(SHIPPED)
    for theme in taxonomy.themes:
        assert 3 <= len(theme.examples) <= 8, theme.id
        assert 15 <= len(theme.phrases) <= 40, f"{theme.facet}/{theme.id} has {len(theme.phrases)} phrases"
        assert len(theme.definition.split()) >= 25, f"{theme.id}: the definition should be a paragraph"
        assert len(set(theme.phrases)) == len(theme.phrases), f"{theme.id} repeats a phrase"


def test_lookup_by_id_facet_and_parent() -> None:
    taxonomy = load_taxonomy(SHIPPED)
    coercive = taxonomy.theme("coercive_control")
    assert coercive.facet == "vulnerability"
    assert [t.id for t in taxonomy.ancestors(coercive)] == [coercive.parent]
    assert taxonomy.theme("mental_health", "agency").facet == "agency"
    with pytest.raises(KeyError, match="several facets"):
        taxonomy.theme("mental_health")
    with pytest.raises(KeyError):
        taxonomy.theme("no_such_theme")


def test_default_directory_comes_from_the_setting(taxonomy_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    edit_yaml(taxonomy_copy / "agencies.yaml", lambda d: d["themes"].pop())
    monkeypatch.setenv("VKPP_TAXONOMY_DIR", str(taxonomy_copy))
    assert len(load_taxonomy().facet("agency")) == len(REQUIRED["agency"]) - 1
    monkeypatch.setenv("VKPP_TAXONOMY_DIR", "")
    assert len(load_taxonomy().facet("agency")) == len(REQUIRED["agency"])


def test_any_edit_changes_the_version(taxonomy_copy: Path) -> None:
    original = load_taxonomy(SHIPPED).version
    assert load_taxonomy(taxonomy_copy).version == original  # same content, same version

    edit_yaml(taxonomy_copy / "perennial_issues.yaml", lambda d: d["themes"][0]["phrases"].append("risk matrix"))
    edited = load_taxonomy(taxonomy_copy).version
    assert edited != original
    assert edited.split("+")[0] == original.split("+")[0]  # the analysts' number did not move

    edit_yaml(taxonomy_copy / "agencies.yaml", lambda d: d.update(version="2027.1.0"))
    assert load_taxonomy(taxonomy_copy).version.startswith("2027.1.0+")


def test_missing_field_names_file_theme_and_field(taxonomy_copy: Path) -> None:
    edit_yaml(taxonomy_copy / "vulnerabilities.yaml", lambda d: d["themes"][2].pop("definition"))
    with pytest.raises(ConfigurationError) as caught:
        load_taxonomy(taxonomy_copy)
    message = str(caught.value)
    assert "vulnerabilities.yaml" in message
    assert "stalking_harassment" in message
    assert "definition" in message


def test_wrong_type_in_a_list_is_located(taxonomy_copy: Path) -> None:
    edit_yaml(taxonomy_copy / "perennial_issues.yaml", lambda d: d["themes"][1]["examples"].append(42))
    with pytest.raises(
        ConfigurationError, match=r"perennial_issues\.yaml: theme 2 \(id risk_response\), field examples"
    ):
        load_taxonomy(taxonomy_copy)


def test_too_few_examples_is_refused(taxonomy_copy: Path) -> None:
    edit_yaml(taxonomy_copy / "agencies.yaml", lambda d: d["themes"][0].update(examples=["Officers attended."]))
    with pytest.raises(ConfigurationError, match=r"police.*examples"):
        load_taxonomy(taxonomy_copy)


def test_duplicate_id_is_refused(taxonomy_copy: Path) -> None:
    def duplicate(data: dict) -> None:
        data["themes"][1]["id"] = data["themes"][0]["id"]

    edit_yaml(taxonomy_copy / "perennial_issues.yaml", duplicate)
    with pytest.raises(ConfigurationError, match="risk_assessment appears twice"):
        load_taxonomy(taxonomy_copy)


def test_unknown_parent_is_refused(taxonomy_copy: Path) -> None:
    edit_yaml(taxonomy_copy / "vulnerabilities.yaml", lambda d: d["themes"][0].update(parent="no_such_theme"))
    with pytest.raises(ConfigurationError, match="parent no_such_theme is not a theme"):
        load_taxonomy(taxonomy_copy)


def test_parent_cycle_is_refused(taxonomy_copy: Path) -> None:
    def cycle(data: dict) -> None:
        data["themes"][0]["parent"] = data["themes"][1]["id"]
        data["themes"][1]["parent"] = data["themes"][0]["id"]

    edit_yaml(taxonomy_copy / "perennial_issues.yaml", cycle)
    with pytest.raises(ConfigurationError, match="cycle"):
        load_taxonomy(taxonomy_copy)


def test_invalid_yaml_names_the_file_and_line(taxonomy_copy: Path) -> None:
    (taxonomy_copy / "agencies.yaml").write_text("facet: agency\nthemes: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"agencies\.yaml line \d+: not valid YAML"):
        load_taxonomy(taxonomy_copy)


def test_missing_folder_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_taxonomy(tmp_path / "nowhere")
    with pytest.raises(ConfigurationError, match=r"no \.yaml files"):
        load_taxonomy(tmp_path)


def _code_strings_and_names(source: str) -> list[str]:
    """String constants (less docstrings) and identifiers of a module: what code can depend on."""
    tree = ast.parse(source)
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            found.append(node.value)
        elif isinstance(node, ast.Name):
            found.append(node.id)
        elif isinstance(node, ast.Attribute):
            found.append(node.attr)
    return found


def test_no_practice_theme_is_hard_coded_in_the_package() -> None:
    ids = load_taxonomy(SHIPPED).ids("practice")
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, ids)) + r")\b")
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for text in _code_strings_and_names(path.read_text(encoding="utf-8")):
            if pattern.search(text):
                offenders.append(f"{path.relative_to(PACKAGE)}: {pattern.search(text).group(0)}")  # type: ignore[union-attr]
    assert not offenders, "theme ids belong in taxonomy/*.yaml, not in code: " + "; ".join(offenders)

"""The rules tagger and detectors on review-style sentences, with the real spaCy model and taxonomy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from vkpp_learning import registry, settings
from vkpp_learning.records import FACETS, TagInput, TagResult
from vkpp_learning.tagging.base import CombinedTagger, NullTagger, by_facet, create_tagger, run_info
from vkpp_learning.tagging.detectors import DEFAULT_TAGGERS
from vkpp_learning.tagging.rules import RulesTagger
from vkpp_learning.taxonomy import load_taxonomy


@pytest.fixture(scope="module")
def tagger() -> CombinedTagger:
    combined = create_tagger(DEFAULT_TAGGERS)
    assert isinstance(combined, CombinedTagger)
    return combined


def tag(
    tagger: CombinedTagger, text: str, section: str = "analysis", review_type: str = "DHR", kind: str = "paragraph"
):
    results = tagger.tag([TagInput(text, review_type=review_type, section_kind=section, kind=kind)])[0]
    return results, by_facet(results)


def labels(tagger: CombinedTagger, text: str, facet: str, **context: str) -> set[str]:
    return tag(tagger, text, **context)[1].get(facet, set())


# ---- themes: lemmas, negation, hypotheticals ------------------------------------------------------------


def test_phrases_match_other_forms_of_the_words(tagger: CombinedTagger) -> None:
    assert "risk_assessment" in labels(
        tagger, "Officers completed DASH risk assessments at both incidents.", "practice"
    )
    assert "voice_of_victim" in labels(
        tagger, "The children were not spoken to alone by the social worker.", "practice"
    )
    assert "stalking_harassment" in labels(tagger, "She told officers she was being stalked.", "vulnerability")


def test_capitalised_acronyms_do_not_match_ordinary_words(tagger: CombinedTagger) -> None:
    assert "learning_disability_autism" not in labels(
        tagger, "The school agreed to send a letter home.", "vulnerability"
    )
    assert "learning_disability_autism" in labels(tagger, "He had an EHCP for his autism.", "vulnerability")


def test_denied_vulnerability_is_not_tagged(tagger: CombinedTagger) -> None:
    assert "substance_misuse" not in labels(tagger, "There was no evidence of alcohol misuse.", "vulnerability")
    assert "substance_misuse" not in labels(tagger, "There is no evidence that her mother used drugs.", "vulnerability")
    assert "substance_misuse" not in labels(tagger, "Alcohol was not a factor in the incident.", "vulnerability")
    assert "domestic_abuse" not in labels(tagger, "No agency holds any record of domestic abuse.", "vulnerability")


def test_negated_practice_is_still_about_that_practice(tagger: CombinedTagger) -> None:
    # A failure of practice is still about that practice, and what was not recognised was still there.
    text = "Officers did not recognise the stalking and no DASH risk assessment was completed."
    assert "stalking_harassment" in labels(tagger, text, "vulnerability")
    assert "risk_assessment" in labels(tagger, text, "practice")


def test_hypothetical_mention_does_not_tag_on_its_own(tagger: CombinedTagger) -> None:
    assert "self_neglect" not in labels(
        tagger, "If there had been any hoarding, a referral would have followed.", "vulnerability"
    )
    assert "self_neglect" in labels(tagger, "His flat showed serious hoarding and he refused care.", "vulnerability")


def test_recommendation_modal_is_not_a_negation(tagger: CombinedTagger) -> None:
    text = "Recommendation 2: Westbury Police should ensure that officers are trained on coercive control."
    assert "coercive_control" in labels(tagger, text, "vulnerability", section="recommendations")
    assert "training_knowledge" in labels(tagger, text, "practice", section="recommendations")


def test_terms_of_reference_and_method_carry_no_themes(tagger: CombinedTagger) -> None:
    text = "The terms of reference asked how agencies assessed risk, shared information and responded to stalking."
    assert not labels(tagger, text, "practice", section="introduction")
    assert not labels(tagger, text, "vulnerability", section="introduction")
    method = "Individual Management Reviews were requested from the police and the domestic abuse service."
    assert not labels(tagger, method, "vulnerability", section="methodology")


def test_review_names_are_not_evidence(tagger: CombinedTagger) -> None:
    text = "This Domestic Homicide Review was commissioned in March 2022."
    assert "domestic_abuse" not in labels(tagger, text, "vulnerability", section="introduction")


def test_every_tag_has_evidence_score_and_method(tagger: CombinedTagger) -> None:
    text = "Officers did not complete a DASH risk assessment. This was a missed opportunity to refer Louise to MARAC."
    results, _ = tag(tagger, text)
    assert results
    for result in results:
        assert isinstance(result, TagResult)
        assert result.facet in FACETS
        assert 0.0 < result.score <= 1.0
        assert result.method in DEFAULT_TAGGERS
        assert result.evidence
    risk = next(r for r in results if r.label == "risk_assessment")
    assert "DASH risk assessment" in risk.evidence and "Officers did not complete" in risk.evidence


# ---- missed opportunities ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "This was a missed opportunity to refer Louise to the MARAC.",
        "The opportunity to share the information with the school was missed.",
        "Officers should have arrested Mark at the scene.",
        "No referral was made to children's social care.",
        "There is no record that she was asked about domestic abuse.",
        "The risk was not recognised by the call handler.",
        "The GP did not ask whether Louise felt safe at home.",
        "Nobody asked Child T how things were at home.",
        "Nor did officers ask Amy whether she felt safe.",  # a cue with a part-of-speech alternative
        "The GP not referring her to the memory clinic left her without a diagnosis.",
    ],
)
def test_missed_opportunity_cues(tagger: CombinedTagger, text: str) -> None:
    results, found = tag(tagger, text)
    assert found.get("missed_opportunity") == {"true"}
    evidence = next(r.evidence for r in results if r.facet == "missed_opportunity")
    assert evidence == text  # the sentence that carries it


@pytest.mark.parametrize(
    "text, section",
    [
        ("Officers correctly identified that this was a missed call and rang back within minutes.", "analysis"),
        ("With hindsight it is easy to say that officers should have arrested him.", "analysis"),
        ("It cannot be said that the outcome could have been predicted.", "analysis"),
        ("There were no missed opportunities in the police response.", "analysis"),
        ("Officers attended within fourteen minutes and completed a DASH with Louise.", "analysis"),
        ("Recommendation 1: Westbury Police should ensure that no referral is left unsubmitted.", "recommendations"),
    ],
)
def test_not_missed_opportunities(tagger: CombinedTagger, text: str, section: str) -> None:
    assert "missed_opportunity" not in tag(tagger, text, section=section)[1]


def test_good_practice_in_one_clause_does_not_hide_a_failure_in_the_next(tagger: CombinedTagger) -> None:
    text = "The researcher correctly identified the conviction, but the disclosure was not made for 66 days."
    assert labels(tagger, text, "missed_opportunity") == {"true"}


def test_missed_opportunity_evidence_is_the_carrying_sentence(tagger: CombinedTagger) -> None:
    text = "Louise called 999 on 2 February. The officers should have checked the history. She was seen alone."
    results, _ = tag(tagger, text)
    evidence = [r.evidence for r in results if r.facet == "missed_opportunity"]
    assert evidence == ["The officers should have checked the history."]


# ---- agencies, police relevance, recommendations -----------------------------------------------------------


def test_agency_judged_in_a_sentence_with_a_judgement(tagger: CombinedTagger) -> None:
    assert labels(tagger, "The GP did not ask whether Louise felt safe.", "agency") == {"health"}
    assert labels(tagger, "Paramedics acted promptly and made a safeguarding referral.", "agency") == {"ambulance"}


def test_agency_named_but_not_judged(tagger: CombinedTagger) -> None:
    assert not labels(tagger, "Louise rang the police from her sister's house on 3 June.", "agency")


def test_agency_on_the_receiving_end_is_not_judged(tagger: CombinedTagger) -> None:
    text = "The probation officer failed to check with the police before the hearing."
    assert labels(tagger, text, "agency") == {"probation"}  # not police, and not the "officer" inside the name


def test_review_type_decides_which_social_care(tagger: CombinedTagger) -> None:
    text = "The social worker did not visit for six weeks."
    assert labels(tagger, text, "agency", review_type="CSPR") == {"childrens_social_care"}
    assert labels(tagger, text, "agency", review_type="SAR") == {"adult_social_care"}


def test_chronology_row_judges_its_acting_agency_only_when_it_passes_judgement(tagger: CombinedTagger) -> None:
    fact = "12/03/2021 Police Officers attend a report of a verbal argument. A PPN is submitted to the MASH."
    judged = "12/03/2021 Police Officers attend a verbal argument. No DASH is completed and the MASH is not told."
    assert not labels(tagger, fact, "agency", section="chronology", kind="table_row")
    assert labels(tagger, judged, "agency", section="chronology", kind="table_row") == {"police"}


def test_review_process_paragraphs_judge_no_agency(tagger: CombinedTagger) -> None:
    text = "Individual Management Reviews were requested from Westbury Police and the GP, who responded promptly."
    assert not labels(tagger, text, "agency", section="methodology")
    assert not labels(tagger, text, "police_relevant", section="methodology")


def test_police_relevance(tagger: CombinedTagger) -> None:
    assert labels(tagger, "Officers attended the address and spoke to Louise.", "police_relevant") == {"true"}
    assert labels(tagger, "Mark was arrested and released on bail the next day.", "police_relevant") == {"true"}
    assert not labels(tagger, "The health visitor saw the baby at home.", "police_relevant")


def test_recommendation_addressed_to_a_named_agency(tagger: CombinedTagger) -> None:
    text = "Recommendation 4: Eastmoor Police should ensure that officers refer to children's social care within a day."
    _, found = tag(tagger, text, section="recommendations")
    assert found["recommendation_to"] == {"police"}
    assert found["agency"] == {"police"}
    assert found["police_relevant"] == {"true"}


def test_partnership_recommendation_adds_the_agencies_named_to_act(tagger: CombinedTagger) -> None:
    text = (
        "Recommendation 2: The Safeguarding Adults Board should seek assurance from adult social care that "
        "staff are trained to assess executive capacity."
    )
    _, found = tag(tagger, text, section="recommendations", review_type="SAR")
    assert found["recommendation_to"] == {"other", "adult_social_care"}
    assert "police_relevant" not in found


def test_no_addressees_outside_recommendations(tagger: CombinedTagger) -> None:
    assert not labels(tagger, "Eastmoor Police should have arrested Mark.", "recommendation_to")


# ---- registry, combination, taxonomy edits --------------------------------------------------------------


def test_taggers_are_registered_by_versioned_name_and_alias() -> None:
    assert set(DEFAULT_TAGGERS) <= set(registry.names("tagger"))
    assert registry.resolve("tagger", "rules") == "tagger.rules.v1"
    assert registry.resolve("tagger", "missed_opportunity") == "detector.missed_opportunity.rules.v1"


def test_null_tagger_tags_nothing() -> None:
    items = [TagInput("Officers should have arrested Mark.")]
    assert create_tagger("none").tag(items) == [[]]
    assert NullTagger().tag(items * 3) == [[], [], []]


def test_combined_tagger_keeps_each_method(tagger: CombinedTagger) -> None:
    results, _ = tag(tagger, "Officers should have completed a DASH risk assessment.")
    assert {r.method for r in results} >= {"tagger.rules.v1", "detector.missed_opportunity.rules.v1"}
    info = run_info(tagger)
    assert info.method == "+".join(DEFAULT_TAGGERS)
    assert info.taxonomy_version == load_taxonomy().version


def test_edited_taxonomy_is_picked_up_by_retagging(tmp_path: Path) -> None:
    folder = tmp_path / "taxonomy"
    shutil.copytree(settings.project_root() / "taxonomy", folder)
    path = folder / "perennial_issues.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["themes"][0]["phrases"].append("purple elephant protocol")
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    item = [TagInput("The purple elephant protocols were ignored.", section_kind="analysis")]

    shipped, edited = RulesTagger(), RulesTagger(load_taxonomy(folder))
    assert shipped.taxonomy_version != edited.taxonomy_version
    assert data["themes"][0]["id"] not in by_facet(shipped.tag(item)[0]).get("practice", set())
    assert data["themes"][0]["id"] in by_facet(edited.tag(item)[0])["practice"]


def test_trimmed_pipeline_reads_words_as_the_full_model_does() -> None:
    import spacy

    from vkpp_learning.evaluate import load_gold
    from vkpp_learning.tagging import nlp

    texts = [p.text for p in load_gold(Path(__file__).parent / "data" / "gold_small.jsonl")]
    full = nlp.load_model(spacy)
    ours = nlp.load_nlp()
    assert "attribute_ruler" not in ours.pipe_names and "parser" not in ours.pipe_names
    for expected, got in zip(full.pipe(texts), nlp.parse(texts), strict=True):
        # The tagger runs its matrix products through NumPy here, through BLIS in the stock model: same tags.
        assert [(t.tag_, t.lemma_, t.pos_, str(t.morph)) for t in expected] == [
            (t.tag_, t.lemma_, t.pos_, str(t.morph)) for t in got
        ]
        assert len(list(got.sents)) >= 1


def test_cue_patterns_split_at_their_first_step_match_as_written() -> None:
    from spacy.matcher import Matcher

    from vkpp_learning.evaluate import load_gold
    from vkpp_learning.tagging import cues, nlp

    assert cues.split_first_step("miss|missed DET? opportunity") == ["miss DET? opportunity", "missed DET? opportunity"]
    assert cues.split_first_step("ADV? VERB") == ["ADV? VERB"]
    written = Matcher(nlp.load_nlp().vocab)
    for i, (_, _, notation) in enumerate(cues.MISSED_OPPORTUNITY_CUES):
        written.add(f"mo:{i}", [cues.compile_pattern(notation)])
    written.add("good_practice", [cues.compile_pattern(n) for n in cues.GOOD_PRACTICE_CUES])
    written.add("hindsight", [cues.compile_pattern(n) for n in cues.HINDSIGHT_CUES])
    texts = [p.text for p in load_gold(Path(__file__).parent / "data" / "gold_small.jsonl")]
    finder, found = cues.cue_finder(), 0
    for doc in nlp.parse(texts):
        expected = {(finder._cues[m], s, e) for m, s, e in written(doc)}
        got = {((c.kind, c.weight), c.start, c.end) for c in finder.find(doc)}
        assert got == expected
        found += len(got)
    assert found >= 10  # the sample passages hold cues of several kinds

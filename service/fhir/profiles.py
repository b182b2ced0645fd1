"""The service's own extensions as StructureDefinitions (served at /fhir/StructureDefinition/{id})."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BASE = "https://recovery-proms.org/fhir"
VERSION = "1.0.0"


@dataclass(frozen=True, slots=True)
class Part:
    url: str
    type: str
    required: bool
    short: str


@dataclass(frozen=True, slots=True)
class ExtensionDefinition:
    id: str
    title: str
    description: str
    contexts: tuple[str, ...]
    value_type: str | None = None  # simple extension
    parts: tuple[Part, ...] = ()  # complex extension
    repeats: bool = False


SCORE_ITEM = "Questionnaire.item"
EXTENSIONS = (
    ExtensionDefinition(
        "score-band",
        "Score band",
        "One interpretation band of a score: a closed range, its code and how urgently a clinician should look.",
        (SCORE_ITEM,),
        parts=(
            Part("low", "decimal", True, "Lowest score in the band (inclusive)"),
            Part("high", "decimal", True, "Highest score in the band (inclusive)"),
            Part("code", "Coding", True, "The band"),
            Part("severity", "code", True, "info | warning | critical"),
        ),
        repeats=True,
    ),
    ExtensionDefinition(
        "score-direction",
        "Score direction",
        "Which way is better for this score or item: higher-is-better | lower-is-better.",
        (SCORE_ITEM,),
        value_type="code",
    ),
    ExtensionDefinition(
        "reliable-change",
        "Reliable change threshold",
        "The smallest absolute change in the score that counts as reliable (beyond measurement error).",
        (SCORE_ITEM,),
        value_type="decimal",
    ),
    ExtensionDefinition(
        "clinical-cutoff",
        "Clinical cut-off",
        "The score where the clinical range begins (caseness): a score at or beyond it in the worse direction "
        "(score-direction) is in the clinical range, one on the better side is not. What outcome reports use for "
        "clinically significant change (Jacobson and Truax).",
        (SCORE_ITEM,),
        value_type="decimal",
    ),
    ExtensionDefinition(
        "score-minimum-answers",
        "Minimum answered items for a score",
        "How many of the items a score is made from must be answered for the score to be made: the number in the "
        "instrument's missing-item rule, which the score's calculatedExpression applies. A response with fewer is "
        "stored without that score, with a warning naming the rule.",
        (SCORE_ITEM,),
        value_type="integer",
    ),
    ExtensionDefinition(
        "minimal-important-difference",
        "Minimal important difference",
        "The smallest change in the score that matters to people.",
        (SCORE_ITEM,),
        value_type="decimal",
    ),
    ExtensionDefinition(
        "safety-flag",
        "Safety flag",
        "A condition over the response that must be brought to a clinician's attention.",
        ("Questionnaire", SCORE_ITEM),
        parts=(
            Part("condition", "Expression", True, "FHIRPath; true raises the flag"),
            Part("message", "string", True, "What the clinician is told"),
        ),
        repeats=True,
    ),
    ExtensionDefinition(
        "recovery-domain",
        "Recovery domain",
        "The CHIME process, or the instrument's own domain, an item or score belongs to.",
        (SCORE_ITEM,),
        value_type="Coding",
        repeats=True,
    ),
    ExtensionDefinition(
        "profile-item",
        "Strengths and priorities item",
        "The item takes part in the strengths and priorities view of the person's latest response.",
        (SCORE_ITEM,),
        value_type="boolean",
    ),
    ExtensionDefinition(
        "reliable-change-result",
        "Reliable change result",
        "On a score Observation: how the score changed since the same person's previous response to the "
        "same instrument.",
        ("Observation",),
        parts=(
            Part("result", "code", True, "improved | deteriorated | no-reliable-change | unknown"),
            Part("difference", "decimal", True, "This score minus the previous one"),
            Part("previousValue", "decimal", True, "The previous score"),
            Part("previousResponse", "Reference", True, "The QuestionnaireResponse the previous score came from"),
        ),
    ),
)


def _element(path: str, element_id: str, **rest: Any) -> dict[str, Any]:
    return {"id": element_id, "path": path, **rest}


def structure_definition(definition: ExtensionDefinition) -> dict[str, Any]:
    url = f"{BASE}/StructureDefinition/{definition.id}"
    elements: list[dict[str, Any]] = [
        _element(
            "Extension",
            "Extension",
            short=definition.title,
            definition=definition.description,
            min=0,
            max="*" if definition.repeats else "1",
        )
    ]
    if definition.value_type is not None:
        elements.append(_element("Extension.extension", "Extension.extension", max="0"))
        elements.append(_element("Extension.url", "Extension.url", fixedUri=url))
        elements.append(
            _element("Extension.value[x]", "Extension.value[x]", min=1, type=[{"code": definition.value_type}])
        )
    else:
        elements.append(
            _element(
                "Extension.extension",
                "Extension.extension",
                slicing={"discriminator": [{"type": "value", "path": "url"}], "rules": "closed"},
            )
        )
        for part in definition.parts:
            slice_id = f"Extension.extension:{part.url}"
            elements += [
                _element(
                    "Extension.extension",
                    slice_id,
                    sliceName=part.url,
                    short=part.short,
                    min=1 if part.required else 0,
                    max="1",
                ),
                _element("Extension.extension.url", f"{slice_id}.url", fixedUri=part.url),
                _element("Extension.extension.value[x]", f"{slice_id}.value[x]", min=1, type=[{"code": part.type}]),
            ]
        elements.append(_element("Extension.url", "Extension.url", fixedUri=url))
        elements.append(_element("Extension.value[x]", "Extension.value[x]", max="0"))
    return {
        "resourceType": "StructureDefinition",
        "id": definition.id,
        "url": url,
        "version": VERSION,
        "name": "".join(word.capitalize() for word in definition.id.split("-")),
        "title": definition.title,
        "status": "active",
        "description": definition.description,
        "fhirVersion": "4.0.1",
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": context} for context in definition.contexts],
        "type": "Extension",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
        "derivation": "constraint",
        "differential": {"element": elements},
    }


STRUCTURE_DEFINITIONS = {definition.id: structure_definition(definition) for definition in EXTENSIONS}

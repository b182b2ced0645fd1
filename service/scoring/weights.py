"""weight()/ordinal() and answers(): the numeric weight of an answer, looked up the way SDC and fhirpath.js do.

For each input the first weight found wins:

1. an ``itemWeight``/``ordinalValue`` extension on the value itself (a Coding's ``extension``, a
   primitive's ``_valueX.extension``) or on the answer;
2. for an answer in the response, the matching ``answerOption`` of its Questionnaire item (the
   extension on the option, or on the option's ``valueCoding``);
3. for a Coding answer, the item's ``answerValueSet`` when it is a ValueSet contained in the
   Questionnaire (``#id``, or its canonical url) or supplied by the caller: the matching
   ``expansion.contains`` entry, then the matching ``compose.include.concept``;
4. the CodeSystem of the Coding's system, contained in the response or the Questionnaire, or supplied by
   the caller: the concept's extension, or its ``itemWeight`` property (declared with
   ``http://hl7.org/fhir/concept-properties#itemWeight``).

Codings match on ``code`` and ``system``. Unlike fhirpath.js, an answer Coding *without* a system also
matches on its code alone when that code is unambiguous (published examples such as the SDC PHQ-9 omit
the system). Where fhirpath.js would ask a terminology server (a coded answer with a system whose option
carries no weight and whose CodeSystem is not at hand), this raises instead: the service does no I/O
while scoring, and a silently missing weight would make a total wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from service.scoring.extensions import ITEM_WEIGHT_PROPERTY, as_list, as_mapping, embedded_weight, to_number
from service.scoring.functions import FhirPathError, NodeView

Number = int | Decimal
# (linkId, code, system) of a coded answer -> (the answer option it picks, the weight that option carries)
OptionCache = dict[tuple[str, str, str | None], tuple[Mapping[str, Any], Number | None]]
T = TypeVar("T")
_SEGMENT = re.compile(r"([A-Za-z]+)(?:\[(\d+)\])?")
_STANDALONE_TYPES = ("ValueSet.compose.include.concept", "ValueSet.expansion.contains", "CodeSystem.concept")


class Terminology:
    """ValueSets and CodeSystems at hand (contained in the Questionnaire, or supplied by the caller)."""

    def __init__(self, resources: Sequence[Mapping[str, Any]] = ()) -> None:
        self.by_id: dict[str, Mapping[str, Any]] = {}
        self.value_sets: dict[str, Mapping[str, Any]] = {}
        self.code_systems: dict[str, Mapping[str, Any]] = {}
        for resource in resources:
            if not isinstance(resource, Mapping):
                continue
            if isinstance(resource.get("id"), str):
                self.by_id.setdefault(resource["id"], resource)
            url = resource.get("url")
            if isinstance(url, str):
                url = url.split("|")[0]
                if resource.get("resourceType") == "ValueSet":
                    self.value_sets.setdefault(url, resource)
                elif resource.get("resourceType") == "CodeSystem":
                    self.code_systems.setdefault(url, resource)


def _value_key(answer: Mapping[str, Any]) -> str | None:
    for key in answer:
        if key.startswith("value") and len(key) > 5:
            return key
    for key in answer:  # a value known only by its extensions (``_valueInteger`` without ``valueInteger``)
        if key.startswith("_value") and len(key) > 6:
            return key[1:]
    return None


def _coding_matches(option: Any, code: Any, system: Any, lenient: bool) -> bool:
    return isinstance(option, Mapping) and option.get("code") == code and (lenient or option.get("system") == system)


def _single(candidates: list[T]) -> T | None:
    """The one candidate, or None when there are none or several (an ambiguous match is no match)."""
    return candidates[0] if len(candidates) == 1 else None


def _concepts(concepts: Any) -> Iterator[Mapping[str, Any]]:
    for concept in as_list(concepts):
        if isinstance(concept, Mapping):
            yield concept
            yield from _concepts(concept.get("concept"))


def _contains(entries: Any) -> Iterator[Mapping[str, Any]]:
    for entry in as_list(entries):
        if isinstance(entry, Mapping):
            yield entry
            yield from _contains(entry.get("contains"))


class AnswerWeights:
    """The SDC functions over one Questionnaire and one response (see the module docstring)."""

    def __init__(
        self,
        response: Mapping[str, Any],
        items_by_link_id: Mapping[str, Mapping[str, Any]],
        contained: Terminology,
        supplied: Terminology,
        *,
        options: OptionCache | None = None,
    ) -> None:
        self.response = response
        self.items = items_by_link_id
        self.contained = contained
        self.supplied = supplied
        self.response_contained = Terminology(as_list(response.get("contained")))
        # The matching answer option of a coded answer and its weight depend only on the Questionnaire:
        # shared by every response scored against it (see QuestionnaireDefinition.options).
        self.options: OptionCache = {} if options is None else options

    # -- SdcFunctions ----------------------------------------------------------------------------------

    def weights(self, inputs: Sequence[NodeView]) -> list[Number]:
        result: list[Number] = []
        last_location: str | None = None
        for view in inputs:
            is_extension_half = isinstance(view.data, Mapping) and list(view.data) == ["extension"]
            if is_extension_half and view.location is not None and view.location == last_location:
                continue  # the ``_valueX`` half of a primitive already weighed with its value
            last_location = view.location
            weight = self._weight(view)
            if weight is not None:
                result.append(weight)
        return result

    def answers(self, inputs: Sequence[NodeView]) -> list[tuple[Mapping[str, Any], str | None]]:
        found: list[tuple[Mapping[str, Any], str | None]] = []
        for view in inputs:
            data = view.data
            if not isinstance(data, Mapping):
                continue
            if data.get("resourceType") == "QuestionnaireResponse":
                for index, item in enumerate(as_list(data.get("item"))):
                    found.extend(self._item_answers(item, f"QuestionnaireResponse.item[{index}]"))
            elif "linkId" in data:
                found.extend(self._item_answers(data, view.location or self._locate(data)))
        return found

    # -- answers() -------------------------------------------------------------------------------------

    def _item_answers(self, item: Any, location: str | None) -> Iterator[tuple[Mapping[str, Any], str | None]]:
        if not isinstance(item, Mapping):
            return
        for a_index, answer in enumerate(as_list(item.get("answer"))):
            if not isinstance(answer, Mapping):
                continue
            answer_location = None if location is None else f"{location}.answer[{a_index}]"
            yield answer, answer_location
            for c_index, child in enumerate(as_list(answer.get("item"))):
                yield from self._item_answers(child, answer_location and f"{answer_location}.item[{c_index}]")
        for c_index, child in enumerate(as_list(item.get("item"))):
            yield from self._item_answers(child, location and f"{location}.item[{c_index}]")

    def _locate(self, target: Mapping[str, Any]) -> str | None:
        def search(items: Any, prefix: str) -> str | None:
            for index, item in enumerate(as_list(items)):
                here = f"{prefix}.item[{index}]"
                if item is target:
                    return here
                if not isinstance(item, Mapping):
                    continue
                found = search(item.get("item"), here)
                for a_index, answer in enumerate(as_list(item.get("answer"))):
                    if found is None and isinstance(answer, Mapping):
                        found = search(answer.get("item"), f"{here}.answer[{a_index}]")
                if found is not None:
                    return found
            return None

        return search(self.response.get("item"), "QuestionnaireResponse")

    # -- weight() --------------------------------------------------------------------------------------

    def _answer_at(self, location: str | None) -> tuple[Mapping[str, Any], Mapping[str, Any], bool] | None:
        """(item, answer, is_value) when ``location`` names an answer or an answer's value in the response."""
        if not location or not location.startswith("QuestionnaireResponse."):
            return None
        node: Any = self.response
        item: Mapping[str, Any] | None = None
        answer: Mapping[str, Any] | None = None
        segments = location.split(".")[1:]
        for position, segment in enumerate(segments):
            match = _SEGMENT.fullmatch(segment)
            if match is None:
                return None
            name, index = match.group(1), match.group(2)
            if name == "value" and answer is not None and position == len(segments) - 1 and index is None:
                return (item, answer, True) if item is not None else None
            if name not in ("item", "answer") or index is None or not isinstance(node, Mapping):
                return None
            children = node.get(name)
            if not isinstance(children, list) or int(index) >= len(children):
                return None
            node = children[int(index)]
            if not isinstance(node, Mapping):
                return None
            if name == "item":
                item, answer = node, None
            else:
                answer = node
        return (item, answer, False) if item is not None and answer is not None else None

    def _weight(self, view: NodeView) -> Number | None:
        place = self._answer_at(view.location)
        if place is not None:
            item, answer, is_value = place
            key = _value_key(answer)
            if key is None:
                return None
            value = answer.get(key)
            if is_value:
                if not (view.data is value or view.data is answer.get("_" + key) or view.data == value):
                    return None  # the location belongs to another resource than this response
            elif view.data is not answer:
                return None
            return self.answer_weight(item, answer, key)
        data = view.data
        if view.type_name == "Questionnaire.item.answerOption" and isinstance(data, Mapping):
            weight = embedded_weight(data)
            return weight if weight is not None else embedded_weight(data.get("valueCoding"))
        weight = embedded_weight(data)
        if weight is not None or view.type_name in _STANDALONE_TYPES:
            return weight
        if view.type_name == "Coding" and isinstance(data, Mapping) and data.get("system") and data.get("code"):
            return self._from_code_system(str(data["system"]), data["code"], describe_as="a Coding")
        return None

    def answer_weight(self, item: Mapping[str, Any], answer: Mapping[str, Any], key: str) -> Number | None:
        """The weight of ``answer`` (an answer of the response ``item``) whose value is at ``key``."""
        value = answer.get(key)
        if key == "valueCoding" and type(value) is dict and "extension" not in value and "extension" not in answer:
            # The usual coded answer: its option's weight, once the option has been looked up (see
            # _option_weight), with nothing on the answer itself that could override it.
            link_id, code, system = item.get("linkId"), value.get("code"), value.get("system")
            if type(link_id) is str and type(code) is str and (system is None or type(system) is str):
                found = self.options.get((link_id, code, system))
                if found is not None and found[1] is not None and "_valueCoding" not in answer:
                    return found[1]
        for holder in (answer.get("_" + key), value, answer):
            weight = embedded_weight(holder)
            if weight is not None:
                return weight
        if value is None:
            return None
        return self._from_questionnaire(str(item.get("linkId")), key[5:], value)

    def _from_questionnaire(self, link_id: str, value_type: str, value: Any) -> Number | None:
        q_item = self.items.get(link_id)
        if q_item is None:
            raise FhirPathError(f"weight(): the Questionnaire has no item with linkId {link_id!r}")
        option, weight = self._option_weight(link_id, q_item, value_type, value)
        if weight is not None:
            return weight
        if value_type != "Coding" or not isinstance(value, Mapping) or not value.get("code"):
            return None
        code, system = value["code"], value.get("system")
        value_set_url = q_item.get("answerValueSet")
        if option is None and not isinstance(value_set_url, str):
            return None  # not one of the item's options: nothing to weigh (validation reports it)
        concept_system: Any = None
        if isinstance(value_set_url, str):
            weight, concept_system = self._from_value_set(value_set_url, code, system)
            if weight is not None:
                return weight
        if option is not None:
            concept_system = concept_system or as_mapping(option.get("valueCoding")).get("system")
        effective_system = system or concept_system
        if not effective_system:
            return None
        return self._from_code_system(str(effective_system), code, describe_as=f"the answer to {link_id!r}")

    def _option_weight(
        self, link_id: str, q_item: Mapping[str, Any], value_type: str, value: Any
    ) -> tuple[Mapping[str, Any] | None, Number | None]:
        """The answer option ``value`` picks, and the weight the option carries (None when it carries none)."""
        key: tuple[str, str, str | None] | None = None
        if value_type == "Coding" and isinstance(value, Mapping):
            code, system = value.get("code"), value.get("system")
            if isinstance(code, str) and (system is None or isinstance(system, str)):
                key = (link_id, code, system)
                found = self.options.get(key)
                if found is not None:
                    return found
        option = self._matching_option(q_item, value_type, value)
        weight = None
        if option is not None:
            for holder in (option, option.get("valueCoding")):
                weight = embedded_weight(holder)
                if weight is not None:
                    break
            if key is not None:  # only codes of the item's options are kept: the cache cannot outgrow them
                self.options[key] = (option, weight)
        return option, weight

    def _matching_option(self, q_item: Mapping[str, Any], value_type: str, value: Any) -> Mapping[str, Any] | None:
        options = [option for option in as_list(q_item.get("answerOption")) if isinstance(option, Mapping)]
        if value_type == "Coding":
            if not isinstance(value, Mapping):
                return None
            code, system = value.get("code"), value.get("system")
            strict = [o for o in options if _coding_matches(o.get("valueCoding"), code, system, lenient=False)]
            if strict or system is not None:
                return strict[0] if strict else None
            return _single([o for o in options if _coding_matches(o.get("valueCoding"), code, None, lenient=True)])
        key = "value" + value_type
        for option in options:
            if key not in option:
                continue
            candidate = option[key]
            if value_type in ("Integer", "Decimal"):
                if to_number(candidate) is not None and to_number(candidate) == to_number(value):
                    return option
            elif isinstance(value, Mapping):
                if isinstance(candidate, Mapping) and all(
                    candidate.get(k) == v for k, v in value.items() if k != "extension"
                ):
                    return option
            elif candidate == value:
                return option
        return None

    def _value_set(self, url: str) -> Mapping[str, Any] | None:
        if url.startswith("#"):
            found = self.contained.by_id.get(url[1:])
            if found is None or found.get("resourceType") != "ValueSet":
                raise FhirPathError(f"weight(): the Questionnaire contains no ValueSet with id {url[1:]!r}")
            return found
        canonical = url.split("|")[0]
        value_set = self.contained.value_sets.get(canonical) or self.supplied.value_sets.get(canonical)
        return value_set

    def _from_value_set(self, url: str, code: Any, system: Any) -> tuple[Number | None, Any]:
        """(weight, system of the matching concept) from the item's answerValueSet."""
        value_set = self._value_set(url)
        if value_set is None:
            return None, None
        lenient = system is None
        expansion = as_mapping(value_set.get("expansion"))
        entries = [e for e in _contains(expansion.get("contains")) if _coding_matches(e, code, system, lenient)]
        entry = _single(entries) if lenient else (entries[0] if entries else None)
        matched_system = entry.get("system") if entry is not None else None
        if entry is not None and embedded_weight(entry) is not None:
            return embedded_weight(entry), matched_system
        concepts: list[tuple[Mapping[str, Any], Any]] = []
        for include in as_list(as_mapping(value_set.get("compose")).get("include")):
            if isinstance(include, Mapping) and (lenient or include.get("system") == system):
                concepts.extend(
                    (concept, include.get("system"))
                    for concept in _concepts(include.get("concept"))
                    if concept.get("code") == code
                )
        found = _single(concepts) if lenient else (concepts[0] if concepts else None)
        if found is not None:
            concept, include_system = found
            return embedded_weight(concept), matched_system or include_system
        return None, matched_system

    def _from_code_system(self, system: str, code: Any, describe_as: str) -> Number | None:
        canonical = system.split("|")[0]
        code_system = (
            self.response_contained.code_systems.get(canonical)
            or self.contained.code_systems.get(canonical)
            or self.supplied.code_systems.get(canonical)
        )
        if code_system is None:
            raise FhirPathError(
                f"weight(): no weight for {describe_as} ({system}|{code}): neither the answer option, the "
                "ValueSet nor a CodeSystem at hand gives one (terminology servers are not consulted)"
            )
        concept = next((c for c in _concepts(code_system.get("concept")) if c.get("code") == code), None)
        if concept is None:
            return None
        weight = embedded_weight(concept)
        if weight is not None:
            return weight
        declared = {
            p["code"]
            for p in as_list(code_system.get("property"))
            if isinstance(p, Mapping) and p.get("uri") == ITEM_WEIGHT_PROPERTY and isinstance(p.get("code"), str)
        }
        for prop in as_list(concept.get("property")):
            if isinstance(prop, Mapping) and isinstance(prop.get("code"), str) and prop["code"] in declared:
                weight = to_number(prop.get("valueDecimal", prop.get("valueInteger")))
                if weight is not None:
                    return weight
        return None

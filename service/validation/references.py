"""Syntax of uri answers and Reference answers (R4 resource types, relative/absolute/urn forms)."""

from __future__ import annotations

import re

R4_RESOURCE_TYPES = frozenset(
    """Account ActivityDefinition AdverseEvent AllergyIntolerance Appointment AppointmentResponse AuditEvent
    Basic Binary BiologicallyDerivedProduct BodyStructure Bundle CapabilityStatement CarePlan CareTeam
    CatalogEntry ChargeItem ChargeItemDefinition Claim ClaimResponse ClinicalImpression CodeSystem
    Communication CommunicationRequest CompartmentDefinition Composition ConceptMap Condition Consent
    Contract Coverage CoverageEligibilityRequest CoverageEligibilityResponse DetectedIssue Device
    DeviceDefinition DeviceMetric DeviceRequest DeviceUseStatement DiagnosticReport DocumentManifest
    DocumentReference EffectEvidenceSynthesis Encounter Endpoint EnrollmentRequest EnrollmentResponse
    EpisodeOfCare EventDefinition Evidence EvidenceVariable ExampleScenario ExplanationOfBenefit
    FamilyMemberHistory Flag Goal GraphDefinition Group GuidanceResponse HealthcareService ImagingStudy
    Immunization ImmunizationEvaluation ImmunizationRecommendation ImplementationGuide InsurancePlan
    Invoice Library Linkage List Location Measure MeasureReport Media Medication MedicationAdministration
    MedicationDispense MedicationKnowledge MedicationRequest MedicationStatement MedicinalProduct
    MedicinalProductAuthorization MedicinalProductContraindication MedicinalProductIndication
    MedicinalProductIngredient MedicinalProductInteraction MedicinalProductManufactured
    MedicinalProductPackaged MedicinalProductPharmaceutical MedicinalProductUndesirableEffect
    MessageDefinition MessageHeader MolecularSequence NamingSystem NutritionOrder Observation
    ObservationDefinition OperationDefinition OperationOutcome Organization OrganizationAffiliation
    Parameters Patient PaymentNotice PaymentReconciliation Person PlanDefinition Practitioner
    PractitionerRole Procedure Provenance Questionnaire QuestionnaireResponse RelatedPerson RequestGroup
    ResearchDefinition ResearchElementDefinition ResearchStudy ResearchSubject RiskAssessment
    RiskEvidenceSynthesis Schedule SearchParameter ServiceRequest Slot Specimen SpecimenDefinition
    StructureDefinition StructureMap Subscription Substance SubstanceNucleicAcid SubstancePolymer
    SubstanceProtein SubstanceReferenceInformation SubstanceSourceMaterial SubstanceSpecification
    SupplyDelivery SupplyRequest Task TerminologyCapabilities TestReport TestScript ValueSet
    VerificationResult VisionPrescription""".split()
)

# RFC 3986 characters (reserved, unreserved and percent escapes); no spaces, backslashes or controls.
_URI = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
_UUID = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_OID = re.compile(r"urn:oid:[0-2](\.(0|[1-9][0-9]*))+")
_ID = r"[A-Za-z0-9\-.]{1,64}"
_RELATIVE = re.compile(rf"([A-Za-z]+)/({_ID})(/_history/{_ID})?")
_RESTFUL_TAIL = re.compile(rf"(?:^|/)([A-Z][A-Za-z]+)/({_ID})(/_history/{_ID})?")


def uri_problem(text: str) -> str | None:
    """Why ``text`` is not a valid FHIR uri, or None."""
    if text != text.strip() or text == "":
        return "has leading or trailing whitespace or is empty"
    position = 0
    while position < len(text):
        match = _URI.match(text, position)
        if match is None:
            return f"contains a character not allowed in a URI ({text[position]!r})"
        position = match.end()
    lowered = text.lower()
    if lowered.startswith("urn:uuid:") and _UUID.fullmatch(lowered) is None:
        return "is not a valid urn:uuid (urn:uuid: followed by a lowercase RFC 4122 UUID)"
    if lowered.startswith("urn:oid:") and _OID.fullmatch(text) is None:
        return "is not a valid urn:oid"
    return None


def reference_target(reference: str) -> tuple[str | None, str | None]:
    """(resource type the reference points to when it can be read from it, problem with its syntax)."""
    if reference.startswith("#"):
        return None, None  # contained resource ('#' alone is the container itself)
    problem = uri_problem(reference)
    if problem is not None:
        return None, problem
    if reference.startswith(("urn:uuid:", "urn:oid:")):
        return None, None
    if _SCHEME.match(reference):
        tail = _RESTFUL_TAIL.search(reference.split("?", 1)[0].split("#", 1)[0])
        if tail is None:
            return None, None  # an absolute URL that is not a RESTful FHIR address: nothing more to check
        kind = tail.group(1)
        if kind not in R4_RESOURCE_TYPES:
            return kind, f"names '{kind}', which is not a FHIR R4 resource type"
        return kind, None
    relative = _RELATIVE.fullmatch(reference)
    if relative is None:
        return None, "is neither a relative reference (Type/id), an absolute URL nor a urn"
    kind = relative.group(1)
    if kind not in R4_RESOURCE_TYPES:
        return kind, f"names '{kind}', which is not a FHIR R4 resource type"
    return kind, None

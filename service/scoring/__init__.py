"""Scoring a QuestionnaireResponse: SDC FHIRPath calculations, interpretation bands, safety flags, change.

Pure: FHIR JSON in, plain data out; no Flask, no database, no network.
"""

from service.fhir.issues import Issue
from service.scoring.check import ExpressionLocation, compile_questionnaire, questionnaire_expressions
from service.scoring.functions import FhirPathError
from service.scoring.interpret import reliable_change
from service.scoring.results import Band, SafetyFlag, Score, ScoringResult
from service.scoring.score import evaluate_expression, score_response

__all__ = [
    "Band",
    "ExpressionLocation",
    "FhirPathError",
    "Issue",
    "SafetyFlag",
    "Score",
    "ScoringResult",
    "compile_questionnaire",
    "evaluate_expression",
    "questionnaire_expressions",
    "reliable_change",
    "score_response",
]

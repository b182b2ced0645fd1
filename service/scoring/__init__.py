"""Scoring a QuestionnaireResponse: SDC FHIRPath calculations, interpretation bands, safety flags, change.

Also the service's one FHIRPath engine (``compile_expression``, ``ResponseEvaluator``, ``plain``), with
SDC's environment and functions; validation evaluates its expressions through it.

Pure: FHIR JSON in, plain data out; no Flask, no database, no network.
"""

from service.fhir.issues import Issue
from service.scoring.budget import LIMITS, BudgetExceeded, Limits
from service.scoring.check import ExpressionLocation, compile_questionnaire, questionnaire_expressions
from service.scoring.definition import FHIRPATH
from service.scoring.evaluator import ResponseEvaluator
from service.scoring.fhirpath import CompiledExpression, compile_expression, plain
from service.scoring.functions import FhirPathError
from service.scoring.interpret import reliable_change
from service.scoring.results import Band, BandRange, SafetyFlag, Score, ScoringResult
from service.scoring.score import evaluate_expression, score_response

__all__ = [
    "FHIRPATH",
    "LIMITS",
    "Band",
    "BandRange",
    "BudgetExceeded",
    "CompiledExpression",
    "ExpressionLocation",
    "FhirPathError",
    "Issue",
    "Limits",
    "ResponseEvaluator",
    "SafetyFlag",
    "Score",
    "ScoringResult",
    "compile_expression",
    "compile_questionnaire",
    "evaluate_expression",
    "plain",
    "questionnaire_expressions",
    "reliable_change",
    "score_response",
]

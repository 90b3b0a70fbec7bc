"""Read filled data forms (xlsx/xlsm/xls/docx) through the declarative description.

    spec = load_spec("config/form.toml")
    for result in read_forms(filename, kind, data, spec):   # never raises
        result.data, result.problems, result.valid

`read_forms` already normalises and validates; `validate` is there for data from elsewhere.
"""

from intake.forms.model import FormData, FormResult, Locations, Problem, Severity, Where
from intake.forms.reader import part_refused, read_forms
from intake.forms.sources import MessageBudget
from intake.forms.spec import FormSpec, SpecError, load_spec
from intake.forms.template import write_template
from intake.forms.validate import check, validate

__all__ = [
    "FormData",
    "FormResult",
    "FormSpec",
    "Locations",
    "MessageBudget",
    "Problem",
    "Severity",
    "SpecError",
    "Where",
    "check",
    "load_spec",
    "part_refused",
    "read_forms",
    "validate",
    "write_template",
]

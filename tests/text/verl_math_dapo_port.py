"""An independent Python rendition of verl's DAPO grader
(verl/utils/reward_score/math_dapo.py: compute_score with strict_box_verify
off, identical in the official KPO code), written from its behaviour for
tests/text/test_reward_dapo_reference.py to hold `kpo reward --kind dapo`
against. Keep it plain Python `re` and `str`: the point is that it runs the
way verl runs, not the way kpo's C does."""
import re

ANSWER_LINE = re.compile(r"(?i)Answer\s*:\s*([^\n]+)")
TAIL_CHARS = 300  # verl grades solution_str[-300:]

# (old, new) in verl's order, then text removed outright.
REPLACEMENTS = [("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""),
                ("mbox", "text"), (",\\text{and}", ","), ("\\text{and}", ","),
                ("\\text{m}", "\\text{}")]
DELETIONS = ["square", "ways", "integers", "dollars", "mph", "inches", "hours", "km", "units",
             "\\ldots", "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm",
             "gm", "pounds", "meters", "meals", "edges", "students", "childrentickets",
             "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3",
             "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!",
             "{,}", '"', "\\dots"]
# re.sub steps in order; the \boxed one is greedy in verl.
REWRITES = [(r"(.*?)(\$)(.*?)(\$)(.*)", "$\\3$"),
            (r"(\\text\{)(.*?)(\})", "\\2"),
            (r"(\\textbf\{)(.*?)(\})", "\\2"),
            (r"(\\overline\{)(.*?)(\})", "\\2"),
            (r"(\\boxed\{)(.*)(\})", "\\2"),
            (r"(frac)([^{])(.)", "frac{\\2}{\\3}"),
            (r"(sqrt)([^{])", "sqrt{\\2}")]


def normalize(answer):
    """verl's normalize_final_answer."""
    text = answer.split("=")[-1]
    for old, new in REPLACEMENTS:
        text = text.replace(old, new)
    for gone in DELETIONS:
        text = text.replace(gone, "")
    for pattern, repl in REWRITES:
        text = re.sub(pattern, repl, text)
    text = text.replace("$", "")
    if text.replace(",", "").isdigit():
        text = text.replace(",", "")
    return text.strip()


def grade(response, gold):
    """(correct, extracted, prediction) as verl's compute_score sees them."""
    found = ANSWER_LINE.findall(response[-TAIL_CHARS:])
    raw = found[-1] if found else "[INVALID]"
    pred = normalize(raw)
    return pred == normalize(gold), bool(found), pred

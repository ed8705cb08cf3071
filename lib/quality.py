"""The rule table (conf/quality_rules.yaml) -> Spark Column expressions; quarantine split.

Each rule is a Spark SQL boolean expression that is TRUE for a bad record. :func:`with_reasons` adds
``reasons``: the names of every rule a record breaks (empty array = valid). The same functions serve
the streaming app and the batch backfill.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lib.config import CONF_DIR, ConfigError, _read_text

RULES_FILE = CONF_DIR / "quality_rules.yaml"


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    when: str
    enabled: bool = True


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[Rule, ...]

    @property
    def active(self) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.enabled)


@lru_cache(maxsize=8)
def load_rules(path: str | Path = RULES_FILE) -> RuleSet:
    """Load and check the rule table; ConfigError (one line) on any mistake."""
    text = _read_text(Path(path))
    if text is None:
        raise ConfigError(f"config error: no rule file {path}")
    try:
        data = yaml.safe_load(text)
        rules = RuleSet.model_validate(data)
    except yaml.YAMLError:
        raise ConfigError(f"config error: {path}: not valid YAML") from None
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config error: {path}: {loc}: {first['msg']}") from None
    names = [r.name for r in rules.rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"config error: {path}: rule name {dupes[0]!r} is used twice")
    for rule in rules.rules:
        if re.search(r"\b(select|insert|delete|drop|update)\b", rule.when, re.IGNORECASE):
            raise ConfigError(f"config error: {path}: rule {rule.name}: 'when' must be an expression, not a statement")
    return rules


def _broken(rule: Rule) -> Column:
    """True when ``rule`` is broken (a NULL condition counts as not broken)."""
    try:
        cond = F.expr(rule.when)
    except Exception as exc:  # noqa: BLE001 — parse errors: name the rule
        raise ConfigError(f"config error: rule {rule.name}: cannot parse 'when' ({str(exc).splitlines()[0]})") from None
    return F.coalesce(cond, F.lit(False))


def is_valid(rules: RuleSet) -> Column:
    """True when a row breaks no active rule — the same verdict as an empty ``reasons``, as one
    boolean (cheaper where the reasons are not needed: the sessions query)."""
    broken = [_broken(rule) for rule in rules.active]
    if not broken:
        return F.lit(True)
    any_broken = broken[0]
    for b in broken[1:]:
        any_broken = any_broken | b
    return ~any_broken


def with_reasons(df: DataFrame, rules: RuleSet) -> DataFrame:
    """Add ``reasons`` (array<string>) = names of the broken rules, in rule-table order.

    Built as the concatenation of one array per rule (its name when broken, else empty) rather than
    ``filter(array(<name or NULL>, ...), x -> x IS NOT NULL)``: a higher-order function has no generated
    code, so it took its whole projection — every rule, their regexes — out of whole-stage code
    generation, evaluated row by row by Spark's interpreter (docs/performance.md, "Huge generated methods")."""
    empty = F.array().cast("array<string>")
    cols = [F.when(_broken(rule), F.array(F.lit(rule.name))).otherwise(empty) for rule in rules.active]
    return df.withColumn("reasons", F.concat(*cols) if cols else empty)


def split_valid(df_with_reasons: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(valid rows, quarantined rows) by the ``reasons`` column."""
    bad = F.size("reasons") > 0
    return df_with_reasons.where(~bad), df_with_reasons.where(bad)

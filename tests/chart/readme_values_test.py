"""The chart README's values table lists exactly the keys of values.yaml, with
their defaults: a key added, renamed or removed in one and not the other, or a
default changed in one only, fails.

Which keys: every leaf of values.yaml, where a value is descended into when it
is a non-empty map whose schema (values.schema.json) names its properties;
free-form maps (podSecurityContext, nodeSelector, ...) and empty maps are one
row each. The table is the one under "## Values": | `key` | `default` | meaning |,
the default a YAML value in backticks.

Usage: readme_values_test.py CHART_DIR
"""
import json
import re
import sys

import yaml


def leaves(value, schema, root, prefix=""):
    """{dotted key: default} for values.yaml, guided by the schema."""
    if "$ref" in schema:
        schema = root["definitions"][schema["$ref"].split("/")[-1]]
    if isinstance(value, dict) and value and "properties" in schema:
        out = {}
        for k, v in value.items():
            sub = schema["properties"].get(k)
            if sub is None:
                raise SystemExit(f"values.yaml has {prefix}{k}, which values.schema.json does not describe")
            out.update(leaves(v, sub, root, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value}


def readme_table(text):
    """{key: default} from the README's values table."""
    section = text.split("\n## Values\n", 1)
    if len(section) != 2:
        raise SystemExit("the README has no '## Values' section")
    rows = {}
    for line in section[1].split("\n## ", 1)[0].splitlines():
        m = re.match(r"^\|\s*`([^`]+)`\s*\|\s*`([^`]*)`\s*\|", line)
        if not m:
            continue
        key, default = m.group(1), m.group(2)
        if key in rows:
            raise SystemExit(f"the README lists {key} twice")
        rows[key] = yaml.safe_load(default) if default != "" else ""
    return rows


def main(chart):
    with open(f"{chart}/values.yaml") as f:
        values = yaml.safe_load(f)
    with open(f"{chart}/values.schema.json") as f:
        schema = json.load(f)
    with open(f"{chart}/README.md") as f:
        table = readme_table(f.read())
    expected = leaves(values, schema, schema)
    problems = []
    for k in sorted(expected.keys() - table.keys()):
        problems.append(f"missing from the README's table: {k} (default {expected[k]!r})")
    for k in sorted(table.keys() - expected.keys()):
        problems.append(f"in the README's table but not in values.yaml: {k}")
    for k in sorted(expected.keys() & table.keys()):
        if expected[k] != table[k]:
            problems.append(f"{k}: values.yaml says {expected[k]!r}, the README {table[k]!r}")
    for p in problems:
        print(p)
    print(f"{len(expected)} keys in values.yaml, {len(table)} rows in the README, {len(problems)} differences")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

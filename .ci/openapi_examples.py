"""Every example in docs/openapi.yaml is valid against the schema it illustrates.

openapi-spec-validator checks the document's shape and Schemathesis checks the server's real
answers, but neither reads the response examples a user copies from: an example left behind
by a change (a field the server now always sends, a renamed one) would stay. Each example of
a request body, a response body or a parameter is validated here with the JSON Schema
2020-12 validator OpenAPI 3.1 schemas are written for, `$ref`s resolved against the document.

Usage: python openapi_examples.py docs/openapi.yaml   (exit 1 naming every invalid example)
"""

import sys

import yaml
from jsonschema import Draft202012Validator


def examples_of(media):
    """(name, value) of a media type object's `example` and `examples`."""
    if "example" in media:
        yield "example", media["example"]
    for name, example in media.get("examples", {}).items():
        if "value" in example:
            yield name, example["value"]


def main(path):
    doc = yaml.safe_load(open(path, encoding="utf-8"))
    components = doc.get("components", {})

    def resolve(obj, kind):
        ref = obj.get("$ref")
        return components[kind][ref.rsplit("/", 1)[1]] if ref else obj

    def problems_of(schema, value):
        # The schema sits in a document holding the components, so its `$ref`s resolve.
        root = {"components": components, "$defs": {"it": schema}, "$ref": "#/$defs/it"}
        return [
            f"/{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Draft202012Validator(root).iter_errors(value)
        ]

    checked, failed = 0, []
    for route, item in doc["paths"].items():
        for method, op in item.items():
            if not isinstance(op, dict) or method.startswith("x-") or method == "parameters":
                continue
            where = f"{method.upper()} {route}"
            cases = []
            body = resolve(op.get("requestBody", {}), "requestBodies")
            for media_type, media in body.get("content", {}).items():
                if "json" in media_type:
                    cases += [(f"request {name}", media["schema"], v) for name, v in examples_of(media)]
            for status, response in op.get("responses", {}).items():
                for media_type, media in resolve(response, "responses").get("content", {}).items():
                    if "json" in media_type:
                        cases += [(f"{status} {name}", media["schema"], v) for name, v in examples_of(media)]
            for parameter in op.get("parameters", []) + item.get("parameters", []):
                parameter = resolve(parameter, "parameters")
                if "example" in parameter:
                    cases.append((f"parameter {parameter['name']}", parameter["schema"], parameter["example"]))
            for what, schema, value in cases:
                checked += 1
                for problem in problems_of(schema, value):
                    failed.append(f"{where} {what}: {problem}")
    for line in failed:
        print(f"openapi example invalid: {line}")
    print(f"openapi examples: {checked} checked, {len(failed)} problems")
    return 1 if failed or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

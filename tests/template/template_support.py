"""Helpers for the template's tests: the parsed template, a resolver that
turns its intrinsic functions into the values one deployment would see, IAM
matching, and loading the Lambda code the template points at."""
from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
# The Lambdas' shared layer: template tests compare the template with its constants (spec_key, ...).
_COMMON = str(REPO_ROOT / "functions" / "common")
if _COMMON not in sys.path:
    sys.path.insert(0, _COMMON)

# One imagined deployment: what the resolver substitutes for pseudo parameters.
STACK = "car-ml-pipeline"
REGION = "us-east-1"
ACCOUNT = "123456789012"
PSEUDO = {
    "AWS::StackName": STACK,
    "AWS::Region": REGION,
    "AWS::AccountId": ACCOUNT,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
}


def load_template(path: Path) -> dict:
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path)), default=str))


class Resolver:
    """Evaluates Ref, Fn::GetAtt, Fn::Sub, Fn::FindInMap, Fn::Join for one
    imagined deployment (parameter defaults, us-east-1), giving resources the
    physical names CloudFormation would (explicit names resolved, otherwise a
    generated-looking one). Anything it does not know fails the test loudly."""

    def __init__(self, template: dict, overrides: dict | None = None):
        self.template = template
        self.resources = template["Resources"]
        self.parameters = {
            name: str(spec["Default"]) for name, spec in template.get("Parameters", {}).items() if "Default" in spec
        }
        self.parameters["NotificationEmail"] = "ml-team@example.com"
        self.parameters.update(overrides or {})

    # -- physical names
    def _name_property(self, logical: str, prop: str) -> str | None:
        value = self.resources[logical].get("Properties", {}).get(prop)
        return None if value is None else self.resolve(value)

    def ref(self, name: str) -> str:
        if name in PSEUDO:
            return PSEUDO[name]
        if name in self.parameters:
            return self.parameters[name]
        if name not in self.resources:
            raise KeyError(f"Ref to unknown name {name}")
        kind = self.resources[name]["Type"]
        generated = f"{STACK}-{name.lower()}-1a2b3c4d5e6f"
        if kind == "AWS::S3::Bucket":
            return generated
        if kind == "AWS::SNS::Topic":
            return f"arn:aws:sns:{REGION}:{ACCOUNT}:{STACK}-{name}-ABCDEF123456"
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{self._name_property(name, 'Name') or generated}"
        if kind in ("AWS::Glue::Job", "AWS::Glue::SecurityConfiguration", "AWS::Logs::LogGroup", "AWS::CloudWatch::Alarm",
                    "AWS::Serverless::Function", "AWS::DynamoDB::Table", "AWS::IAM::Role"):
            prop = {"AWS::Logs::LogGroup": "LogGroupName", "AWS::CloudWatch::Alarm": "AlarmName",
                    "AWS::Serverless::Function": "FunctionName", "AWS::DynamoDB::Table": "TableName",
                    "AWS::IAM::Role": "RoleName"}.get(kind, "Name")
            return self._name_property(name, prop) or generated
        if kind == "AWS::Serverless::Api":
            return "a1b2c3d4e5"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{generated}"
        if kind == "AWS::KMS::Key":
            return "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        raise KeyError(f"no physical id rule for Ref {name} ({kind})")

    def get_att(self, logical: str, attribute: str) -> str:
        kind = self.resources[logical]["Type"]
        if (kind, attribute) == ("AWS::Serverless::Api", "Stage"):  # SAM's ApiId.Stage: the generated stage's name
            return self._name_property(logical, "StageName")
        if (kind, attribute) == ("AWS::WAFv2::WebACL", "Arn"):
            scope = self.resolve(self.resources[logical]["Properties"]["Scope"]).lower()
            return f"arn:aws:wafv2:{REGION}:{ACCOUNT}:{scope}/webacl/{self._name_property(logical, 'Name')}/0a1b2c3d"
        name = self.ref(logical)
        arns = {
            ("AWS::Serverless::Function", "Arn"): f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
            ("AWS::IAM::Role", "Arn"): f"arn:aws:iam::{ACCOUNT}:role/{STACK}-{logical}-ABCDEF123456",
            ("AWS::S3::Bucket", "Arn"): f"arn:aws:s3:::{name}",
            ("AWS::DynamoDB::Table", "Arn"): f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
            ("AWS::KMS::Key", "Arn"): f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{name}",
            ("AWS::Logs::LogGroup", "Arn"): f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}:*",
            ("AWS::CloudWatch::Alarm", "Arn"): f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}",
            ("AWS::SQS::Queue", "Arn"): f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name.rsplit('/', 1)[-1]}",
            ("AWS::Events::Rule", "Arn"): f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{STACK}-{logical}-ABC",
        }
        if (kind, attribute) not in arns:
            raise KeyError(f"no rule for Fn::GetAtt {logical}.{attribute} ({kind})")
        return arns[(kind, attribute)]

    def sub(self, text: str, variables: dict | None = None) -> str:
        def replace(match: re.Match) -> str:
            token = match.group(1)
            if variables and token in variables:
                return self.resolve(variables[token])
            if "." in token and not token.startswith("AWS::"):
                logical, attribute = token.split(".", 1)
                return self.get_att(logical, attribute)
            return self.ref(token)

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def resolve(self, value):
        if isinstance(value, dict) and len(value) == 1:
            (key, arg), = value.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self.get_att(logical, attribute)
            if key == "Fn::Sub":
                return self.sub(arg) if isinstance(arg, str) else self.sub(arg[0], arg[1])
            if key == "Fn::FindInMap":
                mapping, top, second = (self.resolve(a) for a in arg)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::Join":
                return arg[0].join(self.resolve(v) for v in arg[1])
            if key.startswith("Fn::"):
                raise KeyError(f"resolver does not handle {key}")
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value


def iam_allows(statements: list[dict], action: str, arn: str) -> bool:
    """Whether an Allow statement grants `action` on `arn` (IAM wildcards; conditions ignored)."""
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
            fnmatch.fnmatchcase(arn, r) for r in resources
        ):
            return True
    return False


def _string_like(value: str, pattern: str) -> bool:
    # IAM's StringLike: "*" any run of characters, "?" one character, case-sensitive, nothing else special.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.S) is not None


_CONDITION_MATCHERS = {
    "StringEquals": lambda value, expected: value == expected,
    "StringLike": _string_like,
    "Bool": lambda value, expected: str(value).lower() == str(expected).lower(),
}


def condition_holds(condition: dict, context: dict) -> bool:
    """An IAM Condition block against a request context ({key: value or list of values}),
    as the IAM User Guide describes it (reference_policies_condition-single-vs-multi-valued-context-keys.html,
    reference_policies_condition_examples-multi-valued-context-keys.html): operators and keys
    are ANDed, a key's policy values ORed; a single-valued operator needs the key present;
    ForAllValues holds when every request value matches some policy value, and also when the
    key is absent; ForAnyValue needs at least one request value to match. Null tests presence.
    An operator not listed here fails the test instead of being guessed."""
    for operator, keys in condition.items():
        qualifier, _, base = operator.rpartition(":")
        if base != "Null" and base not in _CONDITION_MATCHERS or qualifier not in ("", "ForAllValues", "ForAnyValue"):
            raise NotImplementedError(f"condition operator {operator}")
        for key, expected in keys.items():
            expected = expected if isinstance(expected, list) else [expected]
            actual = context.get(key)
            values = [] if actual is None else actual if isinstance(actual, list) else [actual]
            if base == "Null":
                holds = (not values) == (str(expected[0]).lower() == "true")
            else:
                match = _CONDITION_MATCHERS[base]

                def matches(value, match=match, expected=expected):
                    return any(match(value, e) for e in expected)

                if qualifier == "ForAllValues":
                    holds = all(matches(value) for value in values)
                elif qualifier == "ForAnyValue":
                    holds = any(matches(value) for value in values)
                else:
                    holds = len(values) == 1 and matches(values[0])
            if not holds:
                return False
    return True


def iam_allows_request(statements: list[dict], action: str, arn: str, context: dict) -> bool:
    """Whether identity-policy statements allow one request: an explicit Deny
    wins, else some Allow must match action, resource and every condition."""
    def applies(statement) -> bool:
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = statement.get("Resource", [])
        resources = [resources] if isinstance(resources, str) else resources
        return (any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions)
                and any(fnmatch.fnmatchcase(arn, r) for r in resources)
                and condition_holds(statement.get("Condition", {}), context))

    if any(s.get("Effect") == "Deny" and applies(s) for s in statements):
        return False
    return any(s.get("Effect") == "Allow" and applies(s) for s in statements)


def role_statements(resolver: Resolver, role_logical_id: str) -> list[dict]:
    role = resolver.resources[role_logical_id]["Properties"]
    statements = []
    for policy in role.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            statements.append(resolver.resolve(statement))
    return statements


def load_module(path: Path, name: str):
    """Import a Lambda's app.py by path (every function's module is called `app`)."""
    common = str(REPO_ROOT / "functions" / "common")
    if common not in sys.path:
        sys.path.insert(0, common)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


_ENV_READERS = {"env_str", "env_int", "env_float", "env_bool", "env_list"}


def env_vars_read(source: str) -> dict[str, bool]:
    """{variable: required} for the environment variables a module reads
    (pipeline_common.config readers and os.environ / os.getenv)."""
    found: dict[str, bool] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        name = node.args[0].value
        if not isinstance(name, str):
            continue
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if called in _ENV_READERS:
            has_default = len(node.args) > 1 or any(k.arg == "default" for k in node.keywords)
            required = called in ("env_str", "env_int", "env_float") and not has_default
            found[name] = found.get(name, False) or required
        elif called in ("getenv", "get") and isinstance(func, ast.Attribute) and "environ" in ast.unparse(func.value) + called:
            found.setdefault(name, False)
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Subscript) and "environ" in ast.unparse(node.value):
            key = node.slice
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                found[key.value] = True
    return found

"""The SAM stack as local mode builds it: template.yaml read for what it says
(each function's folder, environment and timeout, the definition's
substitutions, the Glue job's default arguments, the parameters' defaults),
with local physical names for the resources.

Resolving the template's intrinsic functions here keeps local mode honest: a
variable the template gives a function is the variable local mode gives it,
with a local value. Only the intrinsics the template uses are supported; an
unknown one fails with its name.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localmode import REPO_ROOT
from localmode.lambdas import ACCOUNT, local_function_arn

TEMPLATE = REPO_ROOT / "template.yaml"
STACK_NAME = "local"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, ...) kept as {"Fn::X": value}."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if name == "Fn::GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE) -> dict:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_CfnLoader)


@dataclass
class LocalStack:
    """Local names and values for the template's resources and parameters."""

    template: dict
    region: str = "us-east-1"
    account: str = ACCOUNT
    parameter_overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_file(cls, path: Path = TEMPLATE, **kwargs) -> "LocalStack":
        return cls(load_template(path), **kwargs)

    # --- what the template holds ---------------------------------------------
    @property
    def resources(self) -> dict:
        return self.template.get("Resources", {})

    def resources_of_type(self, cfn_type: str) -> dict[str, dict]:
        return {name: r for name, r in self.resources.items() if r.get("Type") == cfn_type}

    def parameter(self, name: str) -> Any:
        if name in self.parameter_overrides:
            return self.parameter_overrides[name]
        spec = self.template.get("Parameters", {}).get(name)
        if spec is None:
            raise KeyError(f"template.yaml has no parameter {name}")
        if "Default" not in spec:
            raise KeyError(f"parameter {name} has no default: local mode must supply one")
        return spec["Default"]

    def function_folder(self, logical_id: str) -> str:
        code_uri = self.resources[logical_id]["Properties"]["CodeUri"]
        return Path(code_uri).name

    def functions(self) -> dict[str, str]:
        """Function logical id -> folder under functions/."""
        return {name: self.function_folder(name) for name in self.resources_of_type("AWS::Serverless::Function")}

    def function_environment(self, logical_id: str) -> dict[str, str]:
        globals_env = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.resources[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        return {name: _as_env(self.resolve(value)) for name, value in {**globals_env, **own}.items()}

    def function_timeout(self, logical_id: str) -> float:
        own = self.resources[logical_id]["Properties"].get("Timeout")
        return float(own or self.template.get("Globals", {}).get("Function", {}).get("Timeout", 3))

    def state_machine_id(self, definition: str = "statemachine/pipeline.asl.json") -> str:
        """The logical id of the state machine whose DefinitionUri is `definition`."""
        [logical_id] = [name for name, machine in self.resources_of_type("AWS::Serverless::StateMachine").items()
                        if machine["Properties"].get("DefinitionUri") == definition]
        return logical_id

    def state_machine(self, logical_id: str | None = None) -> dict:
        return self.resources[logical_id or self.state_machine_id()]["Properties"]

    def definition_substitutions(self, logical_id: str | None = None) -> dict[str, str]:
        return {k: str(self.resolve(v))
                for k, v in self.state_machine(logical_id).get("DefinitionSubstitutions", {}).items()}

    def substitution_folders(self, logical_id: str | None = None) -> dict[str, str]:
        """Definition substitution -> function folder, for the substitutions that name a function's ARN."""
        found = {}
        for key, value in self.state_machine(logical_id).get("DefinitionSubstitutions", {}).items():
            target = value.get("Fn::GetAtt") if isinstance(value, dict) else None
            if target and self.resources.get(target[0], {}).get("Type") == "AWS::Serverless::Function":
                found[key] = self.function_folder(target[0])
        return found

    def glue_default_arguments(self) -> dict[str, str]:
        jobs = self.resources_of_type("AWS::Glue::Job")
        args: dict[str, str] = {}
        for job in jobs.values():
            args.update({k: str(self.resolve(v)) for k, v in job["Properties"].get("DefaultArguments", {}).items()})
        return args

    def role_assumable_by(self, service: str) -> str:
        """The ARN of the stack's one IAM role whose trust policy lets `service` (e.g. sagemaker.amazonaws.com) assume it."""
        found = []
        for logical_id, role in self.resources_of_type("AWS::IAM::Role").items():
            statements = self.resolve(role["Properties"].get("AssumeRolePolicyDocument", {})).get("Statement", [])
            for statement in statements if isinstance(statements, list) else [statements]:
                services = (statement.get("Principal") or {}).get("Service", [])
                actions = statement.get("Action", [])
                if (
                    statement.get("Effect") == "Allow"
                    and service in ([services] if isinstance(services, str) else services)
                    and "sts:AssumeRole" in ([actions] if isinstance(actions, str) else actions)
                ):
                    found.append(logical_id)
        if len(found) != 1:
            raise KeyError(f"template.yaml has {len(found)} roles {service} may assume ({', '.join(found)}): expected one")
        return self.get_att(found[0], "Arn")

    # --- local physical names --------------------------------------------------
    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        explicit = resource.get("Properties", {}).get("Name") or resource.get("Properties", {}).get("AlarmName")
        if explicit is not None:
            return str(self.resolve(explicit))
        kebab = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "-", logical_id).lower()
        return f"{STACK_NAME}-{kebab}"

    def ref(self, name: str) -> str:
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account,
            "AWS::Partition": "aws",
            "AWS::StackName": STACK_NAME,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": None,
        }
        if name in pseudo:
            return pseudo[name]
        if name in self.template.get("Parameters", {}) or name in self.parameter_overrides:
            return self.parameter(name)
        resource = self.resources.get(name)
        if resource is None:
            raise KeyError(f"!Ref {name}: no such parameter or resource in template.yaml")
        kind = resource["Type"]
        if kind in ("AWS::SNS::Topic",):
            return f"arn:aws:sns:{self.region}:{self.account}:{self.physical_name(name)}"
        if kind == "AWS::Serverless::Function":
            return self.function_folder(name)
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.physical_name(name)}"
        if kind == "AWS::Serverless::StateMachine":
            return f"arn:aws:states:{self.region}:{self.account}:stateMachine:{self.physical_name(name)}"
        return self.physical_name(name)

    def get_att(self, logical_id: str, attribute: str) -> str:
        resource = self.resources.get(logical_id)
        if resource is None:
            raise KeyError(f"!GetAtt {logical_id}.{attribute}: no such resource in template.yaml")
        kind = resource["Type"]
        name = self.physical_name(logical_id)
        if attribute == "Arn":
            if kind == "AWS::Serverless::Function":
                return local_function_arn(self.function_folder(logical_id), self.region, self.account)
            if kind == "AWS::S3::Bucket":
                return f"arn:aws:s3:::{name}"
            if kind == "AWS::IAM::Role":
                return f"arn:aws:iam::{self.account}:role/{name}"
            if kind == "AWS::DynamoDB::Table":
                return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"
            if kind == "AWS::SNS::Topic":
                return self.ref(logical_id)
            if kind == "AWS::KMS::Key":
                return f"arn:aws:kms:{self.region}:{self.account}:key/{name}"
            if kind == "AWS::Events::Rule":
                return f"arn:aws:events:{self.region}:{self.account}:rule/{name}"
            service = kind.split("::")[1].lower()
            return f"arn:aws:{service}:{self.region}:{self.account}:{name}"
        if attribute == "QueueName":
            return name
        return f"{name}.{attribute}"

    def resolve(self, value: Any) -> Any:
        """Evaluate CloudFormation intrinsics with local values."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(v) for k, v in value.items()}
        (fn, arg), = value.items()
        if fn == "Ref":
            return self.ref(arg)
        if fn == "Fn::GetAtt":
            logical_id, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
            return self.get_att(logical_id, attribute)
        if fn == "Fn::Sub":
            text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])
            return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub_var(m.group(1), variables)), text)
        if fn == "Fn::FindInMap":
            mapping, top, second = (self.resolve(a) for a in arg)
            return self.template["Mappings"][mapping][top][second]
        if fn == "Fn::Join":
            separator, items = arg
            return separator.join(str(self.resolve(i)) for i in items)
        if fn == "Fn::Select":
            index, items = arg
            return self.resolve(items)[int(self.resolve(index))]
        if fn.startswith("Fn::"):
            raise NotImplementedError(f"local mode cannot evaluate {fn} in template.yaml")
        return {fn: self.resolve(arg)}

    def _sub_var(self, name: str, variables: dict) -> Any:
        if name in variables:
            return self.resolve(variables[name])
        if "." in name and not name.startswith("AWS::"):
            logical_id, attribute = name.split(".", 1)
            return self.get_att(logical_id, attribute)
        return self.ref(name)


def _as_env(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

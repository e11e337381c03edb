"""The template's IAM as local mode resolves it: who calls (each principal's
role and its identity policies) and what the resources say (bucket, topic,
queue and key policies, and which key encrypts which resource).

Everything comes from template.yaml through `LocalStack.resolve`, so a
policy names exactly the local ARNs the local stack gives its resources.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from localmode.iam.evaluate import Policy, as_list


@dataclass(frozen=True)
class Principal:
    """Who makes a call: a role of the stack, assumed by a service for one of the stack's parts."""

    role: str  # the role's logical id
    role_arn: str
    session: str  # the assumed-role session name (the function's name, "SageMaker", ...)
    part: str  # what acts under it, for reports: "function qa_test", "state machine PipelineStateMachine"

    @property
    def session_arn(self) -> str:
        account = self.role_arn.split(":")[4]
        return f"arn:aws:sts::{account}:assumed-role/{self.role_arn.rsplit('/', 1)[1]}/{self.session}"


class ManagedPolicyNotModelled(RuntimeError):
    pass


@dataclass
class StackIam:
    """The IAM facts of one LocalStack."""

    stack: Any
    # role logical id -> policies; built on first use, replaceable (the policy mutation swaps them).
    identity: dict[str, list[Policy]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.identity = self.identity or {lid: self._role_policies(lid) for lid in self.roles()}
        self._resource_policies = self._collect_resource_policies()
        self._encryption = self._collect_encryption()

    # --- principals --------------------------------------------------------------------
    def roles(self) -> list[str]:
        return sorted(self.stack.resources_of_type("AWS::IAM::Role"))

    def _role_of(self, properties: dict, key: str = "Role") -> str:
        value = properties.get(key)
        if not (isinstance(value, dict) and "Fn::GetAtt" in value):
            raise KeyError(f"expected {key}: !GetAtt <Role>.Arn, found {value!r}")
        target = value["Fn::GetAtt"]
        return target[0] if isinstance(target, list) else target.split(".")[0]

    def principal(self, role: str, session: str, part: str) -> Principal:
        return Principal(role, self.stack.get_att(role, "Arn"), session, part)

    def function_principal(self, folder: str) -> Principal:
        for logical_id, function in self.stack.resources_of_type("AWS::Serverless::Function").items():
            if self.stack.function_folder(logical_id) == folder:
                props = function["Properties"]
                name = self.stack.resolve(props.get("FunctionName")) or logical_id
                return self.principal(self._role_of(props), name, f"function {folder}")
        raise KeyError(f"template.yaml has no function in functions/{folder}")

    def state_machine_principal(self, logical_id: str) -> Principal:
        props = self.stack.resources[logical_id]["Properties"]
        return self.principal(self._role_of(props), self.stack.physical_name(logical_id), f"state machine {logical_id}")

    def glue_job_principal(self) -> Principal:
        [(logical_id, job)] = self.stack.resources_of_type("AWS::Glue::Job").items()
        # Glue's own session name for the job's role.
        return self.principal(self._role_of(job["Properties"]), "GlueJobRunnerSession", f"Glue job {logical_id}")

    def sagemaker_principal(self, part: str) -> Principal:
        role_arn = self.stack.role_assumable_by("sagemaker.amazonaws.com")
        role = next(lid for lid in self.roles() if self.stack.get_att(lid, "Arn") == role_arn)
        return self.principal(role, "SageMaker", part)

    def rule_target_principal(self, rule: str, target_arn: str) -> Principal:
        for target in self.stack.resources[rule]["Properties"].get("Targets", []):
            if self.stack.resolve(target["Arn"]) == target_arn and "RoleArn" in target:
                return self.principal(self._role_of(target, "RoleArn"), rule, f"EventBridge rule {rule}")
        raise KeyError(f"rule {rule} has no target {target_arn} with a role")

    def _role_policies(self, role: str) -> list[Policy]:
        props = self.stack.resources[role]["Properties"]
        policies = [Policy(self.stack.resolve(p["PolicyDocument"]), f"{role}/{p['PolicyName']}")
                    for p in props.get("Policies", [])]
        for resource_id, resource in self.stack.resources_of_type("AWS::IAM::Policy").items():
            if {"Ref": role} in resource["Properties"].get("Roles", []):
                policies.append(Policy(self.stack.resolve(resource["Properties"]["PolicyDocument"]), resource_id))
        managed = [self.stack.resolve(arn) for arn in props.get("ManagedPolicyArns", [])]
        if managed:
            # AWS managed policies' documents are not in the template; a role that holds one cannot be
            # evaluated here, and local mode makes no call as one (the check in `policies_of` says so).
            policies.append(Policy({"Statement": []}, f"{role}/managed:{','.join(managed)}"))
        return policies

    def policies_of(self, principal: Principal) -> list[Policy]:
        policies = self.identity[principal.role]
        unmodelled = [p.source for p in policies if "/managed:" in p.source]
        if unmodelled:
            raise ManagedPolicyNotModelled(f"{principal.part} acts under {principal.role}, which holds {unmodelled[0]}")
        return policies

    # --- resources ---------------------------------------------------------------------
    def _collect_resource_policies(self) -> dict[str, Policy]:
        found: dict[str, Policy] = {}
        for logical_id, resource in self.stack.resources_of_type("AWS::S3::BucketPolicy").items():
            bucket = self.stack.resolve(resource["Properties"]["Bucket"])
            found[f"arn:aws:s3:::{bucket}"] = Policy(self.stack.resolve(resource["Properties"]["PolicyDocument"]),
                                                     logical_id, resource_based=True)
        for kind, key in (("AWS::SNS::TopicPolicy", "Topics"), ("AWS::SQS::QueuePolicy", "Queues")):
            for logical_id, resource in self.stack.resources_of_type(kind).items():
                document = self.stack.resolve(resource["Properties"]["PolicyDocument"])
                for statement in as_list(document.get("Statement")):
                    for arn in as_list(statement.get("Resource")):
                        found[arn] = Policy(document, logical_id, resource_based=True)
        for logical_id, resource in self.stack.resources_of_type("AWS::KMS::Key").items():
            found[self.stack.get_att(logical_id, "Arn")] = Policy(
                self.stack.resolve(resource["Properties"]["KeyPolicy"]), logical_id, resource_based=True)
        return found

    def resource_policy(self, arn: str) -> Policy | None:
        """The policy of the resource `arn` names: a bucket's for its objects too."""
        if arn in self._resource_policies:
            return self._resource_policies[arn]
        if arn.startswith("arn:aws:s3:::"):
            return self._resource_policies.get(arn.split("/", 1)[0])
        return None

    def _collect_encryption(self) -> dict[str, str]:
        """Resource ARN (bucket, topic, queue) -> the ARN of the stack's KMS key that encrypts it."""
        keys = {self.stack.get_att(k, "Arn") for k in self.stack.resources_of_type("AWS::KMS::Key")}
        found = {}
        for logical_id, bucket in self.stack.resources_of_type("AWS::S3::Bucket").items():
            rules = bucket["Properties"].get("BucketEncryption", {}).get("ServerSideEncryptionConfiguration", [])
            for rule in rules:
                default = rule.get("ServerSideEncryptionByDefault", {})
                key = self.stack.resolve(default.get("KMSMasterKeyID"))
                if default.get("SSEAlgorithm") == "aws:kms" and key in keys:
                    found[f"arn:aws:s3:::{self.stack.ref(logical_id)}"] = key
        for logical_id, table in self.stack.resources_of_type("AWS::DynamoDB::Table").items():
            sse = table["Properties"].get("SSESpecification") or {}
            key = self.stack.resolve(sse.get("KMSMasterKeyId"))
            if sse.get("SSEEnabled") and key in keys:
                found[self.stack.get_att(logical_id, "Arn")] = key
        for kind in ("AWS::SNS::Topic", "AWS::SQS::Queue"):
            for logical_id, resource in self.stack.resources_of_type(kind).items():
                key = self.stack.resolve(resource["Properties"].get("KmsMasterKeyId"))
                if key in keys:
                    found[self.stack.get_att(logical_id, "Arn") if kind.endswith("Queue") else self.stack.ref(logical_id)] = key
        return found

    def encryption_key(self, arn: str) -> str | None:
        if arn.startswith("arn:aws:s3:::"):
            return self._encryption.get(arn.split("/", 1)[0])
        return self._encryption.get(arn)

    def table_hash_keys(self) -> dict[str, str]:
        """DynamoDB table ARN -> its partition key's attribute name (dynamodb:LeadingKeys reads it)."""
        found = {}
        for logical_id, table in self.stack.resources_of_type("AWS::DynamoDB::Table").items():
            [hash_key] = [k["AttributeName"] for k in table["Properties"]["KeySchema"] if k["KeyType"] == "HASH"]
            found[self.stack.get_att(logical_id, "Arn")] = hash_key
        return found

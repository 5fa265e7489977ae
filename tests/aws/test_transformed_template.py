"""deploy/template.yaml after the SAM transform (what CloudFormation deploys): least
privilege of the roles, the watcher's on-failure destination, the notification filter,
retained state and the raw bucket's lifecycle.

The SAM transform adds policies of its own (``AWSLambdaSQSQueueExecutionRole`` for an
SQS event source, the VPC and X-Ray policies) that the source template does not show,
so the checks read the transformed template. IAM questions ("may the updater write
this object?") are answered by evaluating the statements against concrete ARNs, with
the parameters' defaults and sample bucket names substituted.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re

import pytest
from cfnlint.decode import decode_str
from samtranslator.translator.transform import transform

from conftest import REPO_ROOT

TEMPLATE = REPO_ROOT / "deploy" / "template.yaml"
RAW, STORES = "raw-bucket", "zarr-stores"
ACCOUNT, REGION = "123456789012", "us-east-1"

# Actions AWS designed without resource-level permissions, or that Lambda performs on
# resources it names itself: the network interfaces of a function in a VPC (AWS's
# AWSLambdaVPCAccessExecutionRole grants exactly these on "*"). Nothing else may use
# Resource "*".
STAR_RESOURCE_ALLOWED = {
    "ec2:createnetworkinterface", "ec2:describenetworkinterfaces", "ec2:describesubnets",
    "ec2:deletenetworkinterface", "ec2:assignprivateipaddresses",
    "ec2:unassignprivateipaddresses",
}


class _NoManagedPolicies:
    """samtranslator's policy loader: no AWS call (names of managed policies are not
    needed, and any managed policy is a failure of its own)."""

    def load(self) -> dict:
        return {}


def transformed(text: str) -> dict:
    doc, matches = decode_str(text)
    assert not matches, matches
    for res in doc["Resources"].values():
        if res["Type"] == "AWS::Serverless::Function":
            res["Properties"]["CodeUri"] = "s3://deployment-bucket/code.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    return transform(doc, {}, _NoManagedPolicies())


@pytest.fixture(scope="module")
def template() -> dict:
    return transformed(TEMPLATE.read_text())


def parameters(template: dict) -> dict[str, str]:
    values = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    values.update({"RawBucketName": RAW, "StoreBucketName": STORES,
                   "AWS::Partition": "aws", "AWS::Region": REGION,
                   "AWS::AccountId": ACCOUNT})
    return values


def resolve(value, template: dict):
    """A policy value as a concrete string: parameters substituted, a resource's ARN
    as ``arn:aws:<logical id>``."""
    params = parameters(template)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return [resolve(v, template) for v in value]
    if "Fn::Sub" in value:
        return re.sub(r"\$\{([^}]+)\}", lambda m: params.get(m.group(1), f"<{m.group(1)}>"),
                      value["Fn::Sub"])
    if "Fn::GetAtt" in value:
        name, attr = value["Fn::GetAtt"]
        return f"arn:aws:{name}" if attr == "Arn" else f"{name}.{attr}"
    if "Ref" in value:
        return params.get(value["Ref"], f"ref:{value['Ref']}")
    raise AssertionError(f"unexpected policy value {value!r}")


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def roles(template: dict) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::IAM::Role"}


def statements(template: dict, role: str) -> list[dict]:
    """The Allow statements of a role's inline policies, with resolved resources."""
    out = []
    for policy in roles(template)[role]["Properties"].get("Policies", []):
        for st in policy["PolicyDocument"]["Statement"]:
            assert st["Effect"] == "Allow", st
            st = copy.deepcopy(st)
            st["Action"] = [a.lower() for a in as_list(st["Action"])]
            st["Resource"] = [resolve(r, template) for r in as_list(st["Resource"])]
            out.append(st)
    return out


def allows(template: dict, role: str, action: str, arn: str) -> bool:
    """Whether an inline statement of ``role`` allows ``action`` on ``arn``
    (conditions ignored: they only narrow a grant). A managed policy could allow
    anything: a role with one allows everything here."""
    if roles(template)[role]["Properties"].get("ManagedPolicyArns"):
        return True
    return any(fnmatch.fnmatchcase(action.lower(), a) and
               any(fnmatch.fnmatchcase(arn, r) for r in st["Resource"])
               for st in statements(template, role) for a in st["Action"])


def function_role(template: dict, function: str) -> str:
    role = template["Resources"][function]["Properties"]["Role"]
    assert "Fn::GetAtt" in role, f"{function}: role {role!r} is not a role of this stack"
    return role["Fn::GetAtt"][0]


def s3(bucket: str, key: str | None = None) -> str:
    return f"arn:aws:s3:::{bucket}" + (f"/{key}" if key is not None else "")


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


# ---------------------------------------------------------------- IAM


def test_no_managed_policy_is_attached_after_the_transform(template):
    """SAM attaches AWSLambdaSQSQueueExecutionRole (receive/delete on every queue), the
    VPC and X-Ray policies to the roles it creates: each function has its own role."""
    assert set(roles(template)) == {function_role(template, "WatcherFunction"),
                                    function_role(template, "UpdaterFunction"),
                                    function_role(template, "SweepFunction")}
    for name, role in roles(template).items():
        assert "ManagedPolicyArns" not in role["Properties"], (
            f"{name}: {role['Properties']['ManagedPolicyArns']}")
        assert "PermissionsBoundary" not in role["Properties"]
    kinds = {r["Type"] for r in template["Resources"].values()}
    assert not kinds & {"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"}, kinds


def test_no_wildcard_action_and_star_resources_only_where_aws_requires(template):
    for role in roles(template):
        for st in statements(template, role):
            for action in st["Action"]:
                assert "*" not in action, f"{role}: wildcard action {action}"
            if "*" in st["Resource"]:
                extra = set(st["Action"]) - STAR_RESOURCE_ALLOWED
                assert not extra, f"{role}: Resource '*' for {sorted(extra)}"
            for arn in st["Resource"]:
                # Object wildcards only under a named prefix or a whole raw bucket
                # (the updater reads any raw key); never a bucket-wide write.
                if arn.endswith("/*"):
                    assert not ({"s3:putobject", "s3:deleteobject"} & set(st["Action"])
                                and arn == s3(STORES, "*")), f"{role}: writes {arn}"
                assert "<" not in arn, f"{role}: unresolved {arn}"


def test_updater_writes_only_under_the_store_prefix_and_reads_the_config(template):
    updater = function_role(template, "UpdaterFunction")
    prefix = parameters(template)["StorePrefix"]
    config = parameters(template)["ConfigPrefix"]
    store_key = s3(STORES, f"{prefix}/sst.zarr/sst/c/0/0/0")
    ledger = s3(STORES, f"{prefix}/sst.zarr.zru-ledger.json")
    for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
        assert allows(template, updater, action, store_key), action
        assert allows(template, updater, action, ledger), action
        # Outside the store prefix: nothing to write (the old role had the whole bucket).
        if action != "s3:GetObject":
            assert not allows(template, updater, action, s3(STORES, "other/x.zarr/zarr.json"))
            assert not allows(template, updater, action, s3(STORES, f"{config}/sst.json"))
            assert not allows(template, updater, action, s3(RAW, "sst/a.nc"))
    assert allows(template, updater, "s3:GetObject", s3(STORES, f"{config}/sst.json"))
    assert allows(template, updater, "s3:GetObjectVersion", s3(RAW, "sst/a.nc"))
    assert allows(template, updater, "s3:ListBucket", s3(RAW))


def test_watcher_reads_the_config_and_only_sends(template):
    watcher = function_role(template, "WatcherFunction")
    config = parameters(template)["ConfigPrefix"]
    assert allows(template, watcher, "s3:GetObject", s3(STORES, f"{config}/sst.json"))
    for action in ("s3:PutObject", "s3:DeleteObject"):
        assert not allows(template, watcher, action, s3(STORES, f"{config}/sst.json"))
    assert not allows(template, watcher, "s3:GetObject", s3(STORES, "zarr/sst.zarr/zarr.json"))
    assert allows(template, watcher, "sqs:SendMessage", "arn:aws:EventQueue")
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage"):
        assert not allows(template, watcher, action, "arn:aws:EventQueue")


def test_sqs_actions_name_their_queues(template):
    """The updater consumes the event queue only: not the failure destination, the
    DLQ (it only sends there) or any other queue of the account."""
    updater = function_role(template, "UpdaterFunction")
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
                   "sqs:ChangeMessageVisibility"):
        assert allows(template, updater, action, "arn:aws:EventQueue"), action
        for other in ("arn:aws:FailedNotificationsQueue", "arn:aws:DeadLetterQueue",
                      queue_arn("someone-elses-queue")):
            assert not allows(template, updater, action, other), (action, other)
    assert allows(template, updater, "sqs:SendMessage", "arn:aws:DeadLetterQueue")
    assert not allows(template, updater, "sqs:SendMessage", queue_arn("someone-elses-queue"))


def test_efs_access_only_through_the_access_point(template):
    updater = function_role(template, "UpdaterFunction")
    efs = [st for st in statements(template, updater)
           if any(a.startswith("elasticfilesystem:") for a in st["Action"])]
    assert efs and all(st["Resource"] == ["arn:aws:LockFileSystem"] for st in efs), efs
    for st in efs:
        cond = st["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"]
        assert cond == {"Fn::GetAtt": ["LockAccessPoint", "Arn"]}
    assert set().union(*(st["Action"] for st in efs)) == {
        "elasticfilesystem:clientmount", "elasticfilesystem:clientwrite"}


def test_the_check_catches_the_old_sam_policies():
    """The template before explicit roles: SAM-generated roles with managed policies
    and a bucket-wide store write; the checks above must fail on it."""
    old = TEMPLATE.read_text()
    old = old.replace("      Role: !GetAtt WatcherRole.Arn\n", "").replace(
        "      Role: !GetAtt UpdaterRole.Arn\n",
        "      Policies:\n        - Version: \"2012-10-17\"\n          Statement:\n"
        "            - Effect: Allow\n              Action: [s3:PutObject]\n"
        "              Resource: !Sub \"arn:${AWS::Partition}:s3:::${StoreBucketName}/*\"\n")
    broken = transformed(old)
    with pytest.raises(AssertionError):
        test_no_managed_policy_is_attached_after_the_transform(broken)
    with pytest.raises(AssertionError):
        test_no_wildcard_action_and_star_resources_only_where_aws_requires(broken)


# ---------------------------------------------------------------- failure paths


def test_watcher_failures_go_to_a_retained_standard_queue_with_an_alarm(template):
    res = template["Resources"]
    configs = [r["Properties"] for r in res.values()
               if r["Type"] == "AWS::Lambda::EventInvokeConfig"]
    assert len(configs) == 1, configs
    config = configs[0]
    assert config["FunctionName"] == {"Ref": "WatcherFunction"}
    assert config["MaximumRetryAttempts"] == 2
    dest = config["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue = res[dest]
    # Lambda destinations cannot be FIFO queues.
    assert queue["Type"] == "AWS::SQS::Queue"
    assert not queue["Properties"].get("FifoQueue", False)
    assert queue["Properties"]["MessageRetentionPeriod"] == 1209600
    assert queue["DeletionPolicy"] == "Retain"
    # Lambda sends the record with the function's role.
    watcher = function_role(template, "WatcherFunction")
    assert allows(template, watcher, "sqs:SendMessage", f"arn:aws:{dest}")
    alarms = [r["Properties"] for r in res.values() if r["Type"] == "AWS::CloudWatch::Alarm"
              and {"Name": "QueueName", "Value": {"Fn::GetAtt": [dest, "QueueName"]}}
              in r["Properties"].get("Dimensions", [])]
    assert len(alarms) == 1, "no alarm on the failure destination's depth"
    alarm = alarms[0]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"


def test_notifications_only_for_the_raw_suffix(template):
    notifications = template["Resources"]["RawBucket"]["Properties"][
        "NotificationConfiguration"]["LambdaConfigurations"]
    assert {n["Event"] for n in notifications} == {"s3:ObjectCreated:*", "s3:ObjectRemoved:*"}
    for n in notifications:
        assert n["Filter"]["S3Key"]["Rules"] == [{"Name": "suffix",
                                                  "Value": {"Ref": "RawKeySuffix"}}]
    assert template["Parameters"]["RawKeySuffix"]["Default"] == ".nc"


def test_state_survives_stack_deletion_and_replacement(template):
    kinds = {"AWS::SQS::Queue", "AWS::EFS::FileSystem", "AWS::S3::Bucket"}
    stateful = {k: v for k, v in template["Resources"].items() if v["Type"] in kinds}
    assert len(stateful) == 5, sorted(stateful)
    for name, res in stateful.items():
        assert res.get("DeletionPolicy") == "Retain", name
        assert res.get("UpdateReplacePolicy") == "Retain", name


def test_noncurrent_raw_versions_expire_after_queued_events_can_wait(template):
    rules = template["Resources"]["RawBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    expiring = [r for r in rules if "NoncurrentVersionExpiration" in r]
    assert len(expiring) == 1 and expiring[0]["Status"] == "Enabled"
    days = expiring[0]["NoncurrentVersionExpiration"]["NoncurrentDays"]
    assert days == {"Ref": "RawNoncurrentVersionDays"}
    param = template["Parameters"]["RawNoncurrentVersionDays"]
    retention_days = template["Resources"]["EventQueue"]["Properties"][
        "MessageRetentionPeriod"] / 86400
    # A queued event names a version: it must outlive the longest wait on the queue.
    assert param["MinValue"] > retention_days and param["Default"] >= param["MinValue"]
    # Current versions are never expired by the rule (zru takes no lifecycle events).
    assert all("ExpirationInDays" not in r and "ExpirationDate" not in r for r in rules)


def test_architecture_is_a_parameter_of_both_functions(template):
    param = template["Parameters"]["Architecture"]
    assert set(param["AllowedValues"]) == {"x86_64", "arm64"}
    assert param["Default"] == "x86_64"
    for name in ("WatcherFunction", "UpdaterFunction"):
        assert template["Resources"][name]["Properties"]["Architectures"] == [
            {"Ref": "Architecture"}]


def test_the_sweep_reads_stores_and_writes_nothing_but_the_queue(template):
    """The reconciliation sweep lists the raw bucket, reads the ledgers and config and
    sends to the FIFO queue; it may not write a store nor read raw objects."""
    role = function_role(template, "SweepFunction")
    acts = {a for st in statements(template, role) for a in st["Action"]}
    assert not {a for a in acts if a.startswith(("s3:put", "s3:delete"))}, acts
    assert {"sqs:sendmessage", "s3:listbucket", "s3:getobject"} <= acts, acts
